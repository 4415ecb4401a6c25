// AWS Lambda, the recipe of docs/lambda.md: one in-flight invocation per key; a lock without
// heartbeats (a frozen execution environment runs no timers), renewed by extend() between steps;
// the wait bounded by the invocation's remaining time; and a fast takeover, by the wall-clock
// shortcut, of the lock of an invocation that Lambda killed at its timeout.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { LockClient, LockHeldError } from "dynamolock";

/** The function's configured timeout: give it to the function as an environment variable too. */
const TIMEOUT_MS = Number(process.env.FUNCTION_TIMEOUT_MS ?? 60_000);
/** The longest one step of the work may take. */
const STEP_MS = Number(process.env.STEP_MS ?? 5_000);
/** Time kept back at the end of an invocation, to release the lock before Lambda's timeout. */
const RESERVE_MS = 500;

// Created once per execution environment (outside the handler) and reused by its invocations.
const locks = new LockClient({
  table: process.env.LOCK_TABLE ?? "locks",
  // A few steps long, and never longer than an invocation can live: an invocation killed at its
  // timeout blocks its key for at most one lease (plus the skew bound) after its last renewal.
  leaseMs: Math.min(TIMEOUT_MS, 3 * STEP_MS),
  // No timers: renewals happen when the handler says so, between steps (extend()).
  heartbeat: false,
  // Lambda hosts keep their clocks in sync (Amazon Time Sync): a lock whose holder has been silent
  // for a lease plus one second is taken over at once, without watching a whole lease go by.
  maxClockSkewMs: 1_000,
});

export interface Context {
  getRemainingTimeInMillis(): number;
}

export interface OrderEvent {
  readonly orderId: string;
  readonly steps: number;
}

export async function handler(event: OrderEvent, context: Context, step = doStep) {
  // Wait for the invocation in flight for this order, but only while this one still has time to work.
  const waitMs = Math.max(0, context.getRemainingTimeInMillis() - RESERVE_MS - STEP_MS);
  const acquired = await locks.acquire(`order-${event.orderId}`, { waitMs }).catch((err: unknown) => {
    if (err instanceof LockHeldError) return undefined;
    throw err;
  });
  if (acquired === undefined) return { statusCode: 409, body: "still being processed" };
  // Released when the handler returns or throws, before Lambda may freeze the environment.
  await using lock = acquired;
  for (let i = 0; i < event.steps; i++) {
    // Renew, and start a step only if both the lease and the invocation have room for all of it.
    // extend() refuses (LockLostError, nothing sent) if the lease ran out meanwhile.
    const leaseLeft = await lock.extend();
    if (leaseLeft < STEP_MS || context.getRemainingTimeInMillis() < STEP_MS + RESERVE_MS) {
      return { statusCode: 503, body: `stopped before step ${i}: out of time` };
    }
    await step(event.orderId, i, lock.fence, lock.signal);
  }
  return { statusCode: 200, body: `processed with fence ${lock.fence}` };
}

/** One step of the work: pass the fence on to what it writes, and stop if the signal aborts. */
async function doStep(orderId: string, index: number, fence: number, signal: AbortSignal) {
  signal.throwIfAborted();
  await new Promise((resolve) => setTimeout(resolve, 50));
  return { orderId, index, fence };
}

/** A context like Lambda's, for an invocation that started now with the function's timeout. */
function contextNow(): Context {
  const deadline = Date.now() + TIMEOUT_MS;
  return { getRemainingTimeInMillis: () => deadline - Date.now() };
}

const self = fileURLToPath(import.meta.url);
if (process.argv[1] === self && process.argv[2] === "killed") {
  // An invocation that Lambda kills at its timeout: it takes the lock, then hangs in its step.
  await handler({ orderId: "42", steps: 1 }, contextNow(), async () => {
    process.send?.("working");
    await new Promise(() => setInterval(() => undefined, 1_000));
  });
} else if (process.argv[1] === self) {
  // Run directly: two concurrent invocations for one order, then one after an invocation was killed.
  await locks.createTable();
  let inFlight = 0;
  let most = 0;
  const counted = async (orderId: string, index: number, fence: number, signal: AbortSignal) => {
    most = Math.max(most, ++inFlight);
    try {
      return await doStep(orderId, index, fence, signal);
    } finally {
      inFlight--;
    }
  };
  const both = await Promise.all([
    handler({ orderId: "7", steps: 3 }, contextNow(), counted),
    handler({ orderId: "7", steps: 3 }, contextNow(), counted),
  ]);

  const killed = fork(self, ["killed"], { execArgv: process.execArgv, stdio: "inherit" });
  await new Promise((resolve) => killed.once("message", resolve));
  killed.kill("SIGKILL"); // what Lambda does to an invocation at its timeout
  const fenceBefore = (await locks.read("order-42"))?.fence;
  const next = await handler({ orderId: "42", steps: 1 }, contextNow());
  const fenceAfter = (await locks.read("order-42"))?.fence;
  console.log(
    JSON.stringify({
      concurrent: both.map((r) => r.statusCode),
      mostInFlight: most,
      afterKill: next.statusCode,
      takenOver: fenceBefore !== undefined && fenceAfter === fenceBefore + 1,
    }),
  );
  await locks.close();
}
