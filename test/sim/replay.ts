/**
 * Naming a run: a scenario is regenerated from (seed, profile, deliberate break) and then edited by
 * the shrinker's edits. All four fit in one short token, so a failure is replayed by one command.
 */
import { generateScenario, type Knobs, type ProfileName, type Scenario } from "./scenario.js";

/** The deliberate protocol breaks, each with the scenario profile that hunts for it. */
export const BREAKS = {
  /** Waiters take over 2 ms early: 1 ms past the slack the drift margin keeps (see docs/safety.md). */
  "takeover-early": { profile: "margin", knobs: { takeoverEarlyMs: 2 } },
  /** The takeover is conditioned on the owner only. */
  "takeover-ignores-version": { profile: "tight", knobs: { takeoverIgnoresVersion: true } },
  /** Wall clocks disagree by more than maxClockSkewMs while the shortcut is on (no code change). */
  "skew-beyond-bound": { profile: "skewed", knobs: undefined },
  /** Heartbeats require the exact previous version, under ambiguous writes. */
  "renew-exact-version": { profile: "stormy", knobs: { renewOnExactVersion: true } },
  /** release() does not wait for a heartbeat in flight. */
  "release-races-heartbeat": { profile: "mixed", knobs: { releaseSkipsQueue: true } },
  /** An acquisition answered after its lease is handed out (expired) instead of taken again. */
  "late-acquisition-handed-out": { profile: "stormy", knobs: { handOutLateAcquisitions: true } },
  // Regression switches: each defect the simulation once found, put back (docs/safety.md).
  /** A release applied but unanswered, retried after someone else took the lock, reports a loss. */
  "release-ignores-released-by": { profile: "stormy", knobs: { releaseIgnoresReleasedBy: true } },
  /** An update or release lost while an attempt went unanswered is rejected as unwritten. */
  "forget-uncertain-writes": { profile: "stormy", knobs: { forgetUncertainWrites: true } },
  /** A heartbeat stamps heartbeatAt before reading its send time: a stall between outlives the shortcut. */
  "wall-stamp-before-send": { profile: "tight", knobs: { wallStampBeforeSend: true } },
  /** Heartbeats and updates without the fence: a ghost of an old acquisition takes its late writes. */
  "renew-ignores-fence": { profile: "stormy", knobs: { renewIgnoresFence: true } },
  /** A late duplicate of forceRelease removes a later holder. */
  "force-release-any-owner": { profile: "forceful", knobs: { forceReleaseAnyOwner: true } },
  /** An acquire retry writes its first token again: one token, two ownerships. */
  "reuse-acquire-token": { profile: "forceful", knobs: { reuseAcquireToken: true } },
  /** An update the SDK retried across a forceRelease is rejected as unwritten. */
  "trust-failed-condition": { profile: "forceful", knobs: { trustFailedCondition: true } },
  // Turns (src/turn.ts): fairness between waiters of different processes.
  /** An acquire takes a free lock whoever has the next turn. */
  "acquire-ignores-turn": { profile: "calm", knobs: { acquireIgnoresTurn: true } },
  /** A claim on the next turn never lapses: a crashed waiter's claim blocks the lock for ever. */
  "turn-never-lapses": { profile: "calm", knobs: { turnNeverLapses: true } },
  /** A claim is not conditioned on its fence: a late duplicate lands after its waiter acquired. */
  "claim-ignores-fence": { profile: "stormy", knobs: { claimIgnoresFence: true } },
  // Locks with several holders (test/sim/multi.ts).
  /** A stale permit is reclaimed without the check on its exact version. */
  "evict-ignores-version": { profile: "permits", knobs: { evictIgnoresVersion: true } },
  /** A permit is taken without the count in the condition. */
  "permits-uncounted": { profile: "permits", knobs: { permitsUncounted: true } },
  /** Shared acquisitions ignore a waiting writer's intent. */
  "shared-ignores-intent": { profile: "rw", knobs: { sharedIgnoresIntent: true } },
  /** An exclusive acquisition removes any writer's intent, not only its own (readers overtake). */
  "acquire-removes-intent": { profile: "rw", knobs: { acquireRemovesIntent: true } },
  /** forceRelease(id, { holder }) removes the entry it read whatever its version (a heartbeat since). */
  "force-one-ignores-version": { profile: "permits", knobs: { forceOneIgnoresVersion: true } },
  /** A retry of forceRelease(id, { holder: name }) removes another holder of that name (defect 5). */
  "force-one-repicks": { profile: "permits", knobs: { forceOneRepicks: true } },
  /** `held` and `signal` trust the timers alone: a frozen holder believes in its lock until they run. */
  "held-ignores-clock": { profile: "serverless", knobs: { heldIgnoresClock: true } },
  /** `extend()` counts the renewed lease from its answer's arrival, not from its send. */
  "extend-counts-from-reply": { profile: "serverless", knobs: { extendCountsFromReply: true } },
  /** A lock handed on by a release (src/hand-off.ts) counts its lease from the reply, not the send. */
  "hand-off-counts-from-reply": { profile: "handoff", knobs: { handOffCountsFromReply: true } },
} as const satisfies Record<string, { profile: ProfileName; knobs: Knobs | undefined }>;
export type BreakName = keyof typeof BREAKS;

