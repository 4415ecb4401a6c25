/**
 * Runs many scenarios in a row, looking for a violation, and shrinks the first one found: fewer
 * faults, a quieter network, fewer processes — as long as the same invariant still breaks — so the
 * report ends with a short trace and one command that replays it.
 */
import type { Violation } from "./checker.js";
import { BREAKS, type BreakName, type Edit, type RunName, scenarioOf } from "./replay.js";
import { faultMix, type ProfileName, type Scenario } from "./scenario.js";
import { type RunResult, runScenario } from "./simulation.js";
import type { ConditionCoverage } from "./store.js";

/** The profile rotation of a plain search: a seed picks one of these. */
const ROTATION: readonly ProfileName[] = [
  "mixed",
  "stormy",
  "tight",
  "calm",
  "mixed",
  "margin",
  "forceful",
  "serverless",
];

/**
 * The quick mode's rotation, weighted towards the profiles that find defects in the fewest
 * schedules (measured with the deliberate breaks and the mutants: tight, stormy, margin, and
 * forceful for what an administrator's force-releases can break), with calm and mixed kept for the
 * liveness checks and the plain mixes.
 */
const QUICK_ROTATION: readonly ProfileName[] = [
  "tight",
  "stormy",
  "margin",
  "forceful",
  "tight",
  "stormy",
  "margin",
  "calm",
  "mixed",
  "serverless",
  "handoff",
];

export type Rotation = ProfileName | "rotate" | "quick" | "multi";

export function profileFor(seed: number, profile: Rotation): ProfileName {
  if (profile === "rotate") return ROTATION[seed % ROTATION.length] as ProfileName;
  if (profile === "quick") return QUICK_ROTATION[seed % QUICK_ROTATION.length] as ProfileName;
  if (profile === "multi") return seed % 2 === 0 ? "rw" : "permits";
  return profile;
}

export interface SearchOptions {
  readonly from: number;
  readonly count: number;
  /**
   * "rotate" cycles through the supported profiles by seed, "quick" through the weighted ones. With
   * a break, "rotate" means the profile that break names.
   */
  readonly profile: Rotation;
  readonly break?: BreakName | undefined;
  /** Checked between runs only (never inside one); undefined: no limit. */
  readonly shouldStop?: () => boolean;
  readonly onRun?: (name: RunName, result: RunResult, scenario: Scenario) => void;
  /** Gathers condition coverage over every run (slower). */
  readonly coverage?: ConditionCoverage | undefined;
}

export interface Found {
  readonly name: RunName;
  readonly result: RunResult;
  /** 1-based: how many schedules it took. */
  readonly after: number;
}

export interface SearchOutcome {
  readonly ran: number;
  readonly found: Found | undefined;
}

export async function search(o: SearchOptions): Promise<SearchOutcome> {
  let ran = 0;
  for (let seed = o.from; seed < o.from + o.count; seed++) {
    if (o.shouldStop?.() === true) break;
    const profile =
      o.break !== undefined && o.profile === "rotate" ? BREAKS[o.break].profile : profileFor(seed, o.profile);
    const name: RunName = { seed, profile, ...(o.break === undefined ? {} : { break: o.break }) };
    const scenario = scenarioOf(name);
    const result = await runScenario(scenario, o.coverage === undefined ? {} : { coverage: o.coverage });
    ran++;
    o.onRun?.(name, result, scenario);
    if (result.violation !== undefined) return { ran, found: { name, result, after: ran } };
  }
  return { ran, found: undefined };
}

/** Shrinking candidates for a scenario, most simplifying first. */
function candidates(s: Scenario): Edit[] {
  const edits: Edit[] = [];
  for (let i = s.faults.length - 1; i >= 0; i--) edits.push({ drop: "fault", index: i });
  if (s.admin) edits.push({ drop: "admin" });
  for (let w = s.workers; w > 2; w--) edits.push({ drop: "worker" });
  if (s.ids.length > 1) edits.push({ drop: "secondId" });
  if (s.stalls.afterReadChance > 0 || s.stalls.timerLagChance > 0) edits.push({ drop: "stalls" });
  const n = s.network;
  for (const key of [
    "lateDuplicateChance",
    "duplicateChance",
    "requestLoss",
    "replyLoss",
    "throttleChance",
    "refuseChance",
    "serverErrorChance",
    "spikeChance",
  ] as const) {
    if ((n[key] ?? 0) > 0) edits.push({ quiet: key });
  }
  if (n.sdkMaxAttempts > 1) edits.push({ quiet: "sdkMaxAttempts" });
  if (Number.isFinite(n.requestTimeoutMs)) edits.push({ quiet: "requestTimeoutMs" });
  return edits;
}

/**
 * Greedy shrinking: try each simplification, keep it if the same invariant still breaks. Bounded by
 * `maxRuns` runs. Returns the smallest name found and its result.
 */
export async function shrink(
  found: Found,
  maxRuns = 150,
): Promise<{ name: RunName; result: RunResult; runs: number }> {
  const invariant = (v: Violation | undefined) => v?.invariant;
  const target = invariant(found.result.violation);
  let best = { name: found.name, result: found.result };
  let runs = 0;
  let progress = true;
  while (progress && runs < maxRuns) {
    progress = false;
    for (const edit of candidates(scenarioOf(best.name))) {
      if (runs >= maxRuns) break;
      const name: RunName = { ...best.name, edits: [...(best.name.edits ?? []), edit] };
      const scenario = scenarioOf(name);
      // An edit that changes nothing (e.g. a worker that cannot go) is not progress.
      if (JSON.stringify(scenario) === JSON.stringify(scenarioOf(best.name))) continue;
      runs++;
      const result = await runScenario(scenario);
      if (invariant(result.violation) === target) {
        best = { name, result };
        progress = true;
        break;
      }
    }
  }
  return { ...best, runs };
}

/** What a scenario exercises, counted over a search. */
export class MixTally {
  readonly counts = new Map<string, number>();
  schedules = 0;
  steps = 0;
  simulatedMs = 0;
  readonly network = new Map<string, number>();
  readonly checker = new Map<string, number>();
  midTurnStalls = 0;

  add(scenario: Scenario, result: RunResult): void {
    this.schedules++;
    this.steps += result.steps;
    this.simulatedMs += result.simulatedMs;
    this.midTurnStalls += result.midTurnStalls;
    for (const tag of faultMix(scenario)) this.counts.set(tag, (this.counts.get(tag) ?? 0) + 1);
    for (const [k, v] of Object.entries(result.network)) this.network.set(k, (this.network.get(k) ?? 0) + v);
    // Counts add up; a "max…" stat is the largest any schedule saw.
    for (const [k, v] of Object.entries(result.checker))
      this.checker.set(
        k,
        k.startsWith("max") ? Math.max(this.checker.get(k) ?? 0, v) : (this.checker.get(k) ?? 0) + v,
      );
  }
}
