/**
 * Errors raised by dynamolock. Every lock error extends {@link LockError}; argument errors are the
 * platform's own `TypeError` / `RangeError`, as Node's APIs do.
 */
import type { CancellationReason } from "@aws-sdk/client-dynamodb";

/**
 * A stable code for every {@link LockError}, to branch on without `instanceof` (which fails when two
 * copies of a package are loaded, or across realms). Codes never change meaning; new ones may be
 * added.
 */
export type LockErrorCode =
  /** {@link LockHeldError}: held by someone else and the wait ran out. */
  | "ELOCKHELD"
  /** {@link LockLostError}: the lock is no longer ours. */
  | "ELOCKLOST"
  /** {@link TransactionCanceledError}: a guarded write was cancelled by your own items. */
  | "ETRANSACTIONCANCELED"
  /** The LockClient was closed (before or while the call ran). */
  | "ECLOSED"
  /** The lock was already released (or is being released) by this holder. */
  | "ERELEASED"
  /** The table does not exist, or is not ACTIVE yet. */
  | "ENOTABLE"
  /** The table's key schema is not the one the LockClient expects. */
  | "EKEYSCHEMA"
  /** Creating the table, waiting for it, or turning on its Time to Live failed. */
  | "ETABLE"
  /** The server lacks an operation this call needs (transactions on dynalite, or on a table that does not offer them). */
  | "EUNSUPPORTED"
  /**
   * The table is a global table whose replicas are only eventually consistent, where two callers in
   * two Regions could hold one lock (docs/global-tables.md).
   */
  | "EGLOBALTABLE"
  /** A request to DynamoDB failed in a way retrying cannot fix (see `cause`). */
  | "EDYNAMODB"
  /** `forceRelease()` kept finding a new holder between its read and its write. */
  | "ECONTENDED"
  /**
   * The caller's signal aborted after a write had been sent: it may still apply (`writeUncertain`
   * is true, `cause` is the signal's reason). An abort before anything was sent rejects with the
   * signal's reason itself.
   */
  | "EABORTED"
  /**
   * The id is in use as another kind of lock than this call asks for (a mutex, a semaphore of
   * another size, a reader–writer lock), as the stored item shows (docs/protocol.md).
   */
  | "EMISMATCH"
  /** The data of a lock with several holders (permits, shared) is read-only: nothing was sent. */
  | "EREADONLY"
  /**
   * `forceRelease(id, { holder })` found several holders by that name: nothing was removed; name
   * one by its `key` (see `LockInfo.holders`).
   */
  | "EAMBIGUOUS";

/** The `name` of each dynamolock error class. */
export type LockErrorName = "LockError" | "LockHeldError" | "LockLostError" | "TransactionCanceledError";

/** Options of the {@link LockError} constructor. */
export interface LockErrorOptions extends ErrorOptions {
  readonly code: LockErrorCode;
  readonly lockId?: string | undefined;
  readonly reason?: LockLostReason | undefined;
  readonly writeUncertain?: boolean | undefined;
}

/** Base class of every error dynamolock raises about a lock or a table. */
export class LockError extends Error {
  override readonly name: LockErrorName = "LockError";
  /** What happened, as a stable code: see {@link LockErrorCode}. */
  readonly code: LockErrorCode;
  /** The lock id the error is about. Absent (not even `undefined`) from errors about no one lock. */
  declare readonly lockId?: string;
  /**
   * Set when the operation ended because the lock or the client stopped being usable: `"closed"`
   * for an acquire cut short by `LockClient.close()`; always set on a {@link LockLostError}.
   */
  declare readonly reason?: LockLostReason;
  /**
   * For an error from a write (`update()`, `release()`, `transact()`, `forceRelease()`): true when
   * the write may have been applied all the same (an attempt went unanswered, or the caller stopped
   * waiting after it was sent); false means nothing was written.
   */
  readonly writeUncertain: boolean;

  constructor(message: string, options: LockErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code;
    // Own properties only when they mean something: `"lockId" in err` tells whether it is about one lock.
    if (options.lockId !== undefined) Object.defineProperty(this, "lockId", own(options.lockId));
    if (options.reason !== undefined) Object.defineProperty(this, "reason", own(options.reason));
    this.writeUncertain = options.writeUncertain ?? false;
  }
}

/** A readonly, enumerable data property, as a class field would be. */
function own(value: unknown): PropertyDescriptor {
  return { value, enumerable: true, writable: false, configurable: true };
}

