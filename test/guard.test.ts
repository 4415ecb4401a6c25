/**
 * Guarded writes (`lock.guard()`, `lock.transact()`): the caller's own items commit only while the
 * lock is held. Needs transactions (DynamoDB Local, AWS); on dynalite the transaction tests are
 * skipped with the reason, and the call itself must fail with a clear LockError.
 */
import assert from "node:assert/strict";
import { after, before, describe, it, type TestContext } from "node:test";
import {
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  type TransactWriteItem,
  TransactWriteItemsCommand,
} from "@aws-sdk/client-dynamodb";
import { LockClient, LockError, LockLostError, TransactionCanceledError } from "../src/index.js";
import { type Backend, countRequests, startBackend, uniqueName } from "./support/backend.js";
import { eventually } from "./support/wait.js";

let backend: Backend;
/** The locks' table. */
let table: string;
/** A table of the caller's own items, written under the lock. */
let accounts: string;
let locks: LockClient;

before(async () => {
  backend = await startBackend();
  table = uniqueName();
  accounts = uniqueName("accounts");
  locks = new LockClient({ table, client: backend.client, leaseMs: 10_000, heartbeatMs: 1_000 });
  await locks.createTable();
  // A second table created the same way: partition key `id` (S).
  const other = new LockClient({ table: accounts, client: backend.client });
  await other.createTable();
  await other.close();
});
after(async () => {
  await locks.close();
  await backend.close();
});

function needsTransactions(t: TestContext): boolean {
  if (backend.capabilities.transactions) return true;
  t.skip(`${backend.name} has no TransactWriteItems`);
  return false;
}

async function putBalance(id: string, balance: number): Promise<void> {
  await backend.client.send(
    new PutItemCommand({ TableName: accounts, Item: { id: { S: id }, balance: { N: String(balance) } } }),
  );
}

async function balanceOf(id: string): Promise<number | undefined> {
  const out = await backend.client.send(
    new GetItemCommand({ TableName: accounts, Key: { id: { S: id } }, ConsistentRead: true }),
  );
  return out.Item?.balance?.N === undefined ? undefined : Number(out.Item.balance.N);
}

/** The caller's own write: set an account's balance, recording the fence it was written under. */
function setBalance(id: string, balance: number, fence: number): TransactWriteItem {
  return {
    Update: {
      TableName: accounts,
      Key: { id: { S: id } },
      UpdateExpression: "SET #balance = :balance, #fence = :fence",
      ExpressionAttributeNames: { "#balance": "balance", "#fence": "fence" },
      ExpressionAttributeValues: { ":balance": { N: String(balance) }, ":fence": { N: String(fence) } },
    },
  };
}

/**
 * A client whose requests can be held back, as if the process were paused (or the network stalled)
 * between deciding to write and the write reaching DynamoDB.
 */
function pausableClient(): { client: DynamoDBClient; pause(): void; resume(): void } {
  const client = backend.newClient();
  let gate: { promise: Promise<void>; open: () => void } | undefined;
  client.middlewareStack.add(
    (next) => async (args) => {
      if (gate !== undefined) await gate.promise;
      return next(args);
    },
    { step: "finalizeRequest", name: "testPauseGate" },
  );
  return {
    client,
    pause() {
      let open: () => void = () => undefined;
      const promise = new Promise<void>((resolve) => {
        open = resolve;
      });
      gate = { promise, open };
    },
    resume() {
      gate?.open();
      gate = undefined;
    },
  };
}

