/**
 * The lock's view of time and chance. Everything that reads a clock, sets a timer or draws a random
 * number goes through a {@link Runtime}, so tests and the deterministic simulation can replace it.
 */
import { randomBytes } from "node:crypto";

/** A scheduled callback; `cancel()` is idempotent. */
export interface Timer {
  cancel(): void;
}

export interface Runtime {
  /** Wall-clock ms since the epoch. Only written for humans and read by the wall-clock shortcut. */
  wallNow(): number;
  /** Monotonic ms from an arbitrary origin. Every lease computation uses this clock. */
  monotonicNow(): number;
  /**
   * Runs `callback` after `ms`. With `keepAlive: false` the timer does not keep the process running
   * (heartbeats: a process that exits while holding a lock behaves like a crash).
   */
  setTimer(callback: () => void, ms: number, keepAlive: boolean): Timer;
  /** A uniform random number in [0, 1), for jitter. */
  random(): number;
  /** A fresh unguessable token (at least 128 bits), for owner ids. */
  token(): string;
}

/**
 * The longest delay Node's timers hold: a longer one (or Infinity) fires after 1 ms instead, with
 * only a warning. Every timer of the system runtime goes through {@link setLongTimer}.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * `setTimeout` for any delay: a delay beyond {@link MAX_TIMER_MS} is waited in steps, each re-armed
 * from the monotonic clock; `Infinity` never fires (and holds nothing open); NaN or a negative
 * delay fires at once.
 */
export function setLongTimer(callback: () => void, ms: number, keepAlive: boolean): Timer {
  if (ms === Number.POSITIVE_INFINITY) return { cancel: () => undefined };
  const due = performance.now() + (Number.isNaN(ms) ? 0 : Math.max(0, ms));
  let handle: NodeJS.Timeout;
  const arm = () => {
    const left = due - performance.now();
    handle = left > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(callback, Math.max(0, left));
    if (!keepAlive) handle.unref();
  };
  arm();
  return { cancel: () => clearTimeout(handle) };
}

/** Bytes of one owner token: 128 bits. */
const TOKEN_BYTES = 16;
/** Tokens drawn from the system's CSPRNG in one call: one call per acquire was a measurable cost. */
const TOKENS_PER_DRAW = 128;
let tokenPool = Buffer.alloc(0);
let tokenOffset = 0;

/**
 * A fresh 128-bit token from the CSPRNG, as hex. Drawn in batches; each token is used once, so the
 * tokens are exactly as unguessable as one `randomBytes(16)` each.
 */
export function randomToken(): string {
  if (tokenOffset + TOKEN_BYTES > tokenPool.length) {
    tokenPool = randomBytes(TOKEN_BYTES * TOKENS_PER_DRAW);
    tokenOffset = 0;
  }
  const token = tokenPool.toString("hex", tokenOffset, tokenOffset + TOKEN_BYTES);
  tokenOffset += TOKEN_BYTES;
  return token;
}

export const systemRuntime: Runtime = {
  wallNow: () => Date.now(),
  monotonicNow: () => performance.now(),
  setTimer: setLongTimer,
  random: () => Math.random(),
  token: randomToken,
};

/**
 * Waits `ms` on the runtime's clock. Rejects with `signal.reason` when the signal aborts, and
 * removes its listener either way. The timer keeps the process alive: somebody is awaiting it.
 */
export function sleep(runtime: Runtime, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      timer.cancel();
      reject(signal?.reason);
    };
    const timer = runtime.setTimer(
      () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      },
      ms,
      true,
    );
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * An AbortSignal that aborts when `parent` does or after `ms` on the runtime's clock, whichever is
 * first. `dispose()` cancels the timer and detaches from the parent.
 */
export function deadlineSignal(
  runtime: Runtime,
  ms: number,
  parent: AbortSignal | undefined,
  timeoutReason: () => unknown,
): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onParentAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener("abort", onParentAbort, { once: true });
  const timer = runtime.setTimer(() => controller.abort(timeoutReason()), ms, false);
  return {
    signal: controller.signal,
    dispose() {
      timer.cancel();
      parent?.removeEventListener("abort", onParentAbort);
    },
  };
}

/**
 * Waits for `promise`, or rejects with `signal.reason` as soon as `signal` aborts (the promise goes
 * on; only this wait for it ends). Removes its listener either way.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/**
 * Sends one request of an acquire, cut off one lease after the wait is over, or after two leases,
 * whichever is first: the SDK has no time-out by default, and a connection that never answers must
 * not hold the caller for ever (nor, with a long or endless wait, keep it from trying again). At
 * least a lease: a slow but healthy answer must never be cut off, and an answer slower than a lease
 * is no use to a lock anyway. A cut-off request counts as unanswered. Shared by the mutex's and the
 * multi-holder acquire loops.
 */
export async function sendWithinWait<T>(
  runtime: Runtime,
  deadline: number,
  leaseMs: number,
  signal: AbortSignal,
  send: (abortSignal: AbortSignal) => Promise<T>,
): Promise<T> {
  const limit = Math.min(Math.max(0, deadline - runtime.monotonicNow()), leaseMs) + leaseMs;
  const cutOff = deadlineSignal(runtime, limit, signal, () => new Error(`no answer within ${limit} ms`));
  try {
    return await send(cutOff.signal);
  } finally {
    cutOff.dispose();
  }
}
