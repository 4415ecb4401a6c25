/**
 * The lock item's layout: key attributes and the lock's own fields, and the parsing of an item
 * read back from DynamoDB. See docs/protocol.md ("Item layout").
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";

/** Attribute names of the lock's own fields. The caller's data lives under `data` alone. */
export const FIELD = {
  /** Random token of the current acquisition; absent when the lock is free. */
  owner: "owner",
  /** Write counter within one acquisition: 1 at acquire, +1 on every heartbeat and update. */
  version: "version",
  /** The lease the holder promised, in ms. */
  leaseMs: "leaseMs",
  /** Holder's wall clock (ms since epoch) when it sent its last write. */
  heartbeatAt: "heartbeatAt",
  /** Human-readable holder name. */
  holder: "holder",
  /** Fencing token: incremented by every acquisition, never reset. */
  fence: "fence",
  /** The caller's data (a map). */
  data: "data",
  /** Owner token of the last release, so a retried release can recognise its own success. */
  releasedBy: "releasedBy",
  /** Wall clock (ms since epoch) of the last release. */
  releasedAt: "releasedAt",
  /** The waiter whose turn is next (its wait's token): only it may take the lock when it is free. */
  next: "next",
  /** Wall clock (ms since epoch) at which that waiter began to wait: an older waiter displaces it. */
  nextSince: "nextSince",
  /** How long (ms) that claim counts without renewal: a waiter that stopped looking drops out. */
  nextMs: "nextMs",
  /** The claimant's wall clock at its last claim write (strictly increasing: a renewal changes it). */
  nextAt: "nextAt",
  /** How long holds of this lock last, in ms (a moving average written by each release): when to look. */
  holdMs: "holdMs",
  /** Multi-holder locks (src/holders.ts): token → entry of each permit or shared holder. */
  holders: "holders",
  /** Multi-holder locks: "permits:N" or "shared", what the entries in `holders` are. */
  kind: "kind",
  /** Reader–writer locks: a waiting writer's intent, with its own lease. */
  intent: "intent",
  /** Multi-holder locks: owner token of the last entry removed by `forceRelease(id, { holder })`. */
  forcedOut: "forcedOut",
} as const;

/** Where lock items live: the table and how an id maps to a key. */
export interface KeySchema {
  readonly table: string;
  /** Partition key attribute name (type S); the lock id is its value. */
  readonly partitionKey: string;
  /** Optional sort key attribute (type S) and the constant value lock items use. */
  readonly sortKey: { readonly name: string; readonly value: string } | undefined;
  /** Optional TTL cleanup of released items; absent: the default attribute, and no expiry written. */
  readonly expiry?: ExpirySchema | undefined;
}

/**
 * TTL cleanup of long-released lock items (docs/ttl.md). An item carries the expiry attribute only
 * while released: release writes it, acquire and every heartbeat remove it in the same write that
 * proves ownership, so DynamoDB's TTL can never delete a held lock.
 */
export interface ExpirySchema {
  /** The table's TTL attribute (N, epoch seconds). */
  readonly attribute: string;
  /** How long after a release the item may be deleted, in ms; undefined: release writes no expiry. */
  readonly retainMs: number | undefined;
}

/** The TTL attribute acquire and heartbeats remove when none is configured. */
export const DEFAULT_TTL_ATTRIBUTE = "expiresAt";

export function ttlAttributeOf(schema: KeySchema): string {
  return schema.expiry?.attribute ?? DEFAULT_TTL_ATTRIBUTE;
}

/** DynamoDB TTL wants whole seconds since the epoch; round up so an item is never kept too briefly. */
export function expiresAtSeconds(wallNowMs: number, retainMs: number): number {
  return Math.ceil((wallNowMs + retainMs) / 1000);
}

export function itemKey(schema: KeySchema, id: string): Record<string, AttributeValue> {
  const key: Record<string, AttributeValue> = { [schema.partitionKey]: { S: id } };
  if (schema.sortKey !== undefined) key[schema.sortKey.name] = { S: schema.sortKey.value };
  return key;
}

