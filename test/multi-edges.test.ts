/**
 * Edges of the multi-holder locks (docs/protocol.md "More than one holder") found by review: whose
 * intent a writer's acquisition may remove, dead entries of another kind, create races, item size.
 * Against a real server (dynalite by default).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type DynamoDBClient, GetItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { LockClient } from "../src/index.js";
import { FakeRuntime } from "./support/fake-runtime.js";
import { sharedTable } from "./support/process.js";
import { eventually } from "./support/wait.js";

const server = sharedTable();
const LEASE = 10_000;
const clients: LockClient[] = [];
server.onClose(async () => {
  for (const c of clients) await c.close();
});

/** A client on the shared table; closed after the file. */
function client(holder: string, extra: Record<string, unknown> = {}, dynamo?: DynamoDBClient): LockClient {
  const c = new LockClient({
    table: server.table,
    client: dynamo ?? server.backend.client,
    holder,
    leaseMs: LEASE,
    heartbeatMs: 1_000,
    checkTable: false,
    ...extra,
  });
  clients.push(c);
  return c;
}

async function rawItem(id: string) {
  const out = await server.backend.client.send(
    new GetItemCommand({ TableName: server.table, Key: { id: { S: id } }, ConsistentRead: true }),
  );
  return out.Item;
}

/** A holder entry that died long ago (wall clock far in the past), written straight into the item. */
async function plantDeadEntry(id: string, token: string, kind: string) {
  await server.backend.client.send(
    new UpdateItemCommand({
      TableName: server.table,
      Key: { id: { S: id } },
      UpdateExpression: "SET #h = :m, #k = :k",
      ExpressionAttributeNames: { "#h": "holders", "#k": "kind" },
      ExpressionAttributeValues: {
        ":m": {
          M: {
            [token]: {
              M: {
                version: { N: "3" },
                leaseMs: { N: String(LEASE) },
                heartbeatAt: { N: String(Date.now() - 10 * LEASE) },
                holder: { S: "dead" },
              },
            },
          },
        },
        ":k": { S: kind },
      },
    }),
  );
}

describe("a waiting writer's intent", () => {
  it("is not removed by another writer's acquisition: readers stay out until the writer has had its turn", async () => {
    const id = "edge-intent-other-writer";
    const reader = client("reader");
    // A looks rarely: B gets in before A's next look, whatever the order of A's polls.
    const a = client("writer-A", {
      pollMinMs: 60_000,
      pollMaxMs: 60_000,
      heartbeatMs: 30_000,
      leaseMs: 120_000,
    });
    const b = client("writer-B");
    const r1 = await reader.acquire(id, { mode: "shared" });
    const stop = new AbortController();
    const waiting = a.acquire(id, { waitMs: 600_000, signal: stop.signal }).catch((e: unknown) => e);
    await eventually(async () => (await rawItem(id))?.intent !== undefined, "A records its intent");
    await r1.release();
    const lockB = await b.tryAcquire(id);
    assert.ok(lockB !== undefined, "B (no intent of its own) gets in");
    assert.equal((await rawItem(id))?.intent?.M?.holder?.S, "writer-A", "A's intent stays while B holds");
    await lockB.release();
    assert.equal(
      await reader.tryAcquire(id, { mode: "shared" }),
      undefined,
      "a new reader is refused: writer A still waits",
    );
    stop.abort(new Error("test over"));
    await waiting;
    await eventually(async () => (await rawItem(id))?.intent === undefined, "A withdraws on giving up");
  });

  it("is gone once its writer is in, also when the writer adopts a write whose answer was lost", async () => {
    const id = "edge-intent-own-adopt";
    const flaky = server.backend.newClient();
    let dropped = false;
    flaky.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        const update = (args.input as { UpdateExpression?: string }).UpdateExpression ?? "";
        if (!dropped && context.commandName === "UpdateItemCommand" && update.startsWith("SET #owner")) {
          dropped = true; // applied, answer lost
          throw Object.assign(new Error("answer lost"), { name: "TimeoutError" });
        }
        return out;
      },
      { step: "initialize", name: "dropFirstAcquireAnswer" },
    );
    const reader = client("reader");
    const writer = client("writer", { pollMinMs: 1, pollMaxMs: 2 }, flaky);
    await (await reader.acquire(id, { mode: "shared" })).release(); // the id is a reader–writer lock
    const w = await writer.acquire(id, { waitMs: 30_000 });
    assert.ok(dropped, "the first answer was lost");
    await eventually(async () => (await rawItem(id))?.intent === undefined, "no intent left while it holds");
    await w.release();
    const r = await reader.tryAcquire(id, { mode: "shared" });
    assert.ok(r !== undefined, "a reader gets in at once after the writer's release");
    await r.release();
    flaky.destroy();
  });
});

