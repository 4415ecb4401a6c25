/**
 * Locks with several holders (issue 12): counting semaphores (`permits: N`) and reader–writer locks
 * (`mode: "shared"` / `"exclusive"`), against a real server (dynalite by default; DynamoDB Local
 * with `node --import tsx scripts/ddb-local.mjs test test/multi.test.ts`).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { GetItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { LockClient, LockError, LockLostError } from "../src/index.js";
import { type Backend, countRequests, startBackend, uniqueName } from "./support/backend.js";
import { eventually } from "./support/wait.js";

let backend: Backend;
let table: string;
let locks: LockClient;
const LEASE = 10_000;

before(async () => {
  backend = await startBackend();
  table = uniqueName();
  locks = new LockClient({ table, client: backend.client, leaseMs: LEASE, heartbeatMs: 1_000 });
  await locks.createTable();
});
after(async () => {
  await locks.close();
  await backend.close();
});

async function rawItem(id: string) {
  const out = await backend.client.send(
    new GetItemCommand({ TableName: table, Key: { id: { S: id } }, ConsistentRead: true }),
  );
  return out.Item;
}

/** A holder that died long ago (wall clock far in the past), written straight into the item. */
async function plantDeadEntry(id: string, token: string) {
  await backend.client.send(
    new UpdateItemCommand({
      TableName: table,
      Key: { id: { S: id } },
      UpdateExpression: "SET #h.#t = :e",
      ExpressionAttributeNames: { "#h": "holders", "#t": token },
      ExpressionAttributeValues: {
        ":e": {
          M: {
            version: { N: "3" },
            leaseMs: { N: String(LEASE) },
            heartbeatAt: { N: String(Date.now() - 10 * LEASE) },
            holder: { S: "dead" },
          },
        },
      },
    }),
  );
}

