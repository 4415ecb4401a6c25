/**
 * LockClient: acquires locks (waiting as asked), reads them, and administers the table.
 */
import {
  DynamoDBClient,
  GetItemCommand,
  type GetItemCommandInput,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { type DynamoDBSender, isConditionFailed, isRetryable, oldItemOf } from "./aws.js";
import { backoffDelay, waitBeforeNextPoll } from "./backoff.js";
import { decodeData, type LockData } from "./data.js";
import { type HolderInfo, LockError, LockHeldError } from "./errors.js";
import { type LockRecord, parseRecord } from "./item.js";
import { holderValidUntil, judge, type Observation, observe } from "./lease.js";
import { Lock, type LockContext } from "./lock.js";
import { dataBudgetBytes, type LockClientOptions, type ResolvedOptions, resolveOptions } from "./options.js";
import {
  acquireRequest,
  FORCED_RELEASE,
  forceReleaseRequest,
  pollRequest,
  readRequest,
  releaseRequest,
} from "./requests.js";
import { deadlineSignal, sleep } from "./runtime.js";
import { type CreateTableOptions, createLockTable, tableError } from "./table.js";
import { fail, keyString, nonNegativeOrInfinite, optionalSignal, optionsObject } from "./validate.js";

export interface AcquireOptions {
  /**
   * How long to wait for a held lock, in ms. 0 tries once and rejects with LockHeldError if the
   * lock is held and not stale. `Infinity` waits until the lock is taken, the signal aborts or the
   * client is closed.
   * @default 0
   */
  readonly waitMs?: number;
  /** Aborting it stops the wait; the call rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /**
   * Called each time the wait finds the lock held, before sleeping until the next look: who holds
   * it and how long we have waited (for a status line or a log). Costs no extra requests. An
   * exception thrown here, or a rejection of the promise it returns, ends the wait, and the
   * acquire rejects with it. The wait never awaits the promise.
   */
  readonly onWait?: (progress: WaitProgress) => unknown;
}

/** What a waiting acquire knows: the holder as last read, and the wait so far. */
export interface WaitProgress extends HolderInfo {
  readonly id: string;
  /** How long this acquire has waited, in ms. */
  readonly waitedMs: number;
  /** How long until the next look, in ms. */
  readonly nextLookInMs: number;
}

/** A lock as read, without taking it. */
export interface LockInfo<Data> {
  readonly id: string;
  /** The stored data, or undefined if none was stored. */
  readonly data: Data | undefined;
  /** Whether an owner is recorded (it may be a crashed holder whose lease is running out). */
  readonly held: boolean;
  /** The holder's name, when held. */
  readonly holder: string | undefined;
  /** The fence of the latest acquisition (0 if never acquired). */
  readonly fence: number;
  /** The holder's wall clock (ms since epoch) at its last write, when held. */
  readonly heartbeatAt: number | undefined;
  /** The lease the holder promised, in ms, when held. */
  readonly leaseMs: number | undefined;
  /**
   * Held, but by this machine's wall clock past `heartbeatAt + leaseMs + maxClockSkewMs`: the
   * holder is presumed dead and the next acquire will take the lock over.
   */
  readonly stale: boolean;
  /** Wall clock (ms since epoch) of the last release, if any. */
  readonly releasedAt: number | undefined;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

let defaultClient: DynamoDBClient | undefined;
/** One SDK client for every caller that did not pass its own. */
export function sharedDefaultClient(): DynamoDBClient {
  defaultClient ??= new DynamoDBClient({});
  return defaultClient;
}

export class LockClient {
  readonly #options: ResolvedOptions;
  readonly #client: DynamoDBSender;
  readonly #ownsClient: boolean;
  /** The locks this client holds, with their owner tokens. */
  readonly #held = new Map<Lock, string>();
  /** Acquires in progress: `close()` stops each one and waits for it to settle. */
  readonly #acquiring = new Set<{
    readonly id: string;
    readonly stop: AbortController;
    readonly settled: Promise<unknown>;
  }>();
  /** Best-effort cleanups of acquisitions that may have been applied after we gave up. */
  readonly #cleanups = new Set<Promise<void>>();
  #closed = false;

  constructor(options: LockClientOptions) {
    this.#options = resolveOptions(options);
    this.#ownsClient = this.#options.client === undefined;
    this.#client = this.#options.client ?? new DynamoDBClient({});
  }

  /** The table this client's locks live in. */
  get table(): string {
    return this.#options.schema.table;
  }

  /**
   * Takes the lock `id`, waiting up to `waitMs` for a holder to release it or to be presumed dead.
   * One UpdateItem when the lock is free; the returned lock carries its data and fence.
   *
   * The lock is valid when the promise resolves: an acquisition whose answer came back only after
   * the lease it was sent with had run out is never handed out (the acquire takes the lock again
   * within the same wait, or gives up). Locks are not re-entrant: an acquire of an id this client
   * already holds waits for that holder like any other contender.
   */
  async acquire<Data extends LockData = LockData>(id: string, options?: AcquireOptions): Promise<Lock<Data>> {
    keyString("id", id, 2048);
    const o = optionsObject<AcquireOptions>("options", options);
    const waitMs = o.waitMs === undefined ? 0 : nonNegativeOrInfinite("waitMs", o.waitMs);
    const signal = optionalSignal("signal", o.signal);
    if (o.onWait !== undefined && typeof o.onWait !== "function") fail("onWait", "a function", o.onWait);
    this.#throwIfClosed();
    signal?.throwIfAborted();
    // One signal for every way the wait can end early: the caller's signal, close(), or onWait.
    const stop = new AbortController();
    const forward = () => stop.abort(signal?.reason);
    signal?.addEventListener("abort", forward, { once: true });
    const acquiring = this.#acquire<Data>(id, waitMs, stop, o.onWait);
    const entry = { id, stop, settled: acquiring.catch(() => undefined) };
    this.#acquiring.add(entry);
    try {
      return await acquiring;
    } finally {
      this.#acquiring.delete(entry);
      signal?.removeEventListener("abort", forward);
    }
  }

  /** Takes the lock if it is free (or its holder presumed dead); never waits. */
  async tryAcquire<Data extends LockData = LockData>(
    id: string,
    options?: { readonly signal?: AbortSignal },
  ): Promise<Lock<Data> | undefined> {
    const signal = optionalSignal("signal", optionsObject<AcquireOptions>("options", options).signal);
    try {
      return await this.acquire<Data>(id, { waitMs: 0, ...(signal === undefined ? {} : { signal }) });
    } catch (err) {
      if (err instanceof LockHeldError) return undefined;
      throw err;
    }
  }

  /**
   * Runs `fn` while holding the lock, then releases it. `fn` receives the lock: watch `lock.signal`
   * (aborted if the lock is lost) and pass `lock.fence` to what you protect.
   *
   * If `fn` throws, its error is rethrown unchanged (the release is still attempted, and its own
   * failure does not mask yours). If `fn` succeeds but the lock was lost meanwhile, rejects with
   * LockLostError: the work may have overlapped another holder's.
   */
  async withLock<T, Data extends LockData = LockData>(
    id: string,
    fn: (lock: Lock<Data>) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T> {
    if (typeof fn !== "function") throw new TypeError(`Expected \`fn\` to be a function, got ${typeof fn}`);
    const lock = await this.acquire<Data>(id, options);
    let result: T;
    try {
      result = await fn(lock);
    } catch (err) {
      await lock.release().catch(() => undefined);
      throw err;
    }
    await lock.release();
    return result;
  }

  /** Reads a lock without taking it (a strongly consistent GetItem). Undefined if it never existed. */
  async read<Data extends LockData = LockData>(
    id: string,
    options?: { readonly signal?: AbortSignal },
  ): Promise<LockInfo<Data> | undefined> {
    keyString("id", id, 2048);
    const signal = optionalSignal("signal", optionsObject<AcquireOptions>("options", options).signal);
    this.#throwIfClosed();
    signal?.throwIfAborted();
    const record = await this.#get(readRequest(this.#options.schema, id), signal);
    if (record === undefined) return undefined;
    return this.#info<Data>(id, record);
  }

  /**
   * Administrative: removes whoever holds the lock, keeping data and fence. The holder learns at
   * its next heartbeat (its signal aborts with reason "released"). Resolves to the removed
   * holder's state, or undefined if the lock was not held. Two requests: a consistent read, then a
   * write conditioned on the owner it saw, so a late duplicate can never remove a later holder.
   */
  async forceRelease<Data extends LockData = LockData>(id: string): Promise<LockInfo<Data> | undefined> {
    keyString("id", id, 2048);
    this.#throwIfClosed();
    const { schema, runtime } = this.#options;
    // Aimed at the owner read just before, not at whoever owns the lock when the write lands: a late
    // duplicate of it (an SDK retry whose first try arrives late) must not remove a later holder,
    // which nothing would have told to stop.
    let seen: LockRecord | undefined;
    for (let round = 0; round < 5; round++) {
      const before = seen;
      seen = await this.#get(readRequest(schema, id), undefined);
      if (seen?.owner === undefined) {
        // Nobody has acquired it since we saw the owner, and a force-release removed it: ours, applied
        // by an attempt we did not hear back from.
        const ours =
          before !== undefined && seen?.fence === before.fence && seen.releasedBy === FORCED_RELEASE;
        return ours ? this.#info<Data>(id, before) : undefined;
      }
      const target = this.#options.knobs?.forceReleaseAnyOwner === true ? undefined : seen.owner;
      const input = forceReleaseRequest(schema, id, runtime.wallNow(), target);
      try {
        const out = await this.#client.send(new UpdateItemCommand(input));
        const record = parseRecord(out.Attributes);
        return record === undefined ? undefined : this.#info<Data>(id, record);
      } catch (err) {
        if (!isConditionFailed(err)) throw await this.#translate(err, `Force-releasing lock "${id}" failed`);
        // The owner changed between our read and our write: look again.
      }
    }
    throw new LockError(`Force-releasing lock "${id}" failed: it kept changing hands`, { lockId: id });
  }

  /**
   * Creates the table (on-demand billing) if it does not exist and waits until it is ACTIVE. An
   * existing table with the right key schema is fine; one with another key schema is a LockError.
   * Resolves to true if this call created it.
   */
  async createTable(options?: CreateTableOptions): Promise<boolean> {
    this.#throwIfClosed();
    return createLockTable(this.#client, this.#options.schema, this.#options.runtime, options);
  }

  /**
   * Stops every acquire in progress (each rejects with a LockError whose `reason` is `"closed"`),
   * releases every lock this client holds (keeping their data), and stops all timers. A closed
   * client refuses every further call.
   */
  async close(): Promise<void> {
    this.#closed = true;
    // First the acquires: one that was about to succeed must end up released below, not held by
    // nobody. Each cleans up what its writes may have taken before it settles.
    for (const { id, stop } of this.#acquiring) {
      const message = `This LockClient (table "${this.table}") was closed while acquiring lock "${id}"`;
      stop.abort(new LockError(message, { lockId: id, reason: "closed" }));
    }
    await Promise.allSettled([...this.#acquiring].map((a) => a.settled));
    const results = await Promise.allSettled([...this.#held.keys()].map((lock) => lock.releaseIfHeld()));
    await Promise.allSettled([...this.#cleanups]);
    if (this.#ownsClient) (this.#client as DynamoDBClient).destroy();
    const failures = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
    if (failures.length > 0)
      throw new AggregateError(failures, "Some locks could not be released on close()");
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- internals ----

  #throwIfClosed(): void {
    if (this.#closed) this.#closedError();
  }

  #closedError(lockId?: string): never {
    throw new LockError(`This LockClient (table "${this.table}") is closed`, {
      reason: "closed",
      ...(lockId === undefined ? {} : { lockId }),
    });
  }

  async #translate(err: unknown, message: string, lockId?: string): Promise<unknown> {
    if (err instanceof LockError) return err;
    const table = await tableError(this.#client, this.#options.schema, err);
    if (table !== undefined) return table;
    return new LockError(`${message}: ${(err as Error)?.message ?? String(err)}`, {
      cause: err,
      ...(lockId === undefined ? {} : { lockId }),
    });
  }

  async #get(input: GetItemCommandInput, signal: AbortSignal | undefined): Promise<LockRecord | undefined> {
    try {
      const out = await this.#client.send(
        new GetItemCommand(input),
        signal === undefined ? {} : { abortSignal: signal },
      );
      return parseRecord(out.Item);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw await this.#translate(
        err,
        `Reading lock "${String(input.Key?.[this.#options.schema.partitionKey]?.S)}" failed`,
      );
    }
  }

  #info<Data>(id: string, record: LockRecord): LockInfo<Data> {
    const held = record.owner !== undefined;
    const { maxClockSkewMs, runtime } = this.#options;
    const stale =
      held &&
      record.heartbeatAt !== undefined &&
      runtime.wallNow() > record.heartbeatAt + (record.leaseMs ?? this.#options.leaseMs) + maxClockSkewMs;
    return {
      id,
      data: decodeData<Data>(record.data),
      held,
      holder: held ? record.holder : undefined,
      fence: record.fence,
      heartbeatAt: held ? record.heartbeatAt : undefined,
      leaseMs: held ? record.leaseMs : undefined,
      stale,
      releasedAt: record.releasedAt,
    };
  }

  #context(id: string): LockContext {
    return {
      schema: this.#options.schema,
      client: this.#client,
      runtime: this.#options.runtime,
      heartbeatMs: this.#options.heartbeatMs,
      clockDrift: this.#options.clockDrift,
      knobs: this.#options.knobs,
      dataBudgetBytes: dataBudgetBytes(this.#options, id),
      onSettled: (lock) => this.#held.delete(lock),
    };
  }

  /**
   * The acquire loop. Each round either writes (the lock looked free, or its lease stale) or reads
   * and sleeps. Every takeover is conditioned on the exact (owner, version) judged stale.
   */
  async #acquire<Data extends LockData>(
    id: string,
    waitMs: number,
    stop: AbortController,
    onWait: AcquireOptions["onWait"],
  ): Promise<Lock<Data>> {
    const { signal } = stop;
    const { runtime, schema, holder, leaseMs, maxClockSkewMs, poll, clockDrift } = this.#options;
    const started = runtime.monotonicNow();
    const deadline = started + waitMs;
    let observation: Observation | undefined;
    let stale: { owner: string; version: number } | undefined;
    /**
     * Every token this call has written, with the send time of its write. Each write gets a fresh
     * token: a write we never heard back from (or one the SDK retried on its own) may have installed
     * its token, and had we written that token again after someone else held the lock, a waiter that
     * watched the first ownership could judge the second by the first one's clock, or a takeover
     * aimed at the first could land on the second.
     */
    const written = new Map<string, number>();
    /**
     * Tokens that may own the lock without this call having handed out a Lock for them: writes we
     * never heard back from, and acquisitions that came back too late to use. Freed if we give up.
     */
    const unanswered: string[] = [];
    let polls = 0;
    /** Writes sent once the deadline had passed: a lock seen free just after may be tried once more. */
    let lateWrites = 0;
    let lastSeen: LockRecord | undefined;

    const giveUp = (err: unknown): never => {
      for (const owner of unanswered) this.#cleanUp(id, owner);
      throw err;
    };

    /**
     * Hands out the lock `owner` holds, if it may still be used now: not when the client has been
     * closed meanwhile, and not when the answer came back after the lease it was sent with had run
     * out (a late acquisition, which someone may already have taken over). A late one is retaken
     * at once by the next write, conditioned on its exact owner and version: nobody ever acted on
     * it, so there is no lease to wait out.
     */
    const adopt = (owner: string, record: LockRecord, sentAt: number): Lock<Data> | undefined => {
      if (this.#closed) {
        unanswered.push(owner);
        giveUp(signal.aborted ? signal.reason : this.#closedError(id));
      }
      const late = runtime.monotonicNow() >= holderValidUntil(sentAt, leaseMs, clockDrift);
      if (!late || this.#options.knobs?.handOutLateAcquisitions === true) {
        return this.#adopt<Data>(id, owner, record, sentAt);
      }
      unanswered.push(owner);
      stale = { owner, version: record.version };
      return undefined;
    };

    /**
     * Sends one request of this acquire, cut off one lease after the wait is over, or after two
     * leases, whichever is first: the SDK has no time-out by default, and a connection that never
     * answers must not hold the caller for ever (nor, with a long or endless wait, keep it from
     * trying again). At least a lease: a slow but healthy answer must never be cut off, and an
     * answer slower than a lease is no use to a lock anyway. A cut-off request counts as
     * unanswered.
     */
    const bounded = async <T>(send: (abortSignal: AbortSignal) => Promise<T>): Promise<T> => {
      const limit = Math.min(Math.max(0, deadline - runtime.monotonicNow()), leaseMs) + leaseMs;
      const cutOff = deadlineSignal(runtime, limit, signal, () => new Error(`no answer within ${limit} ms`));
      try {
        return await send(cutOff.signal);
      } finally {
        cutOff.dispose();
      }
    };

    /** A read while waiting: a failure that may pass (throttling, no answer) is retried while the wait lasts. */
    const look = async (input: GetItemCommandInput): Promise<LockRecord | undefined> => {
      for (;;) {
        try {
          const out = await bounded((abortSignal) =>
            this.#client.send(new GetItemCommand(input), { abortSignal }),
          );
          return parseRecord(out.Item);
        } catch (err) {
          if (signal.aborted) giveUp(signal.reason);
          if (!isRetryable(err) || runtime.monotonicNow() >= deadline) {
            giveUp(await this.#translate(err, `Reading lock "${id}" while waiting for it failed`, id));
          }
          const backoff = backoffDelay(polls++, poll, runtime.random());
          await sleep(
            runtime,
            waitBeforeNextPoll(backoff, Infinity, deadline - runtime.monotonicNow()),
            signal,
          ).catch(giveUp);
        }
      }
    };

    for (;;) {
      // ---- write: take the lock ----
      const sentAt = runtime.monotonicNow();
      if (sentAt >= deadline && ++lateWrites > 2) giveUp(this.#heldError(id, lastSeen, sentAt - started));
      const owner =
        this.#options.knobs?.reuseAcquireToken === true
          ? ([...written.keys()][0] ?? runtime.token())
          : runtime.token();
      written.set(owner, sentAt);
      let record: LockRecord | undefined;
      try {
        const input = acquireRequest(schema, id, {
          owner,
          holder,
          leaseMs,
          wallNow: runtime.wallNow(),
          stale,
          knobs: this.#options.knobs,
        });
        const out = await bounded((abortSignal) =>
          this.#client.send(new UpdateItemCommand(input), { abortSignal }),
        );
        const acquired = parseRecord(out.Attributes);
        if (acquired === undefined)
          throw new LockError(`Acquire of "${id}" returned no item`, { lockId: id });
        const lock = adopt(owner, acquired, sentAt);
        if (lock !== undefined) return lock;
        continue; // came back too late: take it again
      } catch (err) {
        // No answer, a server error, or an abort mid-flight: the write may have been applied,
        // making us the owner.
        if (!isConditionFailed(err) && (isRetryable(err) || signal.aborted)) unanswered.push(owner);
        if (signal.aborted) giveUp(signal.reason);
        if (!isConditionFailed(err)) {
          if (err instanceof LockError || !isRetryable(err) || runtime.monotonicNow() >= deadline) {
            giveUp(await this.#translate(err, `Acquiring lock "${id}" failed`, id));
          }
          await sleep(
            runtime,
            waitBeforeNextPoll(
              backoffDelay(polls++, poll, runtime.random()),
              Infinity,
              deadline - runtime.monotonicNow(),
            ),
            signal,
          ).catch(giveUp);
          // Write again, with a new token. Should the unanswered write have made us the owner, this
          // one fails and the lock it returns shows our earlier token.
          continue;
        }
        record = parseRecord(oldItemOf(err));
        if (record === undefined) record = await look(pollRequest(schema, id));
      }

      // ---- wait: until the lock looks free or stale, or the wait runs out ----
      stale = undefined;
      for (;;) {
        const arrivedAt = runtime.monotonicNow();
        lastSeen = record;
        if (record?.owner === undefined) break; // free: write again
        const ours = written.get(record.owner);
        if (ours !== undefined) {
          // A write of ours went through after all. Its lease counts from when it was sent; the
          // lock's data comes from a whole read if this one was a poll.
          const whole = record.data !== undefined ? record : await look(readRequest(schema, id));
          if (whole?.owner === record.owner) {
            const lock = adopt(record.owner, whole, ours);
            if (lock !== undefined) return lock;
            break; // too old to use: take it again
          }
          record = whole;
          continue;
        }
        // Anyone else's lock, or one of ours too old to trust, is judged by the same rules.
        observation = observe(
          observation,
          {
            owner: record.owner,
            version: record.version,
            leaseMs: record.leaseMs ?? leaseMs,
            heartbeatAt: record.heartbeatAt,
          },
          arrivedAt,
        );
        const early = this.#options.knobs?.takeoverEarlyMs ?? 0;
        const verdict = judge(observation, arrivedAt + early, runtime.wallNow() + early, maxClockSkewMs);
        if (verdict.stale) {
          stale = { owner: observation.owner, version: observation.version };
          break;
        }
        const remaining = deadline - arrivedAt;
        if (remaining <= 0) giveUp(this.#heldError(id, record, arrivedAt - started));
        const delay = waitBeforeNextPoll(
          backoffDelay(polls++, poll, runtime.random()),
          verdict.staleInMs,
          remaining,
        );
        if (onWait !== undefined) {
          const { holder, fence, heartbeatAt } = record;
          const progress = { id, holder, fence, heartbeatAt, leaseMs: record.leaseMs };
          let result: unknown;
          try {
            result = onWait({ ...progress, waitedMs: arrivedAt - started, nextLookInMs: delay });
          } catch (err) {
            giveUp(err);
          }
          // Not awaited (the wait goes on), but never left unhandled: a rejection ends the wait.
          if (isThenable(result)) result.then(undefined, (err: unknown) => stop.abort(err));
        }
        await sleep(runtime, delay, signal).catch(giveUp);
        record = await look(pollRequest(schema, id));
      }
    }
  }

  #heldError(id: string, record: LockRecord | undefined, waitedMs: number): LockHeldError {
    const mine = record?.owner !== undefined && [...this.#held.values()].includes(record.owner);
    return new LockHeldError(
      id,
      {
        holder: record?.holder,
        fence: record?.fence ?? 0,
        heartbeatAt: record?.heartbeatAt,
        leaseMs: record?.leaseMs,
      },
      waitedMs,
      { heldByThisClient: mine },
    );
  }

  #adopt<Data extends LockData>(id: string, owner: string, record: LockRecord, sentAt: number): Lock<Data> {
    const lock = new Lock<Data>(this.#context(id), {
      id,
      owner,
      holder: this.#options.holder,
      leaseMs: this.#options.leaseMs,
      record,
      sentAt,
    });
    this.#held.set(lock as unknown as Lock, owner);
    return lock;
  }

  /**
   * An acquire attempt whose outcome we never learned may have made us the owner. Free the lock
   * again (conditioned on our token, so it can touch nothing else), rather than leave it to a
   * full lease. Best effort: if this fails too, the lease runs out as after a crash.
   */
  #cleanUp(id: string, owner: string): void {
    const input = releaseRequest(this.#options.schema, id, {
      owner,
      wallNow: this.#options.runtime.wallNow(),
    });
    const cleanup = this.#client
      .send(new UpdateItemCommand(input))
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => this.#cleanups.delete(cleanup));
    this.#cleanups.add(cleanup);
  }
}
