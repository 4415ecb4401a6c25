/**
 * A manual clock for unit tests: time moves only when the test says so, timers fire in order,
 * and the test can assert that no timer was left behind.
 */
import type { Runtime, Timer } from "../../src/runtime.js";

interface Pending {
  at: number;
  seq: number;
  callback: () => void;
  keepAlive: boolean;
}

/** Shared by every FakeRuntime: owner tokens must be unique across processes, as real ones are. */
let tokens = 0;

export class FakeRuntime implements Runtime {
  #now = 0;
  #seq = 0;
  #timers = new Map<number, Pending>();
  /** Offset of the wall clock from the monotonic one (ms since epoch at monotonic 0). */
  wallOffset = 1_800_000_000_000;
  #random: () => number;

  constructor(random: () => number = () => 0.5) {
    this.#random = random;
  }

  wallNow(): number {
    return this.wallOffset + this.#now;
  }
  monotonicNow(): number {
    return this.#now;
  }
  random(): number {
    return this.#random();
  }
  token(): string {
    return `token-${++tokens}`;
  }
  setTimer(callback: () => void, ms: number, keepAlive: boolean): Timer {
    const seq = ++this.#seq;
    this.#timers.set(seq, { at: this.#now + Math.max(0, ms), seq, callback, keepAlive });
    return { cancel: () => this.#timers.delete(seq) };
  }

  /**
   * Moves time forward by `ms` without firing any timer: a frozen process (SIGSTOP, a frozen Lambda
   * environment) whose clock ran on while nothing of it ran. Due timers fire at the next `advance`,
   * as they would after the thaw, possibly after other code has run.
   */
  freeze(ms: number): void {
    this.#now += ms;
  }

  /** Timers not yet fired or cancelled, and how many of them would keep a process alive. */
  get keepAliveTimers(): number {
    return [...this.#timers.values()].filter((t) => t.keepAlive).length;
  }

  /** Timers not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward by `ms`, firing due timers in order and letting promise callbacks run
   * between them (so async code reacting to a timer sees the clock at that timer's instant).
   */
  async advance(ms: number, settle: () => Promise<void> = flushMicrotasks): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      await settle();
      const next = [...this.#timers.values()]
        .filter((t) => t.at <= end)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (next === undefined) break;
      this.#timers.delete(next.seq);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
    }
    this.#now = end;
    await settle();
  }
}

/** Lets pending promise callbacks (and the I/O-free async code they start) run. */
export async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
