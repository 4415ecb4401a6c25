/**
 * Turns lock operations into DynamoDB request inputs. This is the only module that knows request
 * shapes. Every name and value goes through ExpressionAttributeNames / ExpressionAttributeValues,
 * and every condition is built from the named parts below, each stating the invariant it protects.
 */
import type {
  AttributeValue,
  GetItemCommandInput,
  ScanCommandInput,
  TransactWriteItem,
  UpdateItemCommandInput,
} from "@aws-sdk/client-dynamodb";
import { expiresAtSeconds, FIELD, itemKey, type KeySchema, ttlAttributeOf } from "./item.js";
import type { ProtocolKnobs } from "./options.js";

const NAMES = {
  "#owner": FIELD.owner,
  "#version": FIELD.version,
  "#leaseMs": FIELD.leaseMs,
  "#heartbeatAt": FIELD.heartbeatAt,
  "#holder": FIELD.holder,
  "#fence": FIELD.fence,
  "#data": FIELD.data,
  "#releasedBy": FIELD.releasedBy,
  "#releasedAt": FIELD.releasedAt,
  "#next": FIELD.next,
  "#nextSince": FIELD.nextSince,
  "#nextMs": FIELD.nextMs,
  "#nextAt": FIELD.nextAt,
  "#holdMs": FIELD.holdMs,
  "#holders": FIELD.holders,
  "#kind": FIELD.kind,
  "#intent": FIELD.intent,
} as const;
type Name = keyof typeof NAMES;

/** Condition parts. Values are bound by the request that uses them. */
const CONDITION = {
  /** Nobody owns the lock. */
  lockIsFree: "attribute_not_exists(#owner)",
  /**
   * The exact holder state a waiter judged stale is still in place: if the holder wrote anything
   * since (a heartbeat, an update), the version differs and the takeover fails.
   */
  leaseObservedStale: "(#owner = :staleOwner AND #version = :staleVersion)",
  /** We still own the lock. */
  ownerIsMe: "#owner = :owner",
  /**
   * The acquisition in place is the one we hold. Every acquisition bumps the fence, so if a late
   * duplicate of an old acquire request put our token back after we had let go, the fence differs
   * and none of our own delayed writes can land on that ghost.
   */
  fenceIsOurs: "#fence = :fence",
  /**
   * No newer write of ours has been applied: a retry of this very write succeeds (same version),
   * a delayed duplicate of an older one fails instead of rolling the version back.
   */
  notSuperseded: "#version <= :version",
  /** Someone owns the lock. */
  lockIsHeld: "attribute_exists(#owner)",
  /**
   * The holder an administrator saw is still the owner: a late duplicate of a force-release (an SDK
   * retry whose first try arrives late) can then never remove whoever has acquired the lock since.
   */
  heldByTarget: "#owner = :target",
  /**
   * The next turn is ours to take (turn.ts): nobody's claim, our own, or one made by a waiter that
   * began after us. Fairness only: mutual exclusion rests on the parts above.
   */
  turnIsMine: "(attribute_not_exists(#next) OR #next = :waiter OR #nextSince > :since",
  /** ... or the exact claim we watched lapse: a renewal since (a new nextAt) defeats the takeover. */
  claimObservedLapsed: " OR (#next = :lapsed AND #nextAt = :lapsedAt)",
  /**
   * No permit or shared holder is in (src/holders.ts): the mutex, which is also the exclusive mode
   * of a reader–writer lock, never coexists with them.
   */
  noHolders: "(attribute_not_exists(#holders) OR size(#holders) = :zero)",
} as const;

/** The turn condition with its values bound; `lapsed` is the claim the waiter watched lapse, if any. */
function turnRule(turn: TurnParams, values: Record<string, AttributeValue>): string {
  values[":waiter"] = S(turn.waiter);
  values[":since"] = N(turn.since);
  let rule: string = CONDITION.turnIsMine;
  if (turn.lapsed !== undefined) {
    rule += CONDITION.claimObservedLapsed;
    values[":lapsed"] = S(turn.lapsed.next);
    values[":lapsedAt"] = N(turn.lapsed.nextAt);
  }
  return `${rule})`;
}

