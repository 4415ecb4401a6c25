/**
 * `dynamolock/testing`: a local DynamoDB-compatible server (dynalite, in this process, on
 * 127.0.0.1 and a free port) for testing your own code without AWS. Needs `dynalite` installed
 * (`npm install --save-dev dynalite`). The main `dynamolock` entry never loads it.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { optionsObject } from "./validate.js";

export interface LocalDynamoDBOptions {
  /** Port to listen on. @default 0 (a free port chosen by the system) */
  readonly port?: number;
  /** A folder for a persistent LevelDB store. @default undefined (in memory) */
  readonly path?: string;
  /** How long tables stay CREATING, in ms. @default 0 */
  readonly createTableMs?: number;
}

export interface LocalDynamoDB extends AsyncDisposable {
  /** e.g. `http://127.0.0.1:43121`; use it as `endpoint` or `AWS_ENDPOINT_URL_DYNAMODB`. */
  readonly endpoint: string;
  readonly port: number;
  /** A client configured for the server (region us-east-1, fixed local credentials). */
  readonly client: DynamoDBClient;
  /** Destroys the client and stops the server. Idempotent. `await using` calls it at scope exit. */
  close(): Promise<void>;
}

/** How long close() waits for requests in flight before cutting connections. */
const CLOSE_GRACE_MS = 2_000;

type DynaliteFactory = (options: Record<string, unknown>) => Server;

/** Credentials a local server accepts: any letters and digits (DynamoDB Local requires that form). */
export const LOCAL_CREDENTIALS = { accessKeyId: "dynamolocal", secretAccessKey: "dynamolocal" } as const;

/** A DynamoDBClient for a local endpoint. */
export function localClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: "us-east-1", credentials: LOCAL_CREDENTIALS });
}

async function loadDynalite(): Promise<DynaliteFactory> {
  try {
    const module = (await import("dynalite")) as unknown as { default?: DynaliteFactory } & DynaliteFactory;
    return module.default ?? module;
  } catch (cause) {
    throw new Error("dynamolock/testing needs the `dynalite` package: npm install --save-dev dynalite", {
      cause,
    });
  }
}

/** Starts dynalite on 127.0.0.1. */
export async function startLocalDynamoDB(options?: LocalDynamoDBOptions): Promise<LocalDynamoDB> {
  const o = optionsObject<LocalDynamoDBOptions>("options", options, ["port", "path", "createTableMs"]);
  const dynalite = await loadDynalite();
  const server = dynalite({
    createTableMs: o.createTableMs ?? 0,
    deleteTableMs: 0,
    updateTableMs: 0,
    ...(o.path === undefined ? {} : { path: o.path }),
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = localClient(endpoint);
  let closing: Promise<void> | undefined;
  const local: LocalDynamoDB = {
    endpoint,
    port,
    client,
    close() {
      // Let requests in flight finish before the store closes under them (dynalite would throw
      // "Database is closed" from a request still running); force-close only what is left after a
      // grace period, such as a keep-alive connection some other client holds open.
      closing ??= new Promise<void>((resolve) => {
        client.destroy();
        const force = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
    [Symbol.asyncDispose]() {
      return local.close();
    },
  };
  return local;
}
