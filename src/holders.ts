/**
 * Locks with more than one holder: counting semaphores (`permits: N`) and the shared side of
 * reader–writer locks (`mode: "shared"`). This module builds their requests and reads their part of
 * the item; docs/protocol.md ("More than one holder") is the authoritative description.
 *
 * One item per id, as for the mutex. Each holder is an entry of the map attribute `holders`, keyed
 * by its owner token, with its own version, lease, heartbeat time and name; `kind` says which kind
 * of multi-holder lock the entries belong to ("permits:N" or "shared"), so a caller that uses the
 * id another way is refused from the stored item itself; the top-level `fence` counter is shared by
 * every acquisition of the id, whatever its mode. A waiting exclusive acquirer (a writer) records
 * its intent in `intent`, with its own lease, and shared acquisitions are refused while it is live.
 *
 * DynamoDB rules these requests are built around (checked on dynalite and DynamoDB Local): SET or
 * REMOVE of `holders.#token` needs the map to exist (a ValidationException otherwise), the
 * condition is evaluated before that check, `size()` of a missing attribute makes its comparison
 * false, and one update may not touch overlapping paths. So every request that names an entry is
 * conditioned on something that implies the map exists, and the first acquisition of an item
 * without a map SETs the whole map instead (the "create" variant).
 */
import type { AttributeValue, TransactWriteItem, UpdateItemCommandInput } from "@aws-sdk/client-dynamodb";
import { FIELD, itemKey, type KeySchema, ttlAttributeOf } from "./item.js";
import { MAX_SHARED_HOLDERS } from "./multi-options.js";
import type { ProtocolKnobs } from "./options.js";
import { FIRST_VERSION } from "./requests.js";

/** What kind of multi-holder lock an acquire asks for. */
export type HolderKind = { readonly permits: number } | { readonly shared: true };

/** The stored form of a kind: equality of this string is the mixing check. */
export function kindValue(kind: HolderKind): string {
  return "permits" in kind ? `permits:${kind.permits}` : "shared";
}

/** Names a kind as a caller would have asked for it, for error messages. */
export function describeKind(stored: string | undefined): string {
  if (stored === undefined) return "a mutex (exclusive)";
  if (stored === "shared") return 'a reader–writer lock (mode "shared")';
  const m = /^permits:(\d+)$/.exec(stored);
  return m === null ? `"${stored}"` : `a semaphore of ${m[1]} permits`;
}

const N = (n: number): AttributeValue => ({ N: String(n) });
const S = (s: string): AttributeValue => ({ S: s });

const NAMES = {
  "#owner": FIELD.owner,
  "#fence": FIELD.fence,
  "#holders": FIELD.holders,
  "#kind": FIELD.kind,
  "#intent": FIELD.intent,
  "#version": FIELD.version,
  "#heartbeatAt": FIELD.heartbeatAt,
  "#leaseMs": FIELD.leaseMs,
  "#holder": FIELD.holder,
  "#token": "token",
} as const;
type Name = keyof typeof NAMES;
function names(...used: Name[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of used) out[n] = NAMES[n];
  return out;
}

/** A holder's entry (or a writer's intent), as written. */
function entryValue(p: {
  holder: string;
  leaseMs: number;
  wallNow: number;
  version: number;
}): AttributeValue {
  return {
    M: {
      [FIELD.version]: N(p.version),
      [FIELD.leaseMs]: N(p.leaseMs),
      [FIELD.heartbeatAt]: N(p.wallNow),
      [FIELD.holder]: S(p.holder),
    },
  };
}

/** Condition parts of the multi-holder requests, each stating what it protects. */
const PART = {
  /** No exclusive holder (mutex owner) is in. */
  noOwner: "attribute_not_exists(#owner)",
  /** The map exists and is empty: any kind may start using the id. */
  noHolders: "size(#holders) = :zero",
  /** Nobody has ever held the id this way: the map is created whole. */
  noMap: "attribute_not_exists(#holders)",
  /** This token is not in already: a late duplicate of our own acquire cannot overwrite our entry. */
  notInYet: "attribute_not_exists(#holders.#me)",
  /** The holders in are of the kind we ask for (the mixing check). */
  sameKind: "#kind = :kind",
  /** A free permit: the count is the condition, never a number the client read. */
  freePermit: "size(#holders) < :permits",
  /** After the stale entry goes and ours comes, the count is still within N. */
  withinPermits: "size(#holders) <= :permits",
  /** The exact entry a waiter judged stale is still there (any heartbeat changes its version). */
  entryObservedStale: "#holders.#stale.#version = :staleVersion",
  /** No writer waits. */
  noIntent: "attribute_not_exists(#intent)",
  /** The exact writer's intent judged stale is still there. */
  intentObservedStale: "(#intent.#token = :staleIntent AND #intent.#version = :staleIntentVersion)",
  /** Our entry is still in, and no newer write of ours has been applied. */
  myEntryNotSuperseded: "#holders.#me.#version <= :version",
  /** Our entry is still in. */
  myEntry: "attribute_exists(#holders.#me)",
} as const;

