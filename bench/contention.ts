/**
 * Contention benchmark, standalone (the `npm run bench` runner calls it too):
 *
 *   node --import tsx bench/contention.ts [--server dynalite|ddb-local] [--processes 2,8,32]
 *        [--hold-ms 5] [--seconds 5] [--wait-holds 100,1000,10000] [--latency-ms 0] [--no-naive]
 *        [--naive-first] [--no-waiting] [--json]
 *
 * Starts its own server (dynalite in this process, or DynamoDB Local through src/ddb-local.ts), then
 * for each process count forks that many child processes that each loop acquire → hold `--hold-ms`
 * → release for `--seconds` (lease 3 s, heartbeat 1 s), all starting together. Reports
 * acquisitions/s, requests per acquisition (reads / writes, counted by each child's SDK middleware),
 * the cross-process hand-off gap (release sent → next holder's acquire confirmed, in another
 * process; wall clocks of one machine, fine for a benchmark, never in a test), and the share of
 * acquisitions per process. The "naive" rows are the raw-SDK floor: a conditional UpdateItem tried
 * every 100 ms, released by another. Then the waiting cost: the requests one waiter makes per second
 * while a holder holds for 100 ms, 1 s, 10 s (the lock having recorded such holds before).
 *
 * `--latency-ms N` puts a TCP proxy (in this process) between the children and the server that holds
 * every byte a client sends for N ms before passing it on, for a network round trip like
 * DynamoDB's instead of loopback's: with it the run is bound by round trips rather than by the local
 * server's CPU, as against DynamoDB itself (docs/performance.md, "Contention across processes").
 *
 * Children are killed by pid if they outlive their time; every phase is bounded.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { type AddressInfo, createConnection, createServer, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type DynamoDBClient, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { LockClient, LockHeldError } from "../src/index.js";
import { localClient, startLocalDynamoDB } from "../src/testing.js";
import { linesOf } from "../test/support/workers.js";
import { percentile } from "./stats.js";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

const LEASE_MS = 3_000;
const HEARTBEAT_MS = 1_000;
const NAIVE_POLL_MS = 100;

/** Wall clock with sub-ms resolution (one machine: every process shares it). */
const wallNow = () => performance.timeOrigin + performance.now();

/** Counts the requests a client sends: GetItem as reads, everything else as writes. */
function countRequests(client: DynamoDBClient): { reads: number; writes: number } {
  const counts = { reads: 0, writes: 0 };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === "GetItemCommand") counts.reads++;
      else if (context.commandName !== "DescribeTableCommand") counts.writes++;
      return next(args);
    },
    { step: "finalizeRequest", name: "contentionCounter" },
  );
  return counts;
}

/** CONTENTION_TRACE=1: one stderr line per request (for working out where a hand-off's time goes). */
function traceRequests(client: DynamoDBClient, worker: string): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = (args as { input?: { UpdateExpression?: string } }).input;
      const kind =
        context.commandName === "GetItemCommand"
          ? "get"
          : (input?.UpdateExpression?.split(" ").slice(0, 2).join(" ") ?? String(context.commandName));
      const start = wallNow();
      let outcome = "ok";
      try {
        return await next(args);
      } catch (err) {
        outcome = (err as Error).name;
        throw err;
      } finally {
        process.stderr.write(
          `${start.toFixed(1)} ${(wallNow() - start).toFixed(1)} ${worker} ${kind} ${outcome}\n`,
        );
      }
    },
    { step: "finalizeRequest", name: "contentionTrace" },
  );
}

interface Section {
  readonly fence: number;
  readonly acquiredAt: number;
  readonly releaseSentAt: number;
}
interface ChildResult {
  readonly worker: string;
  readonly acquisitions: number;
  readonly reads: number;
  readonly writes: number;
  readonly sections: Section[];
}

// ---- child ----

