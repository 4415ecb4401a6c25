/**
 * Who holds an id, as `read()`, `list()` and `forceRelease(id, { holder })` report it: one element
 * per holder, whatever the kind of lock (the mutex owner, permit holders, shared holders), plus the
 * request that removes one holder entry. Pure functions of a record read back and the reader's wall
 * clock; docs/protocol.md ("More than one holder", "Reading who holds") describes the layout.
 */
import type { AttributeValue, UpdateItemCommandInput } from "@aws-sdk/client-dynamodb";
import { FIELD, type HolderEntry, itemKey, type KeySchema, type LockRecord } from "./item.js";

/** One holder of a lock, as read. */
export interface LockHolderInfo {
  /** "exclusive": the mutex owner (or a reader–writer lock's writer); "permit", "shared": an entry. */
  readonly mode: "exclusive" | "permit" | "shared";
  /** The holder's name. */
  readonly holder: string | undefined;
  /**
   * A short handle of this acquisition (the start of its owner token), to tell apart holders that
   * share a name (every holder of one process does, by default): `forceRelease(id, { holder })`
   * accepts it.
   */
  readonly key: string;
  /**
   * The acquisition's fence. For the exclusive holder, the item's counter; for a permit or shared
   * holder, what its entry records from its first heartbeat (or `extend()`) on, and undefined
   * before that (the take itself cannot write it: the same request moves the counter).
   */
  readonly fence: number | undefined;
  /** The holder's wall clock (ms since epoch) at its last write. */
  readonly heartbeatAt: number | undefined;
  /** The lease the holder promised, in ms. */
  readonly leaseMs: number | undefined;
  /** By this machine's wall clock past `heartbeatAt + leaseMs + maxClockSkewMs`: presumed dead. */
  readonly stale: boolean;
}

/** A waiting writer's intent (reader–writer locks), as read. */
export interface LockIntentInfo {
  readonly holder: string | undefined;
  readonly heartbeatAt: number | undefined;
  readonly leaseMs: number | undefined;
  readonly stale: boolean;
}

/** How many characters of the owner token make a holder's `key`. */
export const KEY_LENGTH = 8;

export interface StaleRule {
  readonly wallNow: number;
  readonly maxClockSkewMs: number;
  /** The client's lease, for a record that lacks one. */
  readonly leaseMs: number;
}

/** The wall-clock shortcut's judgement, the one `LockInfo.stale` has always used. */
export function isStale(
  heartbeatAt: number | undefined,
  leaseMs: number | undefined,
  rule: StaleRule,
): boolean {
  return (
    heartbeatAt !== undefined && rule.wallNow > heartbeatAt + (leaseMs ?? rule.leaseMs) + rule.maxClockSkewMs
  );
}

/** A holder with its full token, which only this module and forceRelease see. */
export interface FoundHolder {
  readonly token: string;
  /** The entry's version (the owner's version for the exclusive holder). */
  readonly version: number;
  readonly info: LockHolderInfo;
}

/** The kind of lock the item shows: what its holders are, or were last. */
export function kindOf(record: LockRecord): { kind: "mutex" | "permits" | "shared"; permits?: number } {
  const stored = record.kind;
  if (stored === "shared") return { kind: "shared" };
  const m = stored === undefined ? null : /^permits:(\d+)$/.exec(stored);
  // An exclusive owner in an item once used as a semaphore: the id is a mutex now.
  if (m === null || m[1] === undefined || record.owner !== undefined) return { kind: "mutex" };
  return { kind: "permits", permits: Number(m[1]) };
}

