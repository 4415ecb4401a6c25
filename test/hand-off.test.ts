/**
 * Same-process hand-off (src/hand-off.ts): the release of a mutex lock passes ownership to the next
 * acquire of the same id waiting in the same LockClient, in the one UpdateItem that releases it.
 * On a real server; the fault cases with injected clocks, sequenced by `holdReply().reached`.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { LockClient, LockError } from "../src/index.js";
import { handOffRequest } from "../src/requests.js";
import { type Backend, countRequests, startBackend, uniqueName } from "./support/backend.js";
import { testProcess } from "./support/process.js";
import { eventually } from "./support/wait.js";

const LEASE = 10_000;
const HEARTBEAT = 1_000;

let backend: Backend;
let table: string;
let admin: LockClient;
let n = 0;
const fresh = () => `handoff-${++n}`;

before(async () => {
  backend = await startBackend();
  table = uniqueName();
  admin = new LockClient({ table, client: backend.client, holder: "admin" });
  await admin.createTable();
});
after(async () => {
  await admin.close();
  await backend.close();
});

/** A process with its own fake clocks and a fault-injecting link. */
function process_(name: string) {
  return testProcess(backend.client, { table, leaseMs: LEASE, heartbeatMs: HEARTBEAT, holder: name });
}

/** On code without hand-offs the held hand-off replies below never come: each test is bounded. */
const BOUNDED = { timeout: 20_000 };

describe("same-process hand-off", () => {
  it(
    "hands the lock to the next local waiter in the releasing request: one request, fence + 1, data carried",
    BOUNDED,
    async () => {
      const id = fresh();
      const client = backend.newClient();
      const counter = countRequests(client);
      const locks = new LockClient({ table, client, holder: "mine", pollMinMs: 5, pollMaxMs: 20 });
      try {
        const first = await locks.acquire<{ n: number }>(id, { waitMs: 0 });
        const waiting = locks.acquire<{ n: number }>(id, { waitMs: 60_000 });
        await new Promise((resolve) => setImmediate(resolve));
        counter.reset();
        await first.release({ n: 1 });
        const second = await waiting;
        assert.deepEqual(counter.byOperation(), { UpdateItem: 1 }, "release and acquire in one request");
        assert.equal(second.fence, first.fence + 1);
        assert.deepEqual(second.data, { n: 1 }, "the release's data is the new holder's");
        assert.equal(second.held, true);
        assert.equal(first.held, false);
        const info = await admin.read(id);
        assert.equal(info?.held, true);
        assert.equal(info?.holder, "mine");
        assert.equal(info?.fence, second.fence);
        // The handed lock is an ordinary lock: it heartbeats, updates and releases as its own.
        await second.update({ n: 2 });
        await second.release();
        const freed = await admin.read(id);
        assert.equal(freed?.held, false);
        assert.deepEqual(freed?.data, { n: 2 });
      } finally {
        await locks.close();
      }
    },
  );

  it(
    "a chain of local waiters is served in order, one request per turn, each fence one more",
    BOUNDED,
    async () => {
      const id = fresh();
      const client = backend.newClient();
      const counter = countRequests(client);
      const locks = new LockClient({ table, client, holder: "mine" });
      try {
        const head = await locks.acquire(id);
        const order: number[] = [];
        const waits = [0, 1, 2].map((i) =>
          locks.acquire(id, { waitMs: 60_000 }).then((lock) => {
            order.push(i);
            return lock;
          }),
        );
        await new Promise((resolve) => setImmediate(resolve));
        counter.reset();
        let previous = head;
        for (const w of waits) {
          await previous.release();
          const next = await w;
          assert.equal(next.fence, previous.fence + 1);
          previous = next;
        }
        await previous.release();
        assert.deepEqual(order, [0, 1, 2]);
        assert.deepEqual(counter.byOperation(), { UpdateItem: 4 }, "three hand-offs and one release");
      } finally {
        await locks.close();
      }
    },
  );

  it(
    "a lost reply: the release succeeds as before, and the waiter adopts its token from a look",
    BOUNDED,
    async () => {
      const id = fresh();
      const p = process_("p");
      const first = await p.locks.acquire<{ n: number }>(id);
      const waiting = p.locks.acquire<{ n: number }>(id, { waitMs: 60_000 });
      p.link.loseReplies("handoff");
      const releasing = first.release({ n: 2 });
      await p.advance(2_000);
      await releasing;
      await p.advance(1_000);
      const second = await waiting;
      assert.equal(second.fence, first.fence + 1, "the handed acquisition, not a second one");
      assert.deepEqual(second.data, { n: 2 });
      assert.equal(second.held, true);
      assert.equal(p.link.sent.filter((k) => k === "handoff").length, 2, "the hand-off and its retry");
      const info = await admin.read(id);
      assert.equal(info?.fence, second.fence);
      assert.equal(info?.holder, "p");
      // (That its lease counts from the hand-off's send is the simulation's to check: break
      // hand-off-counts-from-reply. Here heartbeats have renewed it since.)
      await second.release();
      assert.equal((await admin.read(id))?.held, false);
      await p.locks.close();
    },
  );

  it(
    "a waiter that aborts while the hand-off is in flight: the lock it was handed is freed",
    BOUNDED,
    async () => {
      const id = fresh();
      const p = process_("p");
      const first = await p.locks.acquire(id);
      const stop = new AbortController();
      const waiting = p.locks.acquire(id, { waitMs: 60_000, signal: stop.signal });
      const hold = p.link.holdReply("handoff");
      const releasing = first.release();
      await hold.reached;
      assert.equal((await admin.read(id))?.fence, first.fence + 1, "the hand-off was applied");
      stop.abort(new Error("stop"));
      await assert.rejects(waiting, /stop/);
      hold.deliver();
      await releasing;
      await p.link.settle();
      const info = await admin.read(id);
      assert.equal(info?.held, false, "nobody adopted the hand-off: it was released");
      assert.equal(info?.fence, first.fence + 1);
      await p.locks.close();
    },
  );

  it("close() during a hand-off: the waiter rejects as closed and nothing stays held", BOUNDED, async () => {
    const id = fresh();
    const p = process_("p");
    const first = await p.locks.acquire(id);
    const waiting = p.locks.acquire(id, { waitMs: 60_000 });
    const hold = p.link.holdReply("handoff");
    const releasing = first.release();
    await hold.reached;
    const closing = p.locks.close();
    await assert.rejects(waiting, (e: unknown) => e instanceof LockError && e.code === "ECLOSED");
    hold.deliver();
    await releasing;
    await closing;
    const info = await admin.read(id);
    assert.equal(info?.held, false);
    assert.equal(info?.fence, first.fence + 1);
  });

  it(
    "another process's earlier claim on the turn: no hand-off, a plain release, and that process goes first",
    BOUNDED,
    async () => {
      const id = fresh();
      const mine = new LockClient({ table, client: backend.newClient(), holder: "mine" });
      const other = new LockClient({
        table,
        client: backend.newClient(),
        holder: "other",
        pollMinMs: 5,
        pollMaxMs: 20,
      });
      try {
        const first = await mine.acquire(id);
        const theirs = other.acquire(id, { waitMs: 60_000 });
        await eventually(async () => {
          const out = await backend.client.send(
            new GetItemCommand({ TableName: table, Key: { id: { S: id } }, ConsistentRead: true }),
          );
          return out.Item?.next !== undefined;
        }, "the other process claims the next turn");
        const local = mine.acquire(id, { waitMs: 60_000 });
        await new Promise((resolve) => setImmediate(resolve));
        await first.release();
        const taken = await theirs;
        assert.equal(taken.holder, "other");
        assert.equal(taken.fence, first.fence + 1);
        await taken.release();
        const next = await local;
        assert.equal(next.fence, first.fence + 2);
        await next.release();
      } finally {
        await mine.close();
        await other.close();
      }
    },
  );
});