/** An acquire call as a waiter for the next turn (turn.ts). */
export interface TurnParams {
  readonly waiter: string;
  readonly since: number;
  /** The claim this waiter watched lapse, if any: it may be taken over, exactly as seen. */
  readonly lapsed?: { readonly next: string; readonly nextAt: number } | undefined;
}

/** The version an acquisition installs; every later write of the same acquisition adds one. */
export const FIRST_VERSION = 1;

function names(...used: Name[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of used) out[n] = NAMES[n];
  return out;
}

const N = (n: number): AttributeValue => ({ N: String(n) });
const S = (s: string): AttributeValue => ({ S: s });

/** The expiry (TTL) attribute, whose name is the table's choice (KeySchema.expiry). */
const EXPIRES_AT = "#expiresAt";
const expiryName = (schema: KeySchema): Record<string, string> => ({ [EXPIRES_AT]: ttlAttributeOf(schema) });

/**
 * Release's share of TTL cleanup: when it is on, the released item gets an expiry. Only releases
 * write one, and every write that takes or proves ownership removes it, so a held lock never has one.
 */
function releaseExpiry(
  schema: KeySchema,
  wallNow: number,
  values: Record<string, AttributeValue>,
): { update: string; names: Record<string, string> } {
  const retainMs = schema.expiry?.retainMs;
  if (retainMs === undefined) return { update: "", names: {} };
  values[":expiresAt"] = N(expiresAtSeconds(wallNow, retainMs));
  return { update: `, ${EXPIRES_AT} = :expiresAt`, names: expiryName(schema) };
}

export interface AcquireParams {
  readonly owner: string;
  readonly holder: string;
  readonly leaseMs: number;
  readonly wallNow: number;
  /** Present for the takeover of a lease judged stale: the exact state that was judged. */
  readonly stale?: { readonly owner: string; readonly version: number } | undefined;
  /** The acquire call as a waiter (turn.ts): the lock is taken only if the next turn is ours. */
  readonly turn?: TurnParams | undefined;
  /** @internal Deliberate faults for the simulation's tests (see ProtocolKnobs). */
  readonly knobs?: ProtocolKnobs | undefined;
}

/** The turn condition an acquire carries, with its values bound; the knobs break it for the simulation. */
function turnCondition(p: AcquireParams, values: Record<string, AttributeValue>): string {
  if (p.turn === undefined || p.knobs?.acquireIgnoresTurn === true) return "";
  return ` AND ${turnRule(p.turn, values)}`;
}

/**
 * acquire: one UpdateItem that takes a free (or stale) lock, bumps the fence, and returns the whole
 * new item (data and fence) in the same round trip. On a failed condition it asks for the old item,
 * so the waiter learns the holder without a second request where the server supports it.
 */
export function acquireRequest(schema: KeySchema, id: string, p: AcquireParams): UpdateItemCommandInput {
  const ignoreVersion = p.knobs?.takeoverIgnoresVersion === true;
  const dropIntent = p.knobs?.acquireRemovesIntent === true;
  const taking =
    p.stale === undefined
      ? CONDITION.lockIsFree
      : ignoreVersion
        ? "(#owner = :staleOwner)"
        : CONDITION.leaseObservedStale;
  const values: Record<string, AttributeValue> = {
    ":owner": S(p.owner),
    ":firstVersion": N(FIRST_VERSION),
    ":leaseMs": N(p.leaseMs),
    ":now": N(p.wallNow),
    ":holder": S(p.holder),
    ":one": N(1),
    ":zero": N(0),
  };
  if (p.stale !== undefined) {
    values[":staleOwner"] = S(p.stale.owner);
    if (!ignoreVersion) values[":staleVersion"] = N(p.stale.version);
  }
  const turn = turnCondition(p, values);
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    // Taking the lock uses up the claim on the turn (ours, a lapsed one, or a younger waiter's, who
    // will claim again). Another writer's intent stays: it still waits, and readers stay out until
    // it has had its turn. A writer that recorded one withdraws it itself once in
    // (src/multi-acquire.ts).
    UpdateExpression: `SET #owner = :owner, #version = :firstVersion, #leaseMs = :leaseMs, #heartbeatAt = :now, #holder = :holder REMOVE #expiresAt, ${dropIntent ? "#intent, " : ""}#next, #nextSince, #nextMs, #nextAt ADD #fence :one`,
    ConditionExpression: `${taking} AND ${CONDITION.noHolders}${turn}`,
    ExpressionAttributeNames: {
      ...names("#owner", "#version", "#leaseMs", "#heartbeatAt", "#holder", "#fence", "#holders"),
      ...(dropIntent ? names("#intent") : {}),
      ...names("#next", "#nextSince", "#nextMs", "#nextAt"),
      ...expiryName(schema),
    },
    ExpressionAttributeValues: values,
    ReturnValues: "ALL_NEW",
    ReturnValuesOnConditionCheckFailure: "ALL_OLD",
  };
}

