/**
 * Optional TTL cleanup of long-released lock items. What must hold on every server: only releases
 * write an expiry, acquire and heartbeats remove it, and a server without TTL is reported, not
 * fatal. DynamoDB Local really deletes expired items (within seconds), so there the tests also watch
 * TTL delete a released item and spare a held one.
 */
import assert from "node:assert/strict";
import { after, before, describe, it, type TestContext } from "node:test";
import {
  type AttributeValue,
  DescribeTimeToLiveCommand,
  GetItemCommand,
  UpdateItemCommand,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import { LockClient, LockError } from "../src/index.js";
import type { KeySchema } from "../src/item.js";
import { acquireRequest, forceReleaseRequest, releaseRequest, renewRequest } from "../src/requests.js";
import { DEFAULT_RELEASED_TTL_MS } from "../src/ttl.js";
import { type Backend, countRequests, startBackend, uniqueName } from "./support/backend.js";
import { eventually } from "./support/wait.js";

let backend: Backend;

before(async () => {
  backend = await startBackend();
});
after(async () => {
  await backend.close();
});

async function rawItem(table: string, id: string): Promise<Record<string, AttributeValue> | undefined> {
  const out = await backend.client.send(
    new GetItemCommand({ TableName: table, Key: { id: { S: id } }, ConsistentRead: true }),
  );
  return out.Item;
}

const expiryOf = async (table: string, id: string, attribute = "expiresAt") => {
  const n = (await rawItem(table, id))?.[attribute]?.N;
  return n === undefined ? undefined : Number(n);
};

function needsTtl(t: TestContext): boolean {
  if (backend.capabilities.ttl) return true;
  t.skip(`${backend.name} has no Time to Live`);
  return false;
}

/** Polls every 100 ms, at most 400 times: TTL sweeps run in the background, seconds apart. */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Timed out waiting for: ${what}`);
}

/** Captures the process warnings emitted while `fn` runs. */
async function warningsDuring(fn: () => Promise<unknown>): Promise<Error[]> {
  const seen: Error[] = [];
  const listener = (w: Error) => seen.push(w);
  process.on("warning", listener);
  try {
    await fn();
    // Warnings are delivered on a later tick.
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off("warning", listener);
  }
  return seen;
}

describe("TTL options", () => {
  it("bad values are TypeError/RangeError naming the option, before any request", async () => {
    const client = backend.newClient();
    const counter = countRequests(client);
    const make = (o: Record<string, unknown>) => () => new LockClient({ table: "locks", client, ...o });
    assert.throws(make({ releasedTtlMs: -1 }), { name: "RangeError", message: /`releasedTtlMs`/ });
    assert.throws(make({ releasedTtlMs: Number.NaN }), { name: "RangeError", message: /`releasedTtlMs`/ });
    assert.throws(make({ releasedTtlMs: "7d" }), { name: "TypeError", message: /`releasedTtlMs`/ });
    assert.throws(make({ ttlAttribute: "" }), { name: "RangeError", message: /`ttlAttribute`/ });
    assert.throws(make({ ttlAttribute: 5 }), { name: "TypeError", message: /`ttlAttribute`/ });
    assert.throws(make({ ttlAttribute: "owner" }), {
      name: "RangeError",
      message: /`ttlAttribute`.*lock field/,
    });
    assert.throws(make({ ttlAttribute: "id" }), { name: "RangeError", message: /`ttlAttribute`.*key/ });
    assert.throws(make({ ttlAttribute: "sk", sortKey: { name: "sk", value: "L" } }), {
      name: "RangeError",
      message: /`ttlAttribute`/,
    });
    const ok = new LockClient({ table: "locks", client });
    await assert.rejects(ok.createTable({ ttl: "yes" as unknown as boolean }), {
      name: "TypeError",
      message: /`ttl`/,
    });
    assert.equal(counter.total(), 0);
    await ok.close();
    client.destroy();
  });

  it("requests: only releases write the expiry; acquire, heartbeat and update remove it", () => {
    const schema: KeySchema = {
      table: "locks",
      partitionKey: "id",
      sortKey: undefined,
      expiry: { attribute: "ttl", retainMs: 60_000 },
    };
    const acquire = acquireRequest(schema, "a", { owner: "o", holder: "h", leaseMs: 1_000, wallNow: 1_000 });
    assert.match(acquire.UpdateExpression ?? "", /REMOVE #expiresAt/);
    assert.equal(acquire.ExpressionAttributeNames?.["#expiresAt"], "ttl");
    const heartbeat = renewRequest(schema, "a", { owner: "o", fence: 1, version: 2, wallNow: 1_000 });
    assert.match(heartbeat.UpdateExpression ?? "", /REMOVE #expiresAt$/);
    assert.equal(heartbeat.ExpressionAttributeNames?.["#expiresAt"], "ttl");
    const update = renewRequest(schema, "a", {
      owner: "o",
      fence: 1,
      version: 2,
      wallNow: 1_000,
      data: { M: {} },
    });
    assert.match(update.UpdateExpression ?? "", /#data = :data REMOVE #expiresAt$/);
    for (const release of [
      releaseRequest(schema, "a", { owner: "o", wallNow: 1_000_400 }),
      forceReleaseRequest(schema, "a", 1_000_400),
    ]) {
      assert.match(release.UpdateExpression ?? "", /SET .*#expiresAt = :expiresAt/);
      assert.doesNotMatch(release.UpdateExpression ?? "", /REMOVE[^S]*#expiresAt/);
      // Whole epoch seconds, rounded up: (1_000_400 + 60_000) ms -> 1061 s.
      assert.deepEqual(release.ExpressionAttributeValues?.[":expiresAt"], { N: "1061" });
    }
    // Off: releases write no expiry, but acquire still removes the default attribute.
    const off: KeySchema = { table: "locks", partitionKey: "id", sortKey: undefined };
    assert.doesNotMatch(
      releaseRequest(off, "a", { owner: "o", wallNow: 1 }).UpdateExpression ?? "",
      /expiresAt/,
    );
    assert.equal(
      acquireRequest(off, "a", { owner: "o", holder: "h", leaseMs: 1_000, wallNow: 1 })
        .ExpressionAttributeNames?.["#expiresAt"],
      "expiresAt",
    );
  });
});

describe("TTL cleanup on a real server", () => {
  let table: string;
  let locks: LockClient;

  before(async () => {
    table = uniqueName();
    locks = new LockClient({ table, client: backend.client, leaseMs: 10_000, releasedTtlMs: true });
    await warningsDuring(() => locks.createTable());
  });
  after(async () => {
    await locks.close();
  });

  it("is off by default: a release writes no expiry", async () => {
    const plain = new LockClient({ table, client: backend.client });
    const lock = await plain.acquire("no-ttl");
    await lock.release();
    assert.equal(await expiryOf(table, "no-ttl"), undefined);
    await plain.close();
  });

  it("a release records an expiry 7 days ahead; the next acquire removes it", async () => {
    const lock = await locks.acquire("released");
    assert.equal(await expiryOf(table, "released"), undefined);
    const before = Date.now();
    await lock.release({ done: true });
    const after = Date.now();
    const expiresAt = await expiryOf(table, "released");
    assert.ok(expiresAt !== undefined);
    assert.ok(expiresAt >= Math.floor((before + DEFAULT_RELEASED_TTL_MS) / 1000), String(expiresAt));
    assert.ok(expiresAt <= Math.ceil((after + DEFAULT_RELEASED_TTL_MS) / 1000), String(expiresAt));
    const again = await locks.acquire("released");
    assert.equal(await expiryOf(table, "released"), undefined);
    assert.deepEqual(again.data, { done: true });
    assert.equal(again.fence, lock.fence + 1);
    await again.release();
  });

  it("forceRelease records the expiry too", async () => {
    const lock = await locks.acquire("forced");
    await locks.forceRelease("forced");
    assert.equal(typeof (await expiryOf(table, "forced")), "number");
    await lock.release().catch(() => undefined);
  });

  it("a heartbeat removes an expiry found on a held lock", async () => {
    const own = new LockClient({ table, client: backend.client, leaseMs: 3_000, heartbeatMs: 50 });
    const lock = await own.acquire("heartbeat");
    // As if written by someone else (or by an older version); an hour ahead, so TTL leaves it alone.
    await backend.client.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { id: { S: "heartbeat" } },
        UpdateExpression: "SET #e = :e",
        ExpressionAttributeNames: { "#e": "expiresAt" },
        ExpressionAttributeValues: { ":e": { N: String(Math.ceil(Date.now() / 1000) + 3_600) } },
      }),
    );
    await eventually(
      async () => (await expiryOf(table, "heartbeat")) === undefined,
      "a heartbeat to remove it",
    );
    assert.equal(lock.signal.aborted, false);
    await own.close();
  });

  it("createTable({ ttl: true }) turns TTL on, and is idempotent", async (t) => {
    if (!needsTtl(t)) return;
    const out = await backend.client.send(new DescribeTimeToLiveCommand({ TableName: table }));
    assert.equal(out.TimeToLiveDescription?.AttributeName, "expiresAt");
    assert.match(out.TimeToLiveDescription?.TimeToLiveStatus ?? "", /^ENABL/);
    assert.equal(await locks.createTable({ ttl: true }), false);
  });

  it("createTable({ ttl: true }) refuses a table whose TTL is on another attribute", async (t) => {
    if (!needsTtl(t)) return;
    const other = uniqueName();
    const first = new LockClient({ table: other, client: backend.client });
    await first.createTable();
    await backend.client.send(
      new UpdateTimeToLiveCommand({
        TableName: other,
        TimeToLiveSpecification: { Enabled: true, AttributeName: "purgeAt" },
      }),
    );
    const err = await first.createTable({ ttl: true }).catch((e: unknown) => e);
    assert.ok(err instanceof LockError, String(err));
    assert.match(err.message, /"purgeAt"/);
    assert.match(err.message, /ttlAttribute/);
    // With the table's own attribute it is fine.
    const matching = new LockClient({ table: other, client: backend.client, ttlAttribute: "purgeAt" });
    assert.equal(await matching.createTable({ ttl: true }), false);
    await first.close();
    await matching.close();
  });

  it("on a server without TTL, createTable({ ttl: true }) succeeds and says so in a warning", async (t) => {
    if (backend.capabilities.ttl) {
      t.skip(`${backend.name} has Time to Live: this is the test for servers without it`);
      return;
    }
    const fresh = new LockClient({ table: uniqueName(), client: backend.client });
    let created: boolean | undefined;
    const warnings = await warningsDuring(async () => {
      created = await fresh.createTable({ ttl: true });
    });
    assert.equal(created, true);
    const warning = warnings.find((w) => (w as { code?: string }).code === "DYNAMOLOCK_TTL_UNSUPPORTED");
    assert.ok(warning, `warnings: ${warnings.map((w) => w.message).join("; ")}`);
    assert.match(warning.message, /will not be deleted automatically/);
    // Locks work as before.
    const lock = await fresh.acquire("works");
    await lock.release();
    await fresh.close();
  });

  it("TTL deletes a long-released item (its fence restarts at 1) but never a held one", async (t) => {
    if (!needsTtl(t)) return;
    if (backend.name !== "ddb-local") {
      t.skip(`${backend.name} may take days to delete expired items; DynamoDB Local does it within seconds`);
      return;
    }
    // Released items expire 2 s after release (rounded up to a whole second). Heartbeats far apart,
    // so that the acquire alone must keep the held item from expiring.
    const quick = new LockClient({
      table,
      client: backend.client,
      releasedTtlMs: 2_000,
      leaseMs: 120_000,
      heartbeatMs: 40_000,
    });
    const first = await quick.acquire("kept");
    await first.release();
    assert.equal(typeof (await expiryOf(table, "kept")), "number");
    // Taken again at once: the expiry goes in the same write that takes the lock.
    const held = await quick.acquire("kept");
    assert.equal(held.fence, first.fence + 1);
    // A control released later, so it expires no earlier than "kept" would have: once TTL has
    // deleted it, a sweep has run past the moment the held lock's old expiry fell due.
    const control = await quick.acquire("control");
    await control.release();
    await until(async () => (await rawItem(table, "control")) === undefined, "TTL to delete the control");
    assert.notEqual(await rawItem(table, "kept"), undefined, "TTL must never delete a held lock");
    assert.equal(held.signal.aborted, false);
    await held.update({ still: "mine" });
    // The documented cost of deletion: the item's fence restarts at 1.
    const reborn = await quick.acquire("control");
    assert.equal(reborn.fence, 1);
    await reborn.release();
    await held.release();
    await quick.close();
  });
});