describe("hand-off request", () => {
  it("has the release's condition, the acquire's effect for the waiter, and the waiter's turn", () => {
    const input = handOffRequest({ table: "t", partitionKey: "id", sortKey: undefined }, "x", {
      owner: "old",
      fence: 7,
      wallNow: 1_000,
      holdMs: 50,
      next: { owner: "new", holder: "h", leaseMs: 3_000, since: 900 },
    });
    const names = input.ExpressionAttributeNames ?? {};
    const values = input.ExpressionAttributeValues ?? {};
    const expand = (e: string | undefined) => (e ?? "").replace(/#\w+/g, (n) => names[n] ?? n);
    assert.equal(
      expand(input.ConditionExpression),
      "owner = :owner AND fence = :fence AND attribute_not_exists(kind) AND (attribute_not_exists(next) OR next = :waiter OR nextSince > :since)",
    );
    assert.match(
      expand(input.UpdateExpression),
      /^SET owner = :newOwner, version = :firstVersion, leaseMs = :leaseMs, heartbeatAt = :now, holder = :holder, releasedBy = :owner, releasedAt = :now, holdMs = :holdMs REMOVE expiresAt, intent, next, nextSince, nextMs, nextAt ADD fence :one$/,
    );
    assert.deepEqual(values[":owner"], { S: "old" });
    assert.deepEqual(values[":newOwner"], { S: "new" });
    assert.deepEqual(values[":waiter"], { S: "new" });
    assert.deepEqual(values[":since"], { N: "900" });
    assert.deepEqual(values[":fence"], { N: "7" });
    assert.equal(input.ReturnValues, "ALL_NEW");
    assert.equal(input.ReturnValuesOnConditionCheckFailure, "ALL_OLD");
    assert.equal(values[":data"], undefined, "data kept unless the release writes some");
  });
});
