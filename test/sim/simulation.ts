/**
 * One simulated run: builds the world a scenario describes (scheduler, store, network, processes with
 * their clocks), runs a real LockClient in every process, applies the planned faults, and checks the
 * invariants after every event. Same scenario, same run: nothing here reads a real clock, sets a
 * real timer or calls Math.random.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { LockClient } from "../../src/client.js";
import { CLOCK_RATE_DRIFT } from "../../src/lease.js";
import { PROTOCOL_KNOBS } from "../../src/options.js";
import { claimLeaseMs } from "../../src/turn.js";
import { longestGapMs } from "../../src/waiting.js";
import { Checker, type LivenessBounds, type Violation } from "./checker.js";
import { MultiChecker, multiAdmin, multiWorker } from "./multi.js";
import { Network, type NetworkStats } from "./network.js";
import { type Owner, SimProcess } from "./process.js";
import { Random } from "./random.js";
import { allClients, clientsOf, type Scenario } from "./scenario.js";
import { Scheduler } from "./scheduler.js";
import { type ConditionCoverage, Store } from "./store.js";
import { admin, RESOURCE_PREFIX, type WorkerContext, worker } from "./workload.js";

export const TABLE = "locks";

export interface RunResult {
  readonly violation: Violation | undefined;
  readonly steps: number;
  readonly simulatedMs: number;
  readonly network: NetworkStats;
  readonly checker: Checker["stats"];
  /** Runs with several holders per lock (test/sim/multi.ts). */
  readonly multi?: MultiChecker["stats"] | undefined;
  readonly midTurnStalls: number;
  readonly trace: readonly string[];
}

export interface RunOptions {
  /** Keep a readable trace of requests and lock events (slower; used to explain a failure). */
  readonly trace?: boolean;
  /** Stop after this many events. */
  readonly maxSteps?: number;
  /** Condition coverage, gathered over the run (see ConditionCoverage). */
  readonly coverage?: ConditionCoverage;
}

/** A compact line for a request: the lock operation it carries and its main condition values. */
function describeRequest(operation: string, input: unknown): string {
  const i = input as {
    UpdateExpression?: string;
    ConditionExpression?: string;
    ExpressionAttributeValues?: Record<string, AttributeValue>;
  };
  if (operation === "TransactWriteItems") return "guarded resource write";
  if (operation !== "UpdateItem") return operation;
  const v = i.ExpressionAttributeValues ?? {};
  const s = (k: string) => v[k]?.S ?? v[k]?.N;
  const update = i.UpdateExpression ?? "";
  if (update.startsWith("SET #writer")) return `unguarded resource write ${v[":writer"]?.M?.tag?.S}`;
  if (v[":newOwner"] !== undefined)
    return `handOff(${s(":owner")} -> ${s(":newOwner")}${v[":data"] ? " +data" : ""})`;
  if (update.includes("ADD")) {
    return `acquire(${s(":owner")}${v[":staleOwner"] === undefined ? "" : ` over ${s(":staleOwner")}@${s(":staleVersion")}`})`;
  }
  if (update.startsWith("REMOVE") && v[":token"] !== undefined) return `forceRemove(${s(":token")})`;
  if (update.startsWith("REMOVE")) {
    return s(":owner") === "force-release"
      ? "forceRelease"
      : `release(${s(":owner")}${v[":data"] ? " +data" : ""})`;
  }
  return `${v[":data"] === undefined ? "heartbeat" : "update"}(${s(":owner")} v${s(":version")})`;
}

