/**
 * A simulated process: its clocks, its timers and its life (pauses, crashes, restarts), and the
 * Runtime the real lock code uses inside it.
 *
 * Time. The simulation keeps one real time (the scheduler's). Each process reads it through its own
 * clocks: monotonic = origin + rate · real (rate within 1 ± drift), wall = epoch + offset + real (the
 * offset may step, as NTP does). A timer set for `ms` fires when the process's own monotonic clock
 * has advanced by `ms` (never earlier, as Node's timers), plus any event-loop lag.
 *
 * Pauses. A stalled process (GC, a blocked event loop) handles nothing until it resumes: its events
 * are postponed, in order, to the end of the stall. A stall can also begin in the middle of
 * synchronous code — right after it reads a clock — which is modelled by moving the process's own
 * notion of "now" forward: everything it sends or schedules from there on leaves at the later time,
 * exactly as if the world had gone on while it was stopped.
 */
import type { Runtime, Timer } from "../../src/runtime.js";
import type { Random } from "./random.js";
import type { Scheduler } from "./scheduler.js";

/** Wall clocks start near this instant (2027-01-15), so timestamps look like real ones in traces. */
export const EPOCH_MS = 1_800_000_000_000;

export interface ClockSetting {
  /** Monotonic ticks per real ms: 1 + drift. */
  readonly rate: number;
  /** The monotonic reading at real time 0. */
  readonly monoOrigin: number;
  /** Wall clock minus real time, ms. */
  wallOffset: number;
}

export interface StallSettings {
  /** Chance that a clock read is followed by a stall (a pause between a check and what follows). */
  readonly afterReadChance: number;
  readonly afterReadMaxMs: number;
  /** The shortest such stall (default 0). */
  readonly afterReadMinMs?: number;
  /** Chance that a timer fires late (event-loop lag) and by how much at most. */
  readonly timerLagChance: number;
  readonly timerLagMaxMs: number;
}

/** Who an event belongs to: one life of one process. Events of an earlier life are dropped. */
export interface Owner {
  readonly process: SimProcess;
  readonly incarnation: number;
}

export class SimProcess {
  readonly name: string;
  readonly index: number;
  readonly clock: ClockSetting;
  readonly #scheduler: Scheduler;
  readonly #random: Random;
  readonly #stalls: StallSettings;
  /** Current life; bumped by a crash, so that nothing of the old life runs again. */
  incarnation = 0;
  alive = true;
  /** Real time until which the process is stalled. */
  busyUntil = 0;
  /** Real time as this process's code sees it during its current turn (ahead of the world's when stalled mid-turn). */
  localNow = 0;
  /**
   * Real time at which the current turn began. Timers count from it, as Node's do: a timer's start
   * is the event loop's cached time, taken when the turn began, not the instant setTimeout is called
   * (a pause in the middle of the turn does not delay the timers it then sets).
   */
  turnStart = 0;
  /** Timers that keep the process alive (a Node process exits when none are left and nothing is in flight). */
  keepAliveTimers = 0;
  /** Requests in flight (a socket keeps the process alive). */
  inFlight = 0;
  /** Set while the invariant checker reads this process's clocks: no stalls, world time. */
  static peeking = false;
  #tokens = 0;
  /** Stalls that began in the middle of synchronous code (statistics). */
  midTurnStalls = 0;

  constructor(options: {
    name: string;
    index: number;
    clock: ClockSetting;
    scheduler: Scheduler;
    random: Random;
    stalls: StallSettings;
  }) {
    this.name = options.name;
    this.index = options.index;
    this.clock = options.clock;
    this.#scheduler = options.scheduler;
    this.#random = options.random;
    this.#stalls = options.stalls;
  }

  get owner(): Owner {
    return { process: this, incarnation: this.incarnation };
  }

  /** The real time this process's code is at: its own turn's time, or the world's when observed from outside. */
  now(): number {
    return SimProcess.peeking ? this.#scheduler.now : Math.max(this.localNow, this.#scheduler.now);
  }

  monoAt(real: number): number {
    return this.clock.monoOrigin + this.clock.rate * real;
  }

  realAtMono(mono: number): number {
    return (mono - this.clock.monoOrigin) / this.clock.rate;
  }

  wallAt(real: number): number {
    return EPOCH_MS + this.clock.wallOffset + real;
  }

  /** A stall that starts right after the read this call follows. */
  #maybeStallAfterRead(): void {
    if (SimProcess.peeking || !this.#random.chance(this.#stalls.afterReadChance)) return;
    const s = this.#stalls;
    this.localNow = this.now() + this.#random.between(s.afterReadMinMs ?? 0, s.afterReadMaxMs);
    this.midTurnStalls++;
  }

  /** A pause armed to begin right after the next heartbeat of this process is confirmed, ms. */
  pauseAfterHeartbeatMs: number | undefined;

  /** Postpones everything this process would do until `until` (an external pause: GC, a blocked loop). */
  stall(until: number): void {
    this.busyUntil = Math.max(this.busyUntil, until);
  }

  /** Schedules `action` in this life of the process at real time `at`. */
  at(at: number, action: () => void): { cancel(): void } {
    return this.#scheduler.at(at, action, this.owner);
  }

  /** The Runtime of the current life: what the lock code sees of time and chance. */
  runtime(): Runtime {
    const life = this.incarnation;
    const random = this.#random.fork(`runtime:${life}`);
    return {
      monotonicNow: () => {
        const value = this.monoAt(this.now());
        this.#maybeStallAfterRead();
        return value;
      },
      wallNow: () => {
        const value = this.wallAt(this.now());
        this.#maybeStallAfterRead();
        return value;
      },
      setTimer: (callback, ms, keepAlive): Timer => {
        // Node fires a timer no earlier than 1 ms and never before its delay is up on the process's clock.
        const delay = Math.max(1, Number.isFinite(ms) ? ms : 2 ** 31 - 1);
        const start = SimProcess.peeking ? this.now() : Math.min(this.now(), Math.max(this.turnStart, 0));
        let at = this.realAtMono(this.monoAt(start) + delay);
        if (this.#random.chance(this.#stalls.timerLagChance))
          at += this.#random.between(0, this.#stalls.timerLagMaxMs);
        let live = true;
        if (keepAlive) this.keepAliveTimers++;
        const done = () => {
          if (!live) return false;
          live = false;
          if (keepAlive && this.incarnation === life) this.keepAliveTimers--;
          return true;
        };
        const handle = this.at(at, () => {
          if (done()) callback();
        });
        return {
          cancel: () => {
            if (done()) handle.cancel();
          },
        };
      },
      random: () => random.next(),
      token: () => `${this.name}.${life}.${++this.#tokens}`,
    };
  }

  /** Ends this life: its timers, replies and code never run again. Requests already sent stay in the network. */
  crash(): void {
    this.alive = false;
    this.incarnation++;
    this.keepAliveTimers = 0;
    this.inFlight = 0;
  }

  /** Starts a new life (a restarted process: new monotonic origin is irrelevant, the rate is the machine's). */
  restart(): void {
    this.alive = true;
    this.busyUntil = Math.max(this.busyUntil, this.#scheduler.now);
  }

  /** Idle like a Node process about to exit: nothing referenced is pending. */
  get idle(): boolean {
    return this.keepAliveTimers === 0 && this.inFlight === 0;
  }
}
