/**
 * One critical section as the torture workers and the proxy tests run it, and the records it leaves
 * for the checker (checker.ts). Times are `process.hrtime.bigint()` (CLOCK_MONOTONIC), which every
 * process on one machine shares, so sections of different processes compare.
 */
import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import {
  type Lock,
  type LockClient,
  LockError,
  LockHeldError,
  TransactionCanceledError,
} from "../../src/index.js";

/** Enough of a DynamoDB client to read the second counter. */
export interface Reader {
  send(command: GetItemCommand): Promise<unknown>;
}

/** The first counter: kept in the lock's own data, written only by release(data). */
export interface Counter {
  readonly counter: number;
  /** Who wrote this value (`worker:seq`), so the checker can follow the chain of writes. */
  readonly tag: string | null;
  [key: string]: number | string | null;
}

/** What became of a write: answered yes, refused for certain, or unknown. */
export type Outcome = "acked" | "rejected" | "uncertain";

/**
 * Of the guarded write: `skipped` (the counter could not be read, so nothing was sent), `moved` (it
 * had changed under the holder, which only a second holder could do: a violation).
 */
export type TxOutcome = Outcome | "skipped" | "moved";

export interface StartRecord {
  readonly t: "start";
  readonly worker: string;
  readonly id: string;
  readonly fence: number;
  /** When acquire() resolved. */
  readonly start: string;
  readonly seen: { counter: number; tag: string | null };
  /** The tag its release will write: what a holder killed inside may have written. */
  readonly tag: string;
}

export interface EndRecord {
  readonly t: "end";
  readonly worker: string;
  readonly id: string;
  readonly fence: number;
  /** When the holder stopped acting as the owner: it began its release, or learnt of the loss. */
  readonly end: string;
  /** When lock.signal aborted, if it did (before the release began, or while it ran). */
  readonly lossAt?: string;
  readonly lossReason?: string;
  readonly outcome: Outcome;
  readonly wrote: { counter: number; tag: string };
  /** The second counter (guarded writes), when the server has transactions. */
  readonly tx?: { outcome: TxOutcome; seen: number };
  readonly error?: string;
}

/**
 * Written the moment a holder stops acting as the owner (it begins its release, or learns of its
 * loss), before anything else: a holder killed right after leaves this, not its end record. (A
 * write to a pipe is synchronous on Linux, so the record is out before the next line runs.)
 */
export interface StopRecord {
  readonly t: "stop";
  readonly worker: string;
  readonly id: string;
  readonly fence: number;
  readonly at: string;
}

export type SectionRecord = StartRecord | EndRecord | StopRecord;

export interface SectionOptions {
  readonly waitMs: number;
  /** Time spent inside the section (a random part of it), ms. */
  readonly workMs: number;
  /** If set, one section in five works up to this long instead. */
  readonly longWorkMs?: number;
  /** Where the second counter lives: an item of the lock table written only by lock.transact(). */
  readonly transact?: { readonly table: string; readonly key: string; readonly attribute: string };
  readonly random?: () => number;
}

const now = () => process.hrtime.bigint();

function outcomeOf(err: unknown): Outcome {
  return err instanceof LockError && !err.writeUncertain ? "rejected" : "uncertain";
}

/** A key no lock can have: the partition key attribute holding a value no lock id uses. */
export function counterKey(attribute: string, key: string) {
  return { [attribute]: { S: key } };
}

