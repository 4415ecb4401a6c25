/**
 * Multi-process torture: K worker processes (worker.ts) contend on a few lock ids, each through its
 * own fault proxy on 127.0.0.1 whose faults come and go; holders are SIGKILLed at random and
 * replaced. At the end every record is checked (checker.ts) and a summary printed.
 *
 *   npm run torture -- --minutes 10 [--server dynalite|ddb-local] [--workers 6] [--ids 3]
 *                      [--lease 2000] [--seed N] [--endpoint http://127.0.0.1:PORT --transactions]
 *                      [--broken]   (a deliberately broken lock: the run must report violations)
 *                      [--records FILE]   (every record as JSON lines, to study a violation)
 *   npm run torture -- --recheck FILE        (judge such records again)
 *
 * Exits 0 with no violation, 1 with any, 2 on a usage error.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { LockClient } from "../../src/index.js";
import { localClient, startLocalDynamoDB } from "../../src/testing.js";
import { FAULT_KINDS, type FaultPlan, FaultProxy } from "../support/proxy.js";
import { Random } from "../support/random.js";
import { type CheckResult, check, type FinalState, type Kill } from "./checker.js";
import { type Counter, counterKey, type EndRecord, type StartRecord, type StopRecord } from "./section.js";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

export interface TortureOptions {
  readonly durationMs: number;
  readonly workers?: number;
  readonly ids?: number;
  readonly leaseMs?: number;
  readonly seed?: number;
  /** An endpoint on 127.0.0.1 to use; otherwise dynalite is started in this process. */
  readonly endpoint?: string;
  /** Keep the second counter with lock.transact() (the server must have transactions). */
  readonly transactions?: boolean;
  readonly broken?: boolean;
  readonly log?: (line: string) => void;
  /** Write every record and kill to this file (JSON lines), to study a violation. */
  readonly recordsFile?: string;
}

export interface TortureResult extends CheckResult {
  readonly seed: number;
  readonly server: string;
  readonly durationMs: number;
  readonly workers: number;
  readonly kills: number;
  readonly processes: number;
  /** Fault episodes started, by kind. */
  readonly episodes: Record<string, number>;
  /** Requests that met each fault on the wire. */
  readonly faulted: Record<string, number>;
  readonly forwarded: number;
  readonly errors: Record<string, number>;
}

const WORKER = fileURLToPath(new URL("worker.ts", import.meta.url));
const COUNTER_ATTRIBUTE = "id";