async function child(): Promise<void> {
  const { ENDPOINT, TABLE, LOCK_ID, MODE, HOLD_MS, SECONDS, WORKER } = process.env;
  if (!ENDPOINT || !TABLE || !LOCK_ID || !MODE || !HOLD_MS || !SECONDS || !WORKER)
    throw new Error("missing environment");
  const client = localClient(ENDPOINT);
  const counts = countRequests(client);
  if (process.env.CONTENTION_TRACE === "1") traceRequests(client, WORKER);
  const holdMs = Number(HOLD_MS);
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const sections: Section[] = [];
  const locks =
    MODE === "library"
      ? new LockClient({
          table: TABLE,
          client,
          leaseMs: LEASE_MS,
          heartbeatMs: HEARTBEAT_MS,
          holder: WORKER,
          checkTable: false,
        })
      : undefined;
  process.stdout.write("ready\n");
  await once(process.stdin, "data");
  const before = { ...counts };
  const end = performance.now() + Number(SECONDS) * 1000;
  if (locks !== undefined) {
    while (performance.now() < end) {
      let lock: Awaited<ReturnType<LockClient["acquire"]>>;
      try {
        lock = await locks.acquire(LOCK_ID, { waitMs: Math.max(0, end - performance.now()) });
      } catch (err) {
        if (err instanceof LockHeldError) break; // the time is up while waiting
        throw err; // anything else would silently lower this process's share
      }
      const acquiredAt = wallNow();
      await sleep(holdMs);
      const releaseSentAt = wallNow();
      await lock.release();
      sections.push({ fence: lock.fence, acquiredAt, releaseSentAt });
    }
    await locks.close();
  } else {
    // The raw floor: one conditional UpdateItem to take the lock (retried every 100 ms while held),
    // one to give it back. No lease, no heartbeats, no fairness.
    const key = { id: { S: LOCK_ID } };
    while (performance.now() < end) {
      let fence: number | undefined;
      while (fence === undefined && performance.now() < end) {
        try {
          const out = await client.send(
            new UpdateItemCommand({
              TableName: TABLE,
              Key: key,
              UpdateExpression: "SET #o = :me ADD #f :one",
              ConditionExpression: "attribute_not_exists(#o)",
              ExpressionAttributeNames: { "#o": "owner", "#f": "fence" },
              ExpressionAttributeValues: { ":me": { S: WORKER }, ":one": { N: "1" } },
              ReturnValues: "UPDATED_NEW",
            }),
          );
          fence = Number(out.Attributes?.fence?.N);
        } catch (err) {
          if ((err as Error).name !== "ConditionalCheckFailedException") throw err;
          await sleep(NAIVE_POLL_MS);
        }
      }
      if (fence === undefined) break;
      const acquiredAt = wallNow();
      await sleep(holdMs);
      const releaseSentAt = wallNow();
      await client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: key,
          UpdateExpression: "REMOVE #o",
          ConditionExpression: "#o = :me",
          ExpressionAttributeNames: { "#o": "owner" },
          ExpressionAttributeValues: { ":me": { S: WORKER } },
        }),
      );
      sections.push({ fence, acquiredAt, releaseSentAt });
    }
  }
  const result: ChildResult = {
    worker: WORKER,
    acquisitions: sections.length,
    reads: counts.reads - before.reads,
    writes: counts.writes - before.writes,
    sections,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  client.destroy();
  process.stdin.destroy();
}

// ---- parent ----

/**
 * A TCP proxy on 127.0.0.1 that delays what clients send by `latencyMs` (answers pass at once): a
 * round trip like a network's on loopback. Bytes keep their order (timers of one delay fire in the
 * order they were set). Bounded by the run: close() destroys every socket.
 */
async function delayProxy(
  upstream: string,
  latencyMs: number,
): Promise<{ endpoint: string; close(): Promise<void> }> {
  const { hostname, port } = new URL(upstream);
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  const server: Server = createServer((client) => {
    const backend = createConnection({ host: hostname, port: Number(port) });
    track(client);
    track(backend);
    client.on("data", (chunk) => {
      setTimeout(() => {
        if (!backend.destroyed) backend.write(chunk);
      }, latencyMs);
    });
    backend.on("data", (chunk) => {
      if (!client.destroyed) client.write(chunk);
    });
    client.on("close", () => backend.destroy());
    backend.on("close", () => client.destroy());
  });
  // An accept error (EMFILE, say) must not crash the bench: the connection is lost, the run goes on.
  server.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port: listening } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${listening}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The command line (strict: an unknown option is an error). */
function args() {
  return parseArgs({
    strict: true,
    options: {
      child: { type: "boolean" },
      server: { type: "string", default: "dynalite" },
      processes: { type: "string", default: "2,8,32" },
      "hold-ms": { type: "string", default: "5" },
      seconds: { type: "string", default: "5" },
      "wait-holds": { type: "string", default: "100,1000,10000" },
      "latency-ms": { type: "string", default: "0" },
      "no-naive": { type: "boolean" },
      "naive-first": { type: "boolean" },
      "no-waiting": { type: "boolean" },
      json: { type: "boolean" },
    },
  }).values;
}

interface ContentionRow {
  readonly mode: "library" | "naive";
  readonly processes: number;
  readonly holdMs: number;
  readonly seconds: number;
  readonly acquisitions: number;
  readonly acquisitionsPerSecond: number;
  readonly readsPerAcquisition: number;
  readonly writesPerAcquisition: number;
  /** Requests per second the server answered, all processes together. */
  readonly requestsPerSecond: number;
  readonly handoffs: number;
  readonly handoffP50Ms: number;
  readonly handoffP99Ms: number;
  readonly shareMin: number;
  readonly shareMax: number;
  readonly shareMean: number;
}

