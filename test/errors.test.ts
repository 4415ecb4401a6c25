/**
 * Which failures are worth another attempt, and which may hide a write that was applied. Judged on
 * the errors the SDK really produces: its own exception classes, and errors made by sending to a
 * client with no region, a closed port, a server that resets or never answers (all on 127.0.0.1).
 */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  DynamoDBServiceException,
  GetItemCommand,
  InternalServerError,
  ItemCollectionSizeLimitExceededException,
  ProvisionedThroughputExceededException,
  ReplicatedWriteConflictException,
  RequestLimitExceeded,
  ResourceNotFoundException,
  ThrottlingException,
  TransactionConflictException,
} from "@aws-sdk/client-dynamodb";
import { isRetryable, mayHaveBeenApplied } from "../src/aws.js";
import { LockClient, LockError } from "../src/index.js";
import { LOCAL_CREDENTIALS } from "../src/testing.js";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

const answered = (status: number) => ({ httpStatusCode: status, attempts: 1, totalRetryDelay: 0 });

/** A service exception as the SDK builds it from a server's answer. */
function serviceError(name: string, status: number, message = name): Error {
  return new DynamoDBServiceException({
    name,
    $fault: status >= 500 ? "server" : "client",
    message,
    $metadata: answered(status),
  });
}

/** [label, error, retryable, may have been applied] */
type Row = [string, unknown, boolean, boolean];

const shapes: Row[] = [
  [
    "ProvisionedThroughputExceededException (400)",
    new ProvisionedThroughputExceededException({ message: "slow down", $metadata: answered(400) }),
    true,
    true, // a refusal that may not recur says nothing of a duplicate of the request
  ],
  [
    "ThrottlingException (400)",
    new ThrottlingException({ message: "x", $metadata: answered(400) }),
    true,
    true, // a refusal that may not recur says nothing of a duplicate of the request
  ],
  [
    "RequestLimitExceeded (400)",
    new RequestLimitExceeded({ message: "x", $metadata: answered(400) }),
    true,
    true, // a refusal that may not recur says nothing of a duplicate of the request
  ],
  [
    "TransactionConflictException (400)",
    new TransactionConflictException({ message: "x", $metadata: answered(400) }),
    true,
    true, // a refusal that may not recur says nothing of a duplicate of the request
  ],
  [
    "ReplicatedWriteConflictException ($retryable)",
    new ReplicatedWriteConflictException({ message: "x", $metadata: answered(400) }),
    true,
    false,
  ],
  ["429 without a known name", serviceError("SomethingNew", 429), true, true],
  [
    "InternalServerError (500)",
    new InternalServerError({ message: "x", $metadata: answered(500) }),
    true,
    true,
  ],
  ["ServiceUnavailable (503)", serviceError("ServiceUnavailable", 503), true, true],
  [
    "ConditionalCheckFailedException",
    new ConditionalCheckFailedException({ message: "x", $metadata: answered(400) }),
    false,
    false,
  ],
  [
    "ResourceNotFoundException",
    new ResourceNotFoundException({ message: "x", $metadata: answered(400) }),
    false,
    false,
  ],
  [
    "ItemCollectionSizeLimitExceededException",
    new ItemCollectionSizeLimitExceededException({ message: "x", $metadata: answered(400) }),
    false,
    false,
  ],
  ["ValidationException", serviceError("ValidationException", 400, "Number underflow"), false, false],
  ["AccessDeniedException", serviceError("AccessDeniedException", 400), false, false],
  ["UnrecognizedClientException", serviceError("UnrecognizedClientException", 400), false, false],
  ["SerializationException", serviceError("SerializationException", 400), false, false],
  [
    "CredentialsProviderError (no credentials anywhere)",
    Object.assign(new Error("Could not load credentials from any providers"), {
      name: "CredentialsProviderError",
      tryNextLink: false,
    }),
    false,
    false,
  ],
  [
    "a TypeError from serialising the input",
    new TypeError("Cannot read properties of undefined"),
    false,
    false,
  ],
  [
    "ENOTFOUND: a host that does not exist",
    Object.assign(new Error("getaddrinfo ENOTFOUND dynamodb.nowhere"), {
      code: "ENOTFOUND",
      $metadata: { attempts: 1 },
    }),
    false,
    false,
  ],
  [
    "EAI_AGAIN: the resolver could not answer now",
    Object.assign(new Error("getaddrinfo EAI_AGAIN dynamodb.us-east-1.amazonaws.com"), {
      code: "EAI_AGAIN",
      $metadata: { attempts: 1 },
    }),
    true,
    false,
  ],
  [
    "EPIPE mid-request",
    Object.assign(new Error("write EPIPE"), { code: "EPIPE", $metadata: { attempts: 1 } }),
    true,
    true,
  ],
  [
    "undici: fetch failed, caused by a socket error",
    new TypeError("fetch failed", {
      cause: Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" }),
    }),
    true,
    true,
  ],
  [
    "a LockError is a verdict, never retried",
    new LockError("x", { code: "EDYNAMODB", cause: Object.assign(new Error("x"), { code: "ECONNRESET" }) }),
    false,
    false,
  ],
  [
    "a throttle after the SDK retried on its own: an earlier attempt may have gone unanswered",
    new ProvisionedThroughputExceededException({
      message: "x",
      $metadata: { httpStatusCode: 400, attempts: 3, totalRetryDelay: 200 },
    }),
    true,
    true,
  ],
];

describe("error classification: SDK exception shapes", () => {
  for (const [label, err, retryable, applied] of shapes) {
    it(`${label}: ${retryable ? "retryable" : "not retryable"}, ${applied ? "may" : "cannot"} have been applied`, () => {
      assert.equal(isRetryable(err), retryable, "isRetryable");
      assert.equal(mayHaveBeenApplied(err), applied, "mayHaveBeenApplied");
    });
  }
});