export interface RenewParams {
  readonly owner: string;
  /** The version this write installs: one more than the holder's last. */
  readonly version: number;
  readonly wallNow: number;
  /** New data to store with the renewal (update), or undefined (heartbeat). */
  readonly data?: AttributeValue | undefined;
  /** The fence of our acquisition. */
  readonly fence: number;
  /** @internal Deliberate faults for the simulation's tests (see ProtocolKnobs). */
  readonly knobs?: ProtocolKnobs | undefined;
}

/**
 * heartbeat / update: refreshes the lease (new version, new heartbeatAt), optionally writing data.
 * Conditioned on ownership and on the version not having moved past this write, never on the exact
 * previous version: a heartbeat applied but not acknowledged must not make its retry fail.
 */
export function renewRequest(schema: KeySchema, id: string, p: RenewParams): UpdateItemCommandInput {
  const values: Record<string, AttributeValue> = {
    ":owner": S(p.owner),
    ":version": N(p.version),
    ":now": N(p.wallNow),
    ":fence": N(p.fence),
  };
  const fenced = p.knobs?.renewIgnoresFence !== true;
  if (!fenced) delete values[":fence"];
  const exact = p.knobs?.renewOnExactVersion === true;
  if (exact) values[":previous"] = N(p.version - 1);
  let update = "SET #version = :version, #heartbeatAt = :now";
  const used: Name[] = ["#owner", "#version", "#heartbeatAt", ...(fenced ? (["#fence"] as const) : [])];
  if (p.data !== undefined) {
    update += ", #data = :data";
    values[":data"] = p.data;
    used.push("#data");
  }
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: `${update} REMOVE ${EXPIRES_AT}`,
    ConditionExpression: `${CONDITION.ownerIsMe}${fenced ? ` AND ${CONDITION.fenceIsOurs}` : ""} AND ${exact ? "#version = :previous" : CONDITION.notSuperseded}`,
    ExpressionAttributeNames: { ...names(...used), ...expiryName(schema) },
    ExpressionAttributeValues: values,
    ReturnValuesOnConditionCheckFailure: "ALL_OLD",
  };
}

const RELEASE_UPDATE =
  "REMOVE #owner, #version, #leaseMs, #heartbeatAt, #holder SET #releasedBy = :owner, #releasedAt = :now";
const RELEASE_NAMES: Name[] = [
  "#owner",
  "#version",
  "#leaseMs",
  "#heartbeatAt",
  "#holder",
  "#releasedBy",
  "#releasedAt",
];

/**
 * release: removes the owner fields (keeping fence and data), optionally writing new data, and
 * records our token in `releasedBy` so that a retry after an ambiguous failure recognises that
 * its first attempt went through.
 */