/** What is known of the holder of a lock we could not take. Never includes the lock's data. */
export interface HolderInfo {
  /** Human-readable holder name (default `hostname:pid`). */
  readonly holder: string | undefined;
  /** Fencing token of the holder's acquisition. */
  readonly fence: number;
  /** The holder's wall-clock time (ms since epoch) of its last confirmed write. */
  readonly heartbeatAt: number | undefined;
  /** The lease the holder promised, in ms. */
  readonly leaseMs: number | undefined;
}

/** The lock is held by someone else and `waitMs` ran out (or was 0). */
export class LockHeldError extends LockError {
  override readonly name = "LockHeldError" as const;
  override readonly code = "ELOCKHELD" as const;
  declare readonly lockId: string;
  readonly holder: string | undefined;
  readonly fence: number;
  readonly heartbeatAt: number | undefined;
  readonly leaseMs: number | undefined;
  /** How long the caller waited, in ms. */
  readonly waitedMs: number;

  constructor(
    lockId: string,
    info: HolderInfo,
    waitedMs: number,
    options?: ErrorOptions & { readonly heldByThisClient?: boolean; readonly turnClaimed?: boolean },
  ) {
    const who = info.holder === undefined ? "another holder" : `"${info.holder}"`;
    // Locks are not re-entrant: say so when the caller is waiting on a lock it holds itself.
    const self =
      options?.heldByThisClient === true ? ", a Lock of this same LockClient (locks are not re-entrant)" : "";
    // A free lock whose next turn another process's waiter has claimed (docs/protocol.md, "Turns").
    const state =
      options?.turnClaimed === true
        ? `is free, but its next turn is claimed by a waiter that began waiting earlier (fence ${info.fence})`
        : `is held by ${who} (fence ${info.fence}${self})`;
    super(`Lock "${lockId}" ${state}; gave up after waiting ${Math.round(waitedMs)} ms`, {
      ...options,
      code: "ELOCKHELD",
      lockId,
    });
    this.holder = info.holder;
    this.fence = info.fence;
    this.heartbeatAt = info.heartbeatAt;
    this.leaseMs = info.leaseMs;
    this.waitedMs = waitedMs;
  }
}

/** Why a lock stopped being ours. */
export type LockLostReason =
  /** The lease ran out on our monotonic clock without a confirmed heartbeat. */
  | "expired"
  /** Another holder took the lock over (it judged our lease stale). */
  | "taken"
  /** Someone removed the owner (`forceRelease`, the CLI, or a manual edit). */
  | "released"
  /** The client was closed or the lock released while an operation was waiting. */
  | "closed";

/**
 * The lock is no longer ours. Also the `reason` of `lock.signal` when it aborts.
 * A late `update()` / `release()` of a lost lock rejects with this error and writes nothing.
 */
export class LockLostError extends LockError {
  override readonly name = "LockLostError" as const;
  override readonly code = "ELOCKLOST" as const;
  declare readonly lockId: string;
  declare readonly reason: LockLostReason;
  /** Fence of the acquisition that was lost. */
  readonly fence: number;
  constructor(
    lockId: string,
    reason: LockLostReason,
    fence: number,
    detail: string,
    options?: ErrorOptions & { readonly writeUncertain?: boolean },
  ) {
    // writeUncertain: the update() / release() that rejected with this error may have been written
    // all the same, as an attempt of it went unanswered before the loss was known.
    super(`Lock "${lockId}" (fence ${fence}) was lost: ${detail}`, {
      ...options,
      code: "ELOCKLOST",
      lockId,
      reason,
    });
    this.fence = fence;
  }
}

/**
 * A guarded write (`lock.transact()`) was cancelled by DynamoDB for a reason other than the lock
 * guard: one of your own items failed its condition, or a conflict with another transaction (which
 * may succeed if tried again). Nothing was written and the lock is still held. `reasons[i]` belongs
 * to `items[i]`; the last entry is the guard's.
 */
export class TransactionCanceledError extends LockError {
  override readonly name = "TransactionCanceledError" as const;
  override readonly code = "ETRANSACTIONCANCELED" as const;
  declare readonly lockId: string;
  readonly reasons: readonly CancellationReason[];

  constructor(lockId: string, reasons: readonly CancellationReason[], options?: ErrorOptions) {
    const failed = reasons.flatMap((r, i) =>
      r.Code === undefined || r.Code === "None"
        ? []
        : [`${i === reasons.length - 1 ? "guard" : `items[${i}]`}: ${r.Code}`],
    );
    super(
      `Guarded write with lock "${lockId}" was cancelled, nothing was written (${failed.join(", ") || "no reason given"})`,
      { ...options, code: "ETRANSACTIONCANCELED", lockId },
    );
    this.reasons = reasons;
  }
}