export function livenessBounds(s: Scenario): LivenessBounds | undefined {
  if (!s.calm) return undefined;
  const d = s.network.maxDelayMs;
  const slow = 1 + 3 * CLOCK_RATE_DRIFT;
  // With settings mixed, the slowest client sets the bounds: the longest lease a holder may have
  // recorded, the longest poll a waiter may sleep, the largest skew bound a waiter may allow.
  const clients = allClients(s);
  const lease = Math.max(...clients.map((c) => c.leaseMs));
  // A waiter may stride past pollMaxMs when the recorded holds are long (src/waiting.ts).
  const poll =
    Math.max(...clients.map((c) => longestGapMs({ minMs: c.pollMinMs, maxMs: c.pollMaxMs }, Infinity))) *
      slow +
    1;
  const skews = clients.map((c) => c.maxClockSkewMs);
  const shortcut = skews.every((k) => k !== null);
  // A free (or stale) lock waits for the waiter whose turn it is: a crashed claimant's claim lapses
  // after its claim lease on a watcher's monotonic clock, counted from the watcher's first sight of
  // it (within a stride of the claim), and the watcher then looks (src/turn.ts).
  const turn = claimLeaseMs(poll, lease) * slow + poll + 4 * d;
  return {
    freeMs: turn + poll + 4 * d + 5,
    crashedMs: lease * slow + turn + poll + 6 * d + 5,
    shortcutMs: shortcut ? 6 * d + 5 : undefined,
    shortcutAgeMs: lease + Math.max(...skews.map((k) => k ?? 0)),
    // The next heartbeat, then its round trip and, where the old item is not returned, a read.
    forceLearnMs: Math.max(...clients.map((c) => c.heartbeatMs)) * slow + 4 * d + 5,
  };
}

/**
 * How long after its waitMs an acquire may take to settle: a poll interval and a few requests, each
 * answered or timed out (with the SDK's retries). Undefined when a request may hang for ever (a lost
 * message with no time-out) or a process may stall, where no bound holds.
 */
export function waitGraceMs(s: Scenario): number | undefined {
  const n = s.network;
  if (s.stalls.afterReadChance > 0 || s.stalls.timerLagChance > 0) return undefined;
  if (s.faults.some((f) => f.kind === "pause")) return undefined;
  const lossy = n.requestLoss > 0 || n.replyLoss > 0 || s.faults.some((f) => f.kind === "partition");
  const oneWay = Math.max(n.maxDelayMs, n.spikeChance > 0 ? n.spikeMaxMs : 0);
  const sdkBackoff = 20 * 2 ** n.sdkMaxAttempts;
  let perRequest: number;
  if (Number.isFinite(n.requestTimeoutMs))
    perRequest = n.sdkMaxAttempts * (Math.min(n.requestTimeoutMs, 2 * oneWay) + sdkBackoff);
  else if (lossy) return undefined;
  else perRequest = n.sdkMaxAttempts * (2 * oneWay + sdkBackoff);
  if (lossy) perRequest = n.sdkMaxAttempts * (n.requestTimeoutMs + sdkBackoff);
  const pollMaxMs = Math.max(
    ...allClients(s).map((c) => longestGapMs({ minMs: c.pollMinMs, maxMs: c.pollMaxMs }, Infinity)),
  );
  // Six requests, and a claim of the next turn (src/turn.ts).
  return pollMaxMs * (1 + 2 * CLOCK_RATE_DRIFT) + 7 * perRequest + 10;
}