/** Servers on 127.0.0.1 that misbehave at the TCP level, and one port where nothing listens. */
let sockets: Socket[] = [];
let resetting: Server;
let silent: Server;
let closedPort: number;

const listen = (server: Server) =>
  new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve(portOf(server))));
const portOf = (server: Server) => (server.address() as { port: number }).port;

before(async () => {
  resetting = createServer((s) => s.on("data", () => s.resetAndDestroy()));
  silent = createServer((s) => {
    sockets.push(s);
    s.on("data", () => undefined);
  });
  await listen(resetting);
  await listen(silent);
  const probe = createServer();
  closedPort = await listen(probe);
  await new Promise((resolve) => probe.close(resolve));
});
after(async () => {
  for (const s of sockets) s.destroy();
  sockets = [];
  await new Promise((resolve) => resetting.close(resolve));
  await new Promise((resolve) => silent.close(resolve));
});

/** What `send` rejects with, made by a real client (one attempt: the SDK's own retries are not judged). */
async function failureOf(config: ConstructorParameters<typeof DynamoDBClient>[0], abortAfterMs?: number) {
  const client = new DynamoDBClient({ maxAttempts: 1, ...config });
  const controller = new AbortController();
  // The lock cuts its own attempts off with an Error reason (src/runtime.ts deadlineSignal).
  const timer =
    abortAfterMs === undefined
      ? undefined
      : setTimeout(() => controller.abort(new Error("no answer within the lease")), abortAfterMs);
  try {
    await client.send(new GetItemCommand({ TableName: "t", Key: { id: { S: "x" } } }), {
      abortSignal: controller.signal,
    });
    assert.fail("the request was expected to fail");
  } catch (err) {
    return err;
  } finally {
    clearTimeout(timer);
    client.destroy();
  }
}

const local = (port: number) => ({
  region: "us-east-1",
  credentials: LOCAL_CREDENTIALS,
  endpoint: `http://127.0.0.1:${port}`,
});

describe("error classification: errors the SDK really produces", () => {
  it("no region: not retryable, never sent", async () => {
    const err = await failureOf({ credentials: LOCAL_CREDENTIALS, region: undefined as unknown as string });
    assert.match(String(err), /region/i);
    assert.equal(isRetryable(err), false);
    assert.equal(mayHaveBeenApplied(err), false);
  });

  it("a closed port (ECONNREFUSED): retryable (a server restarting), never delivered", async () => {
    const err = await failureOf(local(closedPort));
    assert.equal((err as { code?: string }).code, "ECONNREFUSED");
    assert.equal(isRetryable(err), true);
    assert.equal(mayHaveBeenApplied(err), false);
  });

  it("a connection reset after the request was sent: retryable, may have been applied", async () => {
    const err = await failureOf(local(portOf(resetting)));
    assert.equal((err as { code?: string }).code, "ECONNRESET");
    assert.equal(isRetryable(err), true);
    assert.equal(mayHaveBeenApplied(err), true);
  });

  it("an attempt the lock cut off (abortSignal with an Error reason): retryable, may have been applied", async () => {
    // The signal fires only once the request is on the wire: the silent server never answers.
    const err = await failureOf(local(portOf(silent)), 200);
    assert.equal((err as Error).name, "AbortError");
    assert.equal(isRetryable(err), true);
    assert.equal(mayHaveBeenApplied(err), true);
  });
});

describe("errors that cannot pass fail an acquire at once", () => {
  /**
   * Counts the calls to `send` (the initialize step runs once per call, before the region or the
   * credentials are resolved) and aborts the acquire after a few, so that a client that retries what
   * cannot pass shows up as a count, not as a long wait.
   */
  async function acquireOnce(client: DynamoDBClient) {
    let sends = 0;
    const controller = new AbortController();
    client.middlewareStack.add(
      (next) => async (args) => {
        if (++sends >= 3) controller.abort(new Error("retried an error that cannot pass"));
        return next(args);
      },
      { step: "initialize", name: "countSends" },
    );
    // Without the one look at the table a client takes first (docs/global-tables.md), which fails
    // the same way and is counted too: this test is about the acquire not retrying.
    const locks = new LockClient({ table: "locks", client, checkTable: false });
    const err = await locks
      .acquire("x", { waitMs: 20_000, signal: controller.signal })
      .catch((e: unknown) => e);
    await locks.close();
    client.destroy();
    return { err, sends };
  }

  it("a client with no region: LockError after one attempt, the cause kept", async () => {
    const { err, sends } = await acquireOnce(
      new DynamoDBClient({ credentials: LOCAL_CREDENTIALS, region: undefined as unknown as string }),
    );
    assert.ok(err instanceof LockError, String(err));
    assert.match(String((err.cause as Error)?.message), /region/i);
    // It says what to set, for the usual case of a local endpoint given only by the environment.
    assert.match(err.message, /set AWS_REGION, e\.g\. AWS_REGION=us-east-1/);
    assert.equal(sends, 1);
  });

  it("a client with no credentials: LockError after one attempt, the cause kept", async () => {
    const { err, sends } = await acquireOnce(
      new DynamoDBClient({
        region: "us-east-1",
        endpoint: `http://127.0.0.1:${closedPort}`,
        // What the SDK's default chain rejects with when no provider has credentials.
        credentials: async () => {
          throw Object.assign(new Error("Could not load credentials from any providers"), {
            name: "CredentialsProviderError",
            tryNextLink: false,
          });
        },
      }),
    );
    assert.ok(err instanceof LockError, String(err));
    assert.equal((err.cause as Error)?.name, "CredentialsProviderError");
    assert.match(err.message, /set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
    assert.equal(sends, 1);
  });
});