describe("a dead holder of another kind", () => {
  for (const [label, opts] of [
    ["a mutex", {}],
    ["a semaphore of another size", { permits: 5 }],
    ["a shared acquire", { mode: "shared" as const }],
  ] as const) {
    it(`is reclaimed by ${label}, which gets in (not EMISMATCH for ever)`, async () => {
      const id = `edge-dead-permit-${label.replaceAll(" ", "-")}`;
      await plantDeadEntry(id, "dead-token", "permits:3");
      const other = client("other");
      const lock = await other.acquire(id, { ...opts, waitMs: 30_000 });
      assert.equal((await rawItem(id))?.holders?.M?.["dead-token"], undefined, "the dead entry is gone");
      await lock.release();
    });
  }

  it("a live holder of another kind is still refused at once with EMISMATCH", async () => {
    const id = "edge-live-permit";
    const holder = await client("permit-holder").acquire(id, { permits: 3 });
    await assert.rejects(client("other").acquire(id, { waitMs: 30_000 }), { code: "EMISMATCH" });
    await assert.rejects(client("other").acquire(id, { mode: "shared", waitMs: 30_000 }), {
      code: "EMISMATCH",
    });
    await holder.release();
  });

  it("a dead exclusive owner is removed by a semaphore acquire, which gets in", async () => {
    const id = "edge-dead-owner";
    await server.backend.client.send(
      new UpdateItemCommand({
        TableName: server.table,
        Key: { id: { S: id } },
        UpdateExpression: "SET #o = :o, #v = :v, #l = :l, #h = :h, #n = :n, #f = :v",
        ExpressionAttributeNames: {
          "#o": "owner",
          "#v": "version",
          "#l": "leaseMs",
          "#h": "heartbeatAt",
          "#n": "holder",
          "#f": "fence",
        },
        ExpressionAttributeValues: {
          ":o": { S: "dead-owner" },
          ":v": { N: "1" },
          ":l": { N: String(LEASE) },
          ":h": { N: String(Date.now() - 10 * LEASE) },
          ":n": { S: "dead" },
        },
      }),
    );
    const lock = await client("other").acquire(id, { permits: 2, waitMs: 30_000 });
    assert.ok(lock.fence > 1);
    await lock.release();
  });
});

describe("an entry's release", () => {
  it("applied but unanswered, retried, and refused after the lease: resolves, as the mutex's does", async () => {
    const id = "edge-release-unanswered";
    const lossy = server.backend.newClient();
    let attempts = 0;
    let lock: Awaited<ReturnType<LockClient["acquire"]>> | undefined;
    lossy.middlewareStack.add(
      (next, context) => async (args) => {
        const update = (args.input as { UpdateExpression?: string }).UpdateExpression;
        if (context.commandName !== "UpdateItemCommand" || update !== "REMOVE #holders.#me")
          return next(args);
        attempts++;
        if (attempts === 1) {
          await next(args); // applied; the answer is a 5xx
          throw Object.assign(new Error("internal error"), {
            name: "InternalServerError",
            $metadata: { httpStatusCode: 500 },
          });
        }
        try {
          return await next(args);
        } finally {
          // The retry's answer (a failed condition) comes back once the lease has run out.
          await eventually(() => lock?.remainingMs === 0, "the lease runs out", 4_000);
        }
      },
      { step: "initialize", name: "lossyRelease" },
    );
    const c = client("p", { leaseMs: 1_500, heartbeatMs: 500, heartbeat: false }, lossy);
    lock = await c.acquire(id, { permits: 2 });
    await lock.release();
    assert.equal(attempts, 2);
    assert.deepEqual(Object.keys((await rawItem(id))?.holders?.M ?? {}), [], "our entry was removed");
    lossy.destroy();
  });
});

