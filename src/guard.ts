/**
 * Guarded writes: the caller's own TransactWriteItems with a ConditionCheck on the lock item
 * appended, so they commit only while the lock is still ours. This module checks the caller's items
 * and reads the server's answer; the lock itself (src/lock.ts) decides what a failed guard means
 * for its state.
 */
import type {
  AttributeValue,
  CancellationReason,
  TransactWriteItem,
  TransactWriteItemsCommandInput,
} from "@aws-sdk/client-dynamodb";
import { mayHaveBeenApplied } from "./aws.js";
import { LockError, TransactionCanceledError } from "./errors.js";
import { itemKey, type KeySchema } from "./item.js";
import { describe, fail } from "./validate.js";

/** DynamoDB's limit on the items of one transaction; the guard takes one of them. */
export const MAX_TRANSACTION_ITEMS = 100;

const OPERATIONS = ["Put", "Update", "Delete", "ConditionCheck"] as const;

function sameKey(
  candidate: Record<string, AttributeValue> | undefined,
  key: Record<string, AttributeValue>,
): boolean {
  if (candidate === undefined) return false;
  return Object.entries(key).every(([name, value]) => candidate[name]?.S === value.S);
}

/**
 * Checks the caller's items before anything is sent: an array of TransactWriteItem, leaving room
 * for the guard, none of them touching the lock item itself (DynamoDB refuses a transaction with two
 * operations on one item, and a write to the lock item could forge or erase ownership).
 */
export function checkTransactItems(
  name: string,
  items: unknown,
  schema: KeySchema,
  id: string,
): TransactWriteItem[] {
  if (!Array.isArray(items)) fail(name, "an array of TransactWriteItem", items);
  if (items.length > MAX_TRANSACTION_ITEMS - 1) {
    throw new RangeError(
      `Expected \`${name}\` to hold at most ${MAX_TRANSACTION_ITEMS - 1} items (DynamoDB allows ${MAX_TRANSACTION_ITEMS} per transaction and the guard takes one), got ${items.length}`,
    );
  }
  const lockKey = itemKey(schema, id);
  return items.map((item: unknown, i): TransactWriteItem => {
    const at = `${name}[${i}]`;
    if (item === null || typeof item !== "object") fail(at, "a TransactWriteItem", item);
    const present = OPERATIONS.filter((op) => (item as Record<string, unknown>)[op] !== undefined);
    if (present.length !== 1) {
      throw new TypeError(
        `Expected \`${at}\` to be a TransactWriteItem with exactly one of ${OPERATIONS.join(", ")}, got ${present.length === 0 ? describe(item) : present.join(" and ")}`,
      );
    }
    const t = item as TransactWriteItem;
    const op = t.Put ?? t.Update ?? t.Delete ?? t.ConditionCheck;
    const target = t.Put === undefined ? (op as { Key?: Record<string, AttributeValue> }).Key : t.Put.Item;
    if (op?.TableName === schema.table && sameKey(target, lockKey)) {
      throw new RangeError(
        `Expected \`${at}\` not to touch the lock item itself (table "${schema.table}", lock "${id}"): the guard already checks it, and a transaction may touch an item only once`,
      );
    }
    return t;
  });
}

/** The transaction to send: the caller's items, then the guard (its index is `items.length`). */
export function guardedTransaction(
  items: readonly TransactWriteItem[],
  guard: TransactWriteItem,
): TransactWriteItemsCommandInput {
  return { TransactItems: [...items, guard] };
}

/** What a failed guarded write means. */
export type GuardedWriteFailure =
  /** The guard's condition failed: the lock is no longer ours. `oldItem` is the lock item, if returned. */
  | { readonly lockLost: true; readonly oldItem: Record<string, AttributeValue> | undefined }
  /** Anything else; the lock is unaffected. */
  | { readonly lockLost: false; readonly error: LockError };

interface SdkError {
  name?: string;
  message?: string;
  CancellationReasons?: CancellationReason[];
}

/** Reads the server's answer to a failed TransactWriteItems whose guard is at `guardIndex`. */
export function guardedWriteFailure(err: unknown, guardIndex: number, lockId: string): GuardedWriteFailure {
  const e = (typeof err === "object" && err !== null ? err : {}) as SdkError;
  if (e.name === "TransactionCanceledException") {
    const reasons = e.CancellationReasons ?? [];
    const guard = reasons[guardIndex];
    if (guard?.Code === "ConditionalCheckFailed") {
      const old = guard.Item;
      return { lockLost: true, oldItem: old !== undefined && Object.keys(old).length > 0 ? old : undefined };
    }
    return { lockLost: false, error: new TransactionCanceledError(lockId, reasons, { cause: err }) };
  }
  if (e.name === "UnknownOperationException") {
    return {
      lockLost: false,
      error: new LockError(
        `Guarded write with lock "${lockId}" is not possible on this server: it does not support TransactWriteItems (it answered UnknownOperationException). dynalite has no transactions; use DynamoDB or DynamoDB Local`,
        { code: "EUNSUPPORTED", cause: err, lockId },
      ),
    };
  }
  // Without an answer (a time-out, a reset, a 5xx) the transaction may have committed all the same;
  // a throttle or a refused connection proves it did not.
  const uncertain = mayHaveBeenApplied(err);
  const maybe = uncertain ? " (no answer: it may or may not have committed)" : "";
  return {
    lockLost: false,
    error: new LockError(`Guarded write with lock "${lockId}" failed${maybe}: ${e.message ?? String(err)}`, {
      code: "EDYNAMODB",
      cause: err,
      lockId,
      writeUncertain: uncertain,
    }),
  };
}
