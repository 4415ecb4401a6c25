/**
 * Many locks in one process (run by lock.bench.ts as a child with --expose-gc, against the server
 * named by AWS_ENDPOINT_URL_DYNAMODB): acquires N locks, holds them through several heartbeats, and
 * prints one JSON line: client CPU per heartbeat, heap per held lock, event-loop delay while holding,
 * and leases lost (which must be 0). The library's own default client is used, as a user would.
 *
 *   node --expose-gc --import tsx bench/many.ts --locks 1000 --lease-ms 3000 --heartbeat-ms 1000 --hold-ms 6000
 */
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { type Lock, LockClient } from "../src/index.js";
import { requestCounter } from "./requests.js";

const { values } = parseArgs({
  options: {
    locks: { type: "string", default: "1000" },
    "lease-ms": { type: "string", default: "30000" },
    "heartbeat-ms": { type: "string" },
    "hold-ms": { type: "string", default: "12000" },
    table: { type: "string", default: "bench" },
    // Each run its own ids: a run whose leases ran out leaves its items held for a while.
    prefix: { type: "string", default: `many-${process.pid}-${Date.now()}` },
  },
});
const count = Number(values.locks);
const leaseMs = Number(values["lease-ms"]);
const heartbeatMs = values["heartbeat-ms"] === undefined ? undefined : Number(values["heartbeat-ms"]);
const holdMs = Number(values["hold-ms"]);
const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};

const counter = requestCounter();
const locks = new LockClient({
  table: values.table,
  leaseMs,
  ...(heartbeatMs === undefined ? {} : { heartbeatMs }),
});
// Warm up the table check, the SDK's lazily loaded parts and the connection pool (as many sockets
// as the acquires below use at once), so the heap measured below holds the locks and nothing else.
const CONCURRENCY = 32;
await Promise.all(
  Array.from({ length: CONCURRENCY }, async (_, i) =>
    (await locks.acquire(`${values.prefix}-warm-${i}`)).release(),
  ),
);
const heapBefore = heap();
const held: Lock[] = [];
const acquireStarted = performance.now();
// A few at a time, as a service taking its locks at start would; the order does not matter.
const next = { i: 0 };
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    for (let i = next.i++; i < count; i = next.i++) held.push(await locks.acquire(`${values.prefix}-${i}`));
  }),
);
const acquireMs = performance.now() - acquireStarted;
const heapHeld = heap();

// Leases may already run out while the rest are being acquired, if the process or the server cannot
// keep up: those count too (a lost lock's signal stays aborted).
const lostWhileAcquiring = held.filter((lock) => lock.signal.aborted).length;
const delay = monitorEventLoopDelay({ resolution: 10 });
const before = counter();
const cpuBefore = process.cpuUsage();
delay.enable();
await new Promise((resolve) => setTimeout(resolve, holdMs));
delay.disable();
const cpu = process.cpuUsage(cpuBefore);
const after = counter();
const heartbeats = after.writes - before.writes;
const stillHeld = held.filter((lock) => lock.held).length;
const lost = held.filter((lock) => lock.signal.aborted).length;
const heapAfterHold = heap();

const releaseStarted = performance.now();
await Promise.all(held.map((lock) => lock.release().catch(() => undefined)));
const releaseMs = performance.now() - releaseStarted;
await locks.close();

console.log(
  JSON.stringify({
    locks: count,
    leaseMs,
    heartbeatMs: heartbeatMs ?? Math.round(leaseMs / 6),
    holdMs,
    acquireMs,
    releaseMs,
    heartbeats,
    heartbeatsPerSecond: heartbeats / (holdMs / 1000),
    cpuUsPerHeartbeat: heartbeats === 0 ? null : (cpu.user + cpu.system) / heartbeats,
    cpuShare: (cpu.user + cpu.system) / 1000 / holdMs,
    bytesPerLock: (heapHeld - heapBefore) / count,
    heapGrowthDuringHoldPerLock: (heapAfterHold - heapHeld) / count,
    loopDelayP50Ms: delay.percentile(50) / 1e6,
    loopDelayP99Ms: delay.percentile(99) / 1e6,
    loopDelayMaxMs: delay.max / 1e6,
    lost,
    lostWhileAcquiring,
    stillHeld,
  }),
);