describe("semaphores (permits: N)", () => {
  it("lets at most N in, each with its own strictly increasing fence; a release frees a permit", async () => {
    const a = await locks.acquire("sem-basic", { permits: 2 });
    const b = await locks.acquire("sem-basic", { permits: 2 });
    assert.ok(b.fence > a.fence);
    assert.equal(await locks.tryAcquire("sem-basic", { permits: 2 }), undefined);
    await assert.rejects(locks.acquire("sem-basic", { permits: 2 }), { code: "ELOCKHELD" });
    assert.ok(a.held && b.held);
    await a.release();
    const c = await locks.acquire("sem-basic", { permits: 2 });
    assert.ok(c.fence > b.fence);
    assert.ok(b.held, "another holder's release or acquisition does not disturb b");
    await b.release();
    await c.release();
    const item = await rawItem("sem-basic");
    assert.deepEqual(Object.keys(item?.holders?.M ?? {}), [], "every entry is gone after the releases");
  });

  it("costs one UpdateItem to take a free permit and one to give it back (the map exists)", async () => {
    const client = backend.newClient();
    const own = new LockClient({ table, client, leaseMs: LEASE, checkTable: false });
    const first = await own.acquire("sem-cost", { permits: 3 }); // first use of the id creates the map
    await first.release();
    const counter = countRequests(client);
    const held = await own.acquire("sem-cost", { permits: 3 });
    assert.deepEqual(counter.byOperation(), { UpdateItem: 1 });
    await held.release();
    assert.deepEqual(counter.byOperation(), { UpdateItem: 2 });
    await own.close();
    client.destroy();
  });

  it("reclaims a dead holder's permit by the wall-clock shortcut, leaving the other holders alone", async () => {
    const live = await locks.acquire("sem-reclaim", { permits: 2 });
    await plantDeadEntry("sem-reclaim", "dead-token");
    const taken = await locks.acquire("sem-reclaim", { permits: 2 }); // waitMs 0: the shortcut, at once
    assert.ok(taken.fence > live.fence);
    const holders = (await rawItem("sem-reclaim"))?.holders?.M ?? {};
    assert.equal(holders["dead-token"], undefined, "the dead entry was removed");
    assert.equal(Object.keys(holders).length, 2);
    assert.ok(live.held);
    await live.release();
    await taken.release();
  });

  it("a holder whose entry was reclaimed learns it at its next heartbeat (signal aborts, release rejects)", async () => {
    const fast = new LockClient({ table, client: backend.client, leaseMs: 3_000, heartbeatMs: 50 });
    const held = await fast.acquire("sem-lost", { permits: 1 });
    const token = Object.keys((await rawItem("sem-lost"))?.holders?.M ?? {})[0] as string;
    await backend.client.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { id: { S: "sem-lost" } },
        UpdateExpression: "REMOVE #h.#t",
        ExpressionAttributeNames: { "#h": "holders", "#t": token },
      }),
    );
    await eventually(() => held.signal.aborted, "the holder learns its entry is gone");
    assert.ok(held.signal.reason instanceof LockLostError);
    assert.equal(held.signal.reason.reason, "taken");
    assert.equal(held.held, false);
    await assert.rejects(held.release(), LockLostError);
    await fast.close();
  });

  it("data is read-only for permit holders: update and release(data) reject before any request", async () => {
    const client = backend.newClient();
    const own = new LockClient({ table, client, leaseMs: LEASE, checkTable: false });
    const seed = await own.acquire<{ n: number }>("sem-data");
    await seed.release({ n: 7 });
    const held = await own.acquire<{ n: number }>("sem-data", { permits: 2 });
    assert.deepEqual(held.data, { n: 7 }, "the data is read with the acquisition");
    const counter = countRequests(client);
    await assert.rejects(held.update({ n: 8 }), { code: "EREADONLY" });
    await assert.rejects(held.release({ n: 8 }), { code: "EREADONLY" });
    assert.equal(counter.total(), 0);
    assert.ok(held.held);
    await held.release();
    await own.close();
    client.destroy();
  });

  it("mixing kinds on one id is refused from the stored item (EMISMATCH), not mis-counted", async () => {
    const two = await locks.acquire("sem-mix", { permits: 2 });
    await assert.rejects(locks.acquire("sem-mix", { permits: 3 }), (err: unknown) => {
      assert.ok(err instanceof LockError);
      assert.equal(err.code, "EMISMATCH");
      assert.match(err.message, /semaphore of 2 permits/);
      return true;
    });
    await assert.rejects(locks.acquire("sem-mix", { waitMs: 5_000 }), { code: "EMISMATCH" });
    await assert.rejects(locks.acquire("sem-mix", { mode: "shared" }), { code: "EMISMATCH" });
    await two.release();
    // Nobody in: the id may be used another way now.
    const mutex = await locks.acquire("sem-mix");
    await assert.rejects(locks.acquire("sem-mix", { permits: 2, waitMs: 5_000 }), { code: "EMISMATCH" });
    await mutex.release();
    const three = await locks.acquire("sem-mix", { permits: 3 });
    await three.release();
  });

  it("rejects bad permits and modes with a typed error naming the argument, before any request", async () => {
    const client = backend.newClient();
    const own = new LockClient({ table, client, leaseMs: LEASE, checkTable: false });
    const counter = countRequests(client);
    await assert.rejects(own.acquire("x", { permits: 0 }), { name: "RangeError", message: /`permits`/ });
    await assert.rejects(own.acquire("x", { permits: 1.5 }), { name: "RangeError", message: /`permits`/ });
    await assert.rejects(own.acquire("x", { permits: 1001 }), { name: "RangeError", message: /`permits`/ });
    await assert.rejects(own.acquire("x", { permits: "2" as never }), {
      name: "TypeError",
      message: /`permits`/,
    });
    await assert.rejects(own.acquire("x", { mode: "read" as never }), {
      name: "TypeError",
      message: /`mode`/,
    });
    await assert.rejects(own.acquire("x", { permits: 2, mode: "shared" }), {
      name: "TypeError",
      message: /`mode`/,
    });
    await assert.rejects(own.tryAcquire("x", { permits: -1 }), { name: "RangeError" });
    assert.equal(counter.total(), 0);
    await own.close();
    client.destroy();
  });

  it("onWait reports each look while the permits are taken", async () => {
    const held = await locks.acquire("sem-wait", { permits: 1 });
    const seen: number[] = [];
    await assert.rejects(
      locks.acquire("sem-wait", { permits: 1, waitMs: 150, onWait: (p) => void seen.push(p.fence) }),
      { code: "ELOCKHELD" },
    );
    assert.ok(seen.length >= 1 && seen.every((f) => f === held.fence));
    await held.release();
  });

  it("a guarded write commits only while the permit is held (servers with transactions)", async (t) => {
    if (!backend.capabilities.transactions) {
      t.skip(`${backend.name} has no TransactWriteItems`);
      return;
    }
    const held = await locks.acquire("sem-guard", { permits: 2 });
    const write = (n: number) => ({
      Update: {
        TableName: table,
        Key: { id: { S: "sem-guard/resource" } },
        UpdateExpression: "SET #n = :n",
        ExpressionAttributeNames: { "#n": "n" },
        ExpressionAttributeValues: { ":n": { N: String(n) } },
      },
    });
    await held.transact([write(1)]);
    assert.equal((await rawItem("sem-guard/resource"))?.n?.N, "1");
    const token = Object.keys((await rawItem("sem-guard"))?.holders?.M ?? {})[0] as string;
    await backend.client.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { id: { S: "sem-guard" } },
        UpdateExpression: "REMOVE #h.#t",
        ExpressionAttributeNames: { "#h": "holders", "#t": token },
      }),
    );
    await assert.rejects(held.transact([write(2)]), LockLostError);
    assert.equal((await rawItem("sem-guard/resource"))?.n?.N, "1", "nothing written without the permit");
    assert.ok(held.signal.aborted);
  });

  it("withLock runs under a permit and gives it back", async () => {
    const fence = await locks.withLock("sem-with", async (l) => l.fence, { permits: 1 });
    assert.ok(fence > 0);
    const again = await locks.acquire("sem-with", { permits: 1 });
    assert.ok(again.fence > fence);
    await again.release();
  });
});