export function releaseRequest(
  schema: KeySchema,
  id: string,
  p: {
    readonly owner: string;
    readonly wallNow: number;
    readonly data?: AttributeValue | undefined;
    /** The fence of our acquisition; undefined only to clean up an acquire whose outcome is unknown. */
    readonly fence?: number | undefined;
    /** The typical hold to record (waiting.ts), if known. */
    readonly holdMs?: number | undefined;
  },
): UpdateItemCommandInput {
  const values: Record<string, AttributeValue> = { ":owner": S(p.owner), ":now": N(p.wallNow) };
  const expiry = releaseExpiry(schema, p.wallNow, values);
  let update = RELEASE_UPDATE + expiry.update;
  const used = [...RELEASE_NAMES];
  update += releaseSets(p, values, used);
  let condition: string = CONDITION.ownerIsMe;
  if (p.fence !== undefined) {
    condition += ` AND ${CONDITION.fenceIsOurs}`;
    values[":fence"] = N(p.fence);
    used.push("#fence");
  }
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: update,
    ConditionExpression: condition,
    ExpressionAttributeNames: { ...names(...used), ...expiry.names },
    ExpressionAttributeValues: values,
    ReturnValuesOnConditionCheckFailure: "ALL_OLD",
  };
}

/**
 * What a release (plain or handing off) sets besides its own fields: the typical hold it records
 * (waiting.ts) and the data it writes, each if given. Adds their values and names.
 */
function releaseSets(
  p: { readonly holdMs?: number | undefined; readonly data?: AttributeValue | undefined },
  values: Record<string, AttributeValue>,
  used: Name[],
): string {
  let set = "";
  if (p.holdMs !== undefined) {
    set += ", #holdMs = :holdMs";
    values[":holdMs"] = N(p.holdMs);
    used.push("#holdMs");
  }
  if (p.data !== undefined) {
    set += ", #data = :data";
    values[":data"] = p.data;
    used.push("#data");
  }
  return set;
}

/**
 * hand-off (src/hand-off.ts): a release that passes ownership to a waiter of this process in the
 * same UpdateItem. The release's condition (ownerIsMe AND fenceIsOurs), and the acquire's effect for
 * the waiter: new owner, version 1, its lease and holder, heartbeatAt stamped at send, fence + 1, the
 * claim and intent fields removed. It also carries the acquire's turn condition for the waiter (its
 * wait's start), so it takes the lock only where the waiter's own acquire could: another process's
 * earlier claim makes it fail, and the releaser then releases plainly (turns keep their bound). No
 * kind: a semaphore or reader–writer id is never handed on this way. Data kept, or the release's.
 */
export function handOffRequest(
  schema: KeySchema,
  id: string,
  p: {
    readonly owner: string;
    readonly fence: number;
    readonly wallNow: number;
    readonly data?: AttributeValue | undefined;
    readonly holdMs?: number | undefined;
    readonly next: {
      readonly owner: string;
      readonly holder: string;
      readonly leaseMs: number;
      readonly since: number;
    };
  },
): UpdateItemCommandInput {
  const values: Record<string, AttributeValue> = {
    ":owner": S(p.owner),
    ":fence": N(p.fence),
    ":now": N(p.wallNow),
    ":newOwner": S(p.next.owner),
    ":firstVersion": N(FIRST_VERSION),
    ":leaseMs": N(p.next.leaseMs),
    ":holder": S(p.next.holder),
    ":one": N(1),
  };
  const turn = turnRule({ waiter: p.next.owner, since: p.next.since }, values);
  let set =
    "SET #owner = :newOwner, #version = :firstVersion, #leaseMs = :leaseMs, #heartbeatAt = :now, #holder = :holder, #releasedBy = :owner, #releasedAt = :now";
  const used: Name[] = [
    ...RELEASE_NAMES,
    "#fence",
    "#kind",
    "#intent",
    "#next",
    "#nextSince",
    "#nextMs",
    "#nextAt",
  ];
  set += releaseSets(p, values, used);
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: `${set} REMOVE ${EXPIRES_AT}, #intent, #next, #nextSince, #nextMs, #nextAt ADD #fence :one`,
    ConditionExpression: `${CONDITION.ownerIsMe} AND ${CONDITION.fenceIsOurs} AND attribute_not_exists(#kind) AND ${turn}`,
    ExpressionAttributeNames: { ...names(...used), ...expiryName(schema) },
    ExpressionAttributeValues: values,
    ReturnValues: "ALL_NEW",
    ReturnValuesOnConditionCheckFailure: "ALL_OLD",
  };
}

