/**
 * `dynamolock/testing`: a local DynamoDB-compatible server on 127.0.0.1 for testing your own code
 * without AWS. Two engines: dynalite (the default: in this process, needs `npm install --save-dev
 * dynalite`, no transactions or TTL) and AWS's DynamoDB Local (`engine: "ddb-local"`: a Java process,
 * fetched with Maven on first use, with transactions and TTL, so guarded writes can be tested). The
 * main `dynamolock` entry never loads either.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type DynamoDBLocalProcess, startDynamoDBLocalProcess } from "./ddb-local.js";
import { optionsObject } from "./validate.js";

export {
  DDB_LOCAL_VERSION,
  defaultCacheDir,
  LocalServerError,
  type LocalServerErrorCode,
} from "./ddb-local.js";

/** Which server {@link startLocalDynamoDB} runs. */
export type LocalEngine = "dynalite" | "ddb-local";

export interface LocalDynamoDBOptions {
  /**
   * `"dynalite"`: in this process (needs the `dynalite` package); no transactions, no TTL.
   * `"ddb-local"`: AWS's DynamoDB Local in a Java 17+ process, fetched with Maven into
   * `cacheDir` on first use; transactions (guarded writes) and TTL work. @default "dynalite"
   */
  readonly engine?: LocalEngine;
  /** Port to listen on. @default 0 (a free port chosen by the system) */
  readonly port?: number;
  /** A folder for a persistent LevelDB store. @default undefined (in memory) */
  readonly path?: string;
  /** How long tables stay CREATING, in ms (dynalite only). @default 0 */
  readonly createTableMs?: number;
  /**
   * Where DynamoDB Local is cached (ddb-local only): `$DYNAMOLOCK_CACHE_DIR`, else
   * `$XDG_CACHE_HOME/dynamolock`, else `~/.cache/dynamolock`.
   */
  readonly cacheDir?: string;
}

export interface LocalDynamoDB extends AsyncDisposable {
  /** e.g. `http://127.0.0.1:43121`; use it as `endpoint` or `AWS_ENDPOINT_URL_DYNAMODB`. */
  readonly endpoint: string;
  readonly port: number;
  readonly engine: LocalEngine;
  /** The Java process's id with `engine: "ddb-local"`; undefined for dynalite (it runs in this process). */
  readonly pid: number | undefined;
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

/**
 * Starts a local server on 127.0.0.1: dynalite, or DynamoDB Local with `engine: "ddb-local"`.
 * @throws {LocalServerError} with `engine: "ddb-local"`, when Java 17+ or Maven is missing (`code`
 * `ENOJAVA` / `ENOMAVEN`) or the fetch or the start fails.
 */
export async function startLocalDynamoDB(options?: LocalDynamoDBOptions): Promise<LocalDynamoDB> {
  const o = optionsObject<LocalDynamoDBOptions>("options", options, [
    "engine",
    "port",
    "path",
    "createTableMs",
    "cacheDir",
  ]);
  const engine = o.engine ?? "dynalite";
  if (engine !== "dynalite" && engine !== "ddb-local") {
    throw new TypeError(`options.engine must be "dynalite" or "ddb-local"; got ${String(engine)}`);
  }
  if (engine === "ddb-local") {
    if (o.createTableMs !== undefined) {
      throw new TypeError("options.createTableMs is for dynalite; DynamoDB Local creates tables at once");
    }
    const server = await startDynamoDBLocalProcess({ port: o.port, path: o.path, cacheDir: o.cacheDir });
    return wrapProcess(server);
  }
  if (o.cacheDir !== undefined) throw new TypeError('options.cacheDir is for engine "ddb-local"');
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
    engine: "dynalite",
    pid: undefined,
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

function wrapProcess(server: DynamoDBLocalProcess): LocalDynamoDB {
  const client = localClient(server.endpoint);
  let closing: Promise<void> | undefined;
  const local: LocalDynamoDB = {
    endpoint: server.endpoint,
    port: server.port,
    engine: "ddb-local",
    pid: server.pid,
    client,
    close() {
      closing ??= (async () => {
        client.destroy();
        await server.stop();
      })();
      return closing;
    },
    [Symbol.asyncDispose]() {
      return local.close();
    },
  };
  return local;
}