describe("reader–writer locks (mode)", () => {
  it("many shared holders, never together with an exclusive one", async () => {
    const r1 = await locks.acquire("rw-basic", { mode: "shared" });
    const r2 = await locks.acquire("rw-basic", { mode: "shared" });
    assert.ok(r2.fence > r1.fence);
    assert.equal(await locks.tryAcquire("rw-basic", { mode: "exclusive" }), undefined);
    assert.equal(await locks.tryAcquire("rw-basic"), undefined, "exclusive is the default");
    assert.equal(
      (await rawItem("rw-basic"))?.intent,
      undefined,
      "a try that does not wait records no intent",
    );
    await r1.release();
    await r2.release();
    const w = await locks.acquire("rw-basic", { mode: "exclusive" });
    assert.ok(w.fence > r2.fence);
    assert.equal(await locks.tryAcquire("rw-basic", { mode: "shared" }), undefined);
    await w.update({ written: true }); // the exclusive holder is the mutex: it may write
    await w.release();
    const r3 = await locks.acquire<{ written: boolean }>("rw-basic", { mode: "shared" });
    assert.deepEqual(r3.data, { written: true });
    await r3.release();
  });

  it("a waiting writer's intent keeps new readers out; it gets in once the readers already in leave", async (t) => {
    const r1 = await locks.acquire("rw-intent", { mode: "shared" });
    const writing = locks.acquire("rw-intent", { mode: "exclusive", waitMs: 30_000 });
    await eventually(
      async () => (await rawItem("rw-intent"))?.intent !== undefined,
      "the writer records its intent",
    );
    assert.equal(
      await locks.tryAcquire("rw-intent", { mode: "shared" }),
      undefined,
      "a new reader is refused",
    );
    assert.ok(r1.held, "the reader already in keeps its lock");
    await r1.release();
    const releasedAt = performance.now();
    const w = await writing;
    // Measured, not asserted (no wall-clock windows in tests): the sim checks the bound.
    t.diagnostic(`writer in ${(performance.now() - releasedAt).toFixed(0)} ms after the last reader left`);
    assert.ok(w.fence > r1.fence);
    assert.equal((await rawItem("rw-intent"))?.intent, undefined, "the intent goes with the acquisition");
    await w.release();
    const r2 = await locks.acquire("rw-intent", { mode: "shared" });
    await r2.release();
  });

  it("a dead writer's intent expires by the same rules as a lease; a writer that gives up withdraws it", async () => {
    const r1 = await locks.acquire("rw-dead-intent", { mode: "shared" });
    await backend.client.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { id: { S: "rw-dead-intent" } },
        UpdateExpression: "SET #i = :i",
        ExpressionAttributeNames: { "#i": "intent" },
        ExpressionAttributeValues: {
          ":i": {
            M: {
              token: { S: "dead-writer" },
              version: { N: "1" },
              leaseMs: { N: String(LEASE) },
              heartbeatAt: { N: String(Date.now() - 10 * LEASE) },
              holder: { S: "dead" },
            },
          },
        },
      }),
    );
    const r2 = await locks.acquire("rw-dead-intent", { mode: "shared" });
    assert.equal((await rawItem("rw-dead-intent"))?.intent, undefined, "the stale intent was removed");
    // A writer that waits, then gives up, takes its intent away with it.
    await assert.rejects(locks.acquire("rw-dead-intent", { waitMs: 300 }), { code: "ELOCKHELD" });
    await eventually(
      async () => (await rawItem("rw-dead-intent"))?.intent === undefined,
      "the intent is withdrawn",
    );
    const r3 = await locks.acquire("rw-dead-intent", { mode: "shared" });
    for (const r of [r1, r2, r3]) await r.release();
  });

  it("a writer reclaims a dead reader's entry and gets in", async () => {
    const r1 = await locks.acquire("rw-dead-reader", { mode: "shared" });
    await r1.release();
    await plantDeadEntry("rw-dead-reader", "dead-reader");
    const w = await locks.acquire("rw-dead-reader", { waitMs: 5_000 });
    assert.ok(w.held);
    await w.release();
  });
});