/** The `releasedBy` marker of an administrative release. */
export const FORCED_RELEASE = "force-release";

/**
 * forceRelease: removes the owner (administrative): `target`, the owner the caller has just read,
 * or without it whoever owns the lock. The holder finds out at its next heartbeat, which fails its
 * ownership condition. Returns the old item to report who was removed.
 */
export function forceReleaseRequest(
  schema: KeySchema,
  id: string,
  wallNow: number,
  target?: string,
  /**
   * The fence read with `target`: pins the removal to that acquisition. A token is unique to one
   * acquire request, but a late copy of that request can put the same token back after a removal
   * (the lock being free again); every landing moves the fence on, so a late copy of this removal
   * cannot take away the later landing, which nobody would tell.
   */
  fence?: number,
): UpdateItemCommandInput {
  const values: Record<string, AttributeValue> = { ":owner": S(FORCED_RELEASE), ":now": N(wallNow) };
  if (target !== undefined) values[":target"] = S(target);
  const pinned = target !== undefined && fence !== undefined;
  if (pinned) values[":fence"] = N(fence);
  const expiry = releaseExpiry(schema, wallNow, values);
  const condition = target === undefined ? CONDITION.lockIsHeld : CONDITION.heldByTarget;
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: RELEASE_UPDATE + expiry.update,
    ConditionExpression: pinned ? `${condition} AND ${CONDITION.fenceIsOurs}` : condition,
    ExpressionAttributeNames: {
      ...names(...RELEASE_NAMES, ...(pinned ? (["#fence"] as const) : [])),
      ...expiry.names,
    },
    ExpressionAttributeValues: values,
    ReturnValues: "ALL_OLD",
  };
}

/**
 * guard: a ConditionCheck on the lock item for the caller's own TransactWriteItems, so their writes
 * commit only if we still own the lock at the instant the transaction commits. Ownership of this
 * acquisition (owner and fence), not the version: our own heartbeats change the version while the
 * transaction is in flight. On failure
 * it asks for the old item, so the loss report can say who has the lock without another read.
 */
export function guardCheck(schema: KeySchema, id: string, owner: string, fence: number): TransactWriteItem {
  return {
    ConditionCheck: {
      TableName: schema.table,
      Key: itemKey(schema, id),
      ConditionExpression: `${CONDITION.ownerIsMe} AND ${CONDITION.fenceIsOurs}`,
      ExpressionAttributeNames: names("#owner", "#fence"),
      ExpressionAttributeValues: { ":owner": S(owner), ":fence": N(fence) },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
    },
  };
}

/** read: a strongly consistent read of the whole item. */
export function readRequest(schema: KeySchema, id: string): GetItemCommandInput {
  return { TableName: schema.table, Key: itemKey(schema, id), ConsistentRead: true };
}

/**
 * poll: a strongly consistent read of the lock's own fields only, leaving out the data, so a
 * waiter's repeated reads cost the minimum read units whatever the data's size.
 */
export function pollRequest(schema: KeySchema, id: string): GetItemCommandInput {
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    ConsistentRead: true,
    ProjectionExpression: POLLED.join(", "),
    ExpressionAttributeNames: names(...POLLED),
  };
}

/** The fields a poll reads: everything a waiter judges by, never the data. */
const POLLED: readonly Name[] = [
  "#owner",
  "#version",
  "#leaseMs",
  "#heartbeatAt",
  "#holder",
  "#fence",
  "#holders",
  "#kind",
  "#intent",
  "#next",
  "#nextSince",
  "#nextMs",
  "#nextAt",
  "#holdMs",
];

/**
 * claim: a waiter records that the next turn is its own (turn.ts), counting for `ms` unless renewed,
 * by the same rule the acquire checks. Sent when the waiter saw the lock held; it may land after a
 * release (short holds), and then reserves the free lock for the claimant all the same, so the
 * releaser cannot come straight back. Touches no lock field, so it never affects who holds the lock.
 */
