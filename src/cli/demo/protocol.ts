/**
 * What the demo and its worker processes tell each other. The demo passes a {@link WorkerConfig}
 * in the environment; workers report {@link WorkerEvent}s over the IPC channel. Every time is the
 * machine's wall clock (ms since epoch), which all processes on one machine share.
 */

export const CONFIG_ENV = "DYNAMOLOCK_DEMO_WORKER";

export interface WorkerConfig {
  readonly name: string;
  readonly endpoint: string;
  readonly table: string;
  readonly lockId: string;
  readonly leaseMs: number;
  readonly heartbeatMs: number;
  readonly rounds: number;
  /** Time spent inside each critical section. */
  readonly workMs: number;
  /**
   * The first worker to acquire a fence at least this high becomes the demo's victim: it marks the
   * lock's data as doomed (so no later holder volunteers too) and holds on until it is killed.
   * Chosen so that other workers still have rounds left, and one of them must take over.
   */
  readonly killAtFence: number | undefined;
}

/** The counter and its bookkeeping, stored in the lock's data. */
export interface DemoData extends Record<string, unknown> {
  /** Completed critical sections. */
  readonly counter: number;
  /** Fence of the holder that last wrote the data (at its release). */
  readonly fence: number;
  readonly writer: string;
  /** The worker that volunteered to be killed, once one has. */
  readonly doomed?: string;
}

export type WorkerEvent =
  | { readonly type: "started"; readonly worker: string; readonly pid: number; readonly at: number }
  | { readonly type: "waiting"; readonly worker: string; readonly round: number; readonly at: number }
  | {
      readonly type: "acquired";
      readonly worker: string;
      readonly round: number;
      /** Taken after the acquisition was confirmed: no other holder can be active after this. */
      readonly at: number;
      readonly waitedMs: number;
      readonly fence: number;
      /** The counter as read atomically with the acquisition. */
      readonly counter: number;
      /** The fence of the holder that last released with data (0: none yet). */
      readonly previousFence: number;
      /** This worker will now hold on until the demo kills it. */
      readonly victim: boolean;
    }
  | {
      readonly type: "released";
      readonly worker: string;
      readonly round: number;
      /** Taken before the release was sent: the section had certainly ended by then. */
      readonly at: number;
      readonly fence: number;
      readonly counter: number;
    }
  | {
      readonly type: "lost";
      readonly worker: string;
      readonly round: number;
      readonly at: number;
      readonly fence: number;
      readonly reason: string;
    }
  | { readonly type: "done"; readonly worker: string; readonly at: number }
  | { readonly type: "failed"; readonly worker: string; readonly at: number; readonly message: string };