/** Every holder of the item: the exclusive owner first, then the entries, oldest heartbeat first. */
export function holdersOf(record: LockRecord, rule: StaleRule): FoundHolder[] {
  const out: FoundHolder[] = [];
  if (record.owner !== undefined) {
    out.push({
      token: record.owner,
      version: record.version,
      info: {
        mode: "exclusive",
        holder: record.holder,
        key: record.owner.slice(0, KEY_LENGTH),
        fence: record.fence,
        heartbeatAt: record.heartbeatAt,
        leaseMs: record.leaseMs,
        stale: isStale(record.heartbeatAt, record.leaseMs, rule),
      },
    });
  }
  const mode = record.kind === "shared" ? "shared" : "permit";
  const entries = [...(record.holders ?? new Map<string, HolderEntry>())].sort(
    ([a, x], [b, y]) => (x.heartbeatAt ?? 0) - (y.heartbeatAt ?? 0) || (a < b ? -1 : 1),
  );
  for (const [token, entry] of entries) {
    out.push({
      token,
      version: entry.version,
      info: {
        mode,
        holder: entry.holder,
        key: token.slice(0, KEY_LENGTH),
        // Recorded by the holder's first heartbeat (or extend): the take cannot write it.
        fence: entry.fence,
        heartbeatAt: entry.heartbeatAt,
        leaseMs: entry.leaseMs,
        stale: isStale(entry.heartbeatAt, entry.leaseMs, rule),
      },
    });
  }
  return out;
}

export function intentOf(record: LockRecord, rule: StaleRule): LockIntentInfo | undefined {
  const intent = record.intent;
  if (intent === undefined) return undefined;
  return {
    holder: intent.holder,
    heartbeatAt: intent.heartbeatAt,
    leaseMs: intent.leaseMs,
    stale: isStale(intent.heartbeatAt, intent.leaseMs, rule),
  };
}

/**
 * The one holder `target` names: by key (the start of its token) or by name. Several holders named
 * alike and no key that settles it: "ambiguous", listing them, so the caller can pick by key.
 */
export function pickHolder(
  holders: readonly FoundHolder[],
  target: string,
): { found: FoundHolder } | { ambiguous: FoundHolder[] } | undefined {
  const byKey = holders.filter((h) => h.info.key === target);
  if (byKey.length === 1 && byKey[0] !== undefined) return { found: byKey[0] };
  const byName = holders.filter((h) => h.info.holder === target);
  const matches = byKey.length > 1 ? byKey : byName;
  if (matches.length === 1 && matches[0] !== undefined) return { found: matches[0] };
  if (matches.length > 1) return { ambiguous: matches };
  return undefined;
}

/**
 * Removes one permit or shared holder's entry, administratively: conditioned on the entry's exact
 * token and version as just read, so neither a heartbeat since (the holder is alive and a look again
 * decides) nor a late duplicate of this write touches anything else. `forcedOut` records the token,
 * so that the holder's next heartbeat, failing its condition, reports "released" rather than a
 * takeover. Other holders, data and fence are untouched; nothing is acquired.
 */
export function forceRemoveEntryRequest(
  schema: KeySchema,
  id: string,
  target: { readonly token: string; readonly version: number },
  /** The simulation's deliberate break `force-one-ignores-version`: any version goes. */
  ignoreVersion = false,
  /**
   * The item's fence as read with the target: pins the removal to that landing of the holder's
   * acquire. A late copy of the take can put the same entry (same token, version 1) back after a
   * removal, and a late copy of this removal would then take it away untold; every take moves the
   * fence on, so that copy fails (the simulation found it). Any other acquisition in between sends
   * the call back to read again.
   */
  fence?: number,
): UpdateItemCommandInput {
  const values: Record<string, AttributeValue> = {
    ":version": { N: String(target.version) },
    ":token": { S: target.token },
  };
  if (ignoreVersion) delete values[":version"];
  if (fence !== undefined) values[":fence"] = { N: String(fence) };
  const pin = fence === undefined ? "" : " AND #fence = :fence";
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: "REMOVE #holders.#target SET #forcedOut = :token",
    ConditionExpression:
      (ignoreVersion ? "attribute_exists(#holders.#target)" : "#holders.#target.#version = :version") + pin,
    ExpressionAttributeNames: {
      "#holders": FIELD.holders,
      "#target": target.token,
      ...(ignoreVersion ? {} : { "#version": FIELD.version }),
      "#forcedOut": FIELD.forcedOut,
      ...(fence === undefined ? {} : { "#fence": FIELD.fence }),
    },
    ExpressionAttributeValues: values,
  };
}