export function claimRequest(
  schema: KeySchema,
  id: string,
  p: TurnParams & {
    readonly ms: number;
    readonly at: number;
    /**
     * The fence of the item the claim was judged on (undefined: a fresh item without one). A claim
     * that lands late, after an acquisition (its claimant's own, which removed the claim), finds
     * the fence moved on and fails, instead of leaving a claim nobody will use.
     */
    readonly fence?: number | undefined;
    /** A break for the simulation: no condition on the fence. */
    readonly ignoreFence?: boolean | undefined;
  },
): UpdateItemCommandInput {
  const values: Record<string, AttributeValue> = { ":ms": N(p.ms), ":at": N(p.at) };
  const rule = turnRule(p, values);
  let fenced = "attribute_not_exists(#fence)";
  if (p.fence !== undefined && p.ignoreFence !== true) {
    fenced = "#fence = :fence";
    values[":fence"] = N(p.fence);
  }
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: "SET #next = :waiter, #nextSince = :since, #nextMs = :ms, #nextAt = :at",
    ConditionExpression: p.ignoreFence === true ? rule : `${rule} AND ${fenced}`,
    ExpressionAttributeNames: names(
      "#next",
      "#nextSince",
      "#nextMs",
      "#nextAt",
      ...(p.ignoreFence === true ? [] : (["#fence"] as const)),
    ),
    ExpressionAttributeValues: values,
  };
}

/** withdraw: a waiter that gives up removes its claim, so the lock does not wait out the claim for it. */
export function withdrawRequest(schema: KeySchema, id: string, waiter: string): UpdateItemCommandInput {
  return {
    TableName: schema.table,
    Key: itemKey(schema, id),
    UpdateExpression: "REMOVE #next, #nextSince, #nextMs, #nextAt",
    ConditionExpression: "#next = :waiter",
    ExpressionAttributeNames: names("#next", "#nextSince", "#nextMs", "#nextAt"),
    ExpressionAttributeValues: { ":waiter": S(waiter) },
  };
}
/** What a listing asks the table for: see list.ts. */
export interface ScanParams {
  readonly pageSize: number;
  readonly consistent: boolean;
  readonly held: boolean;
  readonly prefix: string | undefined;
  readonly startKey: Record<string, AttributeValue> | undefined;
}

/**
 * One page of a listing. The filter runs on the server, so it saves bandwidth but not read units:
 * DynamoDB charges for every item a page examines, matching or not.
 */
export function scanRequest(schema: KeySchema, p: ScanParams): ScanCommandInput {
  const filters: string[] = [];
  const names: Record<string, string> = {};
  const values: Record<string, AttributeValue> = {};
  if (schema.sortKey !== undefined) {
    // Single-table designs keep other items beside the locks: only the lock items' sort-key value.
    filters.push("#sortKey = :sortKeyValue");
    names["#sortKey"] = schema.sortKey.name;
    values[":sortKeyValue"] = S(schema.sortKey.value);
  }
  if (p.prefix !== undefined) {
    filters.push("begins_with(#id, :prefix)");
    names["#id"] = schema.partitionKey;
    values[":prefix"] = S(p.prefix);
  }
  if (p.held) {
    // Held by an exclusive owner, or by permit or shared holders (entries of `holders`).
    filters.push(`(${CONDITION.lockIsHeld} OR size(#holders) > :zero)`);
    names["#owner"] = FIELD.owner;
    names["#holders"] = FIELD.holders;
    values[":zero"] = N(0);
  }
  return {
    TableName: schema.table,
    Limit: p.pageSize,
    ConsistentRead: p.consistent,
    ...(filters.length === 0
      ? {}
      : {
          FilterExpression: filters.join(" AND "),
          ExpressionAttributeNames: names,
          ...(Object.keys(values).length === 0 ? {} : { ExpressionAttributeValues: values }),
        }),
    ...(p.startKey === undefined ? {} : { ExclusiveStartKey: p.startKey }),
  };
}
