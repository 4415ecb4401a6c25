/**
 * LockClient options: their documented defaults, applied in one place, and their checks.
 */
import { hostname } from "node:os";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { DynamoDBSender } from "./aws.js";
import type { BackoffSettings } from "./backoff.js";
import { MAX_ITEM_BYTES } from "./data.js";
import { DEFAULT_TTL_ATTRIBUTE, FIELD, type KeySchema } from "./item.js";
import { CLOCK_RATE_DRIFT } from "./lease.js";
import { type Runtime, systemRuntime } from "./runtime.js";
import { resolveExpiry } from "./ttl.js";
import {
  attributeName,
  fail,
  keyString,
  nonNegativeOrInfinite,
  optionsObject,
  positiveDuration,
  tableName,
  utf8Length,
} from "./validate.js";

export interface LockClientOptions {
  /** The DynamoDB table holding the locks. Required. */
  readonly table: string;
  /**
   * Your DynamoDB client (credentials, region, middleware are yours).
   * @default new DynamoDBClient({}) — the SDK's configuration from the environment
   */
  readonly client?: DynamoDBClient | DynamoDBSender;
  /**
   * The lease: how long after its last confirmed heartbeat a holder may still be believed alive.
   * A crashed holder's lock is free again at most this long after its last heartbeat.
   * @default 30_000
   */
  readonly leaseMs?: number;
  /**
   * How often a holder renews its lease. At most a third of `leaseMs`, so that a failed heartbeat
   * can be retried before the lease runs out.
   * @default leaseMs / 6 (5_000 for the default lease)
   */
  readonly heartbeatMs?: number;
  /**
   * `false`: locks renew their lease only when you call `lock.extend()` (or `update()`), never on a
   * timer, for environments that freeze between invocations such as AWS Lambda (docs/lambda.md).
   * `held` and `signal` still turn false / abort once the lease has run out on the monotonic clock.
   * Each acquire may override it.
   * @default true
   */
  readonly heartbeat?: boolean;
  /** @default "id" — the table's partition key attribute (type S); lock ids are its values. */
  readonly partitionKey?: string;
  /**
   * For tables with a sort key: its attribute name (type S) and the constant value lock items use,
   * so locks can live beside other items in a single-table design.
   * @default undefined (the table has a partition key only)
   */
  readonly sortKey?: { readonly name: string; readonly value: string };
  /**
   * A human-readable name recorded with the lock, shown to waiters and in LockHeldError.
   * @default `${hostname()}:${process.pid}`
   */
  readonly holder?: string;
  /**
   * Bound on wall-clock error: every participant's wall clock must stay within ±`maxClockSkewMs`/2
   * of true time (so any two differ by at most `maxClockSkewMs`). A waiter treats a holder as dead
   * once its own wall clock is more than `leaseMs + maxClockSkewMs` past the holder's last recorded
   * heartbeat, without first watching a whole lease go by. `Infinity` turns this shortcut off and
   * relies on the skew-immune observed-lease rule alone, which needs a waiter that watches the lock
   * for one whole lease: `tryAcquire()` and waits shorter than a lease then never take over a
   * crashed holder's lock.
   * @default 1_000
   */
  readonly maxClockSkewMs?: number;
  /**
   * Backoff between a waiter's reads: the first delay is drawn from [pollMinMs/2, pollMinMs],
   * doubling up to [pollMaxMs/2, pollMaxMs].
   * @default 50
   */
  readonly pollMinMs?: number;
  /** @default 1_000 */
  readonly pollMaxMs?: number;
  /**
   * Opt-in cleanup of lock items that stay released for a long time, by DynamoDB's Time to Live:
   * every release records an expiry (`ttlAttribute`, epoch seconds) this long after it, and DynamoDB
   * deletes the item some time after that if TTL is on for the table (`createTable({ ttl: true })`).
   * Acquire and heartbeats remove the expiry, so a held lock is never deleted. A deleted item loses
   * its data and its fence restarts at 1: read docs/ttl.md first. `true` means 7 days.
   * @default false (released lock items are kept forever)
   */
  readonly releasedTtlMs?: number | boolean;
  /**
   * The table's TTL attribute (a number of epoch seconds). Acquire and heartbeats remove it even
   * when `releasedTtlMs` is off, so keep this setting as long as lock items may carry it.
   * @default "expiresAt"
   */
  readonly ttlAttribute?: string;
  /**
   * Look at the table once, at this client's first use of it (one DescribeTable), and refuse a global
   * table whose replicas are only eventually consistent (docs/global-tables.md). `false` skips the
   * look: you vouch that the table is in one Region or strongly consistent.
   * @default true
   */
  readonly checkTable?: boolean;
  /**
   * Opt-in for a global table with multi-Region eventual consistency (MREC): the one Region whose
   * endpoint every locker of this table sends its requests to. Locks on such a table are safe only
   * then. Checked against the table's replicas and this client's Region, and written to the
   * process's warnings once.
   * @default undefined (an MREC table is refused)
   */
  readonly singleWriterRegion?: string;
  /**
   * Clocks, timers and randomness. For tests and simulation only.
   * @default the system's (Date.now, performance.now, setTimeout, crypto)
   */
  readonly runtime?: Runtime;
}