interface Slot {
  readonly index: number;
  readonly proxy: FaultProxy;
  generation: number;
  name: string;
  child: ChildProcess;
  /** The section this worker is in (a start without an end), if any. */
  open: StartRecord | undefined;
  killed: boolean;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function runTorture(options: TortureOptions): Promise<TortureResult> {
  const workers = options.workers ?? 6;
  const leaseMs = options.leaseMs ?? 2_000;
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
  const random = new Random(seed);
  const log = options.log ?? (() => undefined);
  const ids = Array.from({ length: options.ids ?? 3 }, (_, i) => `torture-${i}`);
  const table = `torture-${seed.toString(16)}-${Date.now().toString(36)}`;

  const local = options.endpoint === undefined ? await startLocalDynamoDB() : undefined;
  const endpoint = options.endpoint ?? (local?.endpoint as string);
  if (!/^http:\/\/(127\.0\.0\.1|localhost):\d+\/?$/.test(endpoint)) {
    throw new Error(`torture traffic goes only to 127.0.0.1, not ${endpoint}`);
  }
  const direct = local?.client ?? localClient(endpoint);
  const admin = new LockClient({ table, client: direct });
  const slots: Slot[] = [];
  const starts: StartRecord[] = [];
  const ends: EndRecord[] = [];
  const stops: StopRecord[] = [];
  const kills: Kill[] = [];
  const errors: Record<string, number> = {};
  const episodes: Record<string, number> = {};
  const timers = new Set<NodeJS.Timeout>();
  const problems: string[] = [];
  let processes = 0;

  // Interrupted (Ctrl-C): no worker outlives the run.
  const onSignal = () => {
    for (const slot of slots) {
      slot.killed = true;
      slot.child.kill("SIGKILL");
    }
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const spawnWorker = (slot: Slot) => {
    slot.generation++;
    slot.name = `w${slot.index}.${slot.generation}`;
    processes++;
    const child = spawn(process.execPath, ["--import", "tsx", WORKER], {
      env: {
        ...process.env,
        ENDPOINT: slot.proxy.endpoint,
        TABLE: table,
        IDS: ids.join(","),
        WORKER: slot.name,
        LEASE_MS: String(leaseMs),
        SEED: String((seed + slot.index * 7919 + slot.generation) >>> 0),
        ...(options.transactions ? { COUNTER_ATTRIBUTE } : {}),
        ...(options.broken ? { BROKEN: "1" } : {}),
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    slot.child = child;
    slot.open = undefined;
    slot.killed = false;
    const name = slot.name;
    slot.exited = once(child, "exit").then(([code, signal]) => ({ code, signal }));
    let buffered = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        if (line.length === 0) continue;
        const record = JSON.parse(line) as { t: string; name?: string; message?: string };
        if (record.t === "start") {
          starts.push(record as StartRecord);
          if (slot.name === name) slot.open = record as StartRecord;
        } else if (record.t === "end") {
          ends.push(record as EndRecord);
          if (slot.name === name) slot.open = undefined;
        } else if (record.t === "stop") {
          stops.push(record as StopRecord);
        } else if (record.t === "error") {
          const key = `${record.name}`;
          errors[key] = (errors[key] ?? 0) + 1;
        } else if (record.t === "unhandled") problems.push(`${name}: unhandled rejection: ${record.message}`);
      }
    });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4_000);
    });
    child.stdin?.on("error", () => undefined);
    slot.exited.then(({ code, signal }) => {
      if (!(slot.killed && signal === "SIGKILL") && code !== 0) {
        problems.push(
          `${name} exited with ${code ?? signal}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`,
        );
      }
    });
  };

  const after = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  let running = true;
  const started = performance.now();
  try {
    await admin.createTable();
    for (let index = 0; index < workers; index++) {
      const proxy = await FaultProxy.start(endpoint, {
        seed: seed + index,
        lateReplyMs: leaseMs,
        maxHoldMs: leaseMs * 5,
      });
      const slot = {
        index,
        proxy,
        generation: 0,
        name: "",
        open: undefined,
        killed: false,
      } as unknown as Slot;
      slots.push(slot);
      spawnWorker(slot);
    }
    log(
      `torture: ${workers} processes on ${ids.length} ids, lease ${leaseMs} ms, ${Math.round(options.durationMs / 1000)} s, seed ${seed}, table ${table}`,
    );

    // Faults come and go: every so often one link gets a new plan, or loses the one it had.
    const plans: [string, () => FaultPlan][] = [
      ...FAULT_KINDS.filter((k) => k !== "blackhole").map(
        (kind) =>
          [kind, () => ({ rates: { [kind]: 0.1 + random.next() * 0.3 } })] as [string, () => FaultPlan],
      ),
      ["latency", () => ({ latencyMs: random.int(5, 50), jitterMs: random.int(10, 300) })],
      [
        "mixed",
        () => ({
          latencyMs: 5,
          jitterMs: 100,
          rates: Object.fromEntries(FAULT_KINDS.map((k) => [k, k === "blackhole" ? 0.02 : 0.04])),
        }),
      ],
      ["partition", () => ({ rates: { blackhole: 1 } })],
      // Twice: partitions are what make holders lose locks they are still running with.
      ["partition", () => ({ rates: { blackhole: 1 } })],
    ];
    const changeFaults = () => {
      if (!running) return;
      let slot = random.pick(slots);
      if (random.chance(0.35)) slot.proxy.clear();
      else {
        const [kind, plan] = random.pick(plans);
        // A partition is most telling on a holder: it must learn of its loss before anyone takes over.
        const holders = slots.filter((s) => s.open !== undefined);
        if (kind === "partition" && holders.length > 0 && random.chance(0.7)) slot = random.pick(holders);
        episodes[kind] = (episodes[kind] ?? 0) + 1;
        slot.proxy.set(plan());
        // A partition lasts from a fraction of a lease to a few: longer than a lease loses the lock.
        if (kind === "partition") after(random.int(leaseMs / 4, leaseMs * 3), () => slot.proxy.clear());
      }
      after(random.int(leaseMs / 4, leaseMs), changeFaults);
    };
    after(leaseMs, changeFaults);

    // Holders die: now and then one that is inside a section gets SIGKILL, and a new process replaces it.
    const killOne = () => {
      if (!running) return;
      const holders = slots.filter((s) => s.open !== undefined && !s.killed);
      if (holders.length > 0) {
        const slot = random.pick(holders);
        slot.killed = true;
        slot.child.kill("SIGKILL");
        // The signal is queued when kill() returns: the process runs no more of its code after
        // that (microseconds at most). Its exit is seen later, by however much this busy event
        // loop lags, which would make an end too late to judge overlaps by.
        kills.push({ worker: slot.name, at: process.hrtime.bigint() });
        slot.exited.then(() => {
          if (running) spawnWorker(slot);
        });
      }
      after(random.int(leaseMs, leaseMs * 4), killOne);
    };
    after(leaseMs * 2, killOne);

    const progress = setInterval(() => {
      log(
        `  ${Math.round((performance.now() - started) / 1000)} s: ${starts.length} acquisitions, ${kills.length} kills`,
      );
    }, 60_000);
    progress.unref();
    await new Promise<void>((resolve) => after(options.durationMs, resolve));
    running = false;
    clearInterval(progress);
    for (const timer of timers) clearTimeout(timer);
    timers.clear();

    // Stop: the links heal, every worker finishes its section, releases and exits by itself.
    for (const slot of slots) slot.proxy.clear();
    for (const slot of slots) slot.child.stdin?.end();
    const deadline = new Promise<"late">((resolve) => after(leaseMs * 10 + 20_000, () => resolve("late")));
    for (const slot of slots) {
      const result = await Promise.race([slot.exited, deadline]);
      if (result === "late") {
        problems.push(`${slot.name} did not exit after its stdin closed`);
        slot.killed = true;
        slot.child.kill("SIGKILL");
        await slot.exited;
      }
    }
    for (const timer of timers) clearTimeout(timer);

    const finals = new Map<string, FinalState>();
    for (const id of ids) {
      const info = await admin.read<Counter>(id);
      let n: number | undefined;
      if (options.transactions) {
        const got = await direct.send(
          new GetItemCommand({
            TableName: table,
            Key: counterKey(COUNTER_ATTRIBUTE, `counter2#${id}`),
            ConsistentRead: true,
          }),
        );
        n = Number(got.Item?.n?.N ?? 0);
      }
      finals.set(id, {
        counter: info?.data?.counter ?? 0,
        tag: info?.data?.tag ?? null,
        ...(n === undefined ? {} : { n }),
      });
    }
    const result = check({ starts, ends, stops, kills, finals });
    if (options.recordsFile !== undefined) {
      const lines = [
        ...starts,
        ...ends,
        ...stops,
        ...kills.map((k) => ({ t: "kill", worker: k.worker, at: String(k.at) })),
        ...[...finals].map(([id, f]) => ({ t: "final", id, ...f })),
      ].map((r) => JSON.stringify(r));
      writeFileSync(options.recordsFile, `${lines.join("\n")}\n`);
    }
    const faulted: Record<string, number> = {};
    let forwarded = 0;
    for (const slot of slots) {
      forwarded += slot.proxy.counts.forwarded;
      for (const kind of FAULT_KINDS) faulted[kind] = (faulted[kind] ?? 0) + slot.proxy.counts[kind];
    }
    return {
      ...result,
      violations: [...result.violations, ...problems],
      seed,
      server: options.endpoint === undefined ? "dynalite" : endpoint,
      durationMs: Math.round(performance.now() - started),
      workers,
      kills: kills.length,
      processes,
      episodes,
      faulted,
      forwarded,
      errors,
    };
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    running = false;
    for (const timer of timers) clearTimeout(timer);
    for (const slot of slots) {
      if (slot.child.exitCode === null && slot.child.signalCode === null) {
        slot.killed = true;
        slot.child.kill("SIGKILL");
        await slot.exited;
      }
    }
    for (const slot of slots) await slot.proxy.close();
    await admin.close();
    if (local !== undefined) await local.close();
    else direct.destroy();
  }
}

