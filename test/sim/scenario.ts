/**
 * Scenarios: everything one simulated run is made of — lock settings, processes and their clocks, the
 * network's behaviour, and a plan of faults — drawn from a seed. A scenario is plain data, so a
 * failing one can be shrunk by editing it and replayed from its seed plus the list of edits.
 */
import { CLOCK_RATE_DRIFT } from "../../src/lease.js";
import type { ProtocolKnobs } from "../../src/options.js";
import type { MultiSetting } from "./multi.js";
import { type NetworkSettings, QUIET_NETWORK } from "./network.js";
import type { ClockSetting, StallSettings } from "./process.js";
import { Random } from "./random.js";

export type Fault =
  | {
      readonly kind: "pause";
      readonly process: number;
      readonly at: number;
      readonly ms: number;
      /** Not at `at` but right after the process's next heartbeat from `at` on is confirmed. */
      readonly afterHeartbeat?: boolean;
    }
  | {
      readonly kind: "crash";
      readonly process: number;
      readonly at: number;
      readonly restartAfterMs: number | undefined;
    }
  | { readonly kind: "partition"; readonly process: number; readonly at: number; readonly ms: number }
  /** The server refuses the process's requests (AccessDenied, not applied) for a while. */
  | { readonly kind: "refusal"; readonly process: number; readonly at: number; readonly ms: number }
  | { readonly kind: "wallStep"; readonly process: number; readonly at: number; readonly offset: number }
  /**
   * A directed "ghost": from `at` on, once the lock `id` is free (or at once, for late copies of a
   * holder's own writes), every request one earlier acquisition sent — its acquire, then its
   * heartbeats, updates, releases and guarded writes, in order — arrives at the store again, as very
   * late duplicates would. `pick` chooses which acquisition (a fraction into the list of those seen).
   */
  | {
      readonly kind: "ghost";
      readonly process: number;
      readonly at: number;
      readonly id: string;
      readonly pick: number;
      /**
       * "acquire": the acquire too, once the lock is free (a ghost owner); "late": only the later
       * writes, at once (late copies); "afterRelease": once the lock is free, the later writes of the
       * acquisition that released it (late copies landing on a released lock).
       */
      readonly mode: "acquire" | "late" | "afterRelease";
    };

/** One LockClient's settings inside a simulated process. */
export interface ClientSettings {
  readonly leaseMs: number;
  readonly heartbeatMs: number;
  readonly pollMinMs: number;
  readonly pollMaxMs: number;
  /** null: the wall-clock shortcut is off. */
  readonly maxClockSkewMs: number | null;
}

/**
 * What runs inside one worker process: its LockClients (sharing the process's holder name, each with
 * its own settings) and how many workload threads run at once, thread t using client t mod clients.
 */
export interface ProcessPlan {
  readonly clients: readonly ClientSettings[];
  readonly threads: number;
}

/** Deliberate protocol faults (the library's internal knobs), for the tests that prove the search works. */
/** The library's deliberate protocol faults, one type for both sides (src/options.ts). */
export type Knobs = ProtocolKnobs;

export interface Scenario {
  readonly seed: number;
  readonly profile: ProfileName;
  readonly leaseMs: number;
  readonly heartbeatMs: number;
  readonly pollMinMs: number;
  readonly pollMaxMs: number;
  /** null: the wall-clock shortcut is off (Infinity, which JSON cannot carry). */
  readonly maxClockSkewMs: number | null;
  readonly partitionKey: string;
  readonly sortKey: { readonly name: string; readonly value: string } | undefined;
  readonly ids: readonly string[];
  readonly workers: number;
  readonly admin: boolean;
  readonly returnsOldItem: boolean;
  /** One per process: workers first, then the administrator. */
  readonly clocks: readonly ClockSetting[];
  readonly network: NetworkSettings;
  readonly stalls: StallSettings;
  readonly faults: readonly Fault[];
  /** No faults that could excuse slowness: the liveness bounds are checked. */
  readonly calm: boolean;
  readonly horizonMs: number;
  readonly knobs: Knobs | undefined;
  /**
   * Per worker process (workers first), when the run mixes settings or runs several clients and
   * acquires at once in one process; undefined: one client per process with the settings above.
   */
  readonly plans?: readonly ProcessPlan[] | undefined;
  /** The administrator force-releases often (the forceful profile). */
  readonly eagerAdmin?: boolean | undefined;
  /** Locks with several holders (profiles "permits" and "rw", test/sim/multi.ts). */
  readonly multi?: MultiSetting | undefined;
  /**
   * Per worker process (workers first): its acquires pass `heartbeat: false`, and its critical
   * sections renew by `extend()` at random points instead (the serverless profile).
   */
  readonly noHeartbeat?: readonly boolean[] | undefined;
}