export const DEFAULT_LEASE_MS = 30_000;
export const DEFAULT_MAX_CLOCK_SKEW_MS = 1_000;
export const DEFAULT_POLL_MIN_MS = 50;
export const DEFAULT_POLL_MAX_MS = 1_000;
/** heartbeatMs may be at most this share of leaseMs. */
export const MAX_HEARTBEAT_SHARE = 1 / 3;
/** Room for the lock's own fields in the 400 KB item (names and values, rounded up). */
const LOCK_FIELDS_BYTES = 512;

/**
 * @internal Deliberate protocol faults, for the simulation's tests that prove it can find a broken
 * protocol (test/sim). Not part of the API: not exported by the package, undocumented, passed only
 * under the {@link PROTOCOL_KNOBS} key, and undefined unless such a test sets it (every use is a
 * `knobs?.` read, so the normal path pays nothing else).
 */
export interface ProtocolKnobs {
  /** Waiters judge a lease stale this many ms before the stale rules allow. */
  readonly takeoverEarlyMs?: number;
  /** A takeover is conditioned on the stale owner only, not on the version that was judged stale. */
  readonly takeoverIgnoresVersion?: boolean;
  /** Heartbeats and updates require the exact previous version instead of `version <= ours`. */
  readonly renewOnExactVersion?: boolean;
  /** `release()` is sent at once instead of waiting behind a heartbeat in flight. */
  readonly releaseSkipsQueue?: boolean;
  /** An acquisition whose answer came back after its lease is handed out all the same. */
  readonly handOutLateAcquisitions?: boolean;
  // Regression switches: each puts back a defect the simulation once found (docs/safety.md).
  /** A release that fails its condition ignores our own token in `releasedBy`. */
  readonly releaseIgnoresReleasedBy?: boolean;
  /** A write lost while an attempt went unanswered is rejected as if nothing had been written. */
  readonly forgetUncertainWrites?: boolean;
  /** A heartbeat reads its wall clock (heartbeatAt) before its monotonic send time. */
  readonly wallStampBeforeSend?: boolean;
  /** `held` and `signal` trust the lock's state alone, not the monotonic clock (only timers declare expiry). */
  readonly heldIgnoresClock?: boolean;
  /** `extend()` counts the renewed lease from the arrival of its answer, not from its send. */
  readonly extendCountsFromReply?: boolean;
  /** Heartbeats and updates are not conditioned on the fence of their acquisition. */
  readonly renewIgnoresFence?: boolean;
  /** forceRelease removes whoever owns the lock when its write lands, not the owner it read. */
  readonly forceReleaseAnyOwner?: boolean;
  /** An acquire's retries write the token of its first write again. */
  readonly reuseAcquireToken?: boolean;
  /** An update whose condition failed is trusted not to have been written, although the SDK may have retried it. */
  readonly trustFailedCondition?: boolean;
  /** An acquire ignores the claim on the next turn (any contender may take a free lock). */
  readonly acquireIgnoresTurn?: boolean;
  /** A claim on the next turn never lapses: a waiter that stopped looking keeps its turn. */
  readonly turnNeverLapses?: boolean;
  /** A lock handed over by a release (src/hand-off.ts) counts its lease from the reply's arrival, not the send. */
  readonly handOffCountsFromReply?: boolean;
  /** A claim is not conditioned on the fence it was judged on: a late one may land after its wait ended. */
  readonly claimIgnoresFence?: boolean;
  // Multi-holder locks (src/holders.ts).
  /** A stale permit or shared entry is reclaimed without the check on its exact version. */
  readonly evictIgnoresVersion?: boolean;
  /** A permit is taken without the `size(holders) < N` condition. */
  readonly permitsUncounted?: boolean;
  /** Shared acquisitions ignore a waiting writer's intent. */
  readonly sharedIgnoresIntent?: boolean;
  /** An exclusive acquisition removes whatever writer's intent is recorded (not only its own). */
  readonly acquireRemovesIntent?: boolean;
  /** forceRelease(id, { holder }) removes the entry it read whatever its version (src/holder-info.ts). */
  readonly forceOneIgnoresVersion?: boolean;
  /** Regression switch: a later round of forceRelease(id, { holder }) picks by name again after its choice went. */
  readonly forceOneRepicks?: boolean;
}