describe("the first tryAcquire of a new id", () => {
  for (const [label, opts] of [
    ["shared", { mode: "shared" as const }],
    ["permits: 5", { permits: 5 }],
  ] as const) {
    it(`(${label}) that loses the creation race to another still gets in: there is room`, async () => {
      const id = `edge-fresh-${label.replaceAll(/\W/g, "")}`;
      let firstAnswered!: () => void;
      const bFirst = new Promise<void>((resolve) => {
        firstAnswered = resolve;
      });
      let aIn!: () => void;
      const aDone = new Promise<void>((resolve) => {
        aIn = resolve;
      });
      const slow = server.backend.newClient();
      slow.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName !== "UpdateItemCommand") return next(args);
          const update = (args.input as { UpdateExpression?: string }).UpdateExpression ?? "";
          // B's create waits until A has created the map: B's blind write and its create both fail.
          if (update.startsWith("SET #holders = :map")) await aDone;
          try {
            return await next(args);
          } finally {
            firstAnswered();
          }
        },
        { step: "initialize", name: "sequence" },
      );
      const b = client("b", {}, slow);
      const a = client("a");
      const taking = b.tryAcquire(id, opts);
      await bFirst;
      const lockA = await a.tryAcquire(id, opts);
      assert.ok(lockA !== undefined, "A created the map");
      aIn();
      const lockB = await taking;
      assert.ok(lockB !== undefined, "B gets in too: the lock has room");
      await lockA.release();
      await lockB.release();
      slow.destroy();
    });
  }
});