/** The clients of worker `i`: its plan's, or one with the scenario's settings. */
export function clientsOf(s: Scenario, i: number): readonly ClientSettings[] {
  return (
    s.plans?.[i]?.clients ?? [
      {
        leaseMs: s.leaseMs,
        heartbeatMs: s.heartbeatMs,
        pollMinMs: s.pollMinMs,
        pollMaxMs: s.pollMaxMs,
        maxClockSkewMs: s.maxClockSkewMs,
      },
    ]
  );
}

/** Every client's settings in the run (the administrator uses the scenario's). */
export function allClients(s: Scenario): ClientSettings[] {
  const out = [...clientsOf(s, s.workers)];
  for (let i = 0; i < s.workers; i++) out.push(...clientsOf(s, i));
  return out;
}

export const PROFILES = [
  "mixed",
  "calm",
  "stormy",
  "tight",
  "margin",
  "skewed",
  "forceful",
  "permits",
  "rw",
  "serverless",
  "handoff",
] as const;
export type ProfileName = (typeof PROFILES)[number];

const NO_STALLS: StallSettings = {
  afterReadChance: 0,
  afterReadMaxMs: 0,
  timerLagChance: 0,
  timerLagMaxMs: 0,
};

/**
 * - calm: no faults but crashes (and restarts); liveness is checked.
 * - stormy: every kind of fault, often.
 * - mixed: a calm run a third of the time, otherwise a random subset of fault kinds.
 * - tight: the corners of the safety margins — clock rates on the drift bound, zero or tiny network
 *   delays with rare long reply spikes, stalls of holders right after they check.
 * - margin: the observed-lease margin alone — no network delay, clock rates on the drift bound,
 *   waiters that look every millisecond or so, holders that stop for a lease or two right after a
 *   heartbeat. The one place a takeover a millisecond too early shows.
 * - forceful: stormy, with an administrator that force-releases often (every half lease or so), so
 *   that its requests meet holders' writes in flight, retried by the SDK or answered late.
 * - serverless: mixed faults, with most workers holding locks without heartbeats (`heartbeat:
 *   false`), renewing them by `extend()` at random points, and frozen (paused) for up to two leases
 *   at random instants, as frozen Lambda environments are.
 * - handoff: the serverless, stormy or tight worlds on one id, every worker process running two or three
 *   acquires at once through one client, so that releases hand the lock to a local waiter
 *   (src/hand-off.ts), often with replies a lease or two late.
 * - skewed: wall clocks beyond `maxClockSkewMs` (only meaningful with the shortcut on): not a
 *   supported configuration, used to show the shortcut's assumption matters.
 */
