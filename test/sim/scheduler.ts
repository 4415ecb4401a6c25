/**
 * The discrete-event scheduler: simulated real time, a queue of events ordered by (time, insertion),
 * and a run loop that lets the code an event started finish at that simulated instant.
 *
 * All I/O in a simulation is simulated, so the only macrotasks are the scheduler's own. After each
 * event the loop yields one macrotask turn (setImmediate): Node runs every microtask (promise
 * reactions, and the async code they resume) before the next macrotask, so by the time the loop
 * continues, everything the event set off has run to its next await on a simulated operation.
 */

export interface EventHandle {
  cancel(): void;
}

/** Decides, just before an event runs, whether it runs now, never, or later (its target is stalled). */
export type Gate = (event: SimEvent) => "run" | "drop" | number;

export interface SimEvent {
  /** Simulated real time, ms. */
  at: number;
  readonly seq: number;
  readonly action: () => void;
  /** Who the event belongs to (a process), for gating; undefined for the world (network, store, faults). */
  readonly owner: unknown;
  cancelled: boolean;
}

export class Scheduler {
  /** Simulated real time of the event being run (or of the last one), ms. */
  now = 0;
  /** Events run so far. */
  steps = 0;
  #heap: SimEvent[] = [];
  #seq = 0;

  /** Schedules `action` at simulated time `at` (never before now). */
  at(at: number, action: () => void, owner?: unknown): EventHandle {
    const event: SimEvent = { at: Math.max(at, this.now), seq: this.#seq++, action, owner, cancelled: false };
    this.#push(event);
    return {
      cancel: () => {
        event.cancelled = true;
      },
    };
  }

  after(delayMs: number, action: () => void, owner?: unknown): EventHandle {
    return this.at(this.now + Math.max(0, delayMs), action, owner);
  }

  get pending(): number {
    return this.#heap.length;
  }

  /**
   * Runs events in order until the queue is empty, `until` is passed, `maxSteps` events have run, or
   * `afterEach` returns false. `gate` may drop or postpone an event (a crashed or paused process).
   */
  async run(options: {
    readonly until: number;
    readonly maxSteps: number;
    readonly gate: Gate;
    readonly afterEach: (event: SimEvent) => boolean;
  }): Promise<"idle" | "time" | "steps" | "stopped"> {
    for (;;) {
      const event = this.#pop();
      if (event === undefined) return "idle";
      if (event.cancelled) continue;
      if (event.at > options.until) {
        this.#push(event);
        return "time";
      }
      const verdict = options.gate(event);
      if (verdict === "drop") continue;
      if (typeof verdict === "number" && verdict > event.at) {
        // Postponed events keep their relative order: a stalled process handles them in turn.
        event.at = verdict;
        this.#push(event);
        continue;
      }
      this.now = event.at;
      this.steps++;
      event.action();
      await settle();
      if (!options.afterEach(event)) return "stopped";
      if (this.steps >= options.maxSteps) return "steps";
    }
  }

  #push(event: SimEvent): void {
    const heap = this.#heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(event, heap[parent] as SimEvent)) break;
      heap[i] = heap[parent] as SimEvent;
      i = parent;
    }
    heap[i] = event;
  }

  #pop(): SimEvent | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child =
        right < heap.length && earlier(heap[right] as SimEvent, heap[left] as SimEvent) ? right : left;
      if (!earlier(heap[child] as SimEvent, last)) break;
      heap[i] = heap[child] as SimEvent;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

function earlier(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** One macrotask turn: every microtask queued so far, and any it queues, has run when this resolves. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