describe("guarded writes", () => {
  it("a valid holder commits its guarded write, in exactly one request", async (t) => {
    if (!needsTransactions(t)) return;
    const client = backend.newClient();
    const counter = countRequests(client);
    const own = new LockClient({ table, client, leaseMs: 10_000 });
    const lock = await own.acquire("valid-holder");
    counter.reset();
    await lock.transact([setBalance("valid", 100, lock.fence)]);
    assert.deepEqual(counter.byOperation(), { TransactWriteItems: 1 });
    assert.equal(await balanceOf("valid"), 100);
    assert.equal(lock.signal.aborted, false);
    await lock.release();
    await own.close();
    client.destroy();
  });

  it("guard() goes into the caller's own TransactWriteItems", async (t) => {
    if (!needsTransactions(t)) return;
    const lock = await locks.acquire("own-transaction");
    await backend.client.send(
      new TransactWriteItemsCommand({ TransactItems: [setBalance("own", 5, lock.fence), lock.guard()] }),
    );
    assert.equal(await balanceOf("own"), 5);
    await locks.forceRelease("own-transaction");
    // The guard now refuses: the caller's own transaction is cancelled on the guard's index.
    const err = await backend.client
      .send(
        new TransactWriteItemsCommand({ TransactItems: [setBalance("own", 6, lock.fence), lock.guard()] }),
      )
      .catch((e: unknown) => e);
    assert.equal((err as Error).name, "TransactionCanceledException");
    const reasons = (err as { CancellationReasons?: { Code?: string }[] }).CancellationReasons;
    assert.deepEqual(
      reasons?.map((r) => r.Code),
      ["None", "ConditionalCheckFailed"],
    );
    assert.equal(await balanceOf("own"), 5);
    await lock.release().catch(() => undefined);
  });

  it("a force-released holder cannot commit; the other item is untouched and the signal aborts", async (t) => {
    if (!needsTransactions(t)) return;
    await putBalance("forced", 10);
    // A heartbeat far away, so the holder has not noticed the force-release when it writes.
    const own = new LockClient({ table, client: backend.client, leaseMs: 60_000, heartbeatMs: 20_000 });
    const lock = await own.acquire("forced");
    assert.deepEqual(await locks.forceRelease("forced").then((i) => i?.fence), lock.fence);
    assert.equal(lock.signal.aborted, false);

    const err = await lock.transact([setBalance("forced", 999, lock.fence)]).catch((e: unknown) => e);
    assert.ok(err instanceof LockLostError, String(err));
    assert.equal(err.reason, "released");
    assert.match(err.message, /force-released by someone else/);
    assert.equal(lock.signal.aborted, true);
    assert.equal(lock.signal.reason, err);
    assert.equal(await balanceOf("forced"), 10);
    await assert.rejects(lock.release(), LockLostError);
    await own.close();
  });

  it("a holder paused past its lease and taken over cannot commit; the new holder can", async (t) => {
    if (!needsTransactions(t)) return;
    await putBalance("paused", 10);
    const paused = pausableClient();
    const first = new LockClient({
      table,
      client: paused.client,
      holder: "first",
      leaseMs: 1_000,
      heartbeatMs: 200,
    });
    const second = new LockClient({ table, client: backend.client, holder: "second", leaseMs: 10_000 });
    const lock = await first.acquire("paused");

    // The holder decides to write and passes its local check; then it stalls before the write lands.
    paused.pause();
    const write = lock.transact([setBalance("paused", 111, lock.fence)]).catch((e: unknown) => e);
    // Its heartbeats stall too, so its lease runs out: it learns first (its signal aborts) ...
    await eventually(() => lock.signal.aborted, "the paused holder's signal to abort");
    // ... and only then can the second client take the lock over.
    const taken = await second.acquire("paused", { waitMs: 30_000 });
    assert.equal(taken.fence, lock.fence + 1);

    paused.resume();
    const err = await write;
    assert.ok(err instanceof LockLostError, String(err));
    assert.equal(await balanceOf("paused"), 10);

    await taken.transact([setBalance("paused", 222, taken.fence)]);
    assert.equal(await balanceOf("paused"), 222);
    await taken.release();
    await first.close();
    await second.close();
    paused.client.destroy();
  });

  it("another item's failed condition is a TransactionCanceledError with the reasons; the lock stays held", async (t) => {
    if (!needsTransactions(t)) return;
    await putBalance("cond", 10);
    const lock = await locks.acquire("other-cancel");
    const err = await lock
      .transact([
        setBalance("cond-side", 1, lock.fence),
        {
          ConditionCheck: {
            TableName: accounts,
            Key: { id: { S: "cond" } },
            ConditionExpression: "#balance > :min",
            ExpressionAttributeNames: { "#balance": "balance" },
            ExpressionAttributeValues: { ":min": { N: "1000" } },
          },
        },
      ])
      .catch((e: unknown) => e);
    assert.ok(err instanceof TransactionCanceledError, String(err));
    assert.ok(err instanceof LockError);
    assert.ok(!(err instanceof LockLostError));
    assert.deepEqual(
      err.reasons.map((r) => r.Code),
      ["None", "ConditionalCheckFailed", "None"],
    );
    assert.match(err.message, /items\[1\]: ConditionalCheckFailed/);
    assert.equal(await balanceOf("cond-side"), undefined, "nothing of the transaction was written");
    assert.equal(lock.signal.aborted, false);
    assert.equal(lock.held, true);
    await lock.transact([setBalance("cond-side", 2, lock.fence)]);
    assert.equal(await balanceOf("cond-side"), 2);
    await lock.release();
  });

  it("a server without transactions rejects with a clear LockError, and the lock is unaffected", async (t) => {
    if (backend.capabilities.transactions) {
      t.skip(`${backend.name} has transactions: this is the test for servers without them`);
      return;
    }
    const client = backend.newClient();
    const counter = countRequests(client);
    const own = new LockClient({ table, client, leaseMs: 10_000 });
    const lock = await own.acquire("no-transactions");
    counter.reset();
    const err = await lock.transact([setBalance("none", 1, lock.fence)]).catch((e: unknown) => e);
    assert.ok(err instanceof LockError, String(err));
    assert.ok(!(err instanceof LockLostError));
    assert.match(err.message, /does not support TransactWriteItems/);
    assert.match(err.message, /DynamoDB Local/);
    assert.equal((err.cause as Error).name, "UnknownOperationException");
    assert.deepEqual(counter.byOperation(), { TransactWriteItems: 1 });
    assert.equal(lock.signal.aborted, false);
    await lock.release();
    await own.close();
    client.destroy();
  });
});

