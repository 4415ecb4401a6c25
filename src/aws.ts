/**
 * The seam between the lock and the AWS SDK: sending commands through the caller's client, and
 * classifying what comes back (condition failed, retryable, may have been applied).
 */
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LockError } from "./errors.js";

/** What dynamolock needs of a DynamoDB client: `send`. A `DynamoDBClient` is one. */
export type DynamoDBSender = Pick<DynamoDBClient, "send">;

interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
  $retryable?: unknown;
  Item?: Record<string, AttributeValue>;
}

const asSdkError = (err: unknown): SdkError =>
  typeof err === "object" && err !== null ? (err as SdkError) : {};

export function isConditionFailed(err: unknown): boolean {
  return asSdkError(err).name === "ConditionalCheckFailedException";
}

/**
 * Removes the items a failed condition returned (`Item`, and each cancellation reason's `Item`)
 * from an SDK error, in place, before it becomes the `cause` of an error we report: they hold
 * whoever holds the lock now, with its owner token (what a takeover is conditioned on: a secret)
 * and its data. Read what is needed from them first (oldItemOf).
 */
export function withoutReturnedItems<E>(err: E): E {
  if (typeof err !== "object" || err === null) return err;
  const e = err as { Item?: unknown; CancellationReasons?: { Item?: unknown }[] };
  if ("Item" in e) delete e.Item;
  for (const reason of e.CancellationReasons ?? []) if ("Item" in reason) delete reason.Item;
  return err;
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

/** The SDK's names for an attempt that got no answer in time (its own request time-out, or ours). */
const NO_ANSWER_NAMES = new Set(["TimeoutError", "RequestTimeout", "RequestTimeoutException", "AbortError"]);

/**
 * Network failures that pass: the connection broke or was never made, or the resolver could not
 * answer now. ENOTFOUND is not among them: a host name that does not resolve is a wrong endpoint
 * (the SDK has already retried it), and must fail in a fraction of a second, not after a whole wait.
 */
const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EHOSTDOWN",
  // undici (a fetch-based request handler)
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CLOSED",
]);

/** Of those, the ones that prove the request never reached a server: no connection, no address. */
const NEVER_DELIVERED_CODES = new Set([
  "ECONNREFUSED",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EHOSTDOWN",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** The network code of `err` or of a cause of it (fetch wraps socket errors in a TypeError). */
function networkCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === "object" && e !== null; depth++) {
    const code = (e as SdkError).code;
    if (code !== undefined && NETWORK_CODES.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Whether trying the same request again may succeed: throttling (by name, HTTP 429, or the SDK's
 * `$retryable` trait), HTTP 5xx, a broken or refused connection, or an attempt that got no answer in
 * time (the SDK's time-out, or an abort of the lock's own cut-off signal).
 *
 * Everything else cannot pass by trying again, and must fail the call at once: the server refused
 * the request (ValidationException, ResourceNotFoundException, AccessDeniedException, a failed
 * condition...), or it was never sent (no region, no credentials, a TypeError from the SDK, a host
 * name that does not resolve). An error is classified by what it is, never by a missing HTTP status.
 * A LockError is already a verdict, and is never retryable.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof LockError) return false;
  const e = asSdkError(err);
  if (e.name !== undefined && (THROTTLING.has(e.name) || NO_ANSWER_NAMES.has(e.name))) return true;
  if (e.$retryable !== undefined && e.$retryable !== null) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined) return status >= 500 || status === 429;
  return networkCode(err) !== undefined;
}

/**
 * Whether a failed write may have been applied all the same, so that its outcome is unknown: true
 * for an attempt that got no answer after it was sent (a reset, a time-out, an abort), for an HTTP
 * 5xx (the server may have applied the write before failing), for an answer that could not be read
 * (a 2xx the SDK failed to parse), and for throttling. Also true once the SDK has retried on its own
 * (`$metadata.attempts > 1`): only the last attempt's error reaches us, and an earlier one may have
 * gone unanswered.
 *
 * Throttling counts as unknown although DynamoDB applies nothing it throttles: a refusal that may
 * not recur (a busy partition) says nothing of a copy of the same request that was delivered too (a
 * duplicate, which the simulation models), and "nothing was written" is a promise, so it is made
 * only when it is certain.
 *
 * False means the write was certainly not applied: the server refused it for a reason any copy of
 * it would meet too (a 4xx such as a validation error or a denied action), or it never left (no
 * region, no credentials, a refused connection, an address that does not resolve). A failed
 * condition is answered here as a refusal; whether an earlier try of the same write went through is
 * for the caller to judge from the item (see lock.ts).
 */
export function mayHaveBeenApplied(err: unknown): boolean {
  if (err instanceof LockError) return false;
  const e = asSdkError(err);
  if ((e.$metadata?.attempts ?? 0) > 1) return true;
  if (e.name !== undefined && THROTTLING.has(e.name)) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined) return status >= 500 || status === 429 || (status >= 200 && status < 300);
  if (e.name !== undefined && NO_ANSWER_NAMES.has(e.name)) return true;
  const code = networkCode(err);
  if (code !== undefined) return !NEVER_DELIVERED_CODES.has(code);
  // A host name that does not resolve: nothing was sent (not retryable, so not a network code above).
  if (e.code === "ENOTFOUND") return false;
  // The SDK stamps `$metadata` on every error that went through its retry step, that is, on every
  // request it tried to send; an error without it (no region, no credentials, an input it could not
  // serialise) failed before. Any other failure we cannot place may have hit a request in flight.
  return e.$metadata !== undefined;
}

/**
 * How servers word a request whose key does not fit the table: dynalite and DynamoDB name the
 * mismatched element; DynamoDB Local says a required key was not given, or (for a sort key it did not
 * get) that the number of conditions on the keys is invalid. Only a fallback: the table itself is
 * asked first (see `tableError` in table.ts), as another server may word it another way.
 */
export const KEY_SCHEMA_MISMATCH =
  /key element does not match the schema|missing the key|key schema|required keys was not given a value|number of conditions on the keys is invalid/i;

/**
 * What to set when the SDK could not even build the request: with only AWS_ENDPOINT_URL_DYNAMODB
 * set for a local server, the SDK still wants a region and credentials, and its own messages
 * ("Region is missing") do not say where they come from.
 */
export function configurationAdvice(err: unknown): string {
  const e = err as { name?: string; message?: string } | undefined;
  if (/region is missing/i.test(e?.message ?? "")) {
    return " (set AWS_REGION, e.g. AWS_REGION=us-east-1 — any region works for a local server given by AWS_ENDPOINT_URL_DYNAMODB — or pass a client created with a `region`)";
  }
  if (e?.name === "CredentialsProviderError") {
    return " (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY — any letters and digits for a local server — or AWS_PROFILE, or pass a client with `credentials`)";
  }
  return "";
}
