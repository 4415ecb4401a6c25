/**
 * Locks with several holders (issue 12 item 7): what a permit costs next to the mutex, and how many
 * acquisitions per second N permits give under contention in one process.
 *
 * - The cycle: acquire + release of a free mutex, a free permit (`permits: 4`) and a shared hold,
 *   uncontended, in alternated rounds (bench/cycle.ts runCycles, requests counted on the wire).
 *   Each contender has its own ids, so kinds never mix; the warm-up creates each id's map, so the
 *   rows are the steady state (one UpdateItem to take, one to give back).
 * - Throughput: `acquirers` concurrent loops in one process, each acquire (waiting) → hold
 *   `holdMs` → release, on one id with N permits, for a fixed time; N alternated between rounds.
 *   Reported: acquisitions per second and requests per acquisition, split reads / writes (the
 *   waiters' polls are reads or failed takes, counted as what they are on the wire).
 */
import { performance } from "node:perf_hooks";
import { LockClient } from "../src/index.js";
import { type Contender, type CycleResult, runCycles } from "./cycle.js";
import { requestCounter } from "./requests.js";
import { fixed, ratio, table } from "./stats.js";

/** acquire + release through the library's default client, with these acquire options. */
function kindContender(
  name: string,
  tableName: string,
  options: { permits?: number; mode?: "shared" },
): Contender {
  const locks = new LockClient({ table: tableName });
  return {
    name,
    async cycle(id) {
      const lock = await locks.acquire(id, options);
      await lock.release();
    },
    close: () => locks.close(),
  };
}

export async function permitCycles(
  tableName: string,
  rounds: number,
  perRound: number,
  serverCpuUs: () => number,
): Promise<CycleResult[]> {
  const contenders = [
    kindContender("mutex (acquire + release)", tableName, {}),
    kindContender("permit of 4 (acquire + release)", tableName, { permits: 4 }),
    kindContender('shared (mode "shared", acquire + release)', tableName, { mode: "shared" }),
  ];
  try {
    return await runCycles(contenders, rounds, perRound, "permit-cycle", serverCpuUs);
  } finally {
    for (const c of contenders) await c.close();
  }
}

/** The cycle table with ratios to the mutex row (the first). */
export function permitCycleTable(results: readonly CycleResult[]): string {
  const mutex = results[0];
  return table([
    ["lock", "p50 ms", "p50 / mutex", "p99 ms", "p99 / mutex", "client CPU µs/cycle", "requests/cycle (R+W)"],
    ...results.map((r) => [
      r.name,
      fixed(r.p50),
      ratio(r.p50, mutex?.p50 ?? Number.NaN),
      fixed(r.p99),
      ratio(r.p99, mutex?.p99 ?? Number.NaN),
      fixed(r.cpuUsPerCycle, 0),
      `${fixed(r.readsPerCycle + r.writesPerCycle, 1)} (${fixed(r.readsPerCycle, 1)}+${fixed(r.writesPerCycle, 1)})`,
    ]),
  ]);
}

export interface ThroughputResult {
  readonly permits: number;
  readonly acquirers: number;
  readonly seconds: number;
  readonly acquisitions: number;
  readonly reads: number;
  readonly writes: number;
  /** Most holders seen inside at once (a sanity check: never above `permits`). */
  readonly maxInside: number;
}

/**
 * `acquirers` loops on one id with `permits` permits for `durationMs`; each loop stops at its first
 * acquisition after the time is up, so every acquisition counted is also released.
 */
async function throughputRun(
  tableName: string,
  id: string,
  permits: number,
  acquirers: number,
  durationMs: number,
  holdMs: number,
): Promise<ThroughputResult> {
  const locks = new LockClient({ table: tableName });
  const counter = requestCounter();
  // The id's map is created outside the measurement (the first take of a new id costs more).
  await (await locks.acquire(id, { permits })).release();
  const before = counter();
  const started = performance.now();
  const deadline = started + durationMs;
  let acquisitions = 0;
  let inside = 0;
  let maxInside = 0;
  const loop = async () => {
    while (performance.now() < deadline) {
      const lock = await locks.acquire(id, { permits, waitMs: 60_000 });
      inside++;
      maxInside = Math.max(maxInside, inside);
      acquisitions++;
      await new Promise((resolve) => setTimeout(resolve, holdMs));
      inside--;
      await lock.release();
    }
  };
  try {
    await Promise.all(Array.from({ length: acquirers }, loop));
  } finally {
    await locks.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const after = counter();
  return {
    permits,
    acquirers,
    seconds,
    acquisitions,
    reads: after.reads - before.reads,
    writes: after.writes - before.writes,
    maxInside,
  };
}

/** Alternated rounds over the permit counts; the results of one count summed over its rounds. */
export async function permitThroughput(
  tableName: string,
  options: { permits: readonly number[]; acquirers: number; rounds: number; roundMs: number; holdMs: number },
): Promise<ThroughputResult[]> {
  const sums = new Map<number, ThroughputResult>();
  for (let r = 0; r < options.rounds; r++) {
    // Rotate which N runs first, as the cycle rounds do.
    const order = options.permits.map((_, i) => options.permits[(i + r) % options.permits.length] as number);
    for (const n of order) {
      const res = await throughputRun(
        tableName,
        `permit-throughput-${n}`,
        n,
        options.acquirers,
        options.roundMs,
        options.holdMs,
      );
      const s = sums.get(n);
      sums.set(
        n,
        s === undefined
          ? res
          : {
              ...s,
              seconds: s.seconds + res.seconds,
              acquisitions: s.acquisitions + res.acquisitions,
              reads: s.reads + res.reads,
              writes: s.writes + res.writes,
              maxInside: Math.max(s.maxInside, res.maxInside),
            },
      );
    }
  }
  return options.permits.map((n) => sums.get(n) as ThroughputResult);
}

export function throughputTable(results: readonly ThroughputResult[], holdMs: number): string {
  return table([
    [
      "permits",
      "acquirers",
      `acquisitions/s (hold ${holdMs} ms)`,
      "requests/acquisition (R+W)",
      "most inside at once",
    ],
    ...results.map((r) => {
      const per = (x: number) => (r.acquisitions === 0 ? Number.NaN : x / r.acquisitions);
      return [
        String(r.permits),
        String(r.acquirers),
        fixed(r.acquisitions / r.seconds, 0),
        `${fixed(per(r.reads + r.writes), 2)} (${fixed(per(r.reads), 2)}+${fixed(per(r.writes), 2)})`,
        String(r.maxInside),
      ];
    }),
  ]);
}
