/**
 * What dynamolock does, published on `node:diagnostics_channel` for tracing, metrics and logs
 * (docs/observability.md). Names follow undici's `module:noun:verb` style; operations with a duration
 * are TracingChannels (`tracing:dynamolock:acquire:start`, `...:asyncEnd`, `...:error`, as Node's
 * own `tracingChannel()` names them). Nothing is built or published unless someone subscribes.
 */
import { channel, tracingChannel } from "node:diagnostics_channel";

/** The context of every traced operation: which lock, in which table. */
export interface OperationContext {
  readonly table: string;
  readonly lockId: string;
  /** The acquisition's fence, for operations of a held lock; set on `acquire`'s end. */
  fence?: number;
  /** Set by the tracing channel when the operation succeeded. */
  result?: unknown;
  /** Set by the tracing channel when the operation failed. */
  error?: unknown;
}

/** `dynamolock:acquire`: from the call to the lock handed out (or the error), waiting included. */
export interface AcquireContext extends OperationContext {
  readonly waitMs: number;
}

/** `dynamolock:lock:lost`: a lock stopped being ours. */
export interface LostMessage {
  readonly table: string;
  readonly lockId: string;
  readonly fence: number;
  readonly reason: string;
  /** The LockLostError that `lock.signal` aborted with. */
  readonly error: Error;
}

/** `dynamolock:lock:takeover`: this process took over a holder it judged stale (presumed dead). */
export interface TakeoverMessage {
  readonly table: string;
  readonly lockId: string;
  /** Our new fence. */
  readonly fence: number;
  /** The stale holder's name and fence, as last read. */
  readonly previousHolder: string | undefined;
  readonly previousFence: number | undefined;
}

export const acquireChannel = tracingChannel<unknown, AcquireContext>("dynamolock:acquire");
export const heartbeatChannel = tracingChannel<unknown, OperationContext>("dynamolock:heartbeat");
export const updateChannel = tracingChannel<unknown, OperationContext>("dynamolock:update");
export const releaseChannel = tracingChannel<unknown, OperationContext>("dynamolock:release");
/** `lock.transact()`: a guarded write. */
export const transactChannel = tracingChannel<unknown, OperationContext>("dynamolock:transact");
export const lostChannel = channel("dynamolock:lock:lost");
export const takeoverChannel = channel("dynamolock:lock:takeover");

type Traced<C extends object> = ReturnType<typeof tracingChannel<unknown, C>>;

/**
 * Runs `operation` inside `traced`'s events if anyone listens; otherwise just runs it, without
 * building the context.
 */
export function trace<T, C extends object>(
  traced: Traced<C>,
  context: () => C,
  operation: () => Promise<T>,
): Promise<T> {
  if (!traced.hasSubscribers) return operation();
  return traced.tracePromise(operation, context());
}