describe("a reclaim that is throttled", () => {
  for (const [label, opts, kind] of [
    ["a semaphore acquire (reclaiming an entry of another kind)", { permits: 3 }, "permits:2"],
    ["an exclusive acquire (reclaiming a dead reader)", {}, "shared"],
  ] as const) {
    it(`waits its backoff before trying again: ${label}`, async () => {
      const id = `edge-throttled-${kind}`;
      await plantDeadEntry(id, "dead-token", kind);
      let reclaims = 0;
      let throttling = true;
      const runtime = new FakeRuntime();
      const sender = {
        send: (command: { input: unknown; constructor: { name: string } }, options?: unknown) => {
          const update = (command.input as { UpdateExpression?: string }).UpdateExpression;
          if (update === "REMOVE #holders.#me") {
            reclaims++;
            // A runaway loop (no backoff) ends here with an error that cannot be retried, so the
            // test fails instead of spinning for ever.
            if (reclaims > 20) return Promise.reject(new Error("runaway reclaims"));
            if (throttling) {
              return Promise.reject(
                Object.assign(new Error("throttled"), {
                  name: "ProvisionedThroughputExceededException",
                  $metadata: { httpStatusCode: 400 },
                }),
              );
            }
          }
          return (server.backend.client.send as (c: unknown, o?: unknown) => Promise<unknown>)(
            command,
            options,
          );
        },
      };
      const p = new LockClient({
        table: server.table,
        client: sender as never,
        runtime,
        checkTable: false,
        leaseMs: LEASE,
      });
      clients.push(p);
      const taking = p.acquire(id, { ...opts, waitMs: 60_000 });
      taking.catch(() => undefined); // asserted below; a runaway loop rejects before then
      await eventually(() => reclaims > 0, "a reclaim is sent");
      for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
      await runtime.advance(1);
      assert.equal(reclaims, 1, "no second reclaim within a ms (it sleeps its backoff)");
      throttling = false;
      // Advance the fake clock until the acquire is done: after the reclaim it may still sleep a
      // backoff (on a server that returns the old item with a failed condition it takes another
      // path than on dynalite), and an unadvanced fake clock would leave it asleep for ever.
      let settled = false;
      void taking.then(
        () => {
          settled = true;
        },
        () => {
          settled = true;
        },
      );
      // Fake time moves in small steps with real pauses between them: a request in flight to a
      // server in another process (DynamoDB Local) must not see its cut-off pass meanwhile.
      for (let i = 0; i < 1_000 && !settled; i++) {
        await runtime.advance(100);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const lock = await taking;
      assert.equal(reclaims, 2);
      await lock.release();
    });
  }
});

describe("an exclusive tryAcquire", () => {
  it("that reclaims the last dead reader writes once more and gets in", async () => {
    const id = "edge-try-dead-reader";
    await plantDeadEntry(id, "dead-reader", "shared");
    const lock = await client("writer").tryAcquire(id);
    assert.ok(lock !== undefined, "in, in the same call");
    await lock.release();
  });
});

describe("a waiting writer's intent refresh", () => {
  it("comes every heartbeatMs even when the poll interval is longer than a lease", async () => {
    const id = "edge-intent-refresh";
    const reader = await client("reader").acquire(id, { mode: "shared" });
    const runtime = new FakeRuntime();
    const w = new LockClient({
      table: server.table,
      client: server.backend.client,
      runtime,
      checkTable: false,
      holder: "slow-poller",
      leaseMs: 30_000,
      heartbeatMs: 5_000,
      maxClockSkewMs: Number.POSITIVE_INFINITY, // judges the real-clock reader by its own clock only
      pollMinMs: 60_000,
      pollMaxMs: 60_000,
    });
    clients.push(w);
    const stop = new AbortController();
    const waiting = w.acquire(id, { waitMs: 600_000, signal: stop.signal }).catch((e: unknown) => e);
    await eventually(async () => (await rawItem(id))?.intent !== undefined, "the intent is recorded");
    assert.equal((await rawItem(id))?.intent?.M?.version?.N, "1");
    await runtime.advance(5_000);
    await eventually(
      async () => (await rawItem(id))?.intent?.M?.version?.N === "2",
      "the intent is refreshed one heartbeatMs later, though the next poll is a minute away",
      400,
    );
    stop.abort(new Error("test over"));
    await waiting;
    await reader.release();
  });
});

describe("heldByThisClient", () => {
  it("is said when this client's own permit fills the semaphore", async () => {
    const id = "edge-held-by-me";
    const c = client("me");
    const mine = await c.acquire(id, { permits: 1 });
    const err = await c.acquire(id, { permits: 1, waitMs: 50 }).catch((e: unknown) => e);
    assert.equal((err as { code?: string }).code, "ELOCKHELD");
    assert.match((err as Error).message, /a Lock of this same LockClient/);
    const other = await client("other")
      .acquire(id, { permits: 1, waitMs: 50 })
      .catch((e: unknown) => e);
    assert.equal((other as { code?: string }).code, "ELOCKHELD");
    assert.doesNotMatch((other as Error).message, /this same LockClient/);
    await mine.release();
  });
});

describe("the item's size", () => {
  it("a semaphore has at most 100 permits (RangeError naming `permits`, before any request)", async () => {
    await assert.rejects(client("x").acquire("edge-size-x", { permits: 101 }), {
      name: "RangeError",
      message: /`permits`/,
    });
  });

  it("the exclusive holder of a reader–writer id leaves room for 100 readers with the longest names", async () => {
    const id = "edge-size-rw";
    const long = (i: number) => `${String(i).padStart(4, "0")}${"h".repeat(1020)}`;
    // Its heartbeats rewrite an item of ~280 KB: on a loaded machine a 1 s heartbeat's attempts
    // (each cut off within its interval) can all run long, and the lease end. A long lease and
    // interval keep this test about sizes, not about the machine's speed.
    const w = client("writer", { leaseMs: 60_000, heartbeatMs: 10_000 });
    await (await w.acquire(id, { mode: "shared" })).release(); // the id is a reader–writer lock
    const lock = await w.acquire(id);
    // The largest data its budget accepts (a typed refusal beyond, before any request).
    let size = 400 * 1024;
    for (;;) {
      const err = await lock.update({ blob: "x".repeat(size) }).catch((e: unknown) => e);
      if (err === undefined) break;
      assert.ok(
        err instanceof RangeError ||
          err instanceof TypeError ||
          (err as { code?: string }).code !== "EDYNAMODB",
        String(err),
      );
      size -= 4 * 1024;
    }
    await lock.release();
    const readers = [];
    for (let i = 0; i < 100; i++) {
      const r = await client(long(i)).acquire(id, { mode: "shared" });
      readers.push(r);
    }
    // The 101st waits, as for a full semaphore.
    assert.equal(await client(long(100)).tryAcquire(id, { mode: "shared" }), undefined);
    for (const r of readers) await r.release();
  });
});
