/**
 * What the simulated processes do with the real LockClient: take a lock (acquire with various waits,
 * tryAcquire, withLock), work in the critical section while writing a counter into the lock's data,
 * and release it, sometimes with data, sometimes abandoning it (the process then exits holding it,
 * like a crash); an administrator force-releases and reads. Every outcome is reported to the checker,
 * and every error that the API does not document is a violation.
 */
import { type AttributeValue, type TransactWriteItem, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import type { DynamoDBSender } from "../../src/aws.js";
import type { LockClient } from "../../src/client.js";
import { LockError, LockLostError } from "../../src/errors.js";
import type { Lock } from "../../src/lock.js";
import type { Runtime } from "../../src/runtime.js";
import { sleep } from "../../src/runtime.js";
import { Checker } from "./checker.js";
import type { SimProcess } from "./process.js";
import type { Random } from "./random.js";

/** The data every lock carries: a counter and the tag of the write that stored it. */
export interface CounterData extends Record<string, unknown> {
  readonly counter: number;
  readonly tag: string;
}

export interface WorkerContext {
  readonly process: SimProcess;
  readonly client: LockClient;
  readonly runtime: Runtime;
  readonly random: Random;
  readonly checker: Checker;
  readonly ids: readonly string[];
  readonly leaseMs: number;
  readonly heartbeatMs: number;
  /**
   * false: every acquire passes `heartbeat: false`, and critical sections renew by `extend()` at
   * random points instead (a serverless holder).
   */
  readonly heartbeat: boolean;
  /** Aborting acquires by signal is allowed (not in runs that check liveness bounds). */
  readonly abortWaits: boolean;
  /** The table, and the key of an item: the resource each lock protects lives beside it. */
  readonly table: string;
  readonly keyOf: (id: string) => Record<string, AttributeValue>;
  /** This process's DynamoDB client, for writes that bypass the lock. */
  readonly raw: DynamoDBSender;
  /** Called once as a thread ends: true for the last thread using this client (it may close it). */
  readonly lastUser?: () => boolean;
  /** The administrator force-releases often. */
  readonly eagerAdmin?: boolean | undefined;
}

/** The item a lock protects: lock "job" guards item "resource/job". */
export const RESOURCE_PREFIX = "resource/";

/** A write to the protected resource, recording who wrote it. */
function resourceWrite(ctx: WorkerContext, lock: Lock<CounterData>, tag: string) {
  return {
    TableName: ctx.table,
    Key: ctx.keyOf(`${RESOURCE_PREFIX}${lock.id}`),
    UpdateExpression: "SET #writer = :writer",
    ExpressionAttributeNames: { "#writer": "writer" },
    ExpressionAttributeValues: { ":writer": { M: { tag: { S: tag } } } },
  };
}

const pause = (ctx: WorkerContext, ms: number) => sleep(ctx.runtime, ms);

/** How long a step of work takes: mostly short, sometimes longer than the lease (heartbeats must carry it). */
function workMs(ctx: WorkerContext): number {
  const r = ctx.random;
  // Without heartbeats a step longer than the lease loses the lock: rarer, and then expected.
  if (!ctx.heartbeat)
    return r.chance(0.05) ? r.between(ctx.leaseMs, 2 * ctx.leaseMs) : r.between(0, ctx.leaseMs / 3);
  return r.chance(0.15) ? r.between(ctx.leaseMs, 3 * ctx.leaseMs) : r.between(0, 2 * ctx.heartbeatMs);
}

export async function worker(ctx: WorkerContext): Promise<void> {
  const r = ctx.random;
  const rounds = r.int(1, 4);
  for (let round = 0; round < rounds; round++) {
    await pause(ctx, r.between(0, ctx.leaseMs));
    const id = r.pick(ctx.ids);
    const style = r.pick(["acquire", "acquire", "acquire", "try", "withLock"] as const);
    if (style === "withLock") await withLockRound(ctx, id);
    else if ((await acquireRound(ctx, id, style === "try")) === "abandoned") {
      ctx.lastUser?.();
      return;
    }
  }
  // Only the last thread on a client closes it: close() releases every lock the client holds,
  // and another thread's lock would then be gone from under it without any loss to report.
  const last = ctx.lastUser?.() ?? true;
  if (last && r.chance(0.3)) {
    ctx.checker.closing(ctx.process);
    await ctx.client.close().catch((err: unknown) => {
      if (!(err instanceof AggregateError)) ctx.checker.unexpected(ctx.process, "close", err);
    });
  }
}

function waitMsFor(ctx: WorkerContext): number {
  const r = ctx.random;
  return r.pick([0, r.between(0, ctx.leaseMs), r.between(ctx.leaseMs, 4 * ctx.leaseMs), 8 * ctx.leaseMs]);
}

/** An AbortSignal that fires after a random while, or none. */
function maybeAbort(ctx: WorkerContext): { signal: AbortSignal | undefined; afterMs: number; stop(): void } {
  if (!ctx.abortWaits || !ctx.random.chance(0.1)) return { signal: undefined, afterMs: Infinity, stop() {} };
  const controller = new AbortController();
  const afterMs = ctx.random.between(0, 2 * ctx.leaseMs);
  const timer = ctx.runtime.setTimer(() => controller.abort(new Error("caller gave up")), afterMs, true);
  return { signal: controller.signal, afterMs, stop: () => timer.cancel() };
}

async function acquireRound(ctx: WorkerContext, id: string, trying: boolean): Promise<"done" | "abandoned"> {
  const waitMs = trying ? 0 : waitMsFor(ctx);
  const abort = maybeAbort(ctx);
  const options = {
    ...(abort.signal === undefined ? {} : { signal: abort.signal }),
    ...(ctx.heartbeat ? {} : { heartbeat: false }),
  };
  const finished = ctx.checker.acquireStarted(ctx.process, id, Math.min(waitMs, abort.afterMs));
  let lock: Lock<CounterData> | undefined;
  try {
    lock = trying
      ? await ctx.client.tryAcquire<CounterData>(id, options)
      : await ctx.client.acquire<CounterData>(id, { waitMs, ...options });
  } catch (err) {
    if (!Checker.expectedError(err, "acquire", abort.signal))
      ctx.checker.unexpected(ctx.process, `acquire("${id}")`, err);
    return "done";
  } finally {
    finished();
    abort.stop();
  }
  if (lock === undefined) return "done";
  ctx.checker.adopted(ctx.process, lock as unknown as Lock);
  return criticalSection(ctx, lock, true);
}

async function withLockRound(ctx: WorkerContext, id: string): Promise<void> {
  const waitMs = waitMsFor(ctx);
  const userError = ctx.random.chance(0.15) ? new Error("the caller's own failure") : undefined;
  const finished = ctx.checker.acquireStarted(ctx.process, id, waitMs);
  let started = false;
  try {
    await ctx.client.withLock<void, CounterData>(
      id,
      async (lock) => {
        started = true;
        finished();
        ctx.checker.adopted(ctx.process, lock as unknown as Lock);
        await criticalSection(ctx, lock, false);
        ctx.checker.releasing(lock as unknown as Lock);
        if (userError !== undefined) throw userError;
      },
      { waitMs, ...(ctx.heartbeat ? {} : { heartbeat: false }) },
    );
    if (userError !== undefined)
      ctx.checker.unexpected(ctx.process, "withLock", new Error("resolved although fn threw"));
  } catch (err) {
    if (!started) finished();
    if (userError !== undefined && started) {
      if (err !== userError)
        ctx.checker.unexpected(ctx.process, "withLock (fn's error must pass through)", err);
      return;
    }
    if (!(err instanceof LockError)) ctx.checker.unexpected(ctx.process, `withLock("${id}")`, err);
  }
}

async function criticalSection(
  ctx: WorkerContext,
  lock: Lock<CounterData>,
  release: boolean,
): Promise<"done" | "abandoned"> {
  const r = ctx.random;
  const name = `${ctx.process.name}.${ctx.process.incarnation}`;
  let counter = Number(lock.data?.counter ?? 0);
  let seq = 0;
  const careful = r.chance(0.5);
  const updates = r.int(0, 3);
  for (let k = 0; k < updates; k++) {
    if (!ctx.heartbeat && r.chance(0.7) && (await extend(ctx, lock)) === "lost") return "done";
    await pause(ctx, workMs(ctx));
    // Now and then an extend not awaited, racing the step's own write (both go through the queue).
    if (!ctx.heartbeat && r.chance(0.1)) void extend(ctx, lock);
    // A careful caller stops when told; a careless one learns from the rejected write.
    if (careful && lock.signal.aborted) return "done";
    const kind = r.next();
    if (kind < 0.3) {
      // A write to the protected resource, guarded by the lock (a transaction) or not (a check first).
      const tag = `${name}:${lock.id}:f${lock.fence}.${++seq}`;
      const guarded = kind < 0.2;
      ctx.checker.resourceWriteIssued(tag, lock as unknown as Lock, seq, guarded);
      if (guarded) {
        try {
          await lock.transact([{ Update: resourceWrite(ctx, lock, tag) } as TransactWriteItem]);
        } catch (err) {
          if (!(err instanceof LockError)) ctx.checker.unexpected(ctx.process, "transact", err);
          if (err instanceof LockLostError) return "done";
        }
      } else {
        if (!lock.held) return "done";
        // Whatever stall comes between this check and the write, the write goes out regardless.
        await pause(ctx, r.between(0, ctx.heartbeatMs));
        await ctx.raw.send(new UpdateItemCommand(resourceWrite(ctx, lock, tag))).catch(() => undefined);
      }
      continue;
    }
    const tag = `${name}:${lock.id}:f${lock.fence}.${++seq}`;
    ctx.checker.writeIssued(tag, lock as unknown as Lock, seq, `update ${tag}`);
    try {
      await lock.update({ counter: ++counter, tag });
      ctx.checker.writeAcknowledged(tag);
    } catch (err) {
      if (!Checker.expectedError(err, "update")) ctx.checker.unexpected(ctx.process, "update", err);
      ctx.checker.writeRejected(tag, err);
      return "done";
    }
  }
  await pause(ctx, r.between(0, ctx.heartbeatMs));
  if (release && r.chance(0.04)) return "abandoned";
  if (!release) return "done";
  // Now and then a guarded write still in flight when the release is sent (a caller that did not
  // await it): its guard may fail because of our own release, which is no loss of the lock.
  let inFlight: Promise<void> | undefined;
  if (r.chance(0.1) && lock.held) {
    const tag = `${name}:${lock.id}:f${lock.fence}.${++seq}`;
    ctx.checker.resourceWriteIssued(tag, lock as unknown as Lock, seq, true);
    inFlight = lock.transact([{ Update: resourceWrite(ctx, lock, tag) } as TransactWriteItem]).then(
      () => undefined,
      (err: unknown) => {
        if (!(err instanceof LockError)) ctx.checker.unexpected(ctx.process, "transact", err);
      },
    );
  }
  const withData = r.chance(0.7);
  const tag = `${name}:${lock.id}:f${lock.fence}.${++seq}`;
  if (withData) ctx.checker.writeIssued(tag, lock as unknown as Lock, seq, `release ${tag}`);
  ctx.checker.releasing(lock as unknown as Lock);
  try {
    await lock.release(withData ? { counter: ++counter, tag } : undefined);
    if (withData) ctx.checker.writeAcknowledged(tag);
  } catch (err) {
    if (!Checker.expectedError(err, "release")) ctx.checker.unexpected(ctx.process, "release", err);
    if (withData) ctx.checker.writeRejected(tag, err);
  }
  await inFlight;
  return "done";
}

/** A serverless holder's explicit renewal: how much lease it reports, or that the lock is gone. */
async function extend(ctx: WorkerContext, lock: Lock<CounterData>): Promise<"extended" | "lost"> {
  try {
    const left = await lock.extend();
    ctx.checker.stats.extended++;
    if (!(left > 0 && left <= lock.leaseMs))
      ctx.checker.unexpected(ctx.process, "extend", new Error(`reported ${left} ms of lease left`));
    return "extended";
  } catch (err) {
    ctx.checker.stats.extendRefused++;
    if (!Checker.expectedError(err, "extend")) ctx.checker.unexpected(ctx.process, "extend", err);
    return err instanceof LockLostError || lock.signal.aborted ? "lost" : "extended";
  }
}

/** The administrator: force-releases and reads, now and then. */
export async function admin(ctx: WorkerContext): Promise<void> {
  const r = ctx.random;
  const eager = ctx.eagerAdmin === true;
  const rounds = eager ? r.int(5, 30) : r.int(1, 5);
  for (let round = 0; round < rounds; round++) {
    await pause(ctx, r.between(0, (eager ? 0.5 : 3) * ctx.leaseMs));
    const id = r.pick(ctx.ids);
    if (r.chance(eager ? 0.9 : 0.5)) {
      const ended = ctx.checker.forceReleaseStarted();
      try {
        await ctx.client.forceRelease(id);
      } catch (err) {
        if (!Checker.expectedError(err, "admin")) ctx.checker.unexpected(ctx.process, "forceRelease", err);
      } finally {
        ended();
      }
    } else {
      try {
        await ctx.client.read(id);
      } catch (err) {
        if (!Checker.expectedError(err, "admin")) ctx.checker.unexpected(ctx.process, "read", err);
      }
    }
  }
}
