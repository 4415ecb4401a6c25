/**
 * The DynamoDB client the CLI talks through: `--endpoint`, `--region`, `--profile`, otherwise the
 * SDK's usual environment (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL_DYNAMODB, ~/.aws, ...).
 */
import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import { LockClient } from "../client.js";
import type { LockClientOptions } from "../options.js";
import { checkTableName, optionalString, requiredString, type Values } from "./args.js";
import { usageError } from "./exit-codes.js";
import { errorContext } from "./report.js";

/** What a local server accepts; the same pair `dynamolock/testing` uses. */
const LOCAL_CREDENTIALS = { accessKeyId: "dynamolocal", secretAccessKey: "dynamolocal" } as const;

export interface Connection {
  readonly client: DynamoDBClient;
  /** The endpoint in use when one was configured (flag or environment), for messages. */
  readonly endpoint: string | undefined;
  /** The endpoint is this machine (e.g. `dynamolock serve`). */
  readonly local: boolean;
}

function isLoopback(endpoint: string): boolean {
  try {
    const host = new URL(endpoint).hostname.replace(/^\[|\]$/g, "");
    return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}

export function connect(values: Values): Connection {
  const flag = optionalString(values, "endpoint");
  if (flag !== undefined) {
    try {
      new URL(flag);
    } catch {
      throw usageError(`bad --endpoint: "${flag}" (a URL, e.g. http://127.0.0.1:8000)`);
    }
  }
  const endpoint = flag || process.env.AWS_ENDPOINT_URL_DYNAMODB || process.env.AWS_ENDPOINT_URL || undefined;
  const local = endpoint !== undefined && isLoopback(endpoint);
  const profile = optionalString(values, "profile");
  const region = optionalString(values, "region");
  const config: DynamoDBClientConfig = {};
  if (flag !== undefined) config.endpoint = flag;
  if (profile !== undefined) config.profile = profile;
  if (region !== undefined) config.region = region;
  if (local) {
    // A local server accepts any credentials and ignores the region: asking a developer to invent
    // both just to talk to `dynamolock serve` helps nobody. Configured ones still win.
    config.region ??= process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || "us-east-1";
    if (!process.env.AWS_ACCESS_KEY_ID && profile === undefined && !process.env.AWS_PROFILE) {
      config.credentials = LOCAL_CREDENTIALS;
    }
  }
  errorContext.current = {
    ...errorContext.current,
    endpoint,
    local,
    profile: profile ?? process.env.AWS_PROFILE,
    region: region ?? (process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || undefined),
  };
  return { client: new DynamoDBClient(config), endpoint, local };
}

/** `--sort-key NAME` on a lock command: lock items use the constant `--sort-key-value` (default "lock"). */
export const DEFAULT_SORT_KEY_VALUE = "lock";

export function keyOptions(
  values: Values,
): Pick<LockClientOptions, "partitionKey" | "sortKey" | "singleWriterRegion"> {
  const partitionKey = optionalString(values, "partition-key");
  const singleWriterRegion = optionalString(values, "single-writer-region");
  const sortKey = optionalString(values, "sort-key");
  const sortKeyValue = optionalString(values, "sort-key-value");
  if (sortKeyValue !== undefined && sortKey === undefined) {
    throw usageError("--sort-key-value needs --sort-key NAME (the table's sort key attribute)");
  }
  return {
    ...(singleWriterRegion === undefined ? {} : { singleWriterRegion }),
    ...(partitionKey === undefined ? {} : { partitionKey }),
    ...(sortKey === undefined
      ? {}
      : { sortKey: { name: sortKey, value: sortKeyValue ?? DEFAULT_SORT_KEY_VALUE } }),
  };
}

/** The flags that locate a table, to repeat in a suggested command line. */
function locationFlags(values: Values): string {
  const flags: string[] = [];
  for (const name of ["endpoint", "region", "profile", "partition-key", "sort-key"]) {
    const value = optionalString(values, name);
    if (value !== undefined) flags.push(`--${name} ${value}`);
  }
  return flags.join(" ");
}

export interface LockTarget {
  readonly command: string;
  readonly table: string;
  readonly id: string;
  readonly connection: Connection;
  readonly locks: LockClient;
  /** The flags that locate the table, to repeat in suggestions (`dynamolock create-table ...`). */
  readonly locationFlags: string;
  /** Closes the LockClient (releasing what it still holds) and the SDK client. */
  close(): Promise<void>;
}

/** The table, lock id and a LockClient for a lock command. */
export function lockTarget(
  command: string,
  values: Values,
  options: Omit<LockClientOptions, "table" | "client"> = {},
): LockTarget {
  const table = checkTableName(
    requiredString(command, values, "table", "the DynamoDB table holding the locks"),
    "--table",
  );
  const id = requiredString(command, values, "id", "the lock's id");
  const connection = connect(values);
  errorContext.current = { ...errorContext.current, table, locationFlags: locationFlags(values) };
  let locks: LockClient;
  try {
    locks = new LockClient({ ...options, ...keyOptions(values), table, client: connection.client });
  } catch (err) {
    connection.client.destroy();
    throw err;
  }
  return {
    command,
    table,
    id,
    connection,
    locks,
    locationFlags: locationFlags(values),
    async close() {
      try {
        await locks.close();
      } finally {
        connection.client.destroy();
      }
    },
  };
}
