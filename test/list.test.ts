/**
 * `locks.list()` on a real server (dynalite, or DYNAMOLOCK_TEST_ENDPOINT): thousands of items over
 * many pages, a sort-key table shared with other records, the filters, and bad options refused
 * before any request.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type AttributeValue, BatchWriteItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { LockClient, type LockInfo } from "../src/index.js";
import { type Backend, countRequests, startBackend, uniqueName } from "./support/backend.js";

let backend: Backend;
before(async () => {
  backend = await startBackend();
});
after(async () => {
  await backend.close();
});

/** Writes items 25 at a time (BatchWriteItem's limit), a few batches in flight. */
async function writeAll(table: string, items: Record<string, AttributeValue>[]): Promise<void> {
  const batches: Record<string, AttributeValue>[][] = [];
  for (let i = 0; i < items.length; i += 25) batches.push(items.slice(i, i + 25));
  const worker = async () => {
    for (let batch = batches.shift(); batch !== undefined; batch = batches.shift()) {
      let requests = batch.map((Item) => ({ PutRequest: { Item } }));
      for (let round = 0; requests.length > 0; round++) {
        assert.ok(round < 50, "BatchWriteItem kept leaving items unprocessed");
        const out = await backend.client.send(
          new BatchWriteItemCommand({ RequestItems: { [table]: requests } }),
        );
        requests = (out.UnprocessedItems?.[table] ?? []) as typeof requests;
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}

/** A lock item as acquire and release leave it (see src/item.ts), written directly for speed. */
function lockItem(
  key: Record<string, AttributeValue>,
  fence: number,
  holder?: string,
): Record<string, AttributeValue> {
  const item: Record<string, AttributeValue> = { ...key, fence: { N: String(fence) } };
  if (holder === undefined) return { ...item, releasedAt: { N: String(Date.now()) } };
  return {
    ...item,
    owner: { S: `token-${holder}` },
    holder: { S: holder },
    version: { N: "1" },
    leaseMs: { N: "30000" },
    heartbeatAt: { N: String(Date.now()) },
  };
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const value of iterable) out.push(value);
  return out;
}

describe("list() over a large table", () => {
  const COUNT = 2_500;
  let table: string;
  let locks: LockClient;
  before(async () => {
    table = uniqueName("list");
    locks = new LockClient({ table, client: backend.newClient(), holder: "lister" });
    await locks.createTable();
    const items: Record<string, AttributeValue>[] = [];
    for (let i = 0; i < COUNT; i++) {
      const id = `${i % 2 === 0 ? "job" : "batch"}/${String(i).padStart(5, "0")}`;
      // Every tenth one held.
      items.push(lockItem({ id: { S: id } }, (i % 7) + 1, i % 10 === 0 ? `worker-${i}` : undefined));
    }
    await writeAll(table, items);
  });
  after(async () => {
    await locks.close();
  });

  it("yields every lock once, over many pages, each like read()", async () => {
    const counter = countRequests(backend.client);
    const client = new LockClient({ table, client: backend.client });
    try {
      const all = await collect(client.list({ pageSize: 300 }));
      assert.equal(all.length, COUNT);
      assert.equal(new Set(all.map((l) => l.lockId)).size, COUNT);
      // 2500 items, 300 a page: at least 9 pages (a server may end pages early on size).
      assert.ok((counter.byOperation().Scan ?? 0) >= 9, JSON.stringify(counter.byOperation()));
      const sample = all.find((l) => l.lockId === "job/00010") as LockInfo<unknown>;
      assert.deepEqual(sample, await client.read("job/00010"));
      assert.equal(sample.held, true);
      assert.equal(sample.holder, "worker-10");
      assert.equal(all.filter((l) => l.held).length, COUNT / 10);
    } finally {
      await client.close();
    }
  });

  it("asks for the next page only when the caller wants more (bounded memory)", async () => {
    const sdk = backend.newClient();
    const scans = countRequests(sdk);
    const lister = new LockClient({ table, client: sdk });
    try {
      const iterator = lister.list({ pageSize: 50 });
      for (let i = 0; i < 50; i++) assert.equal((await iterator.next()).done, false);
      assert.equal(scans.byOperation().Scan, 1);
      await iterator.next();
      assert.equal(scans.byOperation().Scan, 2);
      await iterator.return();
      assert.equal(scans.byOperation().Scan, 2);
    } finally {
      await lister.close();
      sdk.destroy();
    }
  });

  it("filters: held only, by prefix, and both", async () => {
    const held = await collect(locks.list({ held: true, pageSize: 1_000 }));
    assert.equal(held.length, COUNT / 10);
    assert.ok(held.every((l) => l.held && l.holder?.startsWith("worker-")));
    const batch = await collect(locks.list({ prefix: "batch/", pageSize: 1_000 }));
    assert.equal(batch.length, COUNT / 2);
    assert.ok(batch.every((l) => l.lockId.startsWith("batch/")));
    // i held (i % 10 == 0) is always even, so always a "job/" id.
    assert.equal((await collect(locks.list({ held: true, prefix: "batch/" }))).length, 0);
    assert.equal((await collect(locks.list({ held: true, prefix: "job/001" }))).length, 10);
  });

  it("eventually consistent reads on request", async () => {
    const sdk = backend.newClient();
    const seen: unknown[] = [];
    sdk.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== "ScanCommand") return next(args); // the client's look at the table, say
        const body = (args.request as { body?: unknown }).body;
        const text = typeof body === "string" ? body : new TextDecoder().decode(body as Uint8Array);
        seen.push(JSON.parse(text).ConsistentRead);
        return next(args);
      },
      { step: "finalizeRequest", name: "consistentReadSpy" },
    );
    const client = new LockClient({ table, client: sdk });
    try {
      await collect(client.list({ consistent: false, prefix: "job/0000" }));
      await collect(client.list({ prefix: "job/0000" }));
      assert.deepEqual([...new Set(seen)], [false, true]);
    } finally {
      await client.close();
      sdk.destroy();
    }
  });

  it("stops with the signal's reason", async () => {
    const stop = new AbortController();
    const reason = new Error("enough");
    let n = 0;
    await assert.rejects(async () => {
      for await (const _ of locks.list({ signal: stop.signal, pageSize: 100 })) {
        if (++n === 150) stop.abort(reason);
      }
    }, reason);
    assert.ok(n >= 150 && n <= 200, String(n));
  });
});

