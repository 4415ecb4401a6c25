/**
 * The demo's record of what happened: each worker's state, the spans of time it waited and held,
 * the kill and the takeover. The live view, the verification and the timeline picture all read it.
 */
import type { WorkerEvent } from "./protocol.js";

export type WorkerStatus = "starting" | "waiting" | "holding" | "resting" | "done" | "killed" | "failed";

export interface WorkerState {
  readonly name: string;
  readonly index: number;
  pid: number | undefined;
  status: WorkerStatus;
  /** When the current status began (wall clock ms). */
  since: number;
  /** Fence of the current or last acquisition. */
  fence: number | undefined;
  completed: number;
  failure: string | undefined;
}

export interface Span {
  readonly worker: string;
  readonly kind: "wait" | "hold" | "dead";
  readonly start: number;
  end: number | undefined;
  fence: number | undefined;
  outcome: "released" | "killed" | "lost" | undefined;
}

export interface Acquisition {
  readonly worker: string;
  readonly fence: number;
  readonly at: number;
  readonly counter: number;
  readonly previousFence: number;
  /** When the holder sent its release (undefined: killed or lost). */
  releasedAt: number | undefined;
  counterWritten: number | undefined;
}

export interface Kill {
  readonly worker: string;
  readonly pid: number;
  readonly at: number;
  readonly fence: number;
}

export interface Takeover {
  readonly worker: string;
  readonly fence: number;
  readonly at: number;
}

/** What the demo last read from the lock item itself. */
export interface LockView {
  readonly held: boolean;
  readonly holder: string | undefined;
  readonly fence: number;
  readonly heartbeatAt: number | undefined;
  readonly counter: number | undefined;
  readonly readAt: number;
}

export interface LogLine {
  readonly at: number;
  readonly text: string;
  readonly tone: "plain" | "good" | "bad" | "note";
}

export class DemoModel {
  readonly startedAt: number;
  readonly workers: WorkerState[];
  readonly spans: Span[] = [];
  readonly acquisitions: Acquisition[] = [];
  readonly log: LogLine[] = [];
  /** Latest heartbeat time seen in the item, per fence. */
  readonly heartbeats = new Map<number, number>();
  /** Every distinct heartbeat time seen in the item, per fence (for the timeline's ticks). */
  readonly heartbeatHistory = new Map<number, number[]>();
  kill: Kill | undefined;
  takeover: Takeover | undefined;
  lock: LockView | undefined;
  endedAt: number | undefined;

  constructor(workerNames: readonly string[], startedAt = Date.now()) {
    this.startedAt = startedAt;
    this.workers = workerNames.map((name, index) => ({
      name,
      index,
      pid: undefined,
      status: "starting",
      since: startedAt,
      fence: undefined,
      completed: 0,
      failure: undefined,
    }));
  }

  worker(name: string): WorkerState {
    const found = this.workers.find((w) => w.name === name);
    if (found === undefined) throw new Error(`unknown worker ${name}`);
    return found;
  }