/** The summary a person reads. */
export function summary(r: TortureResult, server: string): string {
  const kinds = (o: Record<string, number>) =>
    Object.entries(o)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(", ") || "none";
  return [
    `torture on ${server}: ${r.workers} processes (${r.processes} started), ${Math.round(r.durationMs / 1000)} s, seed ${r.seed}`,
    `  acquisitions:      ${r.acquisitions} (takeovers ${r.takeovers})`,
    `  holders killed:    ${r.kills} (${r.killedInSection} inside a section)`,
    `  losses signalled:  ${r.lossesSignalled} (${r.lostInSection} inside a section, the others while releasing;`,
    `                     ${r.appliedReleasesReportedLost} of those were releases applied but answered too late, reported lost as possibly written)`,
    `  counter writes:    ${r.acked} acknowledged, ${r.uncertain} unknown, ${r.rejected} refused`,
    `  guarded writes:    ${r.txAcked} acknowledged, ${r.txUncertain} unknown`,
    `  fault episodes:    ${kinds(r.episodes)}`,
    `  requests faulted:  ${kinds(r.faulted)} (${r.forwarded} forwarded untouched)`,
    `  errors to callers: ${kinds(r.errors)}`,
    `  violations:        ${r.violations.length}`,
    ...r.violations.slice(0, 50).map((v) => `    - ${v}`),
  ].join("\n");
}

