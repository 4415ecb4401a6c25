/**
 * LockClient: acquires locks (waiting as asked), reads them, and administers the table.
 */
import {
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  type GetItemCommandInput,
  type TableDescription,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from "@aws-sdk/client-dynamodb";
import {
  configurationAdvice,
  type DynamoDBSender,
  isConditionFailed,
  isRetryable,
  mayHaveBeenApplied,
  oldItemOf,
} from "./aws.js";
import { waitBeforeNextPoll } from "./backoff.js";
import { decodeData, type LockData } from "./data.js";
import { acquireChannel, type TakeoverMessage, takeoverChannel, trace } from "./diagnostics.js";
import { type HolderInfo, LockError, type LockErrorCode, LockHeldError } from "./errors.js";
import { judgeReplication, replicationOf, type TableReplication } from "./global-table.js";
import { HandOffs, type Inherited } from "./hand-off.js";
import {
  forceRemoveEntryRequest,
  holdersOf,
  intentOf,
  kindOf,
  type LockHolderInfo,
  type LockIntentInfo,
  pickHolder,
  type StaleRule,
} from "./holder-info.js";
import { type LockRecord, parseRecord } from "./item.js";
import { holderValidUntil, judge, type Observation, observe } from "./lease.js";
import { type ListOptions, listLocks, resolveListOptions } from "./list.js";
import { LocalQueues } from "./local-queue.js";
import {
  abortedAfterSending,
  Lock,
  type LockContext,
  type SignalOptions,
  stopWaitingOnAbort,
} from "./lock.js";
import { acquireMulti, ExclusiveWait, type MultiContext } from "./multi-acquire.js";
import { HOLDERS_ROOM_BYTES, holderKindOf } from "./multi-options.js";
import { dataBudgetBytes, type LockClientOptions, type ResolvedOptions, resolveOptions } from "./options.js";
import {
  acquireRequest,
  claimRequest,
  FORCED_RELEASE,
  forceReleaseRequest,
  pollRequest,
  readRequest,
  releaseRequest,
  withdrawRequest,
} from "./requests.js";
import { deadlineSignal, sleep, untilAborted } from "./runtime.js";
import { type CreateTableOptions, createLockTable, keySchemaMismatch, tableError } from "./table.js";
import {
  type ClaimObservation,
  claimLapsed,
  claimLapsesInMs,
  claimLeaseMs,
  observeClaim,
  shouldClaim,
  standing,
  type Waiter,
} from "./turn.js";
import { fail, keyString, nonNegativeOrInfinite, optionalSignal, optionsObject } from "./validate.js";
import { waitRequests } from "./wait-requests.js";
import { claimantGapMs, expectedReleaseAt, longestGapMs, looksByWriting, nextLookMs } from "./waiting.js";

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
  /**
   * A counting semaphore: at most this many holders at once (a whole number from 1 to
   * 1000: every holder's entry lives in the one item). Each holder has its own lease, fence and signal; the data is read-only.
   * Every caller of one id must ask for the same number (else EMISMATCH).
   */
  readonly permits?: number;
  /**
   * Reader–writer locks: any number of `"shared"` holders, or one `"exclusive"` holder (the
   * default, which is the plain mutex). Shared holders' data is read-only.
   * @default "exclusive"
   */
  readonly mode?: "shared" | "exclusive";
  /**
   * `false`: this lock renews its lease only through `lock.extend()` (or `update()`), never on a
   * timer (docs/lambda.md). Overrides the client's `heartbeat` option for this lock.
   * @default the client's `heartbeat` (true unless set)
   */
  readonly heartbeat?: boolean;
}

/** What a waiting acquire knows: the holder as last read, and the wait so far. */
export interface WaitProgress extends HolderInfo {
  readonly lockId: string;
  /** How long this acquire has waited, in ms. */
  readonly waitedMs: number;
  /** How long until the next look, in ms. */
  readonly nextLookInMs: number;
}

/** A lock as read, without taking it. */
export interface LockInfo<Data> {
  /** The lock id (named as on every error about a lock). */
  readonly lockId: string;
  /** The stored data, or undefined if none was stored. */
  readonly data: Data | undefined;
  /**
   * Whether anyone holds it: an exclusive owner or permit/shared holders (some may be crashed
   * holders whose lease is running out).
   */
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
  /**
   * What the id is used as: a mutex, a semaphore of `permits` permits, or a reader–writer lock
   * ("shared": its shared holders and, one at a time, its exclusive writer).
   */
  readonly kind: "mutex" | "permits" | "shared";
  /** The number of permits, when `kind` is "permits". */
  readonly permits?: number | undefined;
  /**
   * Every holder, one element each: the exclusive owner (`mode` "exclusive", the fields above) and
   * each permit or shared holder. `held` is true when this is not empty; the fields above stay the
   * exclusive owner's alone.
   */
  readonly holders: readonly LockHolderInfo[];
  /** A reader–writer lock's waiting writer, whose intent keeps new shared holders out. */
  readonly intent?: LockIntentInfo | undefined;
}

/** Both of two leavings' tokens, in one. */
function mergeInherited(a: Inherited | undefined, b: Inherited | undefined): Inherited | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return { handed: a.handed ?? b.handed, unsure: [...a.unsure, ...b.unsure] };
}