async function guardedIncrement(
  lock: Lock<Counter>,
  client: Reader,
  options: NonNullable<SectionOptions["transact"]>,
): Promise<{ outcome: TxOutcome; seen: number }> {
  const key = counterKey(options.attribute, options.key);
  let seen: number;
  try {
    const got = (await client.send(
      new GetItemCommand({ TableName: options.table, Key: key, ConsistentRead: true }),
    )) as { Item?: { n?: { N?: string } } };
    seen = Number(got.Item?.n?.N ?? 0);
  } catch {
    return { outcome: "skipped", seen: -1 };
  }
  try {
    await lock.transact([
      {
        Update: {
          TableName: options.table,
          Key: key,
          UpdateExpression: "SET #n = :next",
          // Only the lock's holder writes this item: were exclusion broken, the value would have
          // moved under us and this condition would say so (a violation, see checker.ts).
          ConditionExpression: seen === 0 ? "attribute_not_exists(#n) OR #n = :seen" : "#n = :seen",
          ExpressionAttributeNames: { "#n": "n" },
          ExpressionAttributeValues: { ":next": { N: String(seen + 1) }, ":seen": { N: String(seen) } },
        },
      },
    ]);
    return { outcome: "acked", seen };
  } catch (err) {
    if (err instanceof TransactionCanceledError) {
      const own = err.reasons[0]?.Code;
      if (own === "ConditionalCheckFailed")
        throw new Error(`second counter moved under holder (saw ${seen})`);
      return { outcome: "rejected", seen };
    }
    return { outcome: outcomeOf(err), seen };
  }
}

/**
 * Takes the lock, emits a start record at once (so a holder killed inside leaves its start), works,
 * optionally increments the second counter by a guarded write, and releases with the first counter
 * incremented. Resolves to undefined if the lock was not taken within waitMs.
 */
export async function runSection(
  locks: LockClient,
  client: Reader,
  id: string,
  tag: string,
  worker: string,
  options: SectionOptions,
  emit: (record: SectionRecord) => void,
): Promise<EndRecord | undefined> {
  let lock: Lock<Counter>;
  try {
    lock = await locks.acquire<Counter>(id, { waitMs: options.waitMs });
  } catch (err) {
    if (err instanceof LockHeldError) return undefined;
    throw err;
  }
  const start = now();
  let lossAt: bigint | undefined;
  const onLoss = () => {
    lossAt = now();
    emit({ t: "stop", worker, id, fence: lock.fence, at: String(lossAt) });
  };
  lock.signal.addEventListener("abort", onLoss, { once: true });
  if (lock.signal.aborted) onLoss();
  const seen = { counter: lock.data?.counter ?? 0, tag: lock.data?.tag ?? null };
  emit({ t: "start", worker, id, fence: lock.fence, start: String(start), seen, tag });

  const random = options.random ?? Math.random;
  // Now and then a long section, outliving several heartbeats (and, under a partition, the lease:
  // then its loss must be signalled here, before anyone else's section begins).
  const work = options.longWorkMs !== undefined && random() < 0.2 ? options.longWorkMs : options.workMs;
  await new Promise((resolve) => setTimeout(resolve, random() * work));
  const tx =
    options.transact === undefined ? undefined : await guardedIncrement(lock, client, options.transact);

  const wrote = { counter: seen.counter + 1, tag };
  const releaseAt = now();
  emit({ t: "stop", worker, id, fence: lock.fence, at: String(releaseAt) });
  let outcome: Outcome = "acked";
  let error: string | undefined;
  try {
    await lock.release(wrote);
  } catch (err) {
    outcome = outcomeOf(err);
    error = err instanceof Error ? err.name : String(err);
  }
  lock.signal.removeEventListener("abort", onLoss);
  const lostFirst = lossAt !== undefined && lossAt < releaseAt;
  const record: EndRecord = {
    t: "end",
    worker,
    id,
    fence: lock.fence,
    end: String(lostFirst ? (lossAt as bigint) : releaseAt),
    // Also a loss learnt while releasing: it too must come before the next holder's section.
    ...(lossAt !== undefined
      ? { lossAt: String(lossAt), lossReason: String((lock.signal.reason as LockError)?.reason) }
      : {}),
    outcome,
    wrote,
    ...(tx === undefined ? {} : { tx }),
    ...(error === undefined ? {} : { error }),
  };
  emit(record);
  return record;
}