export async function runScenario(s: Scenario, options: RunOptions = {}): Promise<RunResult> {
  const scheduler = new Scheduler();
  const trace: string[] = [];
  const log =
    options.trace === true
      ? (line: string) => trace.push(`t=${scheduler.now.toFixed(3)} ${line}`)
      : undefined;
  const processes: SimProcess[] = [];
  const checker = new Checker({
    scheduler,
    table: TABLE,
    partitionKey: s.partitionKey,
    resourcePrefix: RESOURCE_PREFIX,
    processes,
    liveness: livenessBounds(s),
    waitGraceMs: waitGraceMs(s),
    calm: s.calm,
    signalSlackMs: s.stalls.timerLagChance > 0 ? s.stalls.timerLagMaxMs : 0,
    multiHolders: s.multi !== undefined,
  });
  const multi =
    s.multi === undefined
      ? undefined
      : new MultiChecker({
          main: checker,
          scheduler,
          setting: s.multi,
          partitionKey: s.partitionKey,
          liveness: livenessBounds(s),
          maxDelayMs: s.network.maxDelayMs,
        });
  const store = new Store({
    returnsOldItemOnConditionFailure: s.returnsOldItem,
    ...(options.coverage === undefined ? {} : { coverage: options.coverage }),
    onWrite: (w) => {
      checker.onWrite(w);
      if (w.table === TABLE) multi?.onWrite(w);
      // Waiting ghosts watch the store's writes (the network is made after the store).
      network.storeWritten(w.table);
    },
  });
  store.createTable(TABLE, { partitionKey: s.partitionKey, sortKey: s.sortKey?.name });
  const partitions = s.faults.flatMap((f) =>
    f.kind === "partition" ? [{ process: f.process, from: f.at, to: f.at + f.ms }] : [],
  );
  const network: Network = new Network({
    scheduler,
    store,
    settings: s.network,
    random: new Random(s.seed, "network"),
    partitions,
    refusals: s.faults.flatMap((f) =>
      f.kind === "refusal" ? [{ process: f.process, from: f.at, to: f.at + f.ms }] : [],
    ),
  });
  network.trace = log;
  checker.log = log;

  const keyOf = (id: string): Record<string, AttributeValue> => ({
    [s.partitionKey]: { S: id },
    ...(s.sortKey === undefined ? {} : { [s.sortKey.name]: { S: s.sortKey.value } }),
  });
  const names = s.clocks.map((_, i) => (i < s.workers ? `p${i + 1}` : "admin"));
  for (const [i, clock] of s.clocks.entries()) {
    processes.push(
      new SimProcess({
        name: names[i] as string,
        index: i,
        clock: { ...clock },
        scheduler,
        random: new Random(s.seed, `process/${i}`),
        stalls: s.stalls,
      }),
    );
  }

  /** Workers whose current life has not finished its script. */
  const running = new Set<SimProcess>();
  const finished = new Set<SimProcess>();

  const startLife = (p: SimProcess) => {
    const life = p.incarnation;
    p.at(scheduler.now, () => {
      const runtime = p.runtime();
      const raw = network.client(p, describeRequest);
      const isAdmin = p.name === "admin";
      // Every client of a process records the same holder name: the process's.
      const settings = clientsOf(s, isAdmin ? s.workers : p.index);
      const clients = settings.map(
        (c) =>
          new LockClient({
            table: TABLE,
            client: raw,
            runtime,
            leaseMs: c.leaseMs,
            heartbeatMs: c.heartbeatMs,
            holder: p.name,
            maxClockSkewMs: c.maxClockSkewMs ?? Number.POSITIVE_INFINITY,
            pollMinMs: c.pollMinMs,
            pollMaxMs: c.pollMaxMs,
            partitionKey: s.partitionKey,
            // The simulated store is one Region's table: nothing to look at (docs/global-tables.md).
            checkTable: false,
            ...(s.sortKey === undefined ? {} : { sortKey: s.sortKey }),
            ...(s.knobs === undefined ? {} : { [PROTOCOL_KNOBS]: s.knobs }),
          }),
      );
      const threads = isAdmin ? 1 : (s.plans?.[p.index]?.threads ?? 1);
      /** Threads still using each client: the last one to finish may close it. */
      const users = clients.map((_, c) => Math.ceil((threads - c) / clients.length));
      let left = threads;
      running.add(p);
      for (let t = 0; t < threads; t++) {
        const c = t % clients.length;
        const cs = settings[c] as (typeof settings)[number];
        const ctx: WorkerContext = {
          process: p,
          client: clients[c] as LockClient,
          runtime,
          // Thread 0 keeps the stream a single-threaded process always had.
          random: new Random(s.seed, `workload/${p.index}/${life}${t === 0 ? "" : `/${t}`}`),
          checker,
          ids: s.ids,
          leaseMs: cs.leaseMs,
          heartbeatMs: cs.heartbeatMs,
          heartbeat: isAdmin || s.noHeartbeat?.[p.index] !== true,
          abortWaits: !s.calm,
          table: TABLE,
          keyOf,
          raw,
          eagerAdmin: s.eagerAdmin,
          lastUser: () => {
            users[c] = (users[c] ?? 1) - 1;
            return users[c] === 0;
          },
        };
        const script = isAdmin
          ? multi !== undefined
            ? multiAdmin(ctx, multi)
            : admin(ctx)
          : multi !== undefined && s.multi !== undefined
            ? multiWorker(ctx, s.multi, multi)
            : worker(ctx);
        script.then(
          () => {
            if (p.incarnation !== life || --left > 0) return;
            running.delete(p);
            finished.add(p);
            log?.(`${p.name} finished its work`);
          },
          (err: unknown) => checker.unexpected(p, "the workload", err),
        );
      }
    });
  };

  for (const p of processes) startLife(p);
  for (const f of s.faults) {
    const p = processes[f.process];
    if (p === undefined) continue;
    scheduler.at(f.at, () => {
      switch (f.kind) {
        case "pause":
          if (f.afterHeartbeat === true) p.pauseAfterHeartbeatMs = f.ms;
          else if (p.alive) p.stall(scheduler.now + f.ms);
          log?.(`${p.name} stalls for ${f.ms.toFixed(1)} ms`);
          break;
        case "partition":
          log?.(`${p.name} is cut off from the store for ${f.ms.toFixed(1)} ms`);
          break;
        case "refusal":
          log?.(`the store refuses ${p.name}'s requests for ${f.ms.toFixed(1)} ms`);
          break;
        case "ghost":
          network.ghost({
            process: f.process,
            table: TABLE,
            key: keyOf(f.id),
            pick: f.pick,
            mode: f.mode,
            stepMs: s.leaseMs / 20,
            random: new Random(s.seed, `ghost/${f.at}`),
          });
          break;
        case "wallStep":
          p.clock.wallOffset = f.offset;
          log?.(`${p.name}'s wall clock steps to offset ${f.offset.toFixed(1)} ms`);
          break;
        case "crash": {
          if (!p.alive) break;
          const life = p.incarnation;
          p.crash();
          running.delete(p);
          checker.crashed(p, life);
          multi?.crashed();
          log?.(
            `${p.name} crashes${f.restartAfterMs === undefined ? "" : `, restarts in ${f.restartAfterMs.toFixed(1)} ms`}`,
          );
          if (f.restartAfterMs !== undefined) {
            scheduler.after(f.restartAfterMs, () => {
              p.restart();
              finished.delete(p);
              startLife(p);
            });
          }
          break;
        }
      }
    });
  }

  const onUnhandled = (reason: unknown) => {
    checker.fail(
      "expected errors only",
      `unhandled promise rejection: ${(reason as Error)?.stack ?? String(reason)}`,
    );
  };
  process.on("unhandledRejection", onUnhandled);
  try {
    await scheduler.run({
      until: s.horizonMs,
      maxSteps: options.maxSteps ?? 200_000,
      gate: (event) => {
        const owner = event.owner as Owner | undefined;
        if (owner === undefined) return "run";
        const p = owner.process;
        if (!p.alive || p.incarnation !== owner.incarnation) return "drop";
        if (p.busyUntil > event.at) return p.busyUntil;
        p.localNow = event.at;
        p.turnStart = event.at;
        return "run";
      },
      afterEach: (event) => {
        const owner = event.owner as Owner | undefined;
        if (owner !== undefined && owner.process.localNow > event.at) {
          // The process stalled mid-turn: it is busy until the instant its code reached.
          owner.process.stall(owner.process.localNow);
        }
        checker.afterEvent();
        multi?.afterEvent();
        // A Node process whose work is done exits once nothing keeps it alive (heartbeats do not).
        for (const p of finished) {
          if (p.alive && p.idle) {
            const life = p.incarnation;
            p.crash();
            checker.crashed(p, life);
            finished.delete(p);
            log?.(`${p.name} exits`);
          }
        }
        return checker.violation === undefined;
      },
    });
    if (checker.violation === undefined)
      checker.unfinished([...running].filter((p) => p.alive).map((p) => p.name));
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
  return {
    violation: checker.violation,
    steps: scheduler.steps,
    simulatedMs: scheduler.now,
    network: network.stats,
    checker: checker.stats,
    multi: multi?.stats,
    midTurnStalls: processes.reduce((sum, p) => sum + p.midTurnStalls, 0),
    trace,
  };
}
