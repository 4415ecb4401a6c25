/**
 * The long mode: `npm run sim -- --schedules 1000000`.
 *
 *   --schedules N       how many schedules to run (default 10000)
 *   --seed S            first seed (default 1); seeds S, S+1, ... are run
 *   --profile P         mixed | calm | stormy | tight | margin | forceful | skewed | permits | rw, or a rotation
 *                       ("multi" alternates permits and rw):
 *                       rotate (every supported profile, the default) or quick (the quick mode's)
 *   --break NAME        run with a deliberate protocol break (see test/sim/replay.ts)
 *   --minutes M         stop after M minutes of wall time (checked between schedules)
 *   --replay TOKEN      rerun one schedule, printing its trace
 *   --no-shrink         report the first failure as found
 *   --coverage          condition coverage: every condition part, and how often dropping it would
 *                       have changed an outcome; parts that never did are listed
 *
 * Prints schedules per second while it runs, and on a failure: the broken invariant, the seed, a
 * shrunk trace and ONE command that replays it. Exit code 1 on a failure.
 */
import type { Violation } from "./checker.js";
import { BREAKS, type BreakName, decodeName, type RunName, replayCommand, scenarioOf } from "./replay.js";
import { PROFILES } from "./scenario.js";
import { MixTally, type Rotation, search, shrink } from "./search.js";
import { type RunResult, runScenario } from "./simulation.js";
import { ConditionCoverage } from "./store.js";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

function args(): Map<string, string> {
  const out = new Map<string, string>();
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith("--")) throw new Error(`Unexpected argument ${a}`);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) out.set(a.slice(2), "true");
    else {
      out.set(a.slice(2), next);
      i++;
    }
  }
  return out;
}

function describeViolation(v: Violation): string {
  return `${v.invariant} violated at t=${v.at.toFixed(3)} ms (simulated)\n  ${v.detail}`;
}

function printTrace(result: RunResult, lines = 60): void {
  const trace = result.trace;
  console.log(`--- trace (last ${Math.min(lines, trace.length)} of ${trace.length} lines) ---`);
  for (const line of trace.slice(-lines)) console.log(line);
  console.log("---");
}

async function replay(token: string): Promise<number> {
  const name = decodeName(token);
  const scenario = scenarioOf(name);
  const result = await runScenario(scenario, { trace: true });
  console.log(
    `seed ${name.seed}, profile ${name.profile}${name.break ? `, break ${name.break}` : ""}, ${name.edits?.length ?? 0} shrink edits`,
  );
  console.log(
    `lease ${scenario.leaseMs} ms, heartbeat ${scenario.heartbeatMs} ms, maxClockSkewMs ${scenario.maxClockSkewMs ?? "Infinity"}`,
  );
  printTrace(result, 400);
  if (result.violation === undefined) {
    console.log("no violation");
    return 0;
  }
  console.log(describeViolation(result.violation));
  return 1;
}

function table(title: string, map: Map<string, number>, total?: number): void {
  const rows = [...map].sort((a, b) => b[1] - a[1]);
  console.log(title);
  for (const [k, v] of rows)
    console.log(
      `  ${k.padEnd(28)} ${String(v).padStart(10)}${total ? `  (${((100 * v) / total).toFixed(1)}%)` : ""}`,
    );
}

function printCoverage(coverage: ConditionCoverage): void {
  console.log("condition coverage (evaluations; outcomes the part decided):");
  const idle: string[] = [];
  for (const [condition, parts] of coverage.parts) {
    console.log(`  ${condition}`);
    for (const [part, [n, decided]] of parts) {
      console.log(`    ${part.padEnd(44)} ${String(n).padStart(9)} ${String(decided).padStart(9)}`);
      if (decided === 0) idle.push(`${part}  in  ${condition}`);
    }
  }
  console.log(idle.length === 0 ? "every part decided some outcome" : "parts that never decided an outcome:");
  for (const line of idle) console.log(`  ${line}`);
}

async function main(): Promise<number> {
  const a = args();
  const token = a.get("replay");
  if (token !== undefined) return replay(token);
  const count = Number(a.get("schedules") ?? 10_000);
  const from = Number(a.get("seed") ?? 1);
  const profile = (a.get("profile") ?? "rotate") as Rotation;
  if (profile !== "rotate" && profile !== "quick" && profile !== "multi" && !PROFILES.includes(profile))
    throw new Error(`Unknown profile ${profile}`);
  const brk = a.get("break") as BreakName | undefined;
  if (brk !== undefined && !(brk in BREAKS))
    throw new Error(`Unknown break ${brk}; one of ${Object.keys(BREAKS).join(", ")}`);
  const minutes = a.has("minutes") ? Number(a.get("minutes")) : undefined;
  // Wall time is read only here, between runs, to report speed and honour --minutes.
  const started = performance.now();
  const tally = new MixTally();
  let lastReport = started;
  const coverage = a.get("coverage") === "true" ? new ConditionCoverage() : undefined;
  /** Runs with several holders per lock: sums, and maxima where the name says so. */
  const multi = new Map<string, number>();
  const outcome = await search({
    from,
    count,
    profile,
    break: brk,
    coverage,
    shouldStop: () => minutes !== undefined && performance.now() - started > minutes * 60_000,
    onRun: (_name: RunName, result, scenario) => {
      tally.add(scenario, result);
      for (const [k, v] of Object.entries(result.multi ?? {})) {
        multi.set(k, k.startsWith("max") ? Math.max(multi.get(k) ?? 0, v) : (multi.get(k) ?? 0) + v);
      }
      if (result.multi !== undefined) multi.set("schedules", (multi.get("schedules") ?? 0) + 1);
      const now = performance.now();
      if (now - lastReport > 10_000) {
        lastReport = now;
        const rate = tally.schedules / ((now - started) / 1000);
        console.log(
          `${tally.schedules} schedules, ${rate.toFixed(0)} schedules/s, ${(tally.steps / tally.schedules).toFixed(0)} events/schedule`,
        );
      }
    },
  });
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `\n${outcome.ran} schedules (seeds ${from}..${from + outcome.ran - 1}) in ${seconds.toFixed(1)} s: ${(outcome.ran / seconds).toFixed(1)} schedules/s, ${tally.steps} events, ${(tally.simulatedMs / 3_600_000).toFixed(1)} simulated hours`,
  );
  table("fault mix (schedules exercising each):", tally.counts, tally.schedules);
  table("network totals:", tally.network);
  table("lock totals:", tally.checker);
  if (multi.size > 0) table("several holders (test/sim/multi.ts):", multi);
  console.log(
    `  ${"stalls right after a clock read".padEnd(28)} ${String(tally.midTurnStalls).padStart(10)}`,
  );
  if (coverage !== undefined) printCoverage(coverage);
  if (outcome.found === undefined) {
    console.log("no violation");
    return 0;
  }
  const found = outcome.found;
  console.log(
    `\nVIOLATION after ${found.after} schedules, seed ${found.name.seed} (profile ${found.name.profile}):`,
  );
  console.log(describeViolation(found.result.violation as Violation));
  console.log(`replay: ${replayCommand(found.name)}`);
  if (a.get("no-shrink") !== "true") {
    const small = await shrink(found);
    const traced = await runScenario(scenarioOf(small.name), { trace: true });
    console.log(`\nshrunk with ${small.name.edits?.length ?? 0} edits (${small.runs} runs):`);
    console.log(describeViolation(traced.violation ?? (small.result.violation as Violation)));
    printTrace(traced);
    console.log(`replay: ${replayCommand(small.name)}`);
  }
  return 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
