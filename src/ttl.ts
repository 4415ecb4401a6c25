/**
 * Optional TTL cleanup of long-released lock items (docs/ttl.md): the options that turn it on, and
 * turning DynamoDB's Time to Live on for the table. It never decides anything about ownership: a
 * held lock carries no expiry (see ExpirySchema in item.ts), so TTL can only remove released items.
 */
import {
  DescribeTimeToLiveCommand,
  type TimeToLiveDescription,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import type { DynamoDBSender } from "./aws.js";
import { LockError } from "./errors.js";
import { DEFAULT_TTL_ATTRIBUTE, type ExpirySchema, FIELD, type KeySchema, ttlAttributeOf } from "./item.js";
import { attributeName, fail, positiveDuration } from "./validate.js";

/** What `releasedTtlMs: true` means: a released lock item is kept for 7 days. */
export const DEFAULT_RELEASED_TTL_MS = 7 * 24 * 60 * 60 * 1000;

/** Resolves the `releasedTtlMs` / `ttlAttribute` options. */
export function resolveExpiry(
  releasedTtlMs: unknown,
  ttlAttribute: unknown,
  keyNames: readonly string[],
): ExpirySchema {
  const attribute =
    ttlAttribute === undefined ? DEFAULT_TTL_ATTRIBUTE : attributeName("ttlAttribute", ttlAttribute);
  if (keyNames.includes(attribute) || (Object.values(FIELD) as string[]).includes(attribute)) {
    throw new RangeError(
      `Expected \`ttlAttribute\` to be an attribute of its own, got "${attribute}", which is a key or a lock field`,
    );
  }
  let retainMs: number | undefined;
  if (releasedTtlMs === undefined || releasedTtlMs === false) retainMs = undefined;
  else if (releasedTtlMs === true) retainMs = DEFAULT_RELEASED_TTL_MS;
  else if (typeof releasedTtlMs === "number") retainMs = positiveDuration("releasedTtlMs", releasedTtlMs);
  else fail("releasedTtlMs", "a positive finite number of milliseconds, true or false", releasedTtlMs);
  return { attribute, retainMs };
}

/** What `createTable({ ttl: true })` found or did. */
export type TimeToLiveOutcome = "enabled" | "already-enabled" | "unsupported";

const isUnknownOperation = (err: unknown) =>
  (err as { name?: string } | undefined)?.name === "UnknownOperationException";

function unsupported(table: string, err: unknown): TimeToLiveOutcome {
  // Not an error: TTL cleanup is optional and nothing depends on it. But say so, once per call.
  process.emitWarning(
    `dynamolock: the server does not support Time to Live (${(err as Error)?.name ?? "error"}), so released lock items in table "${table}" will not be deleted automatically. Locks work as before.`,
    { code: "DYNAMOLOCK_TTL_UNSUPPORTED" },
  );
  return "unsupported";
}

/**
 * Turns TTL on for the lock table, on the schema's expiry attribute. Already on with that attribute
 * is fine; on with another attribute is a LockError (DynamoDB allows one per table, and lock items
 * would then never expire). A server without TTL (dynalite) gets a process warning, not an error.
 */
export async function enableTimeToLive(
  client: DynamoDBSender,
  schema: KeySchema,
  signal: AbortSignal | undefined,
): Promise<TimeToLiveOutcome> {
  const table = schema.table;
  const attribute = ttlAttributeOf(schema);
  const abort = signal === undefined ? {} : { abortSignal: signal };
  let current: TimeToLiveDescription | undefined;
  try {
    current = (await client.send(new DescribeTimeToLiveCommand({ TableName: table }), abort))
      .TimeToLiveDescription;
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    if (isUnknownOperation(err)) return unsupported(table, err);
    throw new LockError(`Reading the Time to Live of table "${table}" failed: ${(err as Error)?.message}`, {
      code: "ETABLE",
      cause: err,
    });
  }
  const status = current?.TimeToLiveStatus;
  if (status === "ENABLED" || status === "ENABLING") {
    if (current?.AttributeName === attribute) return "already-enabled";
    throw new LockError(
      `Table "${table}" has Time to Live on attribute "${current?.AttributeName}", not on "${attribute}": DynamoDB allows one TTL attribute per table. Set \`ttlAttribute: "${current?.AttributeName}"\` on the LockClient (it must hold epoch seconds), or keep TTL cleanup off`,
      { code: "ETABLE" },
    );
  }
  try {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: table,
        TimeToLiveSpecification: { Enabled: true, AttributeName: attribute },
      }),
      abort,
    );
    return "enabled";
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    if (isUnknownOperation(err)) return unsupported(table, err);
    throw new LockError(
      `Turning on Time to Live for table "${table}" failed: ${(err as Error)?.message}${status === "DISABLING" ? " (TTL is still being turned off; DynamoDB allows one change per hour)" : ""}`,
      { code: "ETABLE", cause: err },
    );
  }
}