interface WaitingRow {
  readonly holdMs: number;
  readonly readsPerSecond: number;
  readonly writesPerSecond: number;
  /** Release sent → the waiter's acquire confirmed. */
  readonly handoffMs: number;
}

const self = fileURLToPath(import.meta.url);

async function contend(
  endpoint: string,
  table: string,
  mode: "library" | "naive",
  processes: number,
  holdMs: number,
  seconds: number,
): Promise<ContentionRow> {
  const lockId = `${mode}-${processes}-${Date.now()}`;
  const children: { child: ChildProcess; lines: string[] }[] = [];
  const killAll = () => {
    for (const { child } of children) {
      if (child.exitCode === null && child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  };
  try {
    for (let i = 0; i < processes; i++) {
      const child = spawn(process.execPath, ["--import", "tsx", self, "--child"], {
        env: {
          ...process.env,
          ENDPOINT: endpoint,
          TABLE: table,
          LOCK_ID: lockId,
          MODE: mode,
          HOLD_MS: String(holdMs),
          SECONDS: String(seconds),
          WORKER: `w${i}`,
        },
        stdio: ["pipe", "pipe", "inherit"],
      });
      children.push({ child, lines: linesOf(child) });
    }
    // Everyone ready (bounded: starting 32 processes on 2 cores takes a while), then go together.
    const readyBy = performance.now() + 120_000;
    while (!children.every(({ lines }) => lines[0] === "ready")) {
      if (performance.now() > readyBy) throw new Error("children did not start in time");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const { child } of children) child.stdin?.write("go\n");
    const bound = setTimeout(killAll, (seconds + LEASE_MS / 1000 + 30) * 1000);
    await Promise.all(children.map(({ child }) => (child.exitCode === null ? once(child, "close") : null)));
    clearTimeout(bound);
  } finally {
    killAll();
  }
  const results = children.map(({ lines }) => JSON.parse(lines[1] ?? "null") as ChildResult | null);
  if (results.some((r) => r === null))
    throw new Error(`${mode} with ${processes} processes: a child gave no result`);
  const all = results as ChildResult[];
  const sections = all
    .flatMap((r) => r.sections.map((s) => ({ ...s, worker: r.worker })))
    .sort((a, b) => a.fence - b.fence);
  const gaps: number[] = [];
  for (let i = 1; i < sections.length; i++) {
    const a = sections[i - 1];
    const b = sections[i];
    if (a !== undefined && b !== undefined && a.worker !== b.worker && b.fence === a.fence + 1)
      gaps.push(b.acquiredAt - a.releaseSentAt);
  }
  gaps.sort((x, y) => x - y);
  const total = sections.length;
  const shares = all.map((r) => r.acquisitions);
  const reads = all.reduce((n, r) => n + r.reads, 0);
  const writes = all.reduce((n, r) => n + r.writes, 0);
  return {
    mode,
    processes,
    holdMs,
    seconds,
    acquisitions: total,
    acquisitionsPerSecond: total / seconds,
    readsPerAcquisition: reads / Math.max(1, total),
    writesPerAcquisition: writes / Math.max(1, total),
    requestsPerSecond: (reads + writes) / seconds,
    handoffs: gaps.length,
    handoffP50Ms: percentile(gaps, 50),
    handoffP99Ms: percentile(gaps, 99),
    shareMin: Math.min(...shares),
    shareMax: Math.max(...shares),
    shareMean: total / processes,
  };
}

/**
 * One waiter's cost while a holder (heartbeating) holds for `holdMs`, after a hold of the same length
 * was recorded. Runs in this process with two clients, each counting its own requests.
 */
async function waitingCost(endpoint: string, table: string, holdMs: number): Promise<WaitingRow> {
  const holderClient = localClient(endpoint);
  const waiterClient = localClient(endpoint);
  const counts = countRequests(waiterClient);
  const options = { table, leaseMs: LEASE_MS, heartbeatMs: HEARTBEAT_MS, checkTable: false };
  const holder = new LockClient({ ...options, client: holderClient, holder: "holder" });
  const waiter = new LockClient({ ...options, client: waiterClient, holder: "waiter" });
  const id = `waiting-${holdMs}-${Date.now()}`;
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  try {
    // One hold of this length first, so the item records it (holdMs).
    let lock = await holder.acquire(id);
    await sleep(holdMs);
    await lock.release();
    lock = await holder.acquire(id);
    const before = { ...counts };
    const started = performance.now();
    const waiting = waiter.acquire(id, { waitMs: holdMs + 4 * LEASE_MS });
    await sleep(holdMs);
    const releaseSentAt = performance.now();
    // The waiter's requests while the holder held (the ones after the release are the hand-off's).
    const during = { reads: counts.reads - before.reads, writes: counts.writes - before.writes };
    const heldFor = (releaseSentAt - started) / 1000;
    await lock.release();
    const taken = await waiting;
    const handoffMs = performance.now() - releaseSentAt;
    await taken.release();
    return {
      holdMs,
      readsPerSecond: during.reads / heldFor,
      writesPerSecond: during.writes / heldFor,
      handoffMs,
    };
  } finally {
    await holder.close();
    await waiter.close();
    holderClient.destroy();
    waiterClient.destroy();
  }
}

async function main(): Promise<void> {
  const a = args();
  if (a.child === true) return child();
  const server = a.server as "dynalite" | "ddb-local";
  if (server !== "dynalite" && server !== "ddb-local")
    throw new Error("--server must be dynalite or ddb-local");
  const processCounts = a.processes.split(",").map(Number);
  const holdMs = Number(a["hold-ms"]);
  const seconds = Math.min(120, Number(a.seconds));
  const waitHolds = a["wait-holds"].split(",").map(Number);
  const latencyMs = Number(a["latency-ms"]);
  if (!(latencyMs >= 0 && latencyMs <= 1_000)) throw new Error("--latency-ms must be within 0..1000");
  const json = a.json === true;
  const log = (line: string) => {
    if (!json) console.log(line);
  };
  const db = await startLocalDynamoDB({ engine: server });
  const table = "contention";
  let proxy: Awaited<ReturnType<typeof delayProxy>> | undefined;
  try {
    proxy = latencyMs > 0 ? await delayProxy(db.endpoint, latencyMs) : undefined;
    const endpoint = proxy?.endpoint ?? db.endpoint;
    const admin = new LockClient({ table, client: db.client });
    await admin.createTable();
    await admin.close();
    const rows: ContentionRow[] = [];
    log(
      `server ${server}, holds ${holdMs} ms, ${seconds} s per run, lease ${LEASE_MS} ms, heartbeat ${HEARTBEAT_MS} ms` +
        (latencyMs > 0 ? `, ${latencyMs} ms added to every request` : ""),
    );
    log(
      "mode      procs  acq/s   reads/acq writes/acq  req/s  hand-off p50 / p99 ms  share min / max / mean",
    );
    for (const n of processCounts) {
      // Which mode runs first alternates from one process count to the next (--naive-first starts
      // with the naive floor), so drift of the machine does not always favour the same one.
      const modes = a["no-naive"] === true ? (["library"] as const) : (["library", "naive"] as const);
      const naiveFirst = (processCounts.indexOf(n) % 2 === 1) !== (a["naive-first"] === true);
      for (const mode of naiveFirst ? [...modes].reverse() : modes) {
        const row = await contend(endpoint, table, mode, n, holdMs, seconds);
        rows.push(row);
        log(
          `${mode.padEnd(9)} ${String(n).padStart(5)} ${row.acquisitionsPerSecond.toFixed(1).padStart(7)} ${row.readsPerAcquisition.toFixed(2).padStart(9)} ${row.writesPerAcquisition.toFixed(2).padStart(10)} ${row.requestsPerSecond.toFixed(0).padStart(6)}  ${row.handoffP50Ms.toFixed(2).padStart(8)} / ${row.handoffP99Ms.toFixed(2).padStart(8)}      ${row.shareMin} / ${row.shareMax} / ${row.shareMean.toFixed(1)}`,
        );
      }
    }
    const waiting: WaitingRow[] = [];
    if (a["no-waiting"] !== true) {
      log("\nwaiting cost: one waiter while a live holder holds (the lock has recorded such holds)");
      log("hold ms   reads/s  writes/s  hand-off ms   (naive 100 ms polling: 10 writes/s)");
      for (const h of waitHolds) {
        const row = await waitingCost(endpoint, table, h);
        waiting.push(row);
        log(
          `${String(h).padStart(7)} ${row.readsPerSecond.toFixed(2).padStart(9)} ${row.writesPerSecond.toFixed(2).padStart(9)} ${row.handoffMs.toFixed(2).padStart(11)}`,
        );
      }
    }
    if (json)
      console.log(JSON.stringify({ server, holdMs, seconds, latencyMs, contention: rows, waiting }, null, 2));
  } finally {
    await proxy?.close();
    await db.close();
  }
}

await main();
