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

export const systemRuntime: Runtime = {
  wallNow: () => Date.now(),
  monotonicNow: () => performance.now(),
  setTimer(callback, ms, keepAlive) {
    const handle = setTimeout(callback, Math.max(0, ms));
    if (!keepAlive) handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
  random: () => Math.random(),
  token: () => randomBytes(16).toString("hex"),
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