/** @internal The options key under which test/sim passes {@link ProtocolKnobs}. */
export const PROTOCOL_KNOBS = Symbol("dynamolock.protocolKnobs");

/** Options after defaults, as the client and its locks use them. */
export interface ResolvedOptions {
  readonly schema: KeySchema;
  readonly client: DynamoDBSender | undefined;
  readonly leaseMs: number;
  readonly heartbeatMs: number;
  readonly heartbeat: boolean;
  readonly holder: string;
  readonly maxClockSkewMs: number;
  readonly poll: BackoffSettings;
  readonly runtime: Runtime;
  readonly clockDrift: number;
  readonly checkTable: boolean;
  readonly singleWriterRegion: string | undefined;
  /** @internal Deliberate protocol faults for the simulation's tests; undefined in normal use. */
  readonly knobs: ProtocolKnobs | undefined;
}

export function checkHeartbeat(leaseMs: number, heartbeatMs: number, leaseName = "leaseMs"): void {
  if (heartbeatMs > leaseMs * MAX_HEARTBEAT_SHARE) {
    throw new RangeError(
      `Expected \`heartbeatMs\` to be at most a third of \`${leaseName}\` (${leaseMs * MAX_HEARTBEAT_SHARE} ms), got \`${heartbeatMs}\` (number)`,
    );
  }
}

/**
 * A key attribute must not be one of the attributes the lock writes or removes: an acquire would
 * overwrite the key, and a release would try to remove it.
 */
function notALockField(name: string, value: string, ttlAttribute: unknown): void {
  // A ttlAttribute the caller chose is checked against the keys by resolveExpiry, naming it.
  const taken: string[] = [
    ...Object.values(FIELD),
    ...(ttlAttribute === undefined ? [DEFAULT_TTL_ATTRIBUTE] : []),
  ];
  if (taken.includes(value)) {
    throw new RangeError(
      `Expected \`${name}\` to differ from the attributes the lock itself writes (${taken.join(", ")}), got "${value}"`,
    );
  }
}

/** Every LockClient option, to refuse a misspelt one instead of ignoring it. */
export const LOCK_CLIENT_OPTIONS = [
  "table",
  "client",
  "leaseMs",
  "heartbeatMs",
  "heartbeat",
  "partitionKey",
  "sortKey",
  "holder",
  "maxClockSkewMs",
  "pollMinMs",
  "pollMaxMs",
  "releasedTtlMs",
  "ttlAttribute",
  "checkTable",
  "singleWriterRegion",
  "runtime",
] as const satisfies readonly (keyof LockClientOptions)[];

