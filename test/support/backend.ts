/**
 * The server the behaviour tests run against, chosen by environment, so one suite runs unchanged on
 * every backend:
 *
 * - default: dynalite, started in this process on 127.0.0.1 with a free port;
 * - DYNAMOLOCK_TEST_ENDPOINT=http://host:port: any running DynamoDB-compatible endpoint (DynamoDB
 *   Local started by `npm run test:ddb-local`, your own, or AWS with throwaway tables), with
 *   DYNAMOLOCK_TEST_BACKEND naming it (e.g. `ddb-local`) for the capability table below.
 */
import { randomBytes } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { localClient, startLocalDynamoDB } from "../../src/testing.js";

// The SDK warns about Node 20 on every client; tests are not the place to read it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

export interface Capabilities {
  /** Returns the old item with a failed condition (`ReturnValuesOnConditionCheckFailure`). */
  readonly returnsOldItemOnConditionFailure: boolean;
  /** TransactWriteItems. */
  readonly transactions: boolean;
  /** UpdateTimeToLive / DescribeTimeToLive. */
  readonly ttl: boolean;
}

export interface Backend {
  readonly name: string;
  readonly endpoint: string;
  readonly client: DynamoDBClient;
  readonly capabilities: Capabilities;
  /** A new client for the same endpoint (e.g. with its own middleware). */
  newClient(): DynamoDBClient;
  close(): Promise<void>;
}

const CAPABILITIES: Record<string, Capabilities> = {
  dynalite: { returnsOldItemOnConditionFailure: false, transactions: false, ttl: false },
  "ddb-local": { returnsOldItemOnConditionFailure: true, transactions: true, ttl: true },
  aws: { returnsOldItemOnConditionFailure: true, transactions: true, ttl: true },
};

export async function startBackend(): Promise<Backend> {
  const endpoint = process.env.DYNAMOLOCK_TEST_ENDPOINT;
  if (endpoint !== undefined && endpoint !== "") {
    const name = process.env.DYNAMOLOCK_TEST_BACKEND ?? "ddb-local";
    const capabilities = CAPABILITIES[name];
    if (capabilities === undefined) {
      throw new Error(
        `DYNAMOLOCK_TEST_BACKEND selects the capability table and must be one of ${Object.keys(CAPABILITIES).join(", ")}; got "${name}"`,
      );
    }
    // Local servers take any letters-and-digits credentials; AWS takes the SDK's own (environment,
    // profile, role) and AWS_REGION.
    const newClient = name === "aws" ? () => new DynamoDBClient({ endpoint }) : () => localClient(endpoint);
    const client = newClient();
    return { name, endpoint, client, capabilities, newClient, close: async () => client.destroy() };
  }
  const server = await startLocalDynamoDB();
  return {
    name: "dynalite",
    endpoint: server.endpoint,
    client: server.client,
    capabilities: CAPABILITIES.dynalite as Capabilities,
    newClient: () => localClient(server.endpoint),
    close: () => server.close(),
  };
}

/** A fresh table name, so tests sharing a server never see each other's locks. */
export function uniqueName(prefix = "locks"): string {
  return `${prefix}-${randomBytes(6).toString("hex")}`;
}

/**
 * Counts the HTTP requests a client sends, by operation (SDK retries included: it sits at the
 * finalizeRequest step, which every attempt passes).
 */
export function countRequests(client: DynamoDBClient): {
  total(): number;
  byOperation(): Record<string, number>;
  reset(): void;
} {
  let counts: Record<string, number> = {};
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const op = String(context.commandName ?? "unknown").replace(/Command$/, "");
      counts[op] = (counts[op] ?? 0) + 1;
      return next(args);
    },
    { step: "finalizeRequest", name: `dynamolockRequestCounter${randomBytes(3).toString("hex")}` },
  );
  return {
    total: () => Object.values(counts).reduce((a, b) => a + b, 0),
    byOperation: () => ({ ...counts }),
    reset: () => {
      counts = {};
    },
  };
}
