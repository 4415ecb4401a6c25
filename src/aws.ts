/**
 * The seam between the lock and the AWS SDK: sending commands through the caller's client, and
 * classifying what comes back (condition failed, retryable, missing table, wrong key schema).
 */
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LockError } from "./errors.js";
import type { KeySchema } from "./item.js";

/** What dynamolock needs of a DynamoDB client: `send`. A `DynamoDBClient` is one. */
export type DynamoDBSender = Pick<DynamoDBClient, "send">;

interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  Item?: Record<string, AttributeValue>;
}

const asSdkError = (err: unknown): SdkError =>
  typeof err === "object" && err !== null ? (err as SdkError) : {};

export function isConditionFailed(err: unknown): boolean {
  return asSdkError(err).name === "ConditionalCheckFailedException";
}

/** The old item a failed conditional write returned (`ReturnValuesOnConditionCheckFailure`), if any. */
export function oldItemOf(err: unknown): Record<string, AttributeValue> | undefined {
  const item = asSdkError(err).Item;
  return item !== undefined && Object.keys(item).length > 0 ? item : undefined;
}

const THROTTLING = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
  "LimitExceededException",
  "TransactionInProgressException",
  // A write to an item while a transaction (e.g. a guarded write, lock.transact) holds it.
  "TransactionConflictException",
]);

/**
 * Whether trying again may succeed: throttling, server errors, and failures with no HTTP answer
 * (time-outs, resets, aborted attempts). Only the last two can hide a write that was applied.
 */
export function isRetryable(err: unknown): boolean {
  const e = asSdkError(err);
  if (e.name !== undefined && THROTTLING.has(e.name)) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status === undefined) return true;
  return status >= 500 || status === 429;
}

/**
 * Whether a failed write may have been applied all the same: it got no answer (a time-out, a reset,
 * an aborted attempt) or a server error, which DynamoDB does not promise was a no-op. A refusal
 * (4xx: throttled, invalid, denied, condition failed) was not applied, and neither was a request
 * that failed before it was sent (no credentials or region: errors without a status that trying
 * again cannot fix).
 */
export function mayHaveBeenApplied(err: unknown): boolean {
  const status = asSdkError(err).$metadata?.httpStatusCode;
  return status === undefined ? isRetryable(err) : status >= 500;
}

/**
 * How servers word a request whose key does not fit the table: dynalite and DynamoDB name the
 * mismatched element; DynamoDB Local says a required key was not given, or (for a sort key it did not
 * get) that the number of conditions on the keys is invalid.
 */
const KEY_SCHEMA_MISMATCH =
  /key element does not match the schema|missing the key|key schema|required keys was not given a value|number of conditions on the keys is invalid/i;

/** Turns a missing table or a key-schema mismatch into a LockError that says what to do. */
export function tableError(err: unknown, schema: KeySchema): LockError | undefined {
  const e = asSdkError(err);
  const expected = `partition key "${schema.partitionKey}" (S)${schema.sortKey === undefined ? "" : ` and sort key "${schema.sortKey.name}" (S)`}`;
  if (e.name === "ResourceNotFoundException") {
    return new LockError(
      `Table "${schema.table}" does not exist (or is not ACTIVE yet). Create it with ${expected}: call \`createTable()\`, or run \`dynamolock create-table ${schema.table}\``,
      { cause: err },
    );
  }
  if (
    e.name === "ValidationException" &&
    // dynalite and AWS name a mismatched key; AWS and DynamoDB Local say a key attribute is missing.
    KEY_SCHEMA_MISMATCH.test(e.message ?? "")
  ) {
    return new LockError(
      `Table "${schema.table}" does not have the key schema this LockClient expects (${expected}). Pass the table's key names as \`partitionKey\` / \`sortKey\`, or use a table created by \`createTable()\``,
      { cause: err },
    );
  }
  return undefined;
}