export interface TakeParams {
  readonly token: string;
  readonly holder: string;
  readonly leaseMs: number;
  readonly wallNow: number;
  readonly kind: HolderKind;
  /** The item has no `holders` map yet: create it whole. */
  readonly create: boolean;
  /** Reclaim this entry, judged stale at this exact version, in the same request. */
  readonly stale?: { readonly token: string; readonly version: number } | undefined;
  /** Shared only: remove this writer's intent, judged stale at this exact version. */
  readonly staleIntent?: { readonly token: string; readonly version: number } | undefined;
  /** @internal Deliberate faults for the simulation's tests. */
  readonly knobs?: ProtocolKnobs | undefined;
}

/**
 * take: one UpdateItem that adds our entry (taking a free permit, or joining the shared holders),
 * optionally reclaiming one stale entry in the same write, and bumps the fence. Returns the whole
 * new item (data and fence) and, on a failed condition, the old one.
 */
export function takeRequest(schema: KeySchema, id: string, p: TakeParams): UpdateItemCommandInput {
  const permits = "permits" in p.kind ? p.kind.permits : undefined;
  /** Shared holders are counted too (the item's size): at most `MAX_SHARED_HOLDERS` at once. */
  const cap = permits ?? MAX_SHARED_HOLDERS;
  const values: Record<string, AttributeValue> = { ":kind": S(kindValue(p.kind)), ":one": N(1) };
  const used: Name[] = ["#owner", "#holders", "#kind", "#fence"];
  const extraNames: Record<string, string> = { "#expiresAt": ttlAttributeOf(schema) };
  const entry = entryValue({ ...p, version: FIRST_VERSION });
  const conditions: string[] = [PART.noOwner];
  const removes = ["#expiresAt"];
  let set: string;
  if (p.create) {
    conditions.push(PART.noMap);
    set = "#holders = :map";
    values[":map"] = { M: { [p.token]: entry } };
  } else {
    extraNames["#me"] = p.token;
    set = "#holders.#me = :entry";
    values[":entry"] = entry;
    conditions.push(PART.notInYet);
    if (p.stale !== undefined) {
      extraNames["#stale"] = p.stale.token;
      removes.push("#holders.#stale");
      conditions.push(PART.sameKind);
      if (p.knobs?.evictIgnoresVersion === true) conditions.push("attribute_exists(#holders.#stale)");
      else {
        used.push("#version");
        conditions.push(PART.entryObservedStale);
        values[":staleVersion"] = N(p.stale.version);
      }
      if (p.knobs?.permitsUncounted !== true) {
        conditions.push(PART.withinPermits);
        values[":permits"] = N(cap);
      }
    } else if (permits !== undefined) {
      if (p.knobs?.permitsUncounted === true) {
        conditions.push(`(${PART.noHolders} OR ${PART.sameKind})`);
      } else {
        conditions.push(`(${PART.noHolders} OR (${PART.sameKind} AND ${PART.freePermit}))`);
        values[":permits"] = N(permits);
      }
      values[":zero"] = N(0);
    } else if (p.knobs?.permitsUncounted === true) {
      conditions.push(`(${PART.noHolders} OR ${PART.sameKind})`);
      values[":zero"] = N(0);
    } else {
      conditions.push(`(${PART.noHolders} OR (${PART.sameKind} AND ${PART.freePermit}))`);
      values[":permits"] = N(cap);
      values[":zero"] = N(0);
    }
  }
  if (permits === undefined && p.knobs?.sharedIgnoresIntent !== true) {
    // Shared: refused while a live writer waits; a stale intent is removed in the same write.
    used.push("#intent");
    if (p.staleIntent === undefined) conditions.push(PART.noIntent);
    else {
      used.push("#token", "#version");
      conditions.push(PART.intentObservedStale);
      values[":staleIntent"] = S(p.staleIntent.token);
      values[":staleIntentVersion"] = N(p.staleIntent.version);
      removes.push("#intent");
    }
  }
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: `SET ${set}, #kind = :kind REMOVE ${removes.join(", ")} ADD #fence :one`,
    ConditionExpression: conditions.join(" AND "),
    ExpressionAttributeNames: { ...names(...new Set(used)), ...extraNames },
    ExpressionAttributeValues: values,
    ReturnValues: "ALL_NEW",
    ReturnValuesOnConditionCheckFailure: "ALL_OLD",
  };
}

/**
 * heartbeat of one entry: a new version and heartbeat time, conditioned on the entry still being
 * ours and not superseded (a retry of this very write succeeds, a delayed older one fails).
 */