export function resolveOptions(input: unknown): ResolvedOptions {
  if (input === null || typeof input !== "object") fail("options", "an options object with a `table`", input);
  const o = optionsObject<LockClientOptions>("options", input, LOCK_CLIENT_OPTIONS) as LockClientOptions;
  const table = tableName("table", o.table);
  const leaseMs = o.leaseMs === undefined ? DEFAULT_LEASE_MS : positiveDuration("leaseMs", o.leaseMs);
  const heartbeatMs =
    o.heartbeatMs === undefined
      ? Math.max(1, Math.round(leaseMs / 6))
      : positiveDuration("heartbeatMs", o.heartbeatMs);
  checkHeartbeat(leaseMs, heartbeatMs);
  const partitionKey = o.partitionKey === undefined ? "id" : attributeName("partitionKey", o.partitionKey);
  notALockField("partitionKey", partitionKey, o.ttlAttribute);
  let sortKey: KeySchema["sortKey"];
  if (o.sortKey !== undefined) {
    const sk = optionsObject<{ name: string; value: string }>("sortKey", o.sortKey, ["name", "value"]);
    sortKey = {
      name: attributeName("sortKey.name", sk.name),
      value: keyString("sortKey.value", sk.value, 1024),
    };
    notALockField("sortKey.name", sortKey.name, o.ttlAttribute);
    if (sortKey.name === partitionKey) {
      throw new RangeError("Expected `sortKey.name` to differ from `partitionKey`, got the same name twice");
    }
  }
  const holder =
    o.holder === undefined ? `${hostname()}:${process.pid}` : keyString("holder", o.holder, 1024);
  const maxClockSkewMs =
    o.maxClockSkewMs === undefined
      ? DEFAULT_MAX_CLOCK_SKEW_MS
      : nonNegativeOrInfinite("maxClockSkewMs", o.maxClockSkewMs);
  const pollMinMs =
    o.pollMinMs === undefined ? DEFAULT_POLL_MIN_MS : positiveDuration("pollMinMs", o.pollMinMs);
  const pollMaxMs =
    o.pollMaxMs === undefined ? DEFAULT_POLL_MAX_MS : positiveDuration("pollMaxMs", o.pollMaxMs);
  if (pollMaxMs < pollMinMs) {
    throw new RangeError(
      `Expected \`pollMaxMs\` to be at least \`pollMinMs\` (${pollMinMs}), got \`${pollMaxMs}\``,
    );
  }
  if (o.client !== undefined && typeof (o.client as DynamoDBSender).send !== "function") {
    fail("client", "a DynamoDBClient", o.client);
  }
  if (o.heartbeat !== undefined && typeof o.heartbeat !== "boolean")
    fail("heartbeat", "a boolean", o.heartbeat);
  if (o.checkTable !== undefined && typeof o.checkTable !== "boolean")
    fail("checkTable", "a boolean", o.checkTable);
  const singleWriterRegion =
    o.singleWriterRegion === undefined
      ? undefined
      : keyString("singleWriterRegion", o.singleWriterRegion, 64);
  return {
    schema: {
      table,
      partitionKey,
      sortKey,
      // The expiry attribute must not be a key: keys cannot be removed.
      expiry: resolveExpiry(o.releasedTtlMs, o.ttlAttribute, [
        partitionKey,
        ...(sortKey === undefined ? [] : [sortKey.name]),
      ]),
    },
    client: o.client,
    leaseMs,
    heartbeatMs,
    heartbeat: o.heartbeat ?? true,
    holder,
    maxClockSkewMs,
    poll: { minMs: pollMinMs, maxMs: pollMaxMs },
    runtime: o.runtime ?? systemRuntime,
    clockDrift: CLOCK_RATE_DRIFT,
    checkTable: o.checkTable ?? true,
    singleWriterRegion,
    knobs: (o as { readonly [PROTOCOL_KNOBS]?: ProtocolKnobs })[PROTOCOL_KNOBS],
  };
}

/** What is left of DynamoDB's 400 KB for the caller's data in one lock item. */
export function dataBudgetBytes(options: ResolvedOptions, id: string): number {
  const { schema } = options;
  let keyBytes = utf8Length(schema.partitionKey) + utf8Length(id);
  if (schema.sortKey !== undefined)
    keyBytes += utf8Length(schema.sortKey.name) + utf8Length(schema.sortKey.value);
  return MAX_ITEM_BYTES - LOCK_FIELDS_BYTES - keyBytes - utf8Length(options.holder);
}
