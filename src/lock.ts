/**
 * A held lock: keeps the lease alive with heartbeats, signals its loss, and writes data and the
 * release atomically with the ownership check. All writes of one lock go through one queue, so a
 * release never races a heartbeat and versions are installed in order.
 */

import type {
  AttributeValue,
  TransactWriteItem,
  TransactWriteItemsCommandOutput,
  UpdateItemCommandInput,
  UpdateItemCommandOutput,
} from "@aws-sdk/client-dynamodb";
import { GetItemCommand, TransactWriteItemsCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import {
  type DynamoDBSender,
  isConditionFailed,
  isRetryable,
  mayHaveBeenApplied,
  oldItemOf,
  withoutReturnedItems,
} from "./aws.js";
import { backoffDelay } from "./backoff.js";
import { decodeData, encodeData, type LockData } from "./data.js";
import {
  heartbeatChannel,
  type LostMessage,
  lostChannel,
  type OperationContext,
  releaseChannel,
  trace,
  transactChannel,
  updateChannel,
} from "./diagnostics.js";
import { LockError, LockLostError, type LockLostReason } from "./errors.js";
import type { ReplicationMode } from "./global-table.js";
import { checkTransactItems, guardedTransaction, guardedWriteFailure } from "./guard.js";
import type { HandOffOutcome, Successor } from "./hand-off.js";
import { guardEntryCheck, removeEntryRequest, renewEntryRequest } from "./holders.js";
import { type KeySchema, type LockRecord, parseRecord } from "./item.js";
import { holderValidUntil } from "./lease.js";
import type { ProtocolKnobs } from "./options.js";
import {
  FORCED_RELEASE,
  guardCheck,
  handOffRequest,
  readRequest,
  releaseRequest,
  renewRequest,
} from "./requests.js";
import { deadlineSignal, type Runtime, sleep, type Timer } from "./runtime.js";
import { optionalSignal, optionsObject } from "./validate.js";
import { recordedHoldMs } from "./waiting.js";

/** @internal What a Lock shares with the client that made it. */
export interface LockContext {
  readonly schema: KeySchema;
  readonly client: DynamoDBSender;
  readonly runtime: Runtime;
  readonly heartbeatMs: number;
  /**
   * false: no heartbeat timer; the lease is renewed only by `extend()` and `update()` (for
   * environments that freeze between invocations, docs/lambda.md).
   */
  readonly heartbeat: boolean;
  readonly clockDrift: number;
  /** @internal Deliberate faults for the simulation's tests; undefined in normal use. */
  readonly knobs?: ProtocolKnobs | undefined;
  /** Bytes of data the item can hold after the key and the lock's own fields. */
  readonly dataBudgetBytes: number;
  /** Called once when the lock stops being held (released or lost). */
  readonly onSettled: (lock: Lock) => void;
  /** How the table is replicated, once the client has looked (docs/global-tables.md). */
  readonly replicationMode: () => ReplicationMode | undefined;
  /**
   * The local waiter a release of this (mutex) lock may hand ownership to (src/hand-off.ts), asked
   * just before the release is sent; undefined when nobody of this client waits for the id.
   */
  readonly successor?: (() => Successor | undefined) | undefined;
}

/** @internal The state a successful acquisition hands to its Lock. */
export interface Acquisition {
  readonly id: string;
  readonly owner: string;
  readonly holder: string;
  readonly leaseMs: number;
  readonly record: LockRecord;
  /** Monotonic send time of the earliest acquire attempt that may have been the one applied. */
  readonly sentAt: number;
  /**
   * A permit or shared holder (src/holders.ts): the lock heartbeats, guards and releases its own
   * entry of the `holders` map instead of the mutex fields, and its data is read-only.
   */
  readonly entry?: boolean | undefined;
}

type State = "held" | "released" | "lost";

/**
 * The trailing options of every async call but `acquire` (`update`, `release`, `transact`, and
 * `LockClient.read`, `forceRelease`, `tryAcquire`).
 */
export interface SignalOptions {
  /**
   * Aborting it stops waiting, and only that. If the call had sent nothing yet, nothing is sent and
   * it rejects with `signal.reason`. If a write had already been sent, it may still apply (DynamoDB
   * cannot take a request back): the call rejects with a {@link LockError} whose `code` is
   * `"EABORTED"`, `writeUncertain` is true and `cause` is `signal.reason`. The lock's own state
   * follows the write's real outcome.
   */
  readonly signal?: AbortSignal;
}

/** The options of `lock.transact()`. */
export interface TransactOptions extends SignalOptions {}

/**
 * Rejects with `signal.reason` if `sent()` is false when the signal aborts (the write then sends
 * nothing: it checks the signal before sending), else with an EABORTED LockError. `write` goes on
 * either way, since the lock's state must follow its real outcome.
 */
export function stopWaitingOnAbort<T>(
  write: Promise<T>,
  signal: AbortSignal | undefined,
  sent: () => boolean,
  lockId: string,
  what: string,
): Promise<T> {
  if (signal === undefined) return write;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      if (!sent()) reject(signal.reason);
      else reject(abortedAfterSending(signal, lockId, what));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    write.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** The error for a caller who stopped waiting for a write that had been sent. */
export function abortedAfterSending(signal: AbortSignal, lockId: string, what: string): LockError {
  return new LockError(
    `Stopped waiting for the ${what} of lock "${lockId}" (the signal was aborted); it had been sent and may still apply`,
    { code: "EABORTED", lockId, writeUncertain: true, cause: signal.reason },
  );
}

/** A stored value in one canonical form: map keys and set members sorted, numbers by value. */
function canonical(v: AttributeValue): string {
  if (v.M !== undefined) {
    const entries = Object.keys(v.M).sort();
    return `M{${entries.map((k) => `${JSON.stringify(k)}:${canonical(v.M?.[k] as AttributeValue)}`).join(",")}}`;
  }
  if (v.L !== undefined) return `L[${v.L.map(canonical).join(",")}]`;
  if (v.N !== undefined) return `N${Number(v.N)}`;
  if (v.NS !== undefined) return `NS${JSON.stringify(v.NS.map(Number).sort((a, b) => a - b))}`;
  if (v.SS !== undefined) return `SS${JSON.stringify([...v.SS].sort())}`;
  if (v.B !== undefined) return `B${Buffer.from(v.B).toString("hex")}`;
  if (v.BS !== undefined)
    return `BS${JSON.stringify(v.BS.map((b) => Buffer.from(b).toString("hex")).sort())}`;
  return JSON.stringify(v);
}

/** Whether two stored values are the same (numbers compared by value: when unsure, "the same"). */
function sameValue(a: AttributeValue | undefined, b: AttributeValue | undefined): boolean {
  return a === undefined || b === undefined ? a === b : canonical(a) === canonical(b);
}

/** How many {@link inspectLocks} calls are running: the getters then report without acting. */
let inspecting = 0;

/**
 * @internal Runs `read` with every Lock's getters side-effect free: `held`, `signal` and
 * `remainingMs` report the lease by the clock but do not declare an expiry. For an observer outside
 * the holder's process (the simulation's checker), whose looking must not change what it watches.
 */
export function inspectLocks<T>(read: () => T): T {
  inspecting++;
  try {
    return read();
  } finally {
    inspecting--;
  }
}

/** A release's hand-off to a local waiter (src/hand-off.ts), as it went. */
interface HandOffAttempt {
  readonly offer: Successor | undefined;
  /** Monotonic send time of the first attempt that carried the hand-off (undefined: none sent). */
  sentAt?: number;
  /** The item our hand-off's reply returned. */
  record?: LockRecord | undefined;
}

/** What the waiter learns: handed (the reply names its token), unsure (sent, unconfirmed), or nothing. */
function handOffOutcome(h: HandOffAttempt): HandOffOutcome | undefined {
  if (h.offer === undefined || h.sentAt === undefined) return undefined;
  const { token } = h.offer;
  if (h.record?.owner === token) return { kind: "handed", token, record: h.record, sentAt: h.sentAt };
  return { kind: "unsure", token, sentAt: h.sentAt };
}

/** Quick retries of a failed heartbeat, well inside the remaining lease. */
const RETRY_BACKOFF = { minMs: 50, maxMs: 1_000 };

export class Lock<Data extends object = LockData> implements AsyncDisposable {
  /** The lock id. */
  readonly id: string;
  /** Fencing token: strictly increases with every acquisition of this id. Pass it to what you protect. */
  readonly fence: number;
  /** This holder's name as recorded in the item. */
  readonly holder: string;
  /** The lease this holder promised, in ms. */
  readonly leaseMs: number;

  readonly #context: LockContext;
  readonly #owner: string;
  /** A permit or shared holder: see {@link Acquisition.entry}. */
  readonly #entry: boolean;
  readonly #lost = new AbortController();
  #data: Data | undefined;
  #state: State = "held";
  /** The version of our last confirmed write. */
  #version: number;
  /** Monotonic instant until which we may act as the owner. */
  #validUntil: number;
  /** Monotonic send time of our last confirmed write (heartbeats are scheduled from it). */
  #confirmedAt: number;
  #writes: Promise<unknown> = Promise.resolve();
  #heartbeatTimer: Timer | undefined;
  #expiryTimer: Timer | undefined;
  #release: Promise<void> | undefined;
  /** Why the last heartbeat failed without losing the lock, for the loss report should it expire. */
  #heartbeatFailure: unknown;
  /** Monotonic send time of the acquisition, and the typical hold the item recorded then (waiting.ts). */
  readonly #acquiredAt: number;
  readonly #recordedHoldMs: number | undefined;

  /**
   * @internal Locks are made by `LockClient.acquire`. A factory rather than a public constructor:
   * the published types then show a private constructor, so nobody builds a Lock that holds nothing.
   */
  static adopt<Data extends object>(context: LockContext, acquisition: Acquisition): Lock<Data> {
    return new Lock<Data>(context, acquisition);
  }

  private constructor(context: LockContext, acquisition: Acquisition) {
    this.#context = context;
    this.id = acquisition.id;
    this.#owner = acquisition.owner;
    this.#entry = acquisition.entry === true;
    this.holder = acquisition.holder;
    this.leaseMs = acquisition.leaseMs;
    this.fence = acquisition.record.fence;
    this.#version = acquisition.record.version;
    this.#data = decodeData<Data>(acquisition.record.data);
    this.#confirmedAt = acquisition.sentAt;
    this.#acquiredAt = acquisition.sentAt;
    this.#recordedHoldMs = acquisition.record.holdMs;
    this.#validUntil = holderValidUntil(acquisition.sentAt, this.leaseMs, context.clockDrift);
    this.#schedule();
  }

  /** The context of this lock's traced operations (docs/observability.md). */
  readonly #traced = (): OperationContext => ({
    table: this.#context.schema.table,
    lockId: this.id,
    fence: this.fence,
  });

  /** The data stored with the lock: read atomically with the acquisition, then as last written by us. */
  get data(): Data | undefined {
    return this.#data;
  }

  /**
   * Aborts, with a {@link LockLostError} as its reason, when the lock is lost. Reading it checks the
   * lease on the monotonic clock first: after a freeze (a stopped process, a frozen Lambda
   * environment) whose timers have not fired yet, it is already aborted when you look.
   */
  get signal(): AbortSignal {
    this.#checkExpiry();
    return this.#lost.signal;
  }

  /**
   * True while the lock is held and its lease, by our own monotonic clock, has not run out. Once
   * it has, reading this declares the loss at once (`signal` aborts), timer or not.
   */
  get held(): boolean {
    return this.#checkExpiry();
  }

  /** How long (ms) the lease is still ours without another confirmed renewal; 0 once lost. */
  get remainingMs(): number {
    // One clock reading for both: a stall between two readings could make the answer negative.
    const now = this.#context.runtime.monotonicNow();
    if (!this.#checkExpiry(now)) return 0;
    return Math.max(0, this.#validUntil - now);
  }

  /**
   * Renews the lease now: one UpdateItem with a heartbeat's conditions (this acquisition still owns
   * the item, and no newer write of ours is in place), retried on transient failures while the
   * lease lasts. Resolves with how long the lease is ours from here, in ms, counted from the send
   * time of the request. For locks acquired with `heartbeat: false`, this (or `update()`) is the
   * only thing that renews them; on heartbeating locks it renews early.
   *
   * Rejects without sending anything with LockLostError if the lock is lost (also when its lease
   * has run out by the monotonic clock, a freeze included), and with a LockError (`ERELEASED`) if
   * it was released or is being released. Rejects with LockLostError if the lease ran out before
   * the answer came back, or the item is no longer ours.
   */
  async extend(options?: SignalOptions): Promise<number> {
    const signal = optionalSignal(
      "signal",
      optionsObject<SignalOptions>("options", options, ["signal"]).signal,
    );
    signal?.throwIfAborted();
    this.#throwIfNotRenewable();
    let sent = false;
    const write = trace(heartbeatChannel, this.#traced, () =>
      this.#enqueue(async () => {
        // The caller stopped waiting while this extend was queued: send nothing.
        signal?.throwIfAborted();
        this.#throwIfNotRenewable();
        sent = true;
        await this.#renew(undefined, "extend");
        // The answer may have come back after the lease ran out: then the lock is lost, not renewed.
        const now = this.#context.runtime.monotonicNow();
        if (!this.#checkExpiry(now)) throw this.#lost.signal.reason;
        if (this.#context.heartbeat && this.#release === undefined) this.#schedule();
        return Math.max(0, this.#validUntil - now);
      }),
    );
    return stopWaitingOnAbort(write, signal, () => sent, this.id, "extend");
  }

  /** Like #throwIfNotHeld, and a lock being released is not renewed either. */
  #throwIfNotRenewable(): void {
    this.#throwIfNotHeld();
    if (this.#release !== undefined) {
      throw new LockError(`Lock "${this.id}" (fence ${this.fence}) is being released; it was not extended`, {
        code: "ERELEASED",
        lockId: this.id,
      });
    }
  }

  /**
   * Whether the lock is held, declaring the loss first if the lease has run out by the monotonic
   * clock. The expiry timer does the same, but timers fire late after a freeze (and not at all
   * while frozen): every getter the caller acts on checks synchronously, so no code of the caller
   * runs on a belief the clock has already ended.
   */
  #checkExpiry(now = this.#context.runtime.monotonicNow()): boolean {
    if (this.#state !== "held") return false;
    if (this.#context.knobs?.heldIgnoresClock === true) return true;
    if (now < this.#validUntil) return true;
    if (inspecting === 0) this.#expire();
    return false;
  }

  /** Declares the loss by expiry, naming the last failed renewal if there was one. */
  #expire(): void {
    const failure = this.#heartbeatFailure;
    const why = failure === undefined ? "" : ` (the last heartbeat failed: ${(failure as Error).message})`;
    const what = this.#context.heartbeat ? "heartbeat" : "renewal (extend or update)";
    this.#lose("expired", `the lease ran out without a confirmed ${what}${why}`, failure);
  }

  /**
   * Writes `data` into the lock item, atomically with the ownership check, and renews the lease.
   * Rejects with LockLostError (writing nothing) if the lock is no longer ours.
   */
  async update(data: Data, options?: SignalOptions): Promise<void> {
    this.#throwIfReadOnly("update");
    const encoded = encodeData("data", data, this.#context.dataBudgetBytes);
    const signal = optionalSignal(
      "signal",
      optionsObject<SignalOptions>("options", options, ["signal"]).signal,
    );
    signal?.throwIfAborted();
    this.#throwIfNotHeld();
    let sent = false;
    const write = trace(updateChannel, this.#traced, () =>
      this.#enqueue(async () => {
        // The caller stopped waiting while this update was queued: send nothing.
        signal?.throwIfAborted();
        this.#throwIfNotHeld();
        sent = true;
        await this.#renew(encoded, "update");
        this.#data = data;
      }),
    );
    await stopWaitingOnAbort(write, signal, () => sent, this.id, "update");
  }

  /**
   * Releases the lock, writing `data` if given (otherwise the stored data is kept). Waits for a
   * heartbeat in flight. Rejects with LockLostError if the lock was lost, in which case nothing is
   * written.
   *
   * `release()` without data is idempotent: after a release succeeded it resolves at once, and
   * while one is in flight it returns that one. `release(data)` then rejects with a LockError
   * instead, since its data would not be written.
   *
   * Heartbeats stop when the release starts and are never resumed: if the release fails (a failure
   * that retrying cannot fix, say), the lock stays valid until its lease runs out and then frees
   * itself, and `release()` may be called again meanwhile.
   */
  release(data?: Data, options?: SignalOptions): Promise<void> {
    let encoded: ReturnType<typeof encodeData> | undefined;
    let signal: AbortSignal | undefined;
    try {
      if (data !== undefined) this.#throwIfReadOnly("release");
      encoded = data === undefined ? undefined : encodeData("data", data, this.#context.dataBudgetBytes);
      signal = optionalSignal("signal", optionsObject<SignalOptions>("options", options, ["signal"]).signal);
      signal?.throwIfAborted();
      if (data !== undefined && (this.#state === "released" || this.#release !== undefined)) {
        const when = this.#state === "released" ? "already released" : "being released";
        throw new LockError(
          `Lock "${this.id}" (fence ${this.fence}) is ${when}; this release's data was not written`,
          { code: "ERELEASED", lockId: this.id },
        );
      }
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#state === "released") return Promise.resolve();
    // Someone else's release may have been sent already: stopping waiting for it is uncertain.
    if (this.#release !== undefined)
      return stopWaitingOnAbort(this.#release, signal, () => true, this.id, "release");
    this.#cancelHeartbeat();
    let sent = false;
    const send = async () => {
      // The caller stopped waiting while this release was queued: send nothing. As after any
      // failed release, the lock stays held until its lease runs out, and release() may be retried.
      signal?.throwIfAborted();
      this.#throwIfNotHeld();
      sent = true;
      // A waiter of this client for the same id is handed the lock by this very write (hand-off.ts).
      const handOff: HandOffAttempt = { offer: this.#entry ? undefined : this.#context.successor?.() };
      try {
        await this.#sendRelease(encoded, handOff);
      } catch (err) {
        handOff.offer?.settle(handOffOutcome(handOff));
        throw err;
      }
      this.#state = "released";
      if (data !== undefined) this.#data = data;
      this.#settle();
      // Only now, with this lock no longer held, may the waiter adopt what it was handed.
      handOff.offer?.settle(handOffOutcome(handOff));
    };
    const release = trace(releaseChannel, this.#traced, () =>
      this.#context.knobs?.releaseSkipsQueue === true ? send() : this.#enqueue(send),
    );
    this.#release = release;
    release.catch(() => {
      // A release that failed without losing the lock leaves it held until its lease runs out: the
      // caller may try again, but nothing renews it any more. Re-arming heartbeats here would keep
      // a lock alive for ever behind \`withLock\` or \`await using\`, which drop the only handle.
      if (this.#release === release) this.#release = undefined;
    });
    return stopWaitingOnAbort(release, signal, () => sent, this.id, "release");
  }

  /** `await using lock = await client.acquire(id)` releases at scope exit. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  /**
   * A `ConditionCheck` on this lock's item (this acquisition still owns it), to add to your own
   * `TransactWriteItems`: the transaction then commits only while the lock is held, even if this
   * process was paused past its lease. Throws LockLostError if the lock is already known lost.
   * Prefer {@link transact}, which also turns a failed guard into LockLostError and aborts `signal`.
   * Needs a server with transactions (DynamoDB, DynamoDB Local; not dynalite).
   */
  guard(): TransactWriteItem {
    this.#throwIfNotHeld();
    if (this.#entry) return guardEntryCheck(this.#context.schema, this.id, this.#owner);
    return guardCheck(this.#context.schema, this.id, this.#owner, this.fence);
  }

  /**
   * Sends your `items` as one `TransactWriteItems` together with {@link guard}: they commit only if
   * this lock is still held at that instant. One request; the lock's heartbeats go on meanwhile.
   *
   * Rejects with LockLostError if the guard failed (the lock is lost: `signal` aborts, nothing was
   * written), with TransactionCanceledError (carrying DynamoDB's reasons) if the transaction was
   * cancelled for another reason, and with a LockError if the server has no transactions.
   */
  async transact(
    items: readonly TransactWriteItem[],
    options?: TransactOptions,
  ): Promise<TransactWriteItemsCommandOutput> {
    const checked = checkTransactItems("items", items, this.#context.schema, this.id);
    const signal = optionalSignal(
      "options.signal",
      optionsObject<TransactOptions>("options", options, ["signal"]).signal,
    );
    signal?.throwIfAborted();
    const input = guardedTransaction(checked, this.guard());
    // The SDK notices an abort only in its HTTP handler, not while the request waits before it
    // (credentials, a retry's backoff): stop waiting at once, as update() and release() do. The
    // write goes on, so a lost lock is still detected from its real outcome.
    return stopWaitingOnAbort(
      this.#transact(input, checked.length, signal),
      signal,
      () => true,
      this.id,
      "guarded write",
    );
  }

  async #transact(
    input: ReturnType<typeof guardedTransaction>,
    count: number,
    signal: AbortSignal | undefined,
  ): Promise<TransactWriteItemsCommandOutput> {
    try {
      return await trace(transactChannel, this.#traced, () =>
        this.#context.client.send(
          new TransactWriteItemsCommand(input),
          signal === undefined ? {} : { abortSignal: signal },
        ),
      );
    } catch (err) {
      // The transaction was sent: it may have committed.
      if (signal?.aborted) throw abortedAfterSending(signal, this.id, "guarded write");
      const failure = guardedWriteFailure(err, count, this.id);
      if (!failure.lockLost) throw this.#onReplicatedTable(failure.error, err);
      // Our own release, sent meanwhile, also fails the guard: that is not a loss.
      if (this.#release !== undefined) await this.#release.catch(() => undefined);
      if (this.#state === "held") {
        const record = await this.#currentRecord(failure.oldItem);
        if (record?.releasedBy === this.#owner) {
          // A release of ours was applied although its caller heard otherwise (its answer was lost
          // and a retry was refused): the guard failed on our own release, not on anyone's doing.
          this.#state = "released";
          this.#settle();
          throw new LockError(
            `Lock "${this.id}" (fence ${this.fence}) was released by this holder (a release whose answer was lost had been applied); the guarded write was not committed`,
            { code: "ERELEASED", lockId: this.id, cause: err },
          );
        }
        this.#reportLoss(err, record, "");
      }
      this.#throwIfNotHeld();
      throw this.#lost.signal.reason;
    }
  }

  /**
   * A guarded write refused by a table with multi-Region strong consistency: AWS does not offer
   * every operation on those (transactions among them, at MRSC's launch). Say so, rather than leave
   * the server's words alone.
   */
  #onReplicatedTable(error: LockError, cause: unknown): LockError {
    if ((cause as Error)?.name !== "ValidationException" || this.#context.replicationMode() !== "MRSC")
      return error;
    return new LockError(
      `${error.message}. Table "${this.#context.schema.table}" is a global table with multi-Region strong consistency, where AWS does not offer every operation: guarded writes need TransactWriteItems (see docs/global-tables.md)`,
      { code: "EUNSUPPORTED", cause, lockId: this.id, writeUncertain: error.writeUncertain },
    );
  }

  /** A permit or shared holder's data is read-only: several holders cannot all write it safely. */
  #throwIfReadOnly(what: string): void {
    if (!this.#entry) return;
    throw new LockError(
      `Lock "${this.id}" (fence ${this.fence}) has several holders (permits or shared mode), whose data is read-only; this ${what} sent nothing. Use an exclusive lock to write data`,
      { code: "EREADONLY", lockId: this.id },
    );
  }

  /** @internal Used by `LockClient.close()`: release if held, ignore a lock already lost. */
  async releaseIfHeld(): Promise<void> {
    if (this.#state !== "held") return;
    try {
      await this.release();
    } catch (err) {
      if (!(err instanceof LockLostError)) throw err;
    }
  }

  /**
   * Throws (and, if the lease has run out, first declares the loss) unless the lock is held and
   * valid. `retrying` names the write whose failed attempts used up the lease, for the report, and
   * whether one of them may have been applied.
   */
  #throwIfNotHeld(retrying?: { what: string; cause: unknown; uncertain: boolean }): void {
    if (this.#state === "lost") throw this.#lost.signal.reason;
    if (this.#state === "released") {
      throw new LockError(`Lock "${this.id}" (fence ${this.fence}) was already released`, {
        code: "ERELEASED",
        lockId: this.id,
      });
    }
    if (this.#context.runtime.monotonicNow() >= this.#validUntil) {
      if (retrying === undefined)
        this.#lose("expired", "the lease ran out before this operation could be sent");
      else {
        const { uncertain } = retrying;
        const maybe = uncertain ? " (it may or may not have been written)" : "";
        this.#lose(
          "expired",
          `the lease ran out while retrying a failed ${retrying.what}${maybe}`,
          retrying.cause,
          uncertain,
        );
      }
      throw this.#lost.signal.reason;
    }
  }

  #enqueue<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.#writes.then(operation, operation);
    this.#writes = run.catch(() => undefined);
    return run;
  }

  // ---- heartbeats and expiry ----

  #schedule(): void {
    const { runtime, heartbeatMs } = this.#context;
    this.#armExpiry();
    // Without heartbeats only the expiry timer is armed, and it is unref'd: nothing of this lock
    // keeps the process alive or writes on its own. The getters check the lease lazily as well.
    if (this.#context.heartbeat) {
      this.#scheduleHeartbeat(this.#confirmedAt + heartbeatMs - runtime.monotonicNow());
    }
  }

  /** (Re)arms the timer that declares the loss the instant our lease runs out. */
  #armExpiry(): void {
    const { runtime } = this.#context;
    this.#expiryTimer?.cancel();
    this.#expiryTimer = runtime.setTimer(
      () => this.#expire(),
      this.#validUntil - runtime.monotonicNow(),
      false,
    );
  }

  #scheduleHeartbeat(inMs: number): void {
    this.#cancelHeartbeat();
    this.#heartbeatTimer = this.#context.runtime.setTimer(
      () => {
        this.#heartbeatTimer = undefined;
        void this.#enqueue(() => this.#heartbeat());
      },
      inMs,
      false,
    );
  }

  #cancelHeartbeat(): void {
    this.#heartbeatTimer?.cancel();
    this.#heartbeatTimer = undefined;
  }

  async #heartbeat(): Promise<void> {
    if (this.#state !== "held" || this.#release !== undefined) return;
    try {
      await trace(heartbeatChannel, this.#traced, () => this.#renew(undefined, "heartbeat"));
      this.#heartbeatFailure = undefined;
    } catch (err) {
      // Lost: #renew has declared it, and the signal reports it.
      if (this.#state !== "held") return;
      // A failure that retrying at once cannot fix (see #renew). The lock is ours until its lease
      // runs out: try again one heartbeat interval later, not in a tight loop, in case it clears
      // (an IAM change being rolled back, credentials being rotated). If it lasts, the loss names it.
      this.#heartbeatFailure = err;
      if (this.#release === undefined) this.#scheduleHeartbeat(this.#context.heartbeatMs);
      return;
    }
    if (this.#state === "held" && this.#release === undefined) this.#schedule();
  }

  /**
   * Installs the next version (heartbeat, or update with data), retrying transient failures while
   * the lease lasts. Each attempt is cut off at the end of the lease or after one heartbeat
   * interval, whichever is first, so a hung connection cannot use up the lease. A failure that
   * retrying cannot fix (a refused request, missing credentials) ends the call at once with a
   * LockError: the lock itself is still ours until its lease runs out.
   */
  async #renew(
    data: ReturnType<typeof encodeData> | undefined,
    what: "heartbeat" | "update" | "extend",
  ): Promise<void> {
    const { runtime, schema, heartbeatMs } = this.#context;
    const version = this.#version + 1;
    // Our validity counts from this instant, which must not come after the heartbeatAt we record:
    // a waiter's wall-clock shortcut counts from heartbeatAt. So the monotonic clock is read first;
    // a stall between the two reads (a GC pause) then only shortens our lease, never lengthens it.
    // The earliest attempt is also the one whose effect a waiter might have seen first.
    const wallFirst = this.#context.knobs?.wallStampBeforeSend === true ? runtime.wallNow() : undefined;
    const firstSentAt = runtime.monotonicNow();
    const wallNow = wallFirst ?? runtime.wallNow();
    const input = this.#entry
      ? renewEntryRequest(schema, this.id, { token: this.#owner, version, wallNow, fence: this.fence })
      : renewRequest(schema, this.id, {
          owner: this.#owner,
          fence: this.fence,
          version,
          wallNow,
          data,
          knobs: this.#context.knobs,
        });
    /** The last failure, for the report if the lease runs out while retrying. */
    let lastError: unknown;
    /** Whether an attempt may have been applied without our hearing of it (no answer, a 5xx). */
    let uncertain = false;
    try {
      for (let attempt = 0; ; attempt++) {
        this.#throwIfNotHeld(lastError === undefined ? undefined : { what, cause: lastError, uncertain });
        const sentAt = runtime.monotonicNow();
        try {
          await this.#send(input, Math.min(this.#validUntil - sentAt, heartbeatMs));
          if (what === "extend" && this.#context.knobs?.extendCountsFromReply === true) {
            this.#confirm(version, runtime.monotonicNow());
            return;
          }
          this.#confirm(version, firstSentAt);
          return;
        } catch (err) {
          if (isConditionFailed(err)) {
            const record = await this.#currentRecord(oldItemOf(err));
            this.#reportLoss(err, record, "");
            // The SDK retries on its own (and a network may deliver a request twice), so a try of this
            // very write may have been applied before a forceRelease, even when the answer we got is
            // a failed condition. Only a lock that nobody has acquired since, holding other data than
            // ours, proves it was not.
            const disproved =
              this.#context.knobs?.trustFailedCondition === true ||
              (record !== undefined && record.fence === this.fence && !sameValue(record.data, data));
            if (data !== undefined && !disproved) uncertain = true;
            throw this.#lost.signal.reason;
          }
          lastError = err;
          if (mayHaveBeenApplied(err)) uncertain = true;
          if (!isRetryable(err)) throw this.#cannotPass(what, err, uncertain);
          // Retry quickly, but never sleep past the end of the lease: the next turn reports the loss.
          const retryIn = backoffDelay(attempt, RETRY_BACKOFF, runtime.random());
          await sleep(runtime, Math.min(retryIn, Math.max(0, this.#validUntil - runtime.monotonicNow())));
        }
      }
    } catch (err) {
      throw what === "update" && uncertain ? this.#mayHaveBeenWritten(err, "update") : err;
    }
  }

  /**
   * The error for a write that failed in a way retrying cannot fix. The lock is not lost by it:
   * nobody else can take it before its lease runs out, and the caller decides what to do.
   */
  #cannotPass(what: string, cause: unknown, uncertain: boolean): LockError {
    const name = (cause as Error)?.name ?? "Error";
    const maybe = uncertain
      ? "; an earlier attempt went unanswered, so it may or may not have been written"
      : "; nothing was written";
    return new LockError(
      `The ${what} of lock "${this.id}" (fence ${this.fence}) failed with ${name}, which retrying cannot fix${maybe}: ${(cause as Error)?.message ?? String(cause)}`,
      {
        code: "EDYNAMODB",
        cause,
        lockId: this.id,
        writeUncertain: what !== "heartbeat" && what !== "extend" && uncertain,
      },
    );
  }

  /**
   * A write lost while one of its attempts went unanswered (a time-out, a 5xx) may have been applied
   * all the same: a rejection must then say so, whatever the loss itself was, and never claim that
   * nothing was written.
   */
  #mayHaveBeenWritten(err: unknown, what: string): unknown {
    if (!(err instanceof LockLostError) || err.writeUncertain || this.#context.knobs?.forgetUncertainWrites)
      return err;
    return new LockLostError(
      this.id,
      err.reason,
      this.fence,
      `an attempt of the ${what} may have been applied before the loss (one that went unanswered, or a copy the SDK or the network sent again), so its data may or may not have been written (the loss itself is the cause)`,
      { cause: err, writeUncertain: true },
    );
  }

  #confirm(version: number, sentAt: number): void {
    const now = this.#context.runtime.monotonicNow();
    this.#version = version;
    // The write was applied while we owned the item. But once our lease has run out locally we
    // stay lost: the signal cannot be un-aborted, and the holder must learn first.
    if (this.#state === "held" && now >= this.#validUntil) {
      this.#lose("expired", "the lease ran out before a heartbeat was confirmed");
      return;
    }
    this.#confirmedAt = sentAt;
    this.#validUntil = Math.max(
      this.#validUntil,
      holderValidUntil(sentAt, this.leaseMs, this.#context.clockDrift),
    );
    if (this.#state === "held") this.#armExpiry();
  }

  async #send(input: UpdateItemCommandInput, timeoutMs: number): Promise<UpdateItemCommandOutput> {
    const { runtime, client } = this.#context;
    const deadline = deadlineSignal(
      runtime,
      Math.max(1, timeoutMs),
      undefined,
      () => new Error("attempt timed out"),
    );
    try {
      return await client.send(new UpdateItemCommand(input), { abortSignal: deadline.signal });
    } finally {
      deadline.dispose();
    }
  }

  /** Reads who has the lock now, for the loss report; the server may have returned it already. */
  async #currentRecord(old: Record<string, AttributeValue> | undefined): Promise<LockRecord | undefined> {
    if (old !== undefined) return parseRecord(old);
    const { runtime, client, schema } = this.#context;
    // Bounded: this read runs inside the write queue, and a connection that never answers must not
    // stall the release and close() behind it. By a lease, not a heartbeat interval: it is not
    // retried, and a slow answer still says who took the lock (the expiry timer reports the loss
    // meanwhile if the lease runs out first).
    const deadline = deadlineSignal(runtime, this.leaseMs, undefined, () => new Error("read timed out"));
    try {
      const out = await client.send(new GetItemCommand(readRequest(schema, this.id)), {
        abortSignal: deadline.signal,
      });
      return parseRecord(out.Item);
    } catch {
      return undefined;
    } finally {
      deadline.dispose();
    }
  }

  /**
   * Declares the lock lost to whoever `record` (the item after our failed write) shows. A `note`
   * says the write in hand may have been applied before the loss.
   */
  #reportLoss(err: unknown, record: LockRecord | undefined, note: string): void {
    const uncertain = note !== "";
    if (this.#entry && record !== undefined && record.forcedOut === this.#owner) {
      // An administrator removed this very entry (forceRelease with a holder): it marks our token.
      this.#lose("released", `this holder was force-released by someone else${note}`, err, uncertain);
      return;
    }
    if (this.#entry && record !== undefined) {
      // Only a waiter that judged our entry stale removes it (or replaces it, a late copy of our acquire).
      this.#lose(
        "taken",
        `this holder's entry was reclaimed as stale by another acquirer${note}`,
        err,
        uncertain,
      );
      return;
    }
    if (record === undefined) {
      this.#lose(
        "taken",
        `another writer changed the lock, which could not be read back to say who${note}`,
        err,
        uncertain,
      );
    } else if (record.owner === undefined) {
      // Plain words, no API names: the CLI shows this message as it is.
      const how = record?.releasedBy === FORCED_RELEASE ? "force-released" : "released";
      this.#lose("released", `the lock was ${how} by someone else${note}`, err, uncertain);
    } else {
      const who = record.holder === undefined ? "another holder" : `"${record.holder}"`;
      this.#lose("taken", `the lock was taken over by ${who} (fence ${record.fence})${note}`, err, uncertain);
    }
  }

  // ---- release ----

  async #sendRelease(
    data: ReturnType<typeof encodeData> | undefined,
    handOff: HandOffAttempt,
  ): Promise<void> {
    const { runtime, schema, heartbeatMs } = this.#context;
    // The monotonic clock first, then the wall clock: a handed-over lease counts from this instant,
    // which must not come after the heartbeatAt it records (as for a heartbeat, see #renew).
    const firstSentAt = runtime.monotonicNow();
    const wallNow = runtime.wallNow();
    // How long this hold lasted, folded into the item's typical hold: waiters look around it.
    const holdMs = recordedHoldMs(this.#recordedHoldMs, firstSentAt - this.#acquiredAt);
    const plain = this.#entry
      ? removeEntryRequest(schema, this.id, this.#owner)
      : releaseRequest(schema, this.id, { owner: this.#owner, fence: this.fence, wallNow, data, holdMs });
    const offer = handOff.offer;
    let input =
      offer === undefined
        ? plain
        : handOffRequest(schema, this.id, {
            owner: this.#owner,
            fence: this.fence,
            wallNow,
            data,
            holdMs,
            next: { owner: offer.token, holder: offer.holder, leaseMs: offer.leaseMs, since: offer.since },
          });
    let handing = offer !== undefined;
    let lastError: unknown;
    /** Whether an attempt may have been applied without our hearing of it. */
    let uncertain = false;
    try {
      for (let attempt = 0; ; attempt++) {
        this.#throwIfNotHeld(
          lastError === undefined ? undefined : { what: "release", cause: lastError, uncertain },
        );
        try {
          if (handing) handOff.sentAt ??= firstSentAt;
          const out = await this.#send(
            input,
            Math.min(this.#validUntil - runtime.monotonicNow(), heartbeatMs),
          );
          if (handing) {
            handOff.record = parseRecord(out.Attributes);
            // A break for the simulation: the handed lease counted from the reply, not the send.
            if (this.#context.knobs?.handOffCountsFromReply === true) handOff.sentAt = runtime.monotonicNow();
          }
          return;
        } catch (err) {
          if (isConditionFailed(err) && this.#entry) {
            // Our entry is gone. Nobody may reclaim it before our validity ends (the stale rules),
            // and this attempt was sent while valid: an earlier attempt of ours removed it.
            if (runtime.monotonicNow() < this.#validUntil) return;
            // Sent later, but an earlier attempt of ours (unanswered, or retried by the SDK) may
            // have removed it: released, as the mutex's release says when its own attempt went
            // through. Either way the entry is gone and nothing of ours is left in the item.
            if (uncertain || mayHaveBeenApplied(err)) return;
            this.#reportLoss(err, await this.#currentRecord(oldItemOf(err)), "");
            throw this.#lost.signal.reason;
          }
          if (isConditionFailed(err)) {
            // The SDK, or we, may have retried a release that was applied but not acknowledged. Only
            // our release writes our token into `releasedBy`: if it is there, an attempt of ours went
            // through, whoever has taken the lock since.
            const record = await this.#currentRecord(oldItemOf(err));
            if (record?.releasedBy === this.#owner && this.#context.knobs?.releaseIgnoresReleasedBy !== true)
              return;
            if (handing && record?.owner === this.#owner && record.fence === this.fence) {
              // Still ours: the hand-off's turn condition failed (another process's waiter has the
              // next turn) or the id is not a plain mutex. Release it plainly; the waiter acquires
              // it in its turn, as without hand-offs.
              input = plain;
              handing = false;
              attempt = -1;
              continue;
            }
            // Otherwise an attempt of ours may still have gone through first (one that went
            // unanswered, one the SDK retried on its own, a copy the network delivered twice) and
            // the lock changed hands since. Only an unchanged fence rules that out: nobody can have
            // acquired the lock after us.
            if (record === undefined || record.fence !== this.fence) uncertain = true;
            this.#reportLoss(
              err,
              record,
              uncertain ? "; or this release took effect first (it may or may not have been applied)" : "",
            );
            throw this.#lost.signal.reason;
          }
          lastError = err;
          if (mayHaveBeenApplied(err)) uncertain = true;
          if (!isRetryable(err)) throw this.#cannotPass("release", err, uncertain);
          const retryIn = backoffDelay(attempt, RETRY_BACKOFF, runtime.random());
          await sleep(runtime, Math.min(retryIn, Math.max(0, this.#validUntil - runtime.monotonicNow())));
        }
      }
    } catch (err) {
      throw data !== undefined && uncertain ? this.#mayHaveBeenWritten(err, "release") : err;
    }
  }

  // ---- loss ----

  #lose(reason: LockLostReason, detail: string, cause?: unknown, writeUncertain = false): void {
    if (this.#state !== "held") return;
    this.#state = "lost";
    this.#cancelHeartbeat();
    this.#expiryTimer?.cancel();
    const error = new LockLostError(this.id, reason, this.fence, detail, {
      // The item a failed condition returned names the new holder's owner token: never pass it on.
      ...(cause === undefined ? {} : { cause: withoutReturnedItems(cause) }),
      writeUncertain,
    });
    this.#lost.abort(error);
    if (lostChannel.hasSubscribers) {
      const { table } = this.#context.schema;
      lostChannel.publish({ table, lockId: this.id, fence: this.fence, reason, error } satisfies LostMessage);
    }
    this.#settle();
    if (reason === "expired") {
      // Our record may still name us (a partition, a stall): free it early for the next holder if
      // so. Conditioned on our ownership, it can never release anyone else's lock, and it writes no
      // data. Best effort: if it fails, the lease runs out for waiters as it would after a crash.
      void this.#enqueue(() => this.#sendQuietRelease());
    }
  }

  async #sendQuietRelease(): Promise<void> {
    const { runtime, schema, heartbeatMs } = this.#context;
    try {
      const input = this.#entry
        ? removeEntryRequest(schema, this.id, this.#owner)
        : releaseRequest(schema, this.id, {
            owner: this.#owner,
            fence: this.fence,
            wallNow: runtime.wallNow(),
          });
      await this.#send(input, heartbeatMs);
    } catch {
      // Best effort, see #lose.
    }
  }

  #settle(): void {
    this.#cancelHeartbeat();
    this.#expiryTimer?.cancel();
    this.#context.onSettled(this as unknown as Lock);
  }
}
