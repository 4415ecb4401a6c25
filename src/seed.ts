/**
 * The go-dynamolock model as two functions: `lock()` takes a lock and reads its data, `read()`
 * reads the data without locking. Each uses the caller's client, or one shared `new
 * DynamoDBClient({})` configured from the environment (`AWS_ENDPOINT_URL_DYNAMODB` included).
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { DynamoDBSender } from "./aws.js";
import { LockClient, sharedDefaultClient } from "./client.js";
import type { LockData } from "./data.js";
import type { Lock, SignalOptions } from "./lock.js";
import type { LockClientOptions } from "./options.js";
import { checkHeartbeat, LOCK_CLIENT_OPTIONS } from "./options.js";
import { optionsObject, positiveDuration } from "./validate.js";

/** lock()'s options: the LockClient's, with the seed's lease names, and the acquire's. */
const LOCK_OPTIONS = [
  ...LOCK_CLIENT_OPTIONS.filter((name) => name !== "table" && name !== "leaseMs"),
  "maxAgeMs",
  "waitMs",
  "signal",
] as const satisfies readonly (keyof LockOptions)[];

export interface LockOptions extends Omit<LockClientOptions, "table" | "leaseMs" | "heartbeatMs"> {
  /**
   * The lease: after a failure to unlock or heartbeat, this much time must pass before another
   * caller can take the lock.
   * @default 30_000
   */
  readonly maxAgeMs?: number;
  /** How often to heartbeat. @default maxAgeMs / 6 */
  readonly heartbeatMs?: number;
  /** How long to wait for a held lock. @default 0 */
  readonly waitMs?: number;
  /** Aborts the wait. */
  readonly signal?: AbortSignal;
}

export interface HeldLock<Data extends object> {
  /** The data stored with the lock when it was taken (undefined when nothing was stored yet). */
  readonly data: Data | undefined;
  /** Fencing token of this acquisition. */
  readonly fence: number;
  /** Aborted (reason: LockLostError) when the lock is lost. */
  readonly signal: AbortSignal;
  /** Writes data without unlocking. */
  update(data: Data, options?: SignalOptions): Promise<void>;
  /** Writes data (if given; otherwise keeps the stored data) and unlocks. */
  unlock(data?: Data, options?: SignalOptions): Promise<void>;
  /** The underlying Lock, for everything else. */
  readonly lock: Lock<Data>;
}

function clientFor(client: DynamoDBClient | DynamoDBSender | undefined): DynamoDBClient | DynamoDBSender {
  return client ?? sharedDefaultClient();
}

/** Takes the lock `id` in `table` and reads its data; rejects with LockHeldError if it is held. */
export async function lock<Data extends object = LockData>(
  table: string,
  id: string,
  options?: LockOptions,
): Promise<HeldLock<Data>> {
  const { maxAgeMs, heartbeatMs, waitMs, signal, client, ...rest } = optionsObject<LockOptions>(
    "options",
    options,
    LOCK_OPTIONS,
  );
  // Checked here so that errors name the seed's own option, `maxAgeMs`.
  if (maxAgeMs !== undefined) {
    positiveDuration("maxAgeMs", maxAgeMs);
    if (heartbeatMs !== undefined)
      checkHeartbeat(maxAgeMs, positiveDuration("heartbeatMs", heartbeatMs), "maxAgeMs");
  }
  const locks = new LockClient({
    ...rest,
    table,
    client: clientFor(client),
    ...(maxAgeMs === undefined ? {} : { leaseMs: maxAgeMs }),
    ...(heartbeatMs === undefined ? {} : { heartbeatMs }),
  });
  const held = await locks.acquire<Data>(id, {
    ...(waitMs === undefined ? {} : { waitMs }),
    ...(signal === undefined ? {} : { signal }),
  });
  return {
    data: held.data,
    fence: held.fence,
    // A getter, not a copy: reading it checks the lease on the monotonic clock (after a freeze).
    get signal() {
      return held.signal;
    },
    update: (data, options) => held.update(data, options),
    unlock: (data, options) => held.release(data, options),
    lock: held,
  };
}

/** Reads the data stored with lock `id` in `table`, without locking. */
export async function read<Data extends object = LockData>(
  table: string,
  id: string,
  options?: Pick<LockClientOptions, "client" | "partitionKey" | "sortKey"> & {
    readonly signal?: AbortSignal;
  },
): Promise<Data | undefined> {
  const { client, signal, ...rest } = optionsObject<NonNullable<typeof options>>("options", options, [
    "client",
    "partitionKey",
    "sortKey",
    "signal",
  ]);
  const locks = new LockClient({ ...rest, table, client: clientFor(client) });
  const info = await locks.read<Data>(id, signal === undefined ? undefined : { signal });
  return info?.data;
}