/** A lock item as read from DynamoDB. */
export interface LockRecord {
  readonly owner: string | undefined;
  readonly version: number;
  readonly leaseMs: number | undefined;
  readonly heartbeatAt: number | undefined;
  readonly holder: string | undefined;
  readonly fence: number;
  readonly data: AttributeValue | undefined;
  readonly releasedBy: string | undefined;
  readonly releasedAt: number | undefined;
  /** The next turn's claim (docs/protocol.md, "Turns"), if any was ever made. */
  readonly next?: string | undefined;
  readonly nextSince?: number | undefined;
  readonly nextMs?: number | undefined;
  readonly nextAt?: number | undefined;
  /** The recorded typical hold, in ms, if any release has recorded one. */
  readonly holdMs?: number | undefined;
  /** Multi-holder locks: the entries of `holders`, by token; undefined if the item has no map. */
  readonly holders?: ReadonlyMap<string, HolderEntry> | undefined;
  /** Multi-holder locks: the stored kind ("permits:N" or "shared"). */
  readonly kind?: string | undefined;
  /** Reader–writer locks: the waiting writer's intent. */
  readonly intent?: (HolderEntry & { readonly token: string }) | undefined;
  /** Multi-holder locks: the token of the last entry an administrator removed. */
  readonly forcedOut?: string | undefined;
}

function num(value: AttributeValue | undefined): number | undefined {
  if (value?.N === undefined) return undefined;
  const n = Number(value.N);
  return Number.isFinite(n) ? n : undefined;
}

export function parseRecord(item: Record<string, AttributeValue> | undefined): LockRecord | undefined {
  if (item === undefined || Object.keys(item).length === 0) return undefined;
  return {
    owner: item[FIELD.owner]?.S,
    version: num(item[FIELD.version]) ?? 0,
    leaseMs: num(item[FIELD.leaseMs]),
    heartbeatAt: num(item[FIELD.heartbeatAt]),
    holder: item[FIELD.holder]?.S,
    fence: num(item[FIELD.fence]) ?? 0,
    data: item[FIELD.data],
    releasedBy: item[FIELD.releasedBy]?.S,
    releasedAt: num(item[FIELD.releasedAt]),
    next: item[FIELD.next]?.S,
    nextSince: num(item[FIELD.nextSince]),
    nextMs: num(item[FIELD.nextMs]),
    nextAt: num(item[FIELD.nextAt]),
    holdMs: num(item[FIELD.holdMs]),
    holders: parseHolders(item[FIELD.holders]),
    kind: item[FIELD.kind]?.S,
    intent: parseIntent(item[FIELD.intent]),
    forcedOut: item[FIELD.forcedOut]?.S,
  };
}

/** One entry of `holders` (or the intent), as read. */
export interface HolderEntry {
  readonly version: number;
  readonly leaseMs: number | undefined;
  readonly heartbeatAt: number | undefined;
  readonly holder: string | undefined;
  /** The holder's fence, once its first heartbeat (or extend) has recorded it. */
  readonly fence?: number | undefined;
}

export function parseEntry(value: AttributeValue | undefined): HolderEntry | undefined {
  const m = value?.M;
  if (m === undefined) return undefined;
  return {
    version: num(m[FIELD.version]) ?? 0,
    leaseMs: num(m[FIELD.leaseMs]),
    heartbeatAt: num(m[FIELD.heartbeatAt]),
    holder: m[FIELD.holder]?.S,
    fence: num(m[FIELD.fence]),
  };
}

export function parseHolders(v: AttributeValue | undefined): ReadonlyMap<string, HolderEntry> | undefined {
  if (v?.M === undefined) return undefined;
  const out = new Map<string, HolderEntry>();
  for (const [token, value] of Object.entries(v.M)) {
    const entry = parseEntry(value);
    if (entry !== undefined) out.set(token, entry);
  }
  return out;
}

export function parseIntent(
  v: AttributeValue | undefined,
): (HolderEntry & { readonly token: string }) | undefined {
  const entry = parseEntry(v);
  const token = v?.M?.token?.S;
  return entry === undefined || token === undefined ? undefined : { ...entry, token };
}