function parseArgs(argv: string[]) {
  const args: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) args[a.slice(2)] = true;
    else {
      args[a.slice(2)] = next;
      i++;
    }
  }
  return args;
}

async function main(): Promise<number> {
  let args: Record<string, string | true>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const num = (name: string, fallback: number) => {
    const v = args[name];
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  if (typeof args.recheck === "string") {
    // Judge the records of an earlier run again (e.g. after a change to the checker).
    const records = readFileSync(args.recheck, "utf8")
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as { t: string } & Record<string, unknown>);
    const finals = new Map<string, FinalState>(
      records.filter((r) => r.t === "final").map((r) => [String(r.id), r as unknown as FinalState]),
    );
    const result = check({
      starts: records.filter((r) => r.t === "start") as unknown as StartRecord[],
      ends: records.filter((r) => r.t === "end") as unknown as EndRecord[],
      stops: records.filter((r) => r.t === "stop") as unknown as StopRecord[],
      kills: records
        .filter((r) => r.t === "kill")
        .map((r) => ({ worker: String(r.worker), at: BigInt(String(r.at)) })),
      finals,
    });
    process.stdout.write(
      `rechecked ${args.recheck}: ${result.acquisitions} acquisitions, losses signalled ${result.lossesSignalled} (${result.lostInSection} inside a section, ${result.appliedReleasesReportedLost} applied releases reported lost), violations ${result.violations.length}\n`,
    );
    for (const v of result.violations.slice(0, 50)) process.stdout.write(`  - ${v}\n`);
    return result.violations.length === 0 ? 0 : 1;
  }
  const minutes = num("minutes", 0);
  const durationMs = minutes > 0 ? minutes * 60_000 : num("seconds", 60) * 1000;
  const server = String(args.server ?? (args.endpoint ? "endpoint" : "dynalite"));
  let stop: (() => Promise<void>) | undefined;
  let endpoint = typeof args.endpoint === "string" ? args.endpoint : undefined;
  let transactions = args.transactions === true;
  if (server === "ddb-local") {
    // The package's own DynamoDB Local starter (src/ddb-local.ts), with the project's cache, as
    // `npm run test:ddb-local` uses it.
    const { startDynamoDBLocalProcess } = await import("../../src/ddb-local.js");
    const cacheDir = fileURLToPath(new URL("../../.cache", import.meta.url));
    const started = await startDynamoDBLocalProcess({ cacheDir });
    process.stderr.write(`DynamoDB Local on ${started.endpoint} (pid ${started.pid})\n`);
    endpoint = started.endpoint;
    stop = started.stop;
    transactions = true;
  } else if (server !== "dynalite" && server !== "endpoint") {
    process.stderr.write(`--server must be dynalite or ddb-local, got ${server}\n`);
    return 2;
  }
  try {
    const result = await runTorture({
      durationMs,
      workers: num("workers", 6),
      ids: num("ids", 3),
      leaseMs: num("lease", 2_000),
      ...(args.seed === undefined ? {} : { seed: Number(args.seed) }),
      ...(endpoint === undefined ? {} : { endpoint }),
      transactions,
      broken: args.broken === true,
      ...(typeof args.records === "string" ? { recordsFile: args.records } : {}),
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(`${summary(result, server)}\n`);
    return result.violations.length === 0 ? 0 : 1;
  } finally {
    await stop?.();
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
