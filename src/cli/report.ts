/**
 * Turns any failure into one line a newcomer can act on, and the exit code scripts can act on.
 * The stack and the chain of causes are printed only with `--debug`.
 */
import { inspect } from "node:util";
import { LockError, LockHeldError, LockLostError } from "../errors.js";
import { formatDuration } from "./duration.js";
import { CliError, EXIT } from "./exit-codes.js";

export interface ErrorContext {
  readonly table?: string;
  readonly locationFlags?: string;
  readonly endpoint?: string | undefined;
  readonly local?: boolean;
  readonly profile?: string | undefined;
  /** The region from --region or the environment, when known: names AWS's endpoint host. */
  readonly region?: string | undefined;
}

/** The host the SDK talks to for DynamoDB in a region when no endpoint is configured. */
export function awsDynamoDBHost(region: string): string {
  return `dynamodb.${region}.amazonaws.com${region.startsWith("cn-") ? ".cn" : ""}`;
}

/**
 * What the failing command was talking to, for the error line. Commands set it as soon as they
 * know; the entry point reads it when a command throws.
 */
export const errorContext: { current: ErrorContext } = { current: {} };

export interface Explained {
  readonly message: string;
  readonly exitCode: number;
}

interface Described {
  name?: string;
  message?: string;
  code?: string;
  /** Set by Node on DNS failures (ENOTFOUND, EAI_AGAIN): the host that did not resolve. */
  hostname?: string;
  $metadata?: unknown;
  cause?: unknown;
  errors?: unknown[];
}

function chainOf(err: unknown): Described[] {
  const chain: Described[] = [];
  let current: unknown = err;
  while (typeof current === "object" && current !== null && chain.length < 10) {
    const e = current as Described;
    chain.push(e);
    // Node's happy-eyeballs connect failures arrive as an AggregateError of one per address.
    if (e.cause === undefined && Array.isArray(e.errors) && e.errors.length > 0) current = e.errors[0];
    else current = e.cause;
  }
  return chain;
}

const AUTH_FAILURES = new Set([
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "IncompleteSignatureException",
  "MissingAuthenticationTokenException",
  "ExpiredTokenException",
  "AccessDeniedException",
  "InvalidClientTokenId",
]);
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "ECONNRESET",
  "EHOSTUNREACH",
]);

/** A holder description for messages: `"build-7:4121" (fence 12, last heartbeat 3.1s ago)`. */
export function describeHolder(info: {
  holder: string | undefined;
  fence: number;
  heartbeatAt: number | undefined;
}): string {
  const who = info.holder === undefined ? "another holder" : `"${info.holder}"`;
  const beat =
    info.heartbeatAt === undefined
      ? ""
      : `, last heartbeat ${formatDuration(Date.now() - info.heartbeatAt)} ago`;
  return `${who} (fence ${info.fence}${beat})`;
}

/** The one line for a lock we could not take: who holds it, and whether we waited. */
export function heldError(err: LockHeldError, waitMs: number): CliError {
  const waited =
    waitMs === 0
      ? "not waiting (pass --wait to wait)"
      : `gave up after waiting ${formatDuration(err.waitedMs)}`;
  return new CliError(`lock "${err.lockId}" is held by ${describeHolder(err)}; ${waited}`, EXIT.held);
}

/**
 * With no endpoint configured, the SDK picked AWS's host for the region: name it, so "cannot reach"
 * says where to look (DNS, proxy, firewall). The failing socket's own hostname wins when the error
 * carries one (ENOTFOUND does); else the region's host, when the region is known here.
 */
function unreachableAwsHost(chain: readonly Described[], context: ErrorContext): string {
  const named = chain.find((e) => typeof e.hostname === "string" && e.hostname !== "")?.hostname;
  if (named !== undefined) return ` at ${named}`;
  if (context.region !== undefined && context.region !== "") {
    return ` at ${awsDynamoDBHost(context.region)} (AWS's endpoint for region ${context.region})`;
  }
  return " at AWS's endpoint for the configured region";
}

