/**
 * The requests an acquire sends while it waits, shared by the mutex's loop (client.ts) and the
 * multi-holder one (multi-acquire.ts): each request is cut off as runtime.ts `sendWithinWait` says,
 * a failure that may pass (throttling, no answer) is backed off within the wait, and a stop (the
 * caller's signal, the end of the wait) ends the acquire through its own `giveUp`, which frees what
 * the acquire may have written.
 */
import { GetItemCommand, type GetItemCommandInput } from "@aws-sdk/client-dynamodb";
import { type DynamoDBSender, isRetryable } from "./aws.js";
import { type BackoffSettings, backoffDelay, waitBeforeNextPoll } from "./backoff.js";
import { type LockRecord, parseRecord } from "./item.js";
import { type Runtime, sendWithinWait, sleep } from "./runtime.js";

export interface WaitRequestsContext {
  readonly runtime: Runtime;
  readonly client: DynamoDBSender;
  readonly poll: BackoffSettings;
  readonly leaseMs: number;
  /** Monotonic instant the wait ends. */
  readonly deadline: number;
  readonly signal: AbortSignal;
  readonly id: string;
  /** Ends the acquire with `err`, freeing what it may have written. */
  readonly giveUp: (err: unknown) => never;
  /** The typed error for a request that failed for good (client.ts `#translate`). */
  readonly translate: (err: unknown, message: string, id: string, signal: AbortSignal) => Promise<unknown>;
}

export interface WaitRequests {
  /** Sends one request of the acquire, cut off as `sendWithinWait` says. */
  bounded<T>(send: (abortSignal: AbortSignal) => Promise<T>): Promise<T>;
  /**
   * The next step of the acquire's backoff: one count per acquire call for its retried looks and
   * writes and the multi-holder (and shared-holders) pace. (The mutex's looks at an owned lock are
   * timed by waiting.ts instead.)
   */
  nextBackoffMs(): number;
  /** Sleeps the next backoff step, within the wait; a stop ends the acquire. */
  backOff(): Promise<void>;
  /** Reads the item; a failure that may pass is retried, backed off, while the wait lasts. */
  look(input: GetItemCommandInput): Promise<LockRecord | undefined>;
}

export function waitRequests(ctx: WaitRequestsContext): WaitRequests {
  const { runtime, poll, leaseMs, deadline, signal, id, giveUp } = ctx;
  let backoffs = 0;
  const bounded = <T>(send: (abortSignal: AbortSignal) => Promise<T>): Promise<T> =>
    sendWithinWait(runtime, deadline, leaseMs, signal, send);
  const nextBackoffMs = () => backoffDelay(backoffs++, poll, runtime.random());
  const backOff = () =>
    sleep(
      runtime,
      waitBeforeNextPoll(nextBackoffMs(), Infinity, deadline - runtime.monotonicNow()),
      signal,
    ).catch(giveUp);
  const look = async (input: GetItemCommandInput): Promise<LockRecord | undefined> => {
    for (;;) {
      try {
        const out = await bounded((abortSignal) =>
          ctx.client.send(new GetItemCommand(input), { abortSignal }),
        );
        return parseRecord(out.Item);
      } catch (err) {
        if (signal.aborted) giveUp(signal.reason);
        if (!isRetryable(err) || runtime.monotonicNow() >= deadline) {
          giveUp(await ctx.translate(err, `Reading lock "${id}" while waiting for it failed`, id, signal));
        }
        await backOff();
      }
    }
  };
  return { bounded, nextBackoffMs, backOff, look };
}