describe("list() on a single-table design", () => {
  it("yields only the lock items: other sort-key values and foreign records are skipped", async () => {
    const table = uniqueName("list-sk");
    const sortKey = { name: "sk", value: "lock" };
    const locks = new LockClient({ table, client: backend.client, sortKey, partitionKey: "pk" });
    try {
      await locks.createTable();
      const real = await locks.acquire("order#1");
      await writeAll(table, [
        // Other records of the same entities, under other sort-key values.
        { pk: { S: "order#1" }, sk: { S: "details" }, total: { N: "12" }, fence: { N: "3" } },
        { pk: { S: "order#2" }, sk: { S: "details" }, total: { N: "7" } },
        // Records with the lock's sort-key value that are not lock items.
        { pk: { S: "user#9" }, sk: { S: "lock" }, note: { S: "no fence: not ours" } },
        { pk: { S: "user#10" }, sk: { S: "lock" }, fence: { S: "a string fence" } },
        { pk: { S: "user#11" }, sk: { S: "lock" }, fence: { N: "1" }, owner: { N: "5" } },
        lockItem({ pk: { S: "order#3" }, sk: { S: "lock" } }, 4),
      ]);
      const all = await collect(locks.list());
      assert.deepEqual(all.map((l) => l.lockId).sort(), ["order#1", "order#3"]);
      const mine = all.find((l) => l.lockId === "order#1");
      assert.equal(mine?.held, true);
      assert.equal(mine?.fence, real.fence);
      assert.deepEqual(
        (await collect(locks.list({ held: true }))).map((l) => l.lockId),
        ["order#1"],
      );
      await real.release();
    } finally {
      await locks.close();
    }
  });

  it("skips foreign items in a partition-key-only table too", async () => {
    const table = uniqueName("list-foreign");
    const locks = new LockClient({ table, client: backend.client });
    try {
      await locks.createTable();
      await backend.client.send(
        new PutItemCommand({ TableName: table, Item: { id: { S: "config" }, value: { S: "x" } } }),
      );
      await (await locks.acquire("a")).release();
      assert.deepEqual(
        (await collect(locks.list())).map((l) => [l.lockId, l.held, l.fence]),
        [["a", false, 1]],
      );
    } finally {
      await locks.close();
    }
  });
});

describe("list() options", () => {
  it("refuses bad options with a typed error naming them, before any request", async () => {
    const sdk = backend.newClient();
    const counter = countRequests(sdk);
    const locks = new LockClient({ table: uniqueName("list-bad"), client: sdk });
    try {
      assert.throws(() => locks.list({ pageSize: 0 }), { name: "RangeError", message: /`pageSize`/ });
      assert.throws(() => locks.list({ pageSize: 1.5 }), { name: "RangeError", message: /`pageSize`/ });
      assert.throws(() => locks.list({ pageSize: "10" as never }), {
        name: "TypeError",
        message: /`pageSize`/,
      });
      assert.throws(() => locks.list({ held: "yes" as never }), { name: "TypeError", message: /`held`/ });
      assert.throws(() => locks.list({ consistent: 1 as never }), {
        name: "TypeError",
        message: /`consistent`/,
      });
      assert.throws(() => locks.list({ prefix: "" }), { name: "TypeError", message: /`prefix`/ });
      assert.throws(() => locks.list({ signal: {} as never }), { name: "TypeError", message: /`signal`/ });
      assert.throws(() => locks.list(null as never), { name: "TypeError", message: /`options`/ });
      assert.equal(counter.total(), 0);
    } finally {
      await locks.close();
      sdk.destroy();
    }
  });

  it("a missing table is a LockError naming it", async () => {
    const table = uniqueName("list-missing");
    const locks = new LockClient({ table, client: backend.client });
    try {
      await assert.rejects(collect(locks.list()), (err: Error) => {
        assert.equal(err.name, "LockError");
        assert.match(err.message, new RegExp(table));
        return true;
      });
    } finally {
      await locks.close();
    }
  });
});