/** Every token a hand-off may have installed for us. */
function tokensOf(i: Inherited | undefined): string[] {
  if (i === undefined) return [];
  return [...(i.handed === undefined ? [] : [i.handed.token]), ...i.unsure.map((u) => u.token)];
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
  /** The owner tokens of those locks, to tell "held by this client" without a scan of them all. */
  readonly #heldOwners = new Set<string>();
  /** Acquires in progress: `close()` stops each one and waits for it to settle. */
  readonly #acquiring = new Set<{
    readonly id: string;
    readonly stop: AbortController;
    readonly settled: Promise<unknown>;
  }>();
  /** Waiting acquires of one id line up here: only the first talks to the server (local-queue.ts). */
  readonly #queues = new LocalQueues();
  /** Those waiting in the queue, to be handed the lock by the release before them (hand-off.ts). */
  readonly #handOffs = new HandOffs((id, token) => this.#cleanUp(id, token));
  /** Best-effort cleanups of acquisitions that may have been applied after we gave up. */
  readonly #cleanups = new Set<Promise<void>>();
  #closed = false;
  /**
   * The look at the table (docs/global-tables.md), shared by every call until it has an answer:
   * undefined when allowed (or unknown), else why locks on this table are refused.
   */
  #tableCheck: Promise<{ readonly message: string; readonly code: LockErrorCode } | undefined> | undefined;
  /** The table check has allowed this table for good. */
  #tableAllowed = false;
  /** The table check saw the table's keys, and they are the expected ones. */
  #keysMatch = false;
  /** What the table check found, for errors that depend on it (an MRSC table's limits). */
  #replication: TableReplication | undefined;
  #warnedTableUnknown = false;

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
  async acquire<Data extends object = LockData>(id: string, options?: AcquireOptions): Promise<Lock<Data>> {
    keyString("id", id, 2048);
    const o = optionsObject<AcquireOptions>("options", options, [
      "waitMs",
      "signal",
      "onWait",
      "permits",
      "mode",
      "heartbeat",
    ]);
    const kind = holderKindOf(o);
    const waitMs = o.waitMs === undefined ? 0 : nonNegativeOrInfinite("waitMs", o.waitMs);
    const signal = optionalSignal("signal", o.signal);
    if (o.onWait !== undefined && typeof o.onWait !== "function") fail("onWait", "a function", o.onWait);
    if (o.heartbeat !== undefined && typeof o.heartbeat !== "boolean")
      fail("heartbeat", "a boolean", o.heartbeat);
    const heartbeat = o.heartbeat ?? this.#options.heartbeat;
    this.#throwIfClosed();
    signal?.throwIfAborted();
    // One signal for every way the wait can end early: the caller's signal, close(), or onWait.
    const stop = new AbortController();
    const forward = () => stop.abort(signal?.reason);
    signal?.addEventListener("abort", forward, { once: true });
    const acquiring = trace(
      acquireChannel,
      () => ({ table: this.table, lockId: id, waitMs }),
      () =>
        kind === undefined
          ? this.#queuedAcquire<Data>(id, waitMs, stop, o.onWait, heartbeat)
          : acquireMulti<Lock<Data>>(this.#multiContext(id, heartbeat), id, kind, waitMs, stop, o.onWait),
    );
    const entry = { id, stop, settled: acquiring.catch(() => undefined) };
    this.#acquiring.add(entry);
    try {
      const lock = await acquiring;
      // close() may have run in the few microtasks since the lock was adopted: it released the
      // lock (or is releasing it), so do not hand it out.
      if (this.#closed) {
        await lock.releaseIfHeld().catch(() => undefined);
        throw this.#closedError(id);
      }
      return lock;
    } finally {
      this.#acquiring.delete(entry);
      signal?.removeEventListener("abort", forward);
    }
  }

  /** Takes the lock if it is free (or its holder presumed dead); never waits. */
  async tryAcquire<Data extends object = LockData>(
    id: string,
    options?: Pick<AcquireOptions, "signal" | "permits" | "mode" | "heartbeat">,
  ): Promise<Lock<Data> | undefined> {
    const o = optionsObject<Pick<AcquireOptions, "signal" | "permits" | "mode" | "heartbeat">>(
      "options",
      options,
      ["signal", "permits", "mode", "heartbeat"],
    );
    const signal = optionalSignal("signal", o.signal);
    try {
      return await this.acquire<Data>(id, {
        waitMs: 0,
        ...(signal === undefined ? {} : { signal }),
        ...(o.permits === undefined ? {} : { permits: o.permits }),
        ...(o.mode === undefined ? {} : { mode: o.mode }),
        ...(o.heartbeat === undefined ? {} : { heartbeat: o.heartbeat }),
      });
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
  async withLock<T, Data extends object = LockData>(
    id: string,
    fn: (lock: Lock<Data>) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T> {
    if (typeof fn !== "function") throw new TypeError(`Expected \`fn\` to be a function, got ${typeof fn}`);
    const lock = await this.acquire<Data>(id, options);
    // A freeze (a stopped process, a frozen Lambda) between the acquisition and here may have used
    // up the lease: fn must not start on a lock that is no longer ours. `held` declares the loss.
    if (!lock.held) throw lock.signal.reason;
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
  async read<Data extends object = LockData>(
    id: string,
    options?: { readonly signal?: AbortSignal },
  ): Promise<LockInfo<Data> | undefined> {
    keyString("id", id, 2048);
    const signal = optionalSignal(
      "signal",
      optionsObject<SignalOptions>("options", options, ["signal"]).signal,
    );
    this.#throwIfClosed();
    signal?.throwIfAborted();
    await this.#checkTableOnce(signal);
    const record = await this.#get(readRequest(this.#options.schema, id), signal);
    if (record === undefined) return undefined;
    return this.#info<Data>(id, record);
  }

  /**
   * Every lock in the table, as `read()` sees each one, page by page (a Scan of `pageSize` items at
   * a time, so memory stays bounded whatever the table's size). Items that are not lock items are
   * skipped. Costs read units for every item examined and needs the IAM action `dynamodb:Scan`
   * (see list.ts). Options are checked here, before any request.
   */
  list<Data extends LockData = LockData>(
    options?: ListOptions,
  ): AsyncGenerator<LockInfo<Data>, void, undefined> {
    const resolved = resolveListOptions(options);
    this.#throwIfClosed();
    const pages = listLocks<LockInfo<Data>>({
      client: this.#client,
      schema: this.#options.schema,
      options: resolved,
      toInfo: (id, record) => this.#info<Data>(id, record),
      translate: (err) =>
        this.#translate(err, `Listing locks in table "${this.table}" failed`, undefined, resolved.signal),
    });
    // The table is looked at first, as for every other use (docs/global-tables.md): a listing of an
    // eventually consistent global table's replica would show one Region's view as the truth.
    const checked = async function* (client: LockClient) {
      await client.#checkTableOnce(resolved.signal);
      yield* pages;
    };
    return checked(this);
  }

  /**
   * Administrative: removes whoever holds the lock, keeping data and fence. The holder learns at
   * its next heartbeat (its signal aborts with reason "released"). Resolves to the removed
   * holder's state, or undefined if the lock was not held. Two requests: a consistent read, then a
   * write conditioned on the owner it saw, so a late duplicate can never remove a later holder.
   * An aborted `signal` after the write was sent rejects with an EABORTED LockError (it may apply).
   */
  async forceRelease<Data extends object = LockData>(
    id: string,
    options?: SignalOptions & { readonly holder?: undefined },
  ): Promise<LockInfo<Data> | undefined>;
  /**
   * Administrative: removes ONE holder of the lock, named by `holder`: its `key` or its name, as
   * `read()` lists them in `holders` (several holders of that name: an `EAMBIGUOUS` LockError,
   * nothing removed). A permit or shared holder's entry is removed at the exact version just read,
   * the other holders untouched; the exclusive owner as by `forceRelease(id)`. The removed holder
   * learns at its next heartbeat (its signal aborts with reason "released"). Resolves to the
   * removed holder as read just before, or undefined if no holder matched.
   */
  async forceRelease(
    id: string,
    options: SignalOptions & { readonly holder: string },
  ): Promise<LockHolderInfo | undefined>;
  async forceRelease<Data extends object = LockData>(
    id: string,
    options?: SignalOptions & { readonly holder?: string | undefined },
  ): Promise<LockInfo<Data> | LockHolderInfo | undefined> {
    keyString("id", id, 2048);
    const o = optionsObject<SignalOptions & { readonly holder?: string }>("options", options, [
      "signal",
      "holder",
    ]);
    const signal = optionalSignal("signal", o.signal);
    const target = o.holder === undefined ? undefined : keyString("options.holder", o.holder, 1024);
    this.#throwIfClosed();
    signal?.throwIfAborted();
    await this.#checkTableOnce(signal);
    if (target !== undefined) return this.#forceReleaseOne(id, target, signal);
    const { schema, runtime } = this.#options;
    // Aimed at the owner read just before, not at whoever owns the lock when the write lands: a late
    // duplicate of it (an SDK retry whose first try arrives late) must not remove a later holder,
    // which nothing would have told to stop.
    let seen: LockRecord | undefined;
    for (let round = 0; round < 5; round++) {
      const before = seen;
      seen = await this.#get(readRequest(schema, id), signal);
      if (seen?.owner === undefined) {
        // Nobody has acquired it since we saw the owner, and a force-release removed it: ours, applied
        // by an attempt we did not hear back from.
        const ours =
          before !== undefined && seen?.fence === before.fence && seen.releasedBy === FORCED_RELEASE;
        return ours ? this.#info<Data>(id, before) : undefined;
      }
      const target = this.#options.knobs?.forceReleaseAnyOwner === true ? undefined : seen.owner;
      const input = forceReleaseRequest(schema, id, runtime.wallNow(), target, seen.fence);
      try {
        // Sent from here on: an abort stops waiting, and the removal may still apply.
        const out = await stopWaitingOnAbort(
          this.#client.send(
            new UpdateItemCommand(input),
            signal === undefined ? {} : { abortSignal: signal },
          ),
          signal,
          () => true,
          id,
          "force-release",
        );
        const record = parseRecord(out.Attributes);
        return record === undefined ? undefined : this.#info<Data>(id, record);
      } catch (err) {
        if (err instanceof LockError && err.code === "EABORTED") throw err;
        if (signal?.aborted) throw abortedAfterSending(signal, id, "force-release");
        if (!isConditionFailed(err)) throw await this.#translate(err, `Force-releasing lock "${id}" failed`);
        // The owner changed between our read and our write: look again.
      }
    }
    throw new LockError(`Force-releasing lock "${id}" failed: it kept changing hands`, {
      code: "ECONTENDED",
      lockId: id,
    });
  }

  /** forceRelease(id, { holder }): read, pick the one holder, remove it at what was read. */
  async #forceReleaseOne(
    id: string,
    target: string,
    signal: AbortSignal | undefined,
  ): Promise<LockHolderInfo | undefined> {
    const { schema, runtime } = this.#options;
    let chosen: { token: string; version: number; info: LockHolderInfo; fence: number } | undefined;
    // More rounds than a mutex's: the removal is pinned to the item's fence, which every other
    // holder's acquisition moves on.
    for (let round = 0; round < 10; round++) {
      const seen = await this.#get(readRequest(schema, id), signal);
      const holders = seen === undefined ? [] : holdersOf(seen, this.#staleRule());
      // A later round keeps to the holder chosen first. Gone, it was removed by an unanswered attempt
      // of ours or left: another holder the name matches now is not the one that was read (the
      // simulation found one call removing two).
      const kept =
        chosen === undefined ||
        this.#options.knobs?.forceOneRepicks === true ||
        holders.some((h) => h.token === chosen?.token);
      const picked = kept ? pickHolder(holders, target) : undefined;
      if (picked === undefined || seen === undefined) {
        // Gone since we chose it: removed by an attempt of ours we did not hear back from, if the
        // item carries our marks (an entry: its token in forcedOut; the owner: a forced release and
        // no acquisition since). Otherwise it left by itself, or was never there.
        const ours =
          chosen !== undefined &&
          (chosen.info.mode === "exclusive"
            ? seen?.owner === undefined && seen?.releasedBy === FORCED_RELEASE && seen.fence === chosen.fence
            : seen?.forcedOut === chosen.token);
        return ours ? chosen?.info : undefined;
      }
      if ("ambiguous" in picked) {
        const keys = picked.ambiguous.map((h) => `${h.info.key} (${h.info.mode})`).join(", ");
        throw new LockError(
          `Force-releasing a holder of lock "${id}" refused: ${picked.ambiguous.length} holders are named "${target}" (keys ${keys}); name one by its key`,
          { code: "EAMBIGUOUS", lockId: id },
        );
      }
      const found = picked.found;
      chosen = { ...found, fence: seen.fence };
      const input =
        found.info.mode === "exclusive"
          ? forceReleaseRequest(schema, id, runtime.wallNow(), found.token, seen.fence)
          : forceRemoveEntryRequest(
              schema,
              id,
              found,
              this.#options.knobs?.forceOneIgnoresVersion === true,
              seen.fence,
            );
      try {
        await stopWaitingOnAbort(
          this.#client.send(
            new UpdateItemCommand(input),
            signal === undefined ? {} : { abortSignal: signal },
          ),
          signal,
          () => true,
          id,
          "force-release",
        );
        return found.info;
      } catch (err) {
        if (err instanceof LockError && err.code === "EABORTED") throw err;
        if (signal?.aborted) throw abortedAfterSending(signal, id, "force-release");
        if (!isConditionFailed(err)) throw await this.#translate(err, `Force-releasing lock "${id}" failed`);
        // That holder heartbeated (or left) between our read and our write: look again.
      }
    }
    throw new LockError(`Force-releasing a holder of lock "${id}" failed: it kept changing`, {
      code: "ECONTENDED",
      lockId: id,
    });
  }

  /**
   * Creates the table (on-demand billing) if it does not exist and waits until it is ACTIVE. An
   * existing table with the right key schema is fine; one with another key schema is a LockError.
   * Resolves to true if this call created it.
   */
  async createTable(options?: CreateTableOptions): Promise<boolean> {
    this.#throwIfClosed();
    const created = await createLockTable(this.#client, this.#options.schema, this.#options.runtime, options);
    // An existing table may be a global one: say so now rather than at the first lock.
    await this.#checkTableOnce(options?.signal);
    return created;
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
      stop.abort(new LockError(message, { code: "ECLOSED", lockId: id, reason: "closed" }));
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

  /**
   * Looks at the table once per client (one DescribeTable, bounded by a lease) and
   * throws if locks on it are not safe: an eventually consistent global table without the
   * `singleWriterRegion` opt-in. Locking goes on where the answer is unknown (no permission for
   * DescribeTable, a server without it), after saying so once.
   */
  async #checkTableOnce(signal: AbortSignal | undefined): Promise<void> {
    if (!this.#options.checkTable) return;
    if (this.#tableAllowed) return signal?.throwIfAborted();
    this.#tableCheck ??= this.#checkTable();
    const check = this.#tableCheck;
    const refusal = await untilAborted(check, signal);
    // A new error for every call: error instances are never shared.
    if (refusal !== undefined) throw new LockError(refusal.message, { code: refusal.code });
    // Allowed for good (a check whose answer may change is cleared, to be asked again): every later
    // call skips the wait, a promise and an abort listener per acquire.
    if (this.#tableCheck === check) this.#tableAllowed = true;
  }

  async #checkTable(): Promise<{ readonly message: string; readonly code: LockErrorCode } | undefined> {
    const { schema, runtime, leaseMs, singleWriterRegion } = this.#options;
    const bound = deadlineSignal(runtime, leaseMs, undefined, () => new Error("no answer"));
    let table: TableDescription | undefined;
    try {
      const command = new DescribeTableCommand({ TableName: schema.table });
      table = (await this.#client.send(command, { abortSignal: bound.signal })).Table;
    } catch (err) {
      const name = (err as Error)?.name;
      // A missing table is reported by the lock request itself, with what to do.
      if (name === "ResourceNotFoundException") {
        this.#tableCheck = undefined;
        return undefined;
      }
      // Refused by the server (no permission, no such operation): final for this client, and said
      // once. Anything else (throttling, no answer, a request that could not even be sent, as
      // without a Region) may pass, and the lock request that follows reports it if not: look again at the next use.
      const answered = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
      if (answered === undefined || isRetryable(err)) {
        this.#tableCheck = undefined;
        return undefined;
      }
      if (!this.#warnedTableUnknown) {
        this.#warnedTableUnknown = true;
        process.emitWarning(
          `dynamolock: could not tell whether table "${schema.table}" is a global table with eventually consistent replicas, where locks are not safe (DescribeTable failed: ${name ?? "error"}: ${(err as Error)?.message ?? String(err)}); locking goes on. Allow dynamodb:DescribeTable on the table, or pass checkTable: false to vouch for it (docs/global-tables.md)`,
          { code: "DYNAMOLOCK_TABLE_UNCHECKED" },
        );
      }
      return undefined;
    } finally {
      bound.dispose();
    }
    if (table === undefined) return undefined;
    // The same answer tells whether the table has the keys this client expects: say so before the
    // first lock request, naming both, rather than after a refused one.
    const keys = keySchemaMismatch(table, schema);
    if (keys !== undefined) return { message: keys.message, code: "EKEYSCHEMA" };
    this.#keysMatch = true;
    const replication = replicationOf(table);
    const verdict = judgeReplication(replication, {
      table: schema.table,
      singleWriterRegion,
      clientRegion: await this.#clientRegion(),
    });
    if (!verdict.ok) return { message: verdict.error.message, code: "EGLOBALTABLE" };
    this.#replication = replication;
    if (verdict.warning !== undefined) {
      process.emitWarning(`dynamolock: ${verdict.warning}`, { code: "DYNAMOLOCK_SINGLE_WRITER_REGION" });
    }
    return undefined;
  }

  /** The Region the SDK client sends to, if its configuration says (a caller's own sender may not). */
  async #clientRegion(): Promise<string | undefined> {
    const region = (this.#client as { config?: { region?: unknown } }).config?.region;
    try {
      const value = typeof region === "function" ? await (region as () => Promise<unknown>)() : region;
      return typeof value === "string" && value !== "" ? value : undefined;
    } catch {
      return undefined;
    }
  }

  #throwIfClosed(): void {
    if (this.#closed) throw this.#closedError();
  }

  #closedError(lockId?: string): LockError {
    return new LockError(`This LockClient (table "${this.table}") is closed`, {
      code: "ECLOSED",
      reason: "closed",
      ...(lockId === undefined ? {} : { lockId }),
    });
  }

  /**
   * The error to report for a failed request. May ask the table what its keys are (one
   * DescribeTable, bounded like every request, and stopped by `signal`): if `signal` aborts
   * meanwhile, its reason is the answer.
   */
  async #translate(err: unknown, message: string, lockId?: string, signal?: AbortSignal): Promise<unknown> {
    if (err instanceof LockError) return err;
    const { runtime, leaseMs, schema } = this.#options;
    const bound = deadlineSignal(runtime, leaseMs, signal, () => new Error("no answer"));
    let table: LockError | undefined;
    try {
      table = await tableError(this.#client, schema, err, bound.signal, this.#keysMatch);
    } finally {
      bound.dispose();
    }
    if (signal?.aborted) return signal.reason;
    if (table !== undefined) return table;
    const advice = configurationAdvice(err);
    return new LockError(`${message}: ${(err as Error)?.message ?? String(err)}${advice}`, {
      code: "EDYNAMODB",
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
        undefined,
        signal,
      );
    }
  }

  #info<Data>(id: string, record: LockRecord): LockInfo<Data> {
    const owned = record.owner !== undefined;
    const rule = this.#staleRule();
    const holders = holdersOf(record, rule).map((h) => h.info);
    const { kind, permits } = kindOf(record);
    const intent = intentOf(record, rule);
    return {
      lockId: id,
      data: decodeData<Data>(record.data),
      held: holders.length > 0,
      holder: owned ? record.holder : undefined,
      fence: record.fence,
      heartbeatAt: owned ? record.heartbeatAt : undefined,
      leaseMs: owned ? record.leaseMs : undefined,
      stale: owned && (holders[0]?.stale ?? false),
      releasedAt: record.releasedAt,
      kind,
      ...(permits === undefined ? {} : { permits }),
      holders,
      ...(intent === undefined ? {} : { intent }),
    };
  }

  #staleRule(): StaleRule {
    const { maxClockSkewMs, runtime, leaseMs } = this.#options;
    return { wallNow: runtime.wallNow(), maxClockSkewMs, leaseMs };
  }

  #context(id: string, heartbeat: boolean, settled?: () => void): LockContext {
    return {
      schema: this.#options.schema,
      client: this.#client,
      runtime: this.#options.runtime,
      heartbeatMs: this.#options.heartbeatMs,
      heartbeat,
      clockDrift: this.#options.clockDrift,
      knobs: this.#options.knobs,
      dataBudgetBytes: dataBudgetBytes(this.#options, id),
      onSettled: (lock) => {
        const owner = this.#held.get(lock);
        if (owner !== undefined) this.#heldOwners.delete(owner);
        this.#held.delete(lock);
        settled?.();
      },
      replicationMode: () => this.#replication?.mode,
      successor: () =>
        this.#closed
          ? undefined
          : this.#handOffs.pick(id, {
              token: () => this.#options.runtime.token(),
              holder: this.#options.holder,
              leaseMs: this.#options.leaseMs,
            }),
    };
  }

  /**
   * A waiting acquire first waits for the acquires of the same id before it in this client to be
   * done with the lock (local-queue.ts), within its own `waitMs` and signal; then it runs the acquire
   * loop with what is left of its wait, keeping the start of its wait as its place among waiters.
   * An acquire that does not wait (`waitMs: 0`) makes its one try at once, but takes a place all
   * the same, so that the acquires after it wait for the lock it may get.
   */
  async #queuedAcquire<Data extends object>(
    id: string,
    waitMs: number,
    stop: AbortController,
    onWait: AcquireOptions["onWait"],
    heartbeat: boolean,
  ): Promise<Lock<Data>> {
    const { runtime } = this.#options;
    const started = runtime.monotonicNow();
    const since = runtime.wallNow();
    const place = this.#queues.enter(id);
    /** While we wait in the queue, the release before us may hand us the lock (hand-off.ts). */
    const candidate =
      place.behind && waitMs > 0
        ? this.#handOffs.enter(
            id,
            since,
            () => !stop.signal.aborted && !this.#closed && runtime.monotonicNow() < started + waitMs,
          )
        : undefined;
    let inherited: Inherited | undefined;
    try {
      // Nobody of this client ahead (or no wait): straight to the acquire, no queue machinery.
      if (waitMs === 0 || !place.behind)
        return await this.#acquire<Data>(id, waitMs, stop, onWait, heartbeat, since, place.done);
      const local = () => [...this.#held.keys()].find((lock) => lock.id === id);
      if (place.behind && onWait !== undefined) {
        // One report for the whole time in the queue (no looks are made meanwhile): the holder if
        // it is a lock of this client (else unknown: the acquire ahead of us is the one looking).
        const holding = local();
        const result = onWait({
          lockId: id,
          holder: holding?.holder,
          fence: holding?.fence ?? 0,
          heartbeatAt: undefined,
          leaseMs: holding?.leaseMs,
          waitedMs: 0,
          // No look of its own until the acquire ahead is done; at the latest when a lease would
          // run out (or the wait), so never Infinity.
          nextLookInMs: Math.min(waitMs, holding?.leaseMs ?? this.#options.leaseMs),
        });
        if (isThenable(result)) result.then(undefined, (err: unknown) => stop.abort(err));
      }
      const cut = new AbortController();
      const outOfTime = Number.isFinite(waitMs)
        ? sleep(runtime, waitMs, cut.signal).then(() => true)
        : new Promise<boolean>(() => undefined);
      let waitedOut: boolean;
      try {
        const handed = candidate?.handed.then(() => false) ?? new Promise<boolean>(() => undefined);
        waitedOut = await untilAborted(
          Promise.race([place.ready.then(() => false), handed, outOfTime]),
          stop.signal,
        );
        // A release is handing us the lock (whether we ran out of time or our turn in the queue
        // came meanwhile): its outcome decides, as for a write of our own sent before the deadline.
        // Leaving before it is known would free a lock handed to us and start polling for it.
        if (candidate?.pending === true) {
          await untilAborted(candidate.idle(), stop.signal);
          inherited = candidate.leave();
          if (inherited.handed !== undefined) waitedOut = false;
        }
      } finally {
        cut.abort();
        outOfTime.catch(() => undefined);
      }
      inherited = mergeInherited(inherited, candidate?.leave());
      const waited = runtime.monotonicNow() - started;
      if (waitedOut) {
        const mine = local();
        throw new LockHeldError(
          id,
          { holder: mine?.holder, fence: mine?.fence ?? 0, heartbeatAt: undefined, leaseMs: mine?.leaseMs },
          waited,
          { heldByThisClient: mine !== undefined },
        );
      }
      const handing = inherited;
      inherited = undefined; // #acquire answers for these tokens from here on
      return await this.#acquire<Data>(
        id,
        Math.max(0, waitMs - waited),
        stop,
        onWait,
        heartbeat,
        since,
        place.done,
        handing,
        started,
      );
    } catch (err) {
      // A lock handed to us, or a hand-off whose outcome we never learned, that nobody will use.
      const left = mergeInherited(inherited, candidate?.leave());
      for (const token of tokensOf(left)) this.#cleanUp(id, token);
      place.done();
      throw err;
    }
  }

  /**
   * The acquire loop. Each round either writes (the lock looked free, or its lease stale) or reads
   * and sleeps. Every takeover is conditioned on the exact (owner, version) judged stale.
   */
  async #acquire<Data extends object>(
    id: string,
    waitMs: number,
    stop: AbortController,
    onWait: AcquireOptions["onWait"],
    heartbeat: boolean,
    /** Wall clock at which the caller began to wait, if earlier than now (a local queue's follower). */
    since?: number,
    /** Called when the lock handed out stops being held (the local queue moves on). */
    onSettled?: () => void,
    /** What releases before us in the local queue handed us, or may have (hand-off.ts). */
    inherited?: Inherited,
    /** Monotonic instant the caller began to wait, if earlier than now: waitedMs counts from it. */
    startedAt?: number,
  ): Promise<Lock<Data>> {
    const { signal } = stop;
    try {
      await this.#checkTableOnce(signal);
    } catch (err) {
      for (const token of tokensOf(inherited)) this.#cleanUp(id, token);
      throw err;
    }
    const { runtime, schema, holder, leaseMs, maxClockSkewMs, poll, clockDrift } = this.#options;
    const deadline = runtime.monotonicNow() + waitMs;
    const started = startedAt ?? runtime.monotonicNow();
    const startedWall = since ?? runtime.wallNow();
    /** This call as a waiter for the next turn (turn.ts): named by the token of its first write. */
    let me: Waiter | undefined;
    /** A claim of ours may be in the item: withdrawn if we give up, so the lock need not wait it out. */
    let claimed = false;
    /** Our last claim: monotonic send time and how long it counts, to renew it before it lapses. */
    let myClaim: { sentAt: number; ms: number; at: number } | undefined;
    /** The claim in the item as we have watched it, to judge its lapse on our own clock. */
    let claimSeen: ClaimObservation | undefined;
    /** Claims stop after one fails in a way that retrying cannot fix (an IAM policy without them, say). */
    let claimsRefused = false;
    /** The owner we are waiting for and when we first saw it: the waiting schedule counts from it. */
    let seen: { owner: string; at: number; looks: number; writes: number; before: number } | undefined;
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
    /** Writes sent once the deadline had passed: a lock seen free just after may be tried once more. */
    let lateWrites = 0;
    let lastSeen: LockRecord | undefined;
    /** The next write is a look by writing (waiting.ts `looksByWriting`), not a write to a free lock. */
    let writeLook = false;

    /** The exclusive side of a reader–writer lock (src/multi-acquire.ts); idle for plain mutex ids. */
    const exclusive = new ExclusiveWait(this.#multiContext(id, heartbeat), id);
    const giveUp = (err: unknown): never => {
      for (const owner of unanswered) this.#cleanUp(id, owner);
      if (claimed && me !== undefined) this.#withdraw(id, me.token);
      exclusive.withdraw();
      throw err;
    };

    /**
     * Where we stand for the next turn, by the item as read at `arrivedAt` (watching its claim), and
     * the lapsed claim a write of ours may take over. (A break for the simulation: claims never lapse.)
     */
    const judgeTurn = (record: LockRecord | undefined, arrivedAt: number) => {
      claimSeen = observeClaim(claimSeen, record, arrivedAt);
      const watched = this.#options.knobs?.turnNeverLapses === true ? undefined : claimSeen;
      const s = standing(record, me as Waiter, watched, runtime.monotonicNow(), wall());
      return s;
    };
    /** Our wall clock for the claims' wall-clock shortcut (turn.ts), off with maxClockSkewMs: Infinity. */
    const wall = () => ({ wallNow: runtime.wallNow(), maxClockSkewMs });
    /** Ms until the watched claim would lapse (Infinity if none is watched). */
    const lapsesInMs = (): number =>
      claimSeen === undefined || this.#options.knobs?.turnNeverLapses === true
        ? Number.POSITIVE_INFINITY
        : claimLapsesInMs(claimSeen, runtime.monotonicNow(), wall()) + 1;
    /** The turn our next write carries: the lapsed claim it may take over, if we watched one lapse. */
    const turnOf = (w: Waiter) => ({
      waiter: w.token,
      since: w.since,
      ...(claimSeen !== undefined &&
      this.#options.knobs?.turnNeverLapses !== true &&
      claimLapsed(claimSeen, runtime.monotonicNow(), wall())
        ? { lapsed: { next: claimSeen.next, nextAt: claimSeen.nextAt } }
        : {}),
    });

    /** Whether the server returns the old item with a failed condition (learned from our first refusal). */
    let returnsOldItem = false;

    /**
     * Claims the next turn until our look after next (turn.ts). Best effort: only fairness rides on
     * it. True if the claim is known to be in place.
     */
    const claim = async (seenRecord: LockRecord): Promise<boolean> => {
      if (me === undefined || claimsRefused) return false;
      const sentAt = runtime.monotonicNow();
      // Strictly increasing, so that every renewal shows watchers a new claim.
      const at = Math.max(runtime.wallNow(), (myClaim?.at ?? 0) + 1);
      // Sized on the longest gap of the schedule (turn.ts), not on this (jittered) one.
      const ms = claimLeaseMs(longestGapMs(poll, seenRecord.holdMs), leaseMs);
      const input = claimRequest(schema, id, {
        ...turnOf(me),
        ms,
        at,
        fence: seenRecord.fence,
        ignoreFence: this.#options.knobs?.claimIgnoresFence,
      });
      claimed = true;
      myClaim = { sentAt, ms, at };
      try {
        await bounded((abortSignal) => this.#client.send(new UpdateItemCommand(input), { abortSignal }));
        return true;
      } catch (err) {
        if (signal.aborted) giveUp(signal.reason);
        if (!isConditionFailed(err) && !isRetryable(err)) claimsRefused = true;
        return false;
      }
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
        const lock = this.#adopt<Data>(id, owner, record, sentAt, heartbeat, onSettled);
        exclusive.adopted(); // a writer that recorded an intent takes it away: it had its turn
        return lock;
      }
      unanswered.push(owner);
      stale = { owner, version: record.version };
      return undefined;
    };

    // Its requests: each cut off, failures that may pass backed off within the wait (wait-requests.ts).
    const { bounded, look, backOff, nextBackoffMs } = waitRequests({
      runtime,
      client: this.#client,
      poll,
      leaseMs,
      deadline,
      signal,
      id,
      giveUp,
      translate: (err, message, lockId, s) => this.#translate(err, message, lockId, s),
    });

    // Hand-offs (hand-off.ts): an unconfirmed one is an unanswered write of ours, sent at the
    // release's send time: adopted if a look shows its token, freed if we give up. A confirmed one
    // is our acquisition, its lease counted from that send time.
    for (const u of inherited?.unsure ?? []) {
      written.set(u.token, u.sentAt);
      unanswered.push(u.token);
    }
    if (inherited?.handed !== undefined) {
      const { token, record, sentAt } = inherited.handed;
      written.set(token, sentAt);
      const lock = adopt(token, record, sentAt);
      if (lock !== undefined) return lock;
      // Came back too late to use: taken again at once by the first write below (adopt set `stale`).
    }

    for (;;) {
      // ---- write: take the lock ----
      const lookingByWriting = writeLook;
      writeLook = false;
      const sentAt = runtime.monotonicNow();
      if (sentAt >= deadline && ++lateWrites > 2) giveUp(this.#heldError(id, lastSeen, sentAt - started));
      const owner =
        this.#options.knobs?.reuseAcquireToken === true
          ? ([...written.keys()][0] ?? runtime.token())
          : runtime.token();
      written.set(owner, sentAt);
      me ??= { token: owner, since: startedWall };
      let record: LockRecord | undefined;
      let acquired: LockRecord | undefined;
      try {
        const input = acquireRequest(schema, id, {
          owner,
          holder,
          leaseMs,
          wallNow: runtime.wallNow(),
          stale,
          turn: turnOf(me),
          knobs: this.#options.knobs,
        });
        const out = await bounded((abortSignal) =>
          this.#client.send(new UpdateItemCommand(input), { abortSignal }),
        );
        acquired = parseRecord(out.Attributes);
        if (acquired === undefined) {
          unanswered.push(owner); // applied, but we cannot use what it returned
          throw new LockError(`Acquire of "${id}" returned no item`, { code: "EDYNAMODB", lockId: id });
        }
      } catch (err) {
        // No answer, a server error, an abort mid-flight, anything but a refusal or a failure
        // before sending: the write may have been applied, making us the owner. Free it if we give
        // up; conditioned on this write's own token, the cleanup can touch nothing else.
        if (!isConditionFailed(err) && (mayHaveBeenApplied(err) || signal.aborted)) unanswered.push(owner);
        if (signal.aborted) giveUp(signal.reason);
        if (!isConditionFailed(err)) {
          if (err instanceof LockError || !isRetryable(err) || runtime.monotonicNow() >= deadline) {
            giveUp(await this.#translate(err, `Acquiring lock "${id}" failed`, id, signal));
          }
          await backOff();
          if (!lookingByWriting) {
            // Write again, with a new token. Should the unanswered write have made us the owner,
            // this one fails and the lock it returns shows our earlier token.
            continue;
          }
          // A look by writing that failed (throttled, unanswered) looks again by reading: under
          // throttling, retried writes would not count among an owner's few write-looks. Should
          // the write have made us the owner, the read shows our token and it is adopted below.
          record = await look(pollRequest(schema, id));
        } else {
          record = parseRecord(oldItemOf(err));
          if (record !== undefined) returnsOldItem = true;
          if (record === undefined) record = await look(pollRequest(schema, id));
        }
      }
      if (acquired !== undefined) {
        const lock = adopt(owner, acquired, sentAt);
        if (lock !== undefined) {
          // A write aimed at someone else's stale ownership (not a retake of our own late one).
          if (stale !== undefined && !written.has(stale.owner) && takeoverChannel.hasSubscribers) {
            takeoverChannel.publish({
              table: schema.table,
              lockId: id,
              fence: lock.fence,
              previousHolder: lastSeen?.holder,
              previousFence: lastSeen?.fence,
            } satisfies TakeoverMessage);
          }
          return lock;
        }
        continue; // came back too late: take it again
      }

      // ---- wait: until the lock looks free or stale, or the wait runs out ----
      stale = undefined;
      for (;;) {
        const arrivedAt = runtime.monotonicNow();
        lastSeen = record;
        // Only items a semaphore or a shared holder has used carry a kind: plain mutex ids skip this.
        // An ownership of our own write is adopted below: no intent to record for it.
        const readersIn =
          record?.kind === undefined || (record.owner !== undefined && written.has(record.owner))
            ? undefined
            : await exclusive.step(record, arrivedAt, signal, deadline > arrivedAt).catch(giveUp);
        if (record?.owner === undefined && readersIn === undefined) {
          // Free: write again, unless a waiter who has waited longer has the next turn. Then look
          // again soon (it should take the lock), and at the latest when its claim lapses.
          if (judgeTurn(record, arrivedAt) !== "behind") break;
          const remaining = deadline - arrivedAt;
          if (remaining <= 0) giveUp(this.#heldError(id, record, arrivedAt - started, true));
          // The claimant should take it within a request or two: look again at the pace of the
          // expected release (src/waiting.ts), at the latest when the claim would lapse.
          const pace = nextLookMs({
            now: arrivedAt,
            seenAt: arrivedAt,
            holdMs: record?.holdMs,
            attempt: 0,
            poll,
            random: runtime.random(),
          });
          const delay = waitBeforeNextPoll(
            pace,
            Math.min(lapsesInMs(), exclusive.refreshDueInMs(arrivedAt)), // a recorded intent's refresh
            remaining,
          );
          await sleep(runtime, delay, signal).catch(giveUp);
          record = await look(pollRequest(schema, id));
          continue;
        }
        if (record?.owner === undefined) {
          // Shared holders are in: wait for them to leave (or be reclaimed as stale). Once the wait
          // is over, a round that reclaimed (0) looks once more: a try that removed the last dead
          // reader writes instead of giving up (each such round removed an entry, so it ends).
          const remaining = deadline - arrivedAt;
          if (remaining <= 0 && readersIn !== 0) giveUp(this.#heldError(id, record, arrivedAt - started));
          const delay = waitBeforeNextPoll(
            nextBackoffMs(),
            Math.min(readersIn ?? 0, exclusive.refreshDueInMs(arrivedAt)),
            remaining,
          );
          await sleep(runtime, delay, signal).catch(giveUp);
          record = await look(pollRequest(schema, id));
          continue;
        }
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
        // The takeover carries the turn condition too: a waiter behind the claimant leaves it to them
        // (and waits until the claim lapses at the latest).
        const turn = judgeTurn(record, arrivedAt);
        const behind = turn === "behind";
        if (verdict.stale && !behind) {
          stale = { owner: observation.owner, version: observation.version };
          break;
        }
        const remaining = deadline - arrivedAt;
        if (remaining <= 0) giveUp(this.#heldError(id, record, arrivedAt - started));
        if (seen?.owner !== record.owner) {
          // At version 1, heartbeatAt is the acquisition's wall clock: how long it had been held
          // before we saw it (a scheduling hint only; waiting.ts clamps it).
          const acquiredAt = record.version === 1 ? record.heartbeatAt : undefined;
          const before = acquiredAt === undefined ? 0 : runtime.wallNow() - acquiredAt;
          seen = { owner: record.owner, at: arrivedAt, looks: 0, writes: 0, before };
        }
        const scheduled = nextLookMs({
          now: arrivedAt,
          seenAt: seen.at,
          heldBeforeSeenMs: seen.before,
          holdMs: record.holdMs,
          attempt: seen.looks++,
          poll,
          random: runtime.random(),
        });
        // Long strides only for those behind the claimant: the next turn's waiter must not be late.
        const gap = behind ? scheduled : claimantGapMs(scheduled, poll);
        const bound = Math.min(
          verdict.stale ? lapsesInMs() : Math.min(verdict.staleInMs, lapsesInMs()),
          exclusive.refreshDueInMs(arrivedAt), // a recorded intent's refresh
        );
        const delay = waitBeforeNextPoll(gap, bound, remaining);
        let claimedNow = false;
        if (delay < remaining && shouldClaim(turn, myClaim, runtime.monotonicNow(), delay, leaseMs)) {
          claimedNow = await claim(record);
        }
        const writeNext = looksByWriting({
          turnIsMine: turn === "mine" || claimedNow,
          returnsOldItem,
          holdMs: record.holdMs,
          gapMs: delay,
          writeLooks: seen.writes,
          poll,
          lookAt: arrivedAt + delay,
          expectedAt: expectedReleaseAt({
            seenAt: seen.at,
            heldBeforeSeenMs: seen.before,
            holdMs: record.holdMs,
          }),
        });
        if (onWait !== undefined) {
          const { holder, fence, heartbeatAt } = record;
          const progress = { lockId: id, holder, fence, heartbeatAt, leaseMs: record.leaseMs };
          let result: unknown;
          try {
            result = onWait({ ...progress, waitedMs: arrivedAt - started, nextLookInMs: delay });
          } catch (err) {
            giveUp(err);
          }
          // Not awaited (the wait goes on), but never left unhandled: a rejection ends the wait.
          if (isThenable(result)) result.then(undefined, (err: unknown) => stop.abort(err));
        }
        // The claim's round trip is part of the gap: the bounds above (a stale holder, a lapsing
        // claim, the deadline) count from `arrivedAt`.
        await sleep(runtime, Math.max(0, arrivedAt + delay - runtime.monotonicNow()), signal).catch(giveUp);
        if (writeNext) {
          seen.writes++;
          writeLook = true;
          break; // look by trying to take it (waiting.ts)
        }
        record = await look(pollRequest(schema, id));
      }
    }
  }

  #multiContext(id: string, heartbeat: boolean): MultiContext {
    return {
      options: this.#options,
      client: this.#client,
      checkTable: (signal) => this.#checkTableOnce(signal),
      adopt: <L>(token: string, record: LockRecord, sentAt: number): L => {
        const lock = Lock.adopt(this.#context(id, heartbeat), {
          id,
          owner: token,
          holder: this.#options.holder,
          leaseMs: this.#options.leaseMs,
          record,
          sentAt,
          entry: true,
        });
        this.#held.set(lock as unknown as Lock, token);
        this.#heldOwners.add(token); // for heldByThisClient, as the mutex's
        return lock as L;
      },
      translate: (err, message, lockId, signal) => this.#translate(err, message, lockId, signal),
      heldError: (lockId, record, waitedMs) => this.#heldError(lockId, record, waitedMs),
      cleanUp: (input) => this.#sendCleanUp(input),
      closed: () => (this.#closed ? this.#closedError(id) : undefined),
    };
  }

  #heldError(
    id: string,
    record: LockRecord | undefined,
    waitedMs: number,
    turnClaimed = false,
  ): LockHeldError {
    const mine =
      (record?.owner !== undefined && this.#heldOwners.has(record.owner)) ||
      [...(record?.holders?.keys() ?? [])].some((token) => this.#heldOwners.has(token));
    return new LockHeldError(
      id,
      {
        holder: record?.holder,
        fence: record?.fence ?? 0,
        heartbeatAt: record?.heartbeatAt,
        leaseMs: record?.leaseMs,
      },
      waitedMs,
      { heldByThisClient: mine, turnClaimed },
    );
  }

  #adopt<Data extends object>(
    id: string,
    owner: string,
    record: LockRecord,
    sentAt: number,
    heartbeat: boolean,
    onSettled?: () => void,
  ): Lock<Data> {
    const context = this.#context(id, heartbeat, onSettled);
    // The exclusive holder of an id used with several holders leaves room for their entries.
    const budget = context.dataBudgetBytes - (record.kind === undefined ? 0 : HOLDERS_ROOM_BYTES);
    // An id with a kind (a reader–writer lock's exclusive side) is never handed on in the release:
    // the hand-off's condition refuses it, so offering would cost a request for nothing.
    const successor = record.kind === undefined ? context.successor : undefined;
    const lock = Lock.adopt<Data>(
      { ...context, dataBudgetBytes: budget, successor },
      {
        id,
        owner,
        holder: this.#options.holder,
        leaseMs: this.#options.leaseMs,
        record,
        sentAt,
      },
    );
    this.#held.set(lock as unknown as Lock, owner);
    this.#heldOwners.add(owner);
    return lock;
  }

  /**
   * A waiter that gives up withdraws its claim on the next turn (turn.ts), conditioned on the claim
   * still being its own. Best effort and bounded like a cleanup: if it fails, the claim lapses.
   */
  #withdraw(id: string, waiter: string): void {
    this.#sendCleanUp(withdrawRequest(this.#options.schema, id, waiter));
  }

  /**
   * An acquire attempt whose outcome we never learned may have made us the owner. Free the lock
   * again (conditioned on our token, so it can touch nothing else), rather than leave it to a
   * full lease. Best effort: if this fails too, the lease runs out as after a crash.
   */
  #cleanUp(id: string, owner: string): void {
    const { schema, runtime } = this.#options;
    this.#sendCleanUp(releaseRequest(schema, id, { owner, wallNow: runtime.wallNow() }));
  }

  /** Sends a best-effort write, bounded by a lease, that close() waits for. */
  #sendCleanUp(input: UpdateItemCommandInput): void {
    const { runtime, leaseMs } = this.#options;
    // Bounded, as close() waits for it: after a lease the lock frees itself anyway.
    const bound = deadlineSignal(runtime, leaseMs, undefined, () => new Error("no answer"));
    const cleanup = this.#client
      .send(new UpdateItemCommand(input), { abortSignal: bound.signal })
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        bound.dispose();
        this.#cleanups.delete(cleanup);
      });
    this.#cleanups.add(cleanup);
  }
}
