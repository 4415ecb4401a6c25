// A Lambda handler that processes each key at most once at a time (single-flight per key), and lets
// the next invocation take over quickly after one that timed out or crashed mid-way.
import { LockClient } from "dynamolock";

// Created once per execution environment, reused by every invocation it serves.
const locks = new LockClient({
  table: process.env.LOCK_TABLE ?? "locks",
  // Short lease: a killed invocation blocks the key for about 10 s, not 30.
  leaseMs: 10_000,
  // No heartbeat timers: a frozen environment runs none, and the work here is shorter than the
  // lease. Longer work renews between steps with lock.extend() (docs/lambda.md, lambda-steps.ts).
  heartbeat: false,
  // Lambda hosts keep their clocks in sync; a holder silent for lease + 1 s is taken over at once.
  maxClockSkewMs: 1_000,
});

export async function handler(event, context) {
  // Stop waiting and working before Lambda's own time-out, so the release can still be sent.
  const budgetMs = (context?.getRemainingTimeInMillis?.() ?? 60_000) - 1_000;
  const signal = AbortSignal.timeout(Math.max(1, budgetMs));
  const lock = await locks.tryAcquire(`order-${event.orderId}`, { signal });
  if (lock === undefined) return { statusCode: 409, body: "already being processed" };
  try {
    // Work that watches both ends: the lock lost, or the invocation running out of time.
    const stop = AbortSignal.any([lock.signal, signal]);
    await processOrder(event.orderId, lock.fence, stop);
    await lock.release({ processedAt: Date.now() });
    return { statusCode: 200, body: `processed with fence ${lock.fence}` };
  } catch (err) {
    await lock.release().catch(() => undefined);
    throw err;
  }
}

async function processOrder(orderId, fence, signal) {
  signal.throwIfAborted();
  await new Promise((resolve) => setTimeout(resolve, 100));
  return { orderId, fence };
}

// Run directly: two concurrent invocations for one order, then one after.
if (process.argv[1] === new URL(import.meta.url).pathname) {
  await locks.createTable();
  const context = { getRemainingTimeInMillis: () => 15_000 };
  const both = await Promise.all([handler({ orderId: 7 }, context), handler({ orderId: 7 }, context)]);
  const later = await handler({ orderId: 7 }, context);
  console.log(JSON.stringify({ concurrent: both.map((r) => r.statusCode).sort(), later: later.statusCode }));
  await locks.close();
}
