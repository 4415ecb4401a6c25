/**
 * Listing every lock in a table: a paginated Scan, one page in memory at a time, whatever the
 * table's size. Items that are not lock items (a single-table design's other records) are skipped.
 *
 * Cost: a Scan is charged for the items it examines, filtered out or not, by their total size: one
 * read unit per 4 KB with strongly consistent reads, half that with eventually consistent ones. A
 * page of 100 lock items of about 200 bytes each is 20 KB: 5 read units (2.5 eventually
 * consistent). A listing examines the whole table, so a single-table design pays for its other
 * items too. It needs the IAM action `dynamodb:Scan`, which locking itself never uses.
 */
import { type AttributeValue, ScanCommand, type ScanCommandOutput } from "@aws-sdk/client-dynamodb";
import type { DynamoDBSender } from "./aws.js";
import { FIELD, type KeySchema, type LockRecord, parseRecord } from "./item.js";
import { scanRequest } from "./requests.js";
import { fail, optionalSignal, optionalString, optionsObject } from "./validate.js";

export interface ListOptions {
  /**
   * Only locks that have a holder (including presumed-dead ones: see `stale`).
   * @default false
   */
  readonly held?: boolean;
  /** Only locks whose id starts with this string. */
  readonly prefix?: string;
  /**
   * Strongly consistent reads: every write acknowledged before a page is read shows in it. Twice
   * the read units of eventually consistent reads.
   * @default true
   */
  readonly consistent?: boolean;
  /** Aborting it stops the listing; the iteration rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /**
   * How many items each Scan request examines (DynamoDB's `Limit`, before filtering): the bound on
   * what one page holds in memory and on the read units one request consumes.
   * @default 100
   */
  readonly pageSize?: number;
}

export const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 10_000;

export interface ResolvedListOptions {
  readonly held: boolean;
  readonly prefix: string | undefined;
  readonly consistent: boolean;
  readonly signal: AbortSignal | undefined;
  readonly pageSize: number;
}

/** Checks list() options before any request; throws TypeError / RangeError naming the option. */
export function resolveListOptions(options: unknown): ResolvedListOptions {
  const o = optionsObject<ListOptions>("options", options, [
    "held",
    "prefix",
    "consistent",
    "signal",
    "pageSize",
  ]);
  const bool = (name: "held" | "consistent", fallback: boolean): boolean => {
    const value = o[name];
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") fail(name, "a boolean", value);
    return value;
  };
  const pageSize = o.pageSize ?? DEFAULT_PAGE_SIZE;
  if (typeof pageSize !== "number") fail("pageSize", `a whole number from 1 to ${MAX_PAGE_SIZE}`, pageSize);
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
    fail("pageSize", `a whole number from 1 to ${MAX_PAGE_SIZE}`, pageSize, RangeError);
  }
  return {
    held: bool("held", false),
    prefix: optionalString("prefix", o.prefix),
    consistent: bool("consistent", true),
    signal: optionalSignal("signal", o.signal),
    pageSize,
  };
}

/**
 * The id of a lock item, or undefined for anything else: a lock item has a string id (and the lock
 * items' sort-key value) and a numeric fence, which every acquisition writes and nothing removes.
 */
export function lockItemId(schema: KeySchema, item: Record<string, AttributeValue>): string | undefined {
  const id = item[schema.partitionKey]?.S;
  if (id === undefined) return undefined;
  if (schema.sortKey !== undefined && item[schema.sortKey.name]?.S !== schema.sortKey.value) return undefined;
  if (item[FIELD.fence]?.N === undefined) return undefined;
  const owner = item[FIELD.owner];
  if (owner !== undefined && owner.S === undefined) return undefined;
  return id;
}

export interface ListContext<Info> {
  readonly client: DynamoDBSender;
  readonly schema: KeySchema;
  readonly options: ResolvedListOptions;
  /** Turns a record into what the caller yields (LockClient's LockInfo, with its staleness rule). */
  toInfo(id: string, record: LockRecord): Info | undefined;
  /** The error to throw for a failed request. */
  translate(err: unknown): Promise<unknown>;
}

/** Every lock item, page by page; the next page is requested only when the caller asks for more. */
export async function* listLocks<Info>(context: ListContext<Info>): AsyncGenerator<Info, void, undefined> {
  const { client, schema, options } = context;
  const { signal } = options;
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    signal?.throwIfAborted();
    const input = scanRequest(schema, { ...options, startKey });
    let page: ScanCommandOutput;
    try {
      page = await client.send(new ScanCommand(input), signal === undefined ? {} : { abortSignal: signal });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw await context.translate(err);
    }
    for (const item of page.Items ?? []) {
      const id = lockItemId(schema, item);
      if (id === undefined) continue;
      const record = parseRecord(item);
      if (record === undefined) continue;
      const info = context.toInfo(id, record);
      if (info !== undefined) yield info;
    }
    startKey = page.LastEvaluatedKey;
  } while (startKey !== undefined);
}