export function generateScenario(seed: number, profile: ProfileName, knobs?: Knobs): Scenario {
  if (profile === "permits" || profile === "rw") {
    // The mixed, stormy or tight profile's worlds, without their administrator (its forceRelease
    // is the mutex's; one that removes single holders is drawn below), with more workers than permits.
    const m = new Random(seed, `scenario-multi/${profile}`);
    const base = generateScenario(seed, m.pick(["mixed", "stormy", "tight"] as const), knobs);
    const multi: MultiSetting = profile === "permits" ? { permits: m.int(1, 3) } : { rw: true };
    const workers = "permits" in multi ? multi.permits + m.int(1, 2) : m.int(3, 5);
    const clocks = Array.from(
      { length: workers },
      (_, i) => base.clocks[i % base.clocks.length] as ClockSetting,
    );
    // Replies that come back a lease late make a waiter act on an old look: what the version check
    // of a reclaim is for.
    const network =
      base.calm || m.chance(0.5)
        ? base.network
        : { ...base.network, spikeChance: 0.1, spikeMaxMs: 2 * base.leaseMs };
    // An administrator that now and then removes one holder (forceRelease(id, { holder })), in a
    // fraction of the schedules: drawn from a stream of its own, so that everything above stays what
    // it was for each seed. Its clock is the base world's next one.
    const a = new Random(seed, `scenario-multi-admin/${profile}`);
    const admin = a.chance(0.35);
    if (admin) clocks.push(base.clocks[workers % base.clocks.length] as ClockSetting);
    return {
      ...base,
      network,
      profile,
      workers,
      admin,
      clocks,
      faults: base.faults.filter((f) => f.process < workers && f.kind !== "ghost"),
      plans: undefined,
      eagerAdmin: undefined,
      multi,
    };
  }
  if (profile === "handoff") {
    const h = new Random(seed, "scenario-handoff");
    const base = generateScenario(seed, h.pick(["serverless", "stormy", "tight"] as const), knobs);
    // Replies that come back late (within an attempt's cut-off of a heartbeat interval): a hand-off's
    // lease must count from its send, not its answer. Serverless holders renew only when they
    // choose, so the lease a hand-off gave is what they live on.
    const network =
      base.calm || h.chance(0.3)
        ? base.network
        : { ...base.network, spikeChance: 0.1, spikeMaxMs: base.heartbeatMs };
    const plans = Array.from({ length: base.workers }, (_, i) => ({
      clients: clientsOf(base, i).slice(0, 1),
      threads: h.int(2, 3),
    }));
    const faults = base.faults.filter((f) => f.kind !== "ghost" || f.id === "job");
    return { ...base, network, profile, ids: ["job"], plans, faults };
  }
  const r = new Random(seed, `scenario/${profile}`);
  const kind =
    profile === "mixed"
      ? r.chance(1 / 3)
        ? "calm"
        : "faulty"
      : profile === "forceful"
        ? "stormy"
        : profile === "serverless"
          ? "faulty"
          : profile;
  const leaseMs = r.pick([300, 1_000, 3_000, 10_000]);
  const heartbeatMs = Math.max(1, Math.round(leaseMs / r.pick([3, 4, 6, 10])));
  let pollMinMs = Math.max(1, Math.round(leaseMs * r.pick([0.002, 0.01, 0.05])));
  let pollMaxMs = Math.max(pollMinMs, Math.round(leaseMs * r.pick([0.02, 0.1, 0.5])));
  const shortcut = profile === "skewed" || (profile !== "margin" && r.chance(0.5));
  const maxClockSkewMs = shortcut ? r.pick([0, 5, Math.round(leaseMs / 10), leaseMs]) : null;
  const workers = r.int(2, 4);
  const admin = profile === "forceful" || (kind !== "tight" && kind !== "margin" && r.chance(0.25));
  const ids = r.chance(0.8) ? ["job"] : ["job", "other"];
  const sortKeyed = r.chance(0.2);
  const drift = CLOCK_RATE_DRIFT;
  const processes = workers + (admin ? 1 : 0);

  const clocks: ClockSetting[] = [];
  for (let i = 0; i < processes; i++) {
    let wallOffset: number;
    if (maxClockSkewMs === null)
      wallOffset = r.pick([0, r.between(-3_600_000, 3_600_000), r.between(-leaseMs, leaseMs)]);
    else if (profile === "skewed")
      wallOffset = (i === 0 ? -1 : 1) * (maxClockSkewMs / 2 + r.between(leaseMs / 20, leaseMs / 2));
    else wallOffset = r.extreme(maxClockSkewMs / 2);
    clocks.push({ rate: 1 + r.extreme(drift), monoOrigin: r.between(0, 1e7), wallOffset });
  }

  let network: NetworkSettings;
  let stalls = NO_STALLS;
  const faults: Fault[] = [];
  const maxDelay = r.pick([0, 1, leaseMs / 200, leaseMs / 50]);
  const base = { ...QUIET_NETWORK, minDelayMs: 0, maxDelayMs: maxDelay };
  const addCrashes = (count: number) => {
    for (let i = 0; i < count; i++) {
      faults.push({
        kind: "crash",
        process: r.int(0, processes - 1),
        at: r.between(0, 15 * leaseMs),
        restartAfterMs: r.chance(0.6) ? r.between(0, 2 * leaseMs) : undefined,
      });
    }
  };

  if (kind === "calm") {
    network = base;
    addCrashes(r.int(0, 2));
  } else if (kind === "margin") {
    for (const [i, c] of clocks.entries()) clocks[i] = { ...c, rate: c.rate >= 1 ? 1 + drift : 1 - drift };
    pollMinMs = 1;
    pollMaxMs = Math.max(1, Math.round(leaseMs / 100));
    network = { ...base, maxDelayMs: 0 };
    for (let i = r.int(4, 8); i > 0; i--) {
      faults.push({
        kind: "pause",
        process: r.int(0, processes - 1),
        at: r.between(0, 15 * leaseMs),
        ms: r.between(leaseMs, 2 * leaseMs),
      });
    }
  } else if (kind === "tight" || kind === "skewed") {
    if (kind === "tight") {
      // The corners: clock rates exactly on the drift bound, waiters that look often.
      for (const [i, c] of clocks.entries()) clocks[i] = { ...c, rate: c.rate >= 1 ? 1 + drift : 1 - drift };
      pollMinMs = 1;
      pollMaxMs = Math.max(1, Math.round(leaseMs / 50));
    }
    network = {
      ...base,
      maxDelayMs: r.pick([0, 0, 0.01, 1]),
      spikeChance: r.pick([0, 0.05]),
      spikeMaxMs: leaseMs / 2,
      replyLoss: r.pick([0, 0.05]),
      requestTimeoutMs: r.pick([heartbeatMs, Number.POSITIVE_INFINITY]),
    };
    stalls = {
      afterReadChance: r.pick([0, 0.005, 0.02]),
      afterReadMaxMs: leaseMs,
      timerLagChance: 0,
      timerLagMaxMs: 0,
    };
    for (let i = r.int(0, 4); i > 0; i--) {
      faults.push({
        kind: "pause",
        process: r.int(0, processes - 1),
        at: r.between(0, 15 * leaseMs),
        ms: r.between(0, 2 * leaseMs),
      });
    }
  } else {
    const on = (p: number) => kind === "stormy" || r.chance(p);
    const netFaults = on(0.6);
    network = {
      ...base,
      spikeChance: netFaults ? r.pick([0, 0.02, 0.1]) : 0,
      spikeMaxMs: r.pick([heartbeatMs, 2 * leaseMs]),
      requestLoss: netFaults ? r.pick([0, 0.02, 0.1]) : 0,
      replyLoss: netFaults ? r.pick([0, 0.02, 0.1]) : 0,
      duplicateChance: on(0.5) ? r.pick([0.05, 0.2]) : 0,
      lateDuplicateChance: r.pick([0, 0.3]),
      lateDuplicateMaxMs: leaseMs * r.pick([1, 4]),
      throttleChance: on(0.3) ? r.pick([0.02, 0.1]) : 0,
      serverErrorChance: on(0.3) ? r.pick([0.02, 0.05]) : 0,
      requestTimeoutMs: r.pick([heartbeatMs, leaseMs, Number.POSITIVE_INFINITY]),
      sdkMaxAttempts: r.pick([1, 3]),
    };
    if (on(0.5)) {
      stalls = {
        afterReadChance: r.pick([0.001, 0.005, 0.02]),
        afterReadMaxMs: leaseMs * r.pick([0.1, 1, 2]),
        timerLagChance: r.pick([0, 0.05]),
        timerLagMaxMs: 2 * heartbeatMs,
      };
    }
    const count = r.int(0, kind === "stormy" ? 8 : 5);
    for (let i = 0; i < count; i++) {
      const process = r.int(0, processes - 1);
      const at = r.between(0, 15 * leaseMs);
      switch (r.pick(["pause", "pause", "crash", "partition", "wallStep"] as const)) {
        case "pause":
          faults.push({ kind: "pause", process, at, ms: r.between(0, 2 * leaseMs) });
          break;
        case "crash":
          addCrashes(1);
          break;
        case "partition":
          faults.push({ kind: "partition", process, at, ms: r.between(0, 2 * leaseMs) });
          break;
        case "wallStep": {
          const offset =
            maxClockSkewMs === null ? r.between(-3_600_000, 3_600_000) : r.extreme(maxClockSkewMs / 2);
          faults.push({ kind: "wallStep", process, at, offset });
          break;
        }
      }
    }
  }
  // Drawn from a stream of their own, so that everything above stays what it was for each seed.
  const x = new Random(seed, `scenario-extra/${profile}`);
  let plans: ProcessPlan[] | undefined;
  if (profile !== "skewed" && profile !== "margin" && x.chance(0.4)) {
    const mixSettings = x.chance(0.6);
    plans = [];
    for (let i = 0; i < workers; i++) {
      const clients: ClientSettings[] = [];
      for (let c = x.chance(0.3) ? 2 : 1; c > 0; c--) {
        if (!mixSettings) {
          clients.push({ leaseMs, heartbeatMs, pollMinMs, pollMaxMs, maxClockSkewMs });
          continue;
        }
        // Another lease, heartbeat and poll; a skew bound no smaller than the clocks really keep
        // (a smaller one is an unsupported configuration: the "skewed" profile's business).
        const lease = Math.max(3, Math.round(leaseMs * x.pick([0.5, 1, 2, 4])));
        const pollMin = Math.max(1, Math.round(lease * x.pick([0.002, 0.01, 0.05])));
        // Every attempt of a held lock is cut off after one heartbeat interval: an interval shorter
        // than a few round trips cannot keep a lock even on a calm network (a setting error).
        const heartbeat = Math.max(Math.floor(lease / x.pick([3, 4, 6, 10])), Math.ceil(6 * maxDelay) + 1);
        clients.push({
          leaseMs: lease,
          heartbeatMs: Math.max(1, Math.min(Math.floor(lease / 3), heartbeat)),
          pollMinMs: pollMin,
          pollMaxMs: Math.max(pollMin, Math.round(lease * x.pick([0.02, 0.1, 0.5]))),
          maxClockSkewMs:
            maxClockSkewMs === null ? null : x.pick([maxClockSkewMs, 2 * maxClockSkewMs + 1, null]),
        });
      }
      plans.push({ clients, threads: x.chance(0.4) ? x.int(2, 3) : 1 });
    }
  }
  // Ghosts only where liveness is not checked: a ghost owner holds a free lock for a lease.
  if (kind !== "calm" && kind !== "skewed" && x.chance(kind === "margin" ? 0.2 : 0.5)) {
    for (let i = x.int(1, 3); i > 0; i--) {
      const process = x.int(0, processes - 1);
      faults.push({
        kind: "ghost",
        process,
        at: x.between(2 * leaseMs, 40 * leaseMs),
        id: x.pick(ids),
        pick: x.next(),
        // The administrator acquires nothing: its ghosts are late copies of its force-releases.
        mode: process >= workers ? "late" : x.pick(["acquire", "acquire", "late", "afterRelease"] as const),
      });
    }
  }
  if (profile === "forceful") {
    // Now and then a refusal that retrying cannot fix: heartbeats then stop until the next interval.
    network = { ...network, refuseChance: x.pick([0, 0.01, 0.03]) };
  }
  if (kind === "stormy") {
    // A refusal lasting a lease or more, early, while the workers still work: a holder's
    // heartbeats all fail then, and its lease runs out with only the expiry timer to say so.
    for (let i = x.int(0, 2); i > 0; i--) {
      faults.push({
        kind: "refusal",
        process: x.int(0, workers - 1),
        at: x.between(0, 4 * leaseMs),
        ms: x.between(leaseMs, 2 * leaseMs),
      });
    }
  }
  if (kind === "tight" && stalls.afterReadChance > 0 && x.chance(0.8)) {
    // Stalls of about a lease (up to a lease and the skew bound) after a check: the ones that test
    // where a holder's validity ends against a waiter's judgement, observed or by the wall clock.
    stalls = { ...stalls, afterReadMinMs: leaseMs / 2, afterReadMaxMs: leaseMs + (maxClockSkewMs ?? 0) };
  }
  if (kind === "margin") {
    // Most of the margin profile's pauses catch a holder right after a heartbeat has left, so that a
    // waiter's first sight of it comes as early as it can: where a millisecond of margin shows.
    for (const [i, f] of faults.entries())
      if (f.kind === "pause" && x.chance(0.7)) faults[i] = { ...f, afterHeartbeat: true };
  }
  let noHeartbeat: boolean[] | undefined;
  if (profile === "serverless") {
    // A stream of its own again: the other profiles' scenarios stay what they were for each seed.
    const z = new Random(seed, "scenario-serverless");
    noHeartbeat = Array.from({ length: workers }, () => z.chance(0.75));
    // Freezes: a frozen environment's timers and code stop, its monotonic clock runs on.
    for (let i = z.int(2, 6); i > 0; i--) {
      faults.push({
        kind: "pause",
        process: z.int(0, workers - 1),
        at: z.between(0, 15 * leaseMs),
        ms: z.between(0, 2 * leaseMs),
      });
    }
  }
  faults.sort((a, b) => a.at - b.at);
  return {
    seed,
    profile,
    leaseMs,
    heartbeatMs,
    pollMinMs,
    pollMaxMs,
    maxClockSkewMs,
    partitionKey: sortKeyed ? "pk" : "id",
    sortKey: sortKeyed ? { name: "sk", value: "LOCK" } : undefined,
    ids,
    workers,
    admin,
    returnsOldItem: r.chance(0.7),
    clocks,
    network,
    stalls,
    faults,
    calm: kind === "calm",
    horizonMs: 80 * leaseMs,
    knobs,
    plans,
    eagerAdmin: profile === "forceful" ? true : undefined,
    noHeartbeat,
  };
}

