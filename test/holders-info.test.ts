/**
 * Who holds an id, for every kind of lock (src/holder-info.ts): `read()` and `list()` list each
 * holder, and `forceRelease(id, { holder })` removes exactly one. Against a real server (dynalite by
 * default; DynamoDB Local with `node --import tsx scripts/ddb-local.mjs test test/holders-info.test.ts`).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { GetItemCommand, UpdateItemCommand, type UpdateItemCommandInput } from "@aws-sdk/client-dynamodb";
import type { DynamoDBSender } from "../src/aws.js";
import { forceRemoveEntryRequest, holdersOf, pickHolder } from "../src/holder-info.js";
import { LockClient, LockError, LockLostError } from "../src/index.js";
import type { LockRecord } from "../src/item.js";
import { type Backend, countRequests, startBackend, uniqueName } from "./support/backend.js";
import { eventually } from "./support/wait.js";

let backend: Backend;
let table: string;
let locks: LockClient;
const LEASE = 10_000;

before(async () => {
  backend = await startBackend();
  table = uniqueName();
  locks = new LockClient({ table, client: backend.client, leaseMs: LEASE, heartbeatMs: 1_000, holder: "me" });
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

function named(holder: string, extra: Record<string, unknown> = {}) {
  return new LockClient({
    table,
    client: backend.client,
    leaseMs: LEASE,
    heartbeatMs: 1_000,
    holder,
    checkTable: false,
    ...extra,
  });
}

describe("read() and list() show every holder", () => {
  it("a semaphore's holders, one element each, held true, kind and permits", async () => {
    const a = named("alpha");
    const b = named("beta");
    const one = await a.acquire("info-sem", { permits: 3 });
    const two = await b.acquire("info-sem", { permits: 3 });
    const info = await locks.read("info-sem");
    assert.ok(info !== undefined);
    assert.equal(info.held, true);
    assert.equal(info.kind, "permits");
    assert.equal(info.permits, 3);
    // The mutex fields keep their meaning: no exclusive owner.
    assert.equal(info.holder, undefined);
    assert.equal(info.stale, false);
    assert.deepEqual(info.holders.map((h) => h.holder).sort(), ["alpha", "beta"]);
    for (const h of info.holders) {
      assert.equal(h.mode, "permit");
      assert.equal(h.fence, undefined);
      assert.equal(h.leaseMs, LEASE);
      assert.equal(typeof h.heartbeatAt, "number");
      assert.equal(h.stale, false);
      assert.equal(h.key.length, 8);
    }
    const listed = [];
    for await (const l of locks.list({ held: true, prefix: "info-sem" })) listed.push(l);
    assert.equal(listed.length, 1);
    assert.deepEqual(listed[0]?.holders, info.holders);
    await one.release();
    await two.release();
    const after = await locks.read("info-sem");
    assert.equal(after?.held, false);
    assert.deepEqual(after?.holders, []);
    const none = [];
    for await (const l of locks.list({ held: true, prefix: "info-sem" })) none.push(l);
    assert.equal(none.length, 0, "list({ held: true }) skips a semaphore nobody holds");
    await a.close();
    await b.close();
  });

  it("shared holders with mode shared; the mutex owner as one exclusive entry with its fence", async () => {
    const r1 = await locks.acquire("info-rw", { mode: "shared" });
    const r2 = await locks.acquire("info-rw", { mode: "shared" });
    const shared = await locks.read("info-rw");
    assert.equal(shared?.kind, "shared");
    assert.equal(shared?.held, true);
    assert.deepEqual(
      shared?.holders.map((h) => h.mode),
      ["shared", "shared"],
    );
    await r1.release();
    await r2.release();
    const w = await locks.acquire("info-rw");
    const excl = await locks.read("info-rw");
    assert.equal(excl?.kind, "shared", "a reader–writer lock with its writer in");
    assert.equal(excl?.holders.length, 1);
    assert.equal(excl?.holders[0]?.mode, "exclusive");
    assert.equal(excl?.holders[0]?.fence, w.fence);
    assert.equal(excl?.holders[0]?.holder, "me");
    await w.release();

    const m = await locks.acquire("info-mutex");
    const mutex = await locks.read("info-mutex");
    assert.equal(mutex?.kind, "mutex");
    assert.equal(mutex?.permits, undefined);
    assert.equal(mutex?.holder, "me");
    assert.deepEqual(
      mutex?.holders.map((h) => [h.mode, h.holder, h.fence]),
      [["exclusive", "me", m.fence]],
    );
    await m.release();
  });
});

describe("a permit or shared holder's fence in read()", () => {
  it("is recorded by its first renewal (heartbeat or extend), and is its acquisition's", async () => {
    const a = named("fenced");
    const lock = await a.acquire("info-fence", { permits: 2 });
    const before = await locks.read("info-fence");
    assert.equal(before?.holders[0]?.fence, undefined, "the take cannot write it");
    await lock.extend();
    const after = await locks.read("info-fence");
    assert.equal(after?.holders[0]?.fence, lock.fence);
    const b = named("fenced-2");
    const other = await b.acquire("info-fence", { permits: 2 });
    await other.extend();
    const both = await locks.read("info-fence");
    assert.deepEqual(
      both?.holders.map((h) => h.fence).sort(),
      [lock.fence, other.fence].sort(),
      "each holder's own fence, not the item's counter",
    );
    await other.release();
    await lock.release();
    await a.close();
    await b.close();
  });
});

describe("forceRelease(id, { holder }) removes one holder", () => {
  it("removes exactly the named entry; it learns at its next heartbeat, reason released; the others stay", async () => {
    const victimClient = named("victim", { leaseMs: 3_000, heartbeatMs: 50 });
    const otherClient = named("other", { leaseMs: 3_000, heartbeatMs: 50 });
    const victim = await victimClient.acquire("force-one", { permits: 2 });
    const other = await otherClient.acquire("force-one", { permits: 2 });
    const removed = await locks.forceRelease("force-one", { holder: "victim" });
    assert.equal(removed?.holder, "victim");
    assert.equal(removed?.mode, "permit");
    await eventually(() => victim.signal.aborted, "the removed holder learns at its next heartbeat");
    assert.ok(victim.signal.reason instanceof LockLostError);
    assert.equal(victim.signal.reason.reason, "released");
    assert.match(victim.signal.reason.message, /force-released/);
    assert.equal(other.held, true);
    const info = await locks.read("force-one");
    assert.deepEqual(
      info?.holders.map((h) => h.holder),
      ["other"],
    );
    // The permit it held is free again.
    const third = await locks.acquire("force-one", { permits: 2 });
    await third.release();
    await other.release();
    await victimClient.close();
    await otherClient.close();
  });

  it("two holders of one name: EAMBIGUOUS, nothing removed; then the key picks one", async () => {
    const a = await locks.acquire("force-amb", { permits: 2 });
    const b = await locks.acquire("force-amb", { permits: 2 });
    const client = backend.newClient();
    const counts = countRequests(client);
    const counting = new LockClient({ table, client, checkTable: false });
    await assert.rejects(counting.forceRelease("force-amb", { holder: "me" }), (err: unknown) => {
      assert.ok(err instanceof LockError);
      assert.equal(err.code, "EAMBIGUOUS");
      assert.equal(err.lockId, "force-amb");
      return true;
    });
    assert.equal(counts.byOperation().UpdateItem ?? 0, 0, "nothing written");
    const info = await locks.read("force-amb");
    assert.equal(info?.holders.length, 2);
    const key = info?.holders[1]?.key as string;
    const removed = await counting.forceRelease("force-amb", { holder: key });
    assert.equal(removed?.key, key);
    const left = await locks.read("force-amb");
    assert.deepEqual(
      left?.holders.map((h) => h.key),
      [info?.holders[0]?.key],
    );
    assert.equal(await counting.forceRelease("force-amb", { holder: "nobody" }), undefined);
    await counting.close();
    for (const l of [a, b]) await l.release().catch(() => undefined);
  });

  it("the exclusive owner, named, is removed as by forceRelease(id)", async () => {
    const owner = named("owner");
    const held = await owner.acquire("force-owner");
    const removed = await locks.forceRelease("force-owner", { holder: "owner" });
    assert.equal(removed?.mode, "exclusive");
    assert.equal(removed?.fence, held.fence);
    const info = await locks.read("force-owner");
    assert.equal(info?.held, false);
    assert.equal((await rawItem("force-owner"))?.releasedBy?.S, "force-release");
    await owner.close();
  });

  it("a removal applied unanswered, then a new holder of that name: the retry removes no one else (sim defect 5)", async () => {
    // The first removal applies, its answer is lost and the SDK's retry fails its condition (the
    // entry is gone); meanwhile the same process takes another permit. The call's next round must
    // not pick that newcomer by name: the caller was shown, and removed, the first one.
    const first = named("twin");
    const second = named("twin");
    await first.acquire("force-retry", { permits: 3 });
    let newcomer: Awaited<ReturnType<typeof second.acquire>> | undefined;
    let removals = 0;
    const sender = {
      send: async (command: never, options?: never) => {
        const out = await backend.client.send(command, options);
        const input = (command as { input?: { UpdateExpression?: string } }).input;
        if (input?.UpdateExpression?.includes("forcedOut") && ++removals === 1) {
          newcomer = await second.acquire("force-retry", { permits: 3 });
          throw Object.assign(new Error("The conditional request failed"), {
            name: "ConditionalCheckFailedException",
          });
        }
        return out;
      },
    } as unknown as DynamoDBSender;
    const admin = new LockClient({ table, client: sender, checkTable: false });
    const oldKey = (await locks.read("force-retry"))?.holders[0]?.key;
    const removed = await admin.forceRelease("force-retry", { holder: "twin" });
    assert.equal(removed?.key, oldKey, "resolves to the holder it removed");
    assert.equal(removals, 1, "one removal sent");
    assert.ok(newcomer !== undefined);
    const left = await locks.read("force-retry");
    assert.equal(left?.holders.length, 1, "the newcomer stays");
    assert.notEqual(left?.holders[0]?.key, removed?.key);
    await newcomer.release();
    await admin.close();
    await first.close();
    await second.close();
  });

  it("a late copy of a removal cannot remove a later landing of the same take (sim, seed 43 733 of permits)", async () => {
    // A copy of a take lands, the administrator removes that entry, then a late copy of the same
    // take (same token, version 1) puts it back and its holder is handed it; a late copy of the
    // removal must not take it away untold. The removal is pinned to the fence it read; the second
    // landing moved the fence on.
    const holder = named("pinned");
    const takes: UpdateItemCommandInput[] = [];
    const removals: UpdateItemCommandInput[] = [];
    const capture = (into: UpdateItemCommandInput[], match: string) =>
      ({
        send: async (command: never, options?: never) => {
          const input = (command as { input?: UpdateItemCommandInput }).input;
          if (input?.UpdateExpression?.includes(match) === true) into.push(structuredClone(input));
          return backend.client.send(command, options);
        },
      }) as unknown as DynamoDBSender;
    const taker = new LockClient({
      table,
      client: capture(takes, "ADD #fence"),
      leaseMs: LEASE,
      heartbeatMs: 1_000,
      holder: "pinned",
      checkTable: false,
    });
    // The map exists already (a first take creates it whole, and that form could not land again).
    await (await holder.acquire("force-pinned", { permits: 2 })).release();
    const lock = await taker.acquire("force-pinned", { permits: 2 });
    const take = takes.at(-1);
    assert.ok(take !== undefined);
    const admin = new LockClient({
      table,
      client: capture(removals, "forcedOut"),
      checkTable: false,
    });
    const removed = await admin.forceRelease("force-pinned", { holder: "pinned" });
    assert.ok(removed !== undefined);
    const removal = removals.at(-1);
    assert.ok(removal !== undefined);
    // The late copy of the take lands again: the entry is back, the fence moved on.
    await backend.client.send(new UpdateItemCommand(take));
    assert.equal((await locks.read("force-pinned"))?.holders.length, 1, "the take landed again");
    // The late copy of the removal is refused.
    await assert.rejects(backend.client.send(new UpdateItemCommand(removal)), {
      name: "ConditionalCheckFailedException",
    });
    assert.equal((await locks.read("force-pinned"))?.holders.length, 1, "the later landing stays");
    void lock;
    await admin.close();
    await taker.close();
    await holder.close();
  });

  it("bad input: a typed error naming the argument, before any request", async () => {
    const client = backend.newClient();
    const counts = countRequests(client);
    const own = new LockClient({ table, client, checkTable: false });
    await assert.rejects(own.forceRelease("x", { holder: 5 as never }), {
      name: "TypeError",
      message: /holder/,
    });
    await assert.rejects(own.forceRelease("x", { holder: "" }), { message: /holder/ });
    await assert.rejects(own.forceRelease("x", { who: "a" } as never), { name: "TypeError", message: /who/ });
    assert.equal(counts.total(), 0);
    await own.close();
  });
});

describe("holder view and removal request (pure)", () => {
  const record: LockRecord = {
    owner: undefined,
    version: 0,
    leaseMs: undefined,
    heartbeatAt: undefined,
    holder: undefined,
    fence: 7,
    data: undefined,
    releasedBy: undefined,
    releasedAt: undefined,
    kind: "permits:2",
    holders: new Map([
      ["bbbbbbbb1", { version: 2, leaseMs: 1_000, heartbeatAt: 100, holder: "x" }],
      ["aaaaaaaa1", { version: 5, leaseMs: 1_000, heartbeatAt: 5_000, holder: "x" }],
    ]),
  };
  const rule = { wallNow: 2_000, maxClockSkewMs: 500, leaseMs: 30_000 };

  it("stale by the same rule as LockInfo.stale, oldest heartbeat first", () => {
    const h = holdersOf(record, rule);
    assert.deepEqual(
      h.map((x) => [x.info.key, x.info.stale, x.version]),
      [
        ["bbbbbbbb", true, 2],
        ["aaaaaaaa", false, 5],
      ],
    );
    assert.ok(pickHolder(h, "x") !== undefined && "ambiguous" in (pickHolder(h, "x") as object));
    assert.equal((pickHolder(h, "aaaaaaaa") as { found: { token: string } }).found.token, "aaaaaaaa1");
  });

  it("the removal is conditioned on the exact version read and marks the token", () => {
    const input = forceRemoveEntryRequest({ table: "t", partitionKey: "id", sortKey: undefined }, "s", {
      token: "tok",
      version: 4,
    });
    assert.equal(input.ConditionExpression, "#holders.#target.#version = :version");
    assert.equal(input.UpdateExpression, "REMOVE #holders.#target SET #forcedOut = :token");
    assert.deepEqual(input.ExpressionAttributeValues?.[":version"], { N: "4" });
    assert.equal(input.ExpressionAttributeNames?.["#target"], "tok");
  });
});