export function renewEntryRequest(
  schema: KeySchema,
  id: string,
  p: {
    readonly token: string;
    readonly version: number;
    readonly wallNow: number;
    /**
     * This holder's fence, recorded in its entry for `read()` and `status` (the take cannot write
     * it: the counter is moved by the same request). Informational only: nothing is conditioned on it.
     */
    readonly fence?: number | undefined;
  },
): UpdateItemCommandInput {
  const withFence = p.fence !== undefined;
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: `SET #holders.#me.#version = :version, #holders.#me.#heartbeatAt = :now${withFence ? ", #holders.#me.#fence = :fence" : ""}`,
    ConditionExpression: PART.myEntryNotSuperseded,
    ExpressionAttributeNames: {
      ...names("#holders", "#version", "#heartbeatAt", ...(withFence ? (["#fence"] as const) : [])),
      "#me": p.token,
    },
    ExpressionAttributeValues: {
      ":version": N(p.version),
      ":now": N(p.wallNow),
      ...(withFence ? { ":fence": N(p.fence as number) } : {}),
    },
    ReturnValuesOnConditionCheckFailure: "ALL_OLD",
  };
}

/**
 * release of one entry, or the reclaim of one judged stale (`version` given: conditioned on that
 * exact version). The rest of the item (other holders, data, fence) is untouched.
 */
export function removeEntryRequest(
  schema: KeySchema,
  id: string,
  token: string,
  version?: number,
): UpdateItemCommandInput {
  const exact = version !== undefined;
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: "REMOVE #holders.#me",
    ConditionExpression: exact ? "#holders.#me.#version = :version" : PART.myEntry,
    ExpressionAttributeNames: {
      ...names("#holders", ...(exact ? (["#version"] as const) : [])),
      "#me": token,
    },
    ...(exact ? { ExpressionAttributeValues: { ":version": N(version) } } : {}),
    ReturnValuesOnConditionCheckFailure: "ALL_OLD",
  };
}

/** guard for a multi-holder lock: our entry is still in. */
export function guardEntryCheck(schema: KeySchema, id: string, token: string): TransactWriteItem {
  return {
    ConditionCheck: {
      TableName: schema.table,
      Key: itemKey(schema, id),
      ConditionExpression: PART.myEntry,
      ExpressionAttributeNames: { ...names("#holders"), "#me": token },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
    },
  };
}

/**
 * A waiting writer's intent: written (or refreshed, with a new version) while shared holders or
 * another exclusive holder are in; new shared acquisitions are refused while it is live. It has its
 * own lease: a writer that dies while waiting stops refreshing, and readers judge its intent stale
 * by the same rules as a holder. Conditioned on there being no intent, or our own, or the exact
 * stale one judged.
 */
export function intentRequest(
  schema: KeySchema,
  id: string,
  p: {
    readonly token: string;
    readonly version: number;
    readonly holder: string;
    readonly leaseMs: number;
    readonly wallNow: number;
    readonly stale?: { readonly token: string; readonly version: number } | undefined;
    /** A refresh of our intent seen in the item: only while it is still there (never re-installed). */
    readonly refresh?: boolean | undefined;
  },
): UpdateItemCommandInput {
  const entry = entryValue(p);
  (entry.M as Record<string, AttributeValue>).token = S(p.token);
  const values: Record<string, AttributeValue> = { ":intent": entry, ":me": S(p.token) };
  let condition = p.refresh === true ? "#intent.#token = :me" : `(${PART.noIntent} OR #intent.#token = :me)`;
  if (p.stale !== undefined) {
    condition = PART.intentObservedStale;
    values[":staleIntent"] = S(p.stale.token);
    values[":staleIntentVersion"] = N(p.stale.version);
    delete values[":me"];
  }
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: "SET #intent = :intent",
    ConditionExpression: condition,
    ExpressionAttributeNames: names(
      "#intent",
      "#token",
      ...(p.stale === undefined ? [] : (["#version"] as const)),
    ),
    ExpressionAttributeValues: values,
    ReturnValuesOnConditionCheckFailure: "ALL_OLD",
  };
}

/** Withdraws our intent (a writer that gave up), never anyone else's. */
export function withdrawIntentRequest(schema: KeySchema, id: string, token: string): UpdateItemCommandInput {
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: "REMOVE #intent",
    ConditionExpression: "#intent.#token = :me",
    ExpressionAttributeNames: names("#intent", "#token"),
    ExpressionAttributeValues: { ":me": S(token) },
  };
}

/**
 * Removes an exclusive holder judged stale, at the exact (owner, version) judged, so that shared
 * acquirers can come in. Data and fence stay, as after a release.
 */
export function evictOwnerRequest(
  schema: KeySchema,
  id: string,
  stale: { readonly owner: string; readonly version: number },
): UpdateItemCommandInput {
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: "REMOVE #owner, #version, #leaseMs, #heartbeatAt, #holder",
    ConditionExpression: "#owner = :staleOwner AND #version = :staleVersion",
    ExpressionAttributeNames: names("#owner", "#version", "#leaseMs", "#heartbeatAt", "#holder"),
    ExpressionAttributeValues: { ":staleOwner": S(stale.owner), ":staleVersion": N(stale.version) },
  };
}