/** A short description of what a scenario exercises, for statistics. */
export function faultMix(s: Scenario): string[] {
  const mix: string[] = [];
  const n = s.network;
  if (s.calm) mix.push("calm");
  if (n.requestLoss > 0 || n.replyLoss > 0) mix.push("loss");
  if (n.duplicateChance > 0) mix.push(n.lateDuplicateChance > 0 ? "late duplicates" : "duplicates");
  if (n.spikeChance > 0) mix.push("delay spikes");
  if (n.throttleChance > 0) mix.push("throttling");
  if ((n.refuseChance ?? 0) > 0) mix.push("refusals");
  if (n.serverErrorChance > 0) mix.push("server errors");
  if (s.stalls.afterReadChance > 0) mix.push("stalls after a check");
  if (s.stalls.timerLagChance > 0) mix.push("timer lag");
  for (const f of s.faults)
    mix.push(f.kind === "crash" ? (f.restartAfterMs === undefined ? "crash" : "crash+restart") : f.kind);
  if (s.maxClockSkewMs !== null) mix.push("wall-clock shortcut");
  if (!s.returnsOldItem) mix.push("no ALL_OLD (dynalite)");
  if (s.admin) mix.push("forceRelease");
  if (s.plans !== undefined) {
    const mine = allClients(s);
    if (mine.some((c) => JSON.stringify(c) !== JSON.stringify(mine[0]))) mix.push("mixed settings");
    if (s.plans.some((p) => p.clients.length > 1)) mix.push("clients sharing a process");
    if (s.plans.some((p) => p.threads > 1)) mix.push("concurrent acquires in a process");
  }
  return [...new Set(mix)];
}