/** A shrinking step, applied to a generated scenario. */
export type Edit =
  | { readonly drop: "fault"; readonly index: number }
  | { readonly drop: "admin" | "stalls" | "secondId" | "worker" }
  | { readonly quiet: keyof Scenario["network"] }
  | { readonly horizonMs: number };

export interface RunName {
  readonly seed: number;
  readonly profile: ProfileName;
  readonly break?: BreakName | undefined;
  readonly edits?: readonly Edit[] | undefined;
}

export function scenarioOf(name: RunName): Scenario {
  const knobs = name.break === undefined ? undefined : BREAKS[name.break].knobs;
  let s = generateScenario(name.seed, name.profile, knobs);
  for (const edit of name.edits ?? []) s = applyEdit(s, edit);
  return s;
}

export function applyEdit(s: Scenario, edit: Edit): Scenario {
  if ("horizonMs" in edit) return { ...s, horizonMs: edit.horizonMs };
  if ("quiet" in edit) {
    const neutral =
      edit.quiet === "requestTimeoutMs" ? Number.POSITIVE_INFINITY : edit.quiet === "sdkMaxAttempts" ? 1 : 0;
    return { ...s, network: { ...s.network, [edit.quiet]: neutral } };
  }
  switch (edit.drop) {
    case "fault":
      return { ...s, faults: s.faults.filter((_, i) => i !== edit.index) };
    case "stalls":
      return { ...s, stalls: { afterReadChance: 0, afterReadMaxMs: 0, timerLagChance: 0, timerLagMaxMs: 0 } };
    case "secondId":
      return { ...s, ids: s.ids.slice(0, 1) };
    case "admin": {
      if (!s.admin) return s;
      const admin = s.workers;
      return {
        ...s,
        admin: false,
        clocks: s.clocks.slice(0, admin),
        faults: s.faults.filter((f) => f.process !== admin),
      };
    }
    case "worker": {
      if (s.workers <= 2) return s;
      const last = s.workers - 1;
      return {
        ...s,
        workers: s.workers - 1,
        noHeartbeat: s.noHeartbeat?.slice(0, last),
        clocks: s.clocks.filter((_, i) => i !== last),
        faults: s.faults.flatMap((f) =>
          f.process === last ? [] : [f.process > last ? { ...f, process: f.process - 1 } : f],
        ),
      };
    }
  }
}

/** URL-safe base64 of the name, for `npm run sim -- --replay <token>`. */
export function encodeName(name: RunName): string {
  return Buffer.from(JSON.stringify(name)).toString("base64url");
}

export function decodeName(token: string): RunName {
  return JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as RunName;
}

export function replayCommand(name: RunName): string {
  return `npm run sim -- --replay ${encodeName(name)}`;
}
