/**
 * `{ signal }` on every async call has one meaning: abort stops waiting. Nothing sent yet: nothing
 * is sent and the call rejects with `signal.reason`. A write already sent may still apply: the call
 * rejects with an EABORTED LockError saying so, and the write's real outcome stands.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CreateTableCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LockClient, LockError } from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";

let backend: Backend;
before(async () => {
  backend = await startBackend();
});
after(() => backend.close());

/**
 * Holds every UpdateItem at the moment it is sent (past the SDK, before the network) until
 * released: `sent()` resolves when the next one arrives.
 */
function gateUpdates(client: DynamoDBClient, command = "UpdateItemCommand") {
  let closed = false;
  let arrived: (() => void) | undefined;
  const waiting: (() => void)[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (closed && context.commandName === command) {
        arrived?.();
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
      return next(args);
    },
    { step: "finalizeRequest", name: "dynamolockTestGate" },
  );
  return {
    close() {
      closed = true;
    },
    sent: () =>
      new Promise<void>((resolve) => {
        arrived = resolve;
      }),
    open() {
      closed = false;
      for (const go of waiting.splice(0)) go();
    },
  };
}

/**
 * What `call` rejects with once a write it had sent is aborted for `reason`: an EABORTED LockError
 * saying the write may have applied.
 */
async function abortedAfterSending(call: Promise<unknown>, reason: Error): Promise<LockError> {
  const err = await call.then(
    () => assert.fail("expected a rejection"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof LockError);
  assert.equal(err.code, "EABORTED");
  assert.equal(err.writeUncertain, true);
  assert.equal(err.cause, reason);
  return err;
}

async function setUp() {
  const client = backend.newClient();
  const gate = gateUpdates(client);
  const locks = new LockClient({ table: uniqueName(), client, leaseMs: 60_000 });
  await locks.createTable();
  const reader = new LockClient({ table: locks.table, client: backend.client });
  return { client, gate, locks, reader };
}

describe("signal on update, release, forceRelease", () => {
  it("an update aborted while queued sends nothing and rejects with signal.reason", async () => {
    const { client, gate, locks, reader } = await setUp();
    const lock = await locks.acquire("queued");
    gate.close();
    const first = lock.update({ step: 1 }); // in flight, holding the queue
    await gate.sent();
    const stop = new AbortController();
    const second = lock.update({ step: 2 }, { signal: stop.signal });
    stop.abort(new Error("caller gave up"));
    await assert.rejects(second, /caller gave up/);
    gate.open();
    await first;
    assert.deepEqual((await reader.read("queued"))?.data, { step: 1 });
    assert.deepEqual(lock.data, { step: 1 });
    await locks.close();
    client.destroy();
  });

  it("an update aborted after it was sent rejects with EABORTED, writeUncertain, and may still apply", async () => {
    const { client, gate, locks, reader } = await setUp();
    const lock = await locks.acquire("sent");
    gate.close();
    const stop = new AbortController();
    const update = lock.update({ step: 1 }, { signal: stop.signal });
    await gate.sent();
    const reason = new Error("caller gave up");
    stop.abort(reason);
    const err = await abortedAfterSending(update, reason);
    assert.match(err.message, /may still apply/);
    gate.open();
    // The write went through: the lock's state and the table follow its real outcome.
    await lock.release();
    assert.deepEqual((await reader.read("sent"))?.data, { step: 1 });
    await locks.close();
    client.destroy();
  });

  it("a release aborted while queued leaves the lock held, and can be retried", async () => {
    const { client, gate, locks, reader } = await setUp();
    const lock = await locks.acquire("release");
    gate.close();
    const update = lock.update({ step: 1 });
    await gate.sent();
    const stop = new AbortController();
    const release = lock.release({ step: 2 }, { signal: stop.signal });
    stop.abort(new Error("caller gave up"));
    await assert.rejects(release, /caller gave up/);
    gate.open();
    await update;
    assert.equal(lock.held, true);
    assert.equal((await reader.read("release"))?.held, true);
    await lock.release({ step: 3 });
    assert.deepEqual(await reader.read("release").then((i) => [i?.held, i?.data]), [false, { step: 3 }]);
    await locks.close();
    client.destroy();
  });

  it("forceRelease with an aborted signal sends nothing; aborted after sending says it may apply", async () => {
    const { client, gate, locks, reader } = await setUp();
    const holder = new LockClient({ table: locks.table, client: backend.client });
    await holder.acquire("force");
    await assert.rejects(locks.forceRelease("force", { signal: AbortSignal.abort(new Error("no")) }), /no/);
    assert.equal((await reader.read("force"))?.held, true);
    gate.close();
    const stop = new AbortController();
    const forced = locks.forceRelease("force", { signal: stop.signal });
    await gate.sent();
    stop.abort(new Error("caller gave up"));
    await assert.rejects(forced, (err: unknown) => {
      assert.ok(err instanceof LockError);
      assert.equal(err.code, "EABORTED");
      assert.equal(err.writeUncertain, true);
      return true;
    });
    gate.open();
    await holder.close().catch(() => undefined);
    await locks.close();
    client.destroy();
  });
});

describe("signal on transact", () => {
  it("a guarded write aborted after it was sent rejects with EABORTED and writeUncertain", async (t) => {
    if (!backend.capabilities.transactions) {
      t.skip(`${backend.name} has no TransactWriteItems (runs under npm run test:ddb-local)`);
      return;
    }
    const client = backend.newClient();
    const gate = gateUpdates(client, "TransactWriteItemsCommand");
    const locks = new LockClient({ table: uniqueName(), client, leaseMs: 60_000 });
    await locks.createTable();
    const data = uniqueName("accounts");
    await backend.client.send(
      new CreateTableCommand({
        TableName: data,
        KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
        AttributeDefinitions: [{ AttributeName: "id", AttributeType: "S" }],
        BillingMode: "PAY_PER_REQUEST",
      }),
    );
    const lock = await locks.acquire("transact-sent");
    gate.close();
    const stop = new AbortController();
    const write = lock.transact(
      [{ Put: { TableName: data, Item: { id: { S: "a" }, fence: { N: String(lock.fence) } } } }],
      {
        signal: stop.signal,
      },
    );
    await gate.sent();
    const reason = new Error("caller gave up");
    stop.abort(reason);
    // Rejects while the request is still held: the caller stops waiting at once.
    await abortedAfterSending(write, reason);
    gate.open();
    // Whatever became of the write, the lock is still ours and releases normally.
    assert.equal(lock.signal.aborted, false);
    await lock.release();
    await locks.close();
    client.destroy();
  });
});