  #open(worker: string, kind: Span["kind"]): Span | undefined {
    for (let i = this.spans.length - 1; i >= 0; i--) {
      const span = this.spans[i] as Span;
      if (span.worker === worker && span.kind === kind && span.end === undefined) return span;
    }
    return undefined;
  }

  /** A worker that stopped neither waits nor holds any more. */
  #closeAll(worker: string, at: number): void {
    for (const span of this.spans) if (span.worker === worker && span.kind !== "dead") span.end ??= at;
  }

  #say(at: number, text: string, tone: LogLine["tone"] = "plain"): void {
    this.log.push({ at, text, tone });
  }

  apply(event: WorkerEvent): void {
    const w = this.worker(event.worker);
    switch (event.type) {
      case "started":
        w.pid = event.pid;
        break;
      case "waiting":
        w.status = "waiting";
        w.since = event.at;
        this.spans.push({
          worker: w.name,
          kind: "wait",
          start: event.at,
          end: undefined,
          fence: undefined,
          outcome: undefined,
        });
        break;
      case "acquired": {
        const wait = this.#open(w.name, "wait");
        if (wait !== undefined) wait.end = event.at;
        w.status = "holding";
        w.since = event.at;
        w.fence = event.fence;
        this.spans.push({
          worker: w.name,
          kind: "hold",
          start: event.at,
          end: undefined,
          fence: event.fence,
          outcome: undefined,
        });
        this.acquisitions.push({
          worker: w.name,
          fence: event.fence,
          at: event.at,
          counter: event.counter,
          previousFence: event.previousFence,
          releasedAt: undefined,
          counterWritten: undefined,
        });
        const kill = this.kill;
        if (kill !== undefined && this.takeover === undefined && event.fence > kill.fence) {
          this.takeover = { worker: w.name, fence: event.fence, at: event.at };
          const dead = this.#open(kill.worker, "dead");
          if (dead !== undefined) dead.end = event.at;
          const beat = this.heartbeats.get(kill.fence);
          const since =
            beat === undefined ? "" : `, ${seconds(event.at - beat)} after ${kill.worker}'s last heartbeat`;
          this.#say(
            event.at,
            `${w.name} took over: fence ${event.fence}, counter ${event.counter}${since}`,
            "good",
          );
        } else {
          const waited = event.waitedMs >= 5 ? ` after waiting ${seconds(event.waitedMs)}` : "";
          const waiting = this.workers.filter((o) => o.status === "waiting").map((o) => o.name);
          const others = waiting.length === 0 ? "" : `; waiting: ${waiting.join(", ")}`;
          this.#say(
            event.at,
            `${w.name} acquired fence ${event.fence}, counter ${event.counter}${waited}${others}`,
          );
        }
        if (event.victim)
          this.#say(event.at, `${w.name} will hold on to fence ${event.fence} until it is killed`, "note");
        break;
      }
      case "released": {
        const hold = this.#open(w.name, "hold");
        if (hold !== undefined) {
          hold.end = event.at;
          hold.outcome = "released";
        }
        const acquisition = this.acquisitions.find((a) => a.fence === event.fence);
        if (acquisition !== undefined) {
          acquisition.releasedAt = event.at;
          acquisition.counterWritten = event.counter;
        }
        w.completed++;
        w.status = "resting";
        w.since = event.at;
        this.#say(
          event.at,
          `${w.name} released fence ${event.fence}, counter ${event.counter - 1} -> ${event.counter}`,
        );
        break;
      }
      case "lost": {
        const hold = this.#open(w.name, "hold");
        if (hold !== undefined) {
          hold.end = event.at;
          hold.outcome = "lost";
        }
        w.status = "resting";
        w.since = event.at;
        this.#say(event.at, `${w.name} lost fence ${event.fence}: ${event.reason}`, "bad");
        break;
      }
      case "done":
        this.#closeAll(w.name, event.at);
        w.status = "done";
        w.since = event.at;
        this.#say(event.at, `${w.name} finished its rounds`);
        break;
      case "failed":
        this.#closeAll(w.name, event.at);
        w.status = "failed";
        w.since = event.at;
        w.failure = event.message;
        this.#say(event.at, `${w.name} failed: ${event.message}`, "bad");
        break;
    }
  }

  /** The demo killed `worker` with SIGKILL while it held `fence`. */
  killed(worker: string, pid: number, fence: number, at = Date.now()): void {
    const w = this.worker(worker);
    this.kill = { worker, pid, at, fence };
    const hold = this.#open(worker, "hold");
    if (hold !== undefined) {
      hold.end = at;
      hold.outcome = "killed";
    }
    this.spans.push({ worker, kind: "dead", start: at, end: undefined, fence, outcome: undefined });
    w.status = "killed";
    w.since = at;
    this.#say(
      at,
      `SIGKILL ${worker} (pid ${pid}) while it holds fence ${fence}: the others wait out its lease`,
      "bad",
    );
  }

  /** A read of the lock item. */
  observed(view: LockView): void {
    this.lock = view;
    if (view.held && view.heartbeatAt !== undefined) {
      const seen = this.heartbeats.get(view.fence);
      if (seen === undefined || view.heartbeatAt > seen) {
        this.heartbeats.set(view.fence, view.heartbeatAt);
        const history = this.heartbeatHistory.get(view.fence) ?? [];
        history.push(view.heartbeatAt);
        this.heartbeatHistory.set(view.fence, history);
      }
    }
  }

  end(at = Date.now()): void {
    this.endedAt = at;
    for (const span of this.spans) span.end ??= at;
  }

  get completedSections(): number {
    return this.acquisitions.filter((a) => a.releasedAt !== undefined).length;
  }
}

export function seconds(ms: number): string {
  return `${(ms / 1_000).toFixed(ms < 10_000 ? 2 : 1)}s`;
}