export function explain(err: unknown, context: ErrorContext = {}): Explained {
  if (err instanceof CliError) return { message: err.message, exitCode: err.exitCode };
  if (err instanceof LockHeldError) return explain(heldError(err, err.waitedMs));
  if (err instanceof LockLostError) return { message: err.message, exitCode: EXIT.lost };

  if (err instanceof LockError && err.code === "EGLOBALTABLE") {
    // A global table where locks are not safe (docs/global-tables.md): the user's configuration.
    return {
      message: err.message
        .replace("with the `singleWriterRegion` option", "with --single-writer-region REGION")
        .replace("(singleWriterRegion)", "(--single-writer-region)")
        .replace(/^singleWriterRegion/, "--single-writer-region"),
      exitCode: EXIT.config,
    };
  }
  const chain = chainOf(err);
  const table = context.table === undefined ? "the table" : `table "${context.table}"`;
  const where = context.endpoint === undefined ? "" : ` at ${context.endpoint}`;
  for (const e of chain) {
    const message = e.message ?? "";
    if (e.name === "ResourceNotFoundException") {
      const flags = context.locationFlags ? ` ${context.locationFlags}` : "";
      return {
        message: `${table} does not exist${where}; create it with: dynamolock create-table ${context.table ?? "TABLE"}${flags}`,
        exitCode: EXIT.config,
      };
    }
    if (
      (e instanceof LockError && e.code === "EKEYSCHEMA") ||
      (e.name === "ValidationException" &&
        /key element does not match the schema|missing the key|number of conditions on the keys is invalid|required keys was not given a value/i.test(
          message,
        ))
    ) {
      // The library's message, when it could ask the table, says what its keys are: name them.
      const keys = /it has (.+?); this LockClient expects (.+?)\./.exec(message);
      const what =
        keys === null ? "another key schema than expected" : `${keys[1]}, not the expected ${keys[2]}`;
      return {
        message: `${table} has ${what}: pass --partition-key / --sort-key to match it, or use a table made by \`dynamolock create-table\``,
        exitCode: EXIT.config,
      };
    }
    if (
      e.name === "CredentialsProviderError" ||
      /Could not load credentials|could not resolve credentials/i.test(message)
    ) {
      const hint =
        context.profile === undefined
          ? "set AWS_PROFILE (or pass --profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; for a local server pass --endpoint http://127.0.0.1:8000"
          : `check that profile "${context.profile}" exists in ~/.aws/config or ~/.aws/credentials`;
      return { message: `no AWS credentials found: ${hint}`, exitCode: EXIT.config };
    }
    if (/Region is missing/i.test(message)) {
      return {
        message: "no AWS region configured: pass --region (e.g. --region eu-west-1) or set AWS_REGION",
        exitCode: EXIT.config,
      };
    }
    if (e.name !== undefined && AUTH_FAILURES.has(e.name)) {
      return { message: `AWS refused the request (${e.name}): ${message}`, exitCode: EXIT.config };
    }
    if ((e.code !== undefined && NETWORK_CODES.has(e.code)) || e.name === "TimeoutError") {
      const hint = context.local ? " (is `dynamolock serve` running?)" : "";
      return {
        message: `cannot reach DynamoDB${where || unreachableAwsHost(chain, context)}: ${e.code ?? e.name}${hint}`,
        exitCode: EXIT.unavailable,
      };
    }
  }
  const top = chain[0];
  if (err instanceof TypeError || err instanceof RangeError) {
    return { message: String((err as Error).message), exitCode: EXIT.usage };
  }
  if (err instanceof LockError) return { message: err.message, exitCode: EXIT.unavailable };
  const service = chain.find((e) => e.$metadata !== undefined);
  if (service !== undefined) {
    return {
      message: `DynamoDB error${where}: ${service.name}: ${service.message}`,
      exitCode: EXIT.unavailable,
    };
  }
  return {
    message: `${top?.message ?? String(err)} (unexpected: run again with --debug and report it)`,
    exitCode: EXIT.internal,
  };
}

/** The `--debug` view: stack and every cause. */
export function debugDetails(err: unknown): string {
  return inspect(err, { depth: 6, colors: false });
}