describe("guarded writes refused locally (any server)", () => {
  it("a lock known lost refuses guard() and transact() without sending anything", async () => {
    const client = backend.newClient();
    const counter = countRequests(client);
    const own = new LockClient({ table, client, leaseMs: 3_000, heartbeatMs: 50 });
    const lock = await own.acquire("known-lost");
    await locks.forceRelease("known-lost");
    await eventually(() => lock.signal.aborted, "the heartbeat to notice the force-release");
    counter.reset();
    assert.throws(() => lock.guard(), LockLostError);
    await assert.rejects(lock.transact([setBalance("lost", 1, lock.fence)]), LockLostError);
    assert.equal(counter.total(), 0);
    await own.close();
    client.destroy();
  });

  it("a released lock refuses with a LockError saying so", async () => {
    const lock = await locks.acquire("released-guard");
    await lock.release();
    assert.throws(
      () => lock.guard(),
      (e: unknown) => e instanceof LockError && !(e instanceof LockLostError) && /released/.test(e.message),
    );
    await assert.rejects(lock.transact([]), /already released/);
  });

  it("bad items and options are TypeError/RangeError naming the argument, before any request", async () => {
    const client = backend.newClient();
    const counter = countRequests(client);
    const own = new LockClient({ table, client, leaseMs: 10_000 });
    const lock = await own.acquire("bad-items");
    counter.reset();
    const call = (items: unknown, options?: unknown) =>
      lock.transact(items as TransactWriteItem[], options as { signal?: AbortSignal });
    await assert.rejects(call("nope"), { name: "TypeError", message: /`items`/ });
    await assert.rejects(call([null]), { name: "TypeError", message: /`items\[0\]`/ });
    await assert.rejects(call([{}]), { name: "TypeError", message: /`items\[0\]`.*exactly one of/ });
    await assert.rejects(call([setBalance("a", 1, 1), { Put: {}, Delete: {} }]), {
      name: "TypeError",
      message: /`items\[1\]`.*Put and Delete/,
    });
    const many = Array.from({ length: 100 }, (_, i) => setBalance(`a${i}`, 1, 1));
    await assert.rejects(call(many), { name: "RangeError", message: /`items`.*at most 99/ });
    const onLockItem: TransactWriteItem = {
      Update: {
        TableName: table,
        Key: { id: { S: "bad-items" } },
        UpdateExpression: "SET #o = :o",
        ExpressionAttributeNames: { "#o": "owner" },
        ExpressionAttributeValues: { ":o": { S: "forged" } },
      },
    };
    await assert.rejects(call([onLockItem]), {
      name: "RangeError",
      message: /`items\[0\]`.*lock item itself/,
    });
    await assert.rejects(call([], { signal: "no" }), { name: "TypeError", message: /`options.signal`/ });
    await assert.rejects(call([], 5), { name: "TypeError", message: /`options`/ });
    const reason = new Error("stop");
    await assert.rejects(call([], { signal: AbortSignal.abort(reason) }), (e) => e === reason);
    assert.equal(counter.total(), 0);
    assert.equal(lock.signal.aborted, false);
    await lock.release();
    await own.close();
    client.destroy();
  });
});
