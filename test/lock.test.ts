/** The api.md contract against a real server (dynalite by default; see test/support/backend.ts). */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LockClient, LockError, LockHeldError, LockLostError, lock, read } from "../src/index.js";
import { type Backend, countRequests, startBackend, uniqueName } from "./support/backend.js";
import { eventually } from "./support/wait.js";

let backend: Backend;
let table: string;
let locks: LockClient;

before(async () => {
  backend = await startBackend();
  table = uniqueName();
  locks = new LockClient({ table, client: backend.client, leaseMs: 10_000, heartbeatMs: 1_000 });
  assert.equal(await locks.createTable(), true);
});
after(async () => {
  await locks.close();
  await backend.close();
});

describe("LockClient", () => {
  it("acquire + release of a free lock costs exactly 2 requests, after one look at the table per client", async () => {
    const client = backend.newClient();
    const counter = countRequests(client);
    const own = new LockClient({ table, client, leaseMs: 10_000 });
    const first = await own.acquire("two-requests");
    assert.deepEqual(counter.byOperation(), { DescribeTable: 1, UpdateItem: 1 }, "the client's first use");
    await first.release();
    counter.reset();
    const held = await own.acquire("two-requests");
    assert.deepEqual(counter.byOperation(), { UpdateItem: 1 });
    await held.release({ n: 1 });
    assert.deepEqual(counter.byOperation(), { UpdateItem: 2 });
    await held.release(); // idempotent after success: no request
    assert.equal(counter.total(), 2);
    await own.close();
    client.destroy();
  });

  it("carries data across acquisitions; release() without data keeps it", async () => {
    const first = await locks.acquire<{ step: number }>("data-flow");
    assert.equal(first.data, undefined);
    await first.release({ step: 1 });
    const second = await locks.acquire<{ step: number }>("data-flow");
    assert.deepEqual(second.data, { step: 1 });
    await second.update({ step: 2 });
    assert.deepEqual(second.data, { step: 2 });
    await second.release();
    const info = await locks.read<{ step: number }>("data-flow");
    assert.deepEqual(info?.data, { step: 2 });
    assert.equal(info?.held, false);
  });

  it("fences strictly increase with every acquisition, and survive release", async () => {
    const fences: number[] = [];
    for (let i = 0; i < 4; i++) {
      const held = await locks.acquire("fences");
      fences.push(held.fence);
      await held.release();
    }
    assert.deepEqual(fences, [1, 2, 3, 4]);
    assert.equal((await locks.read("fences"))?.fence, 4);
  });

  it("rejects with LockHeldError naming the holder, never the data", async () => {
    const other = new LockClient({ table, client: backend.client, holder: "worker-7" });
    const held = await other.acquire("held", {});
    await held.update({ secret: "s3cr3t" });
    const err = await locks.acquire("held").catch((e: unknown) => e);
    assert.ok(err instanceof LockHeldError);
    assert.ok(err instanceof LockError);
    assert.equal(err.name, "LockHeldError");
    assert.equal(err.holder, "worker-7");
    assert.equal(err.fence, held.fence);
    assert.equal(err.lockId, "held");
    assert.equal(typeof err.heartbeatAt, "number");
    assert.doesNotMatch(JSON.stringify({ ...err, message: err.message }), /s3cr3t/);
    assert.equal(await locks.tryAcquire("held"), undefined);
    await held.release();
    await other.close();
  });

  it("waits for a release when asked to", async () => {
    const held = await locks.acquire("wait-for-release");
    const waiting = locks.acquire("wait-for-release", { waitMs: 30_000 });
    setTimeout(() => void held.release({ by: "first" }), 50);
    const next = await waiting;
    assert.deepEqual(next.data, { by: "first" });
    assert.equal(next.fence, held.fence + 1);
    await next.release();
  });

  it("onWait reports the holder at every look while waiting, without extra requests", async () => {
    const other = new LockClient({ table, client: backend.client, holder: "slow-worker" });
    const held = await other.acquire("on-wait");
    const client = backend.newClient();
    const counter = countRequests(client);
    const own = new LockClient({ table, client });
    const seen: { holder: string | undefined; fence: number; waitedMs: number }[] = [];
    const waiting = own.acquire("on-wait", {
      waitMs: 30_000,
      onWait: ({ holder, fence, waitedMs }) => {
        seen.push({ holder, fence, waitedMs });
        if (seen.length === 3) void held.release();
      },
    });
    const next = await waiting;
    assert.ok(seen.length >= 3);
    assert.ok(seen.every((s) => s.holder === "slow-worker" && s.fence === held.fence));
    assert.ok(seen.every((s, i) => i === 0 || s.waitedMs >= (seen[i - 1]?.waitedMs ?? 0)));
    const reads = counter.byOperation().GetItem ?? 0;
    assert.ok(reads >= seen.length - 1, "one look per report, no more");
    await next.release();
    await own.close();
    await other.close();
    client.destroy();
  });

  it("an exception thrown by onWait ends the wait with that exception", async () => {
    const held = await locks.acquire("on-wait-throws");
    const boom = new Error("stop");
    await assert.rejects(
      locks.acquire("on-wait-throws", {
        waitMs: 30_000,
        onWait: () => {
          throw boom;
        },
      }),
      (e) => e === boom,
    );
    await held.release();
  });

  it("a wait stops when its signal aborts, with the signal's reason", async () => {
    const held = await locks.acquire("abort-wait");
    const controller = new AbortController();
    const waiting = locks.acquire("abort-wait", { waitMs: 60_000, signal: controller.signal });
    setTimeout(() => controller.abort(new Error("stop waiting")), 30);
    await assert.rejects(waiting, { message: "stop waiting" });
    await held.release();
  });

  it("an already-aborted signal rejects with its reason and sends nothing", async () => {
    const client = backend.newClient();
    const counter = countRequests(client);
    const own = new LockClient({ table, client });
    const reason = new Error("already");
    await assert.rejects(own.acquire("aborted", { signal: AbortSignal.abort(reason) }), (e) => e === reason);
    await assert.rejects(own.read("aborted", { signal: AbortSignal.abort(reason) }), (e) => e === reason);
    assert.equal(counter.total(), 0);
    await own.close();
    client.destroy();
  });

  it("forceRelease makes the holder's signal fire and its late writes fail, writing nothing", async () => {
    const holder = new LockClient({ table, client: backend.client, leaseMs: 3_000, heartbeatMs: 100 });
    const held = await holder.acquire<{ v: number }>("forced");
    await held.update({ v: 1 });
    const removed = await locks.forceRelease("forced");
    assert.equal(removed?.fence, held.fence);
    assert.equal(removed?.held, true);
    await eventually(() => held.signal.aborted, "the holder's signal to abort");
    const reason = held.signal.reason;
    assert.ok(reason instanceof LockLostError);
    assert.equal(reason.reason, "released");
    await assert.rejects(held.update({ v: 2 }), LockLostError);
    await assert.rejects(held.release({ v: 3 }), LockLostError);
    const info = await locks.read<{ v: number }>("forced");
    assert.deepEqual(info?.data, { v: 1 });
    assert.equal(info?.held, false);
    assert.equal(await locks.forceRelease("forced"), undefined);
    await holder.close();
  });

  it("a lock taken by someone else makes the holder's next heartbeat fail and its signal fire", async () => {
    const holder = new LockClient({ table, client: backend.client, leaseMs: 3_000, heartbeatMs: 100 });
    const held = await holder.acquire("stolen");
    await locks.forceRelease("stolen");
    const thief = await locks.acquire("stolen");
    await eventually(() => held.signal.aborted, "the holder's signal to abort");
    const reason = held.signal.reason as LockLostError;
    assert.ok(["taken", "released"].includes(reason.reason));
    await assert.rejects(held.release(), LockLostError);
    assert.equal((await locks.read("stolen"))?.fence, thief.fence);
    await thief.release();
    await holder.close();
  });

  it("heartbeats renew the lease while the lock is held", async () => {
    const holder = new LockClient({ table, client: backend.client, leaseMs: 3_000, heartbeatMs: 50 });
    const held = await holder.acquire("heartbeats");
    const before = (await locks.read("heartbeats"))?.heartbeatAt ?? 0;
    await eventually(
      async () => ((await locks.read("heartbeats"))?.heartbeatAt ?? 0) > before,
      "a heartbeat",
    );
    assert.equal(held.signal.aborted, false);
    assert.equal(await locks.tryAcquire("heartbeats"), undefined);
    await held.release();
    await holder.close();
  });

  it("await using releases at scope exit", async () => {
    {
      await using scoped = await locks.acquire("scoped");
      assert.equal((await locks.read("scoped"))?.held, true);
      assert.equal(scoped.signal.aborted, false);
    }
    assert.equal((await locks.read("scoped"))?.held, false);
  });

  it("withLock returns the function's result and releases", async () => {
    const result = await locks.withLock("with", async (held) => {
      assert.equal((await locks.read("with"))?.held, true);
      return held.fence * 10;
    });
    assert.equal(result, 10);
    assert.equal((await locks.read("with"))?.held, false);
  });

  it("withLock passes the function's error through unchanged, even when the release fails", async () => {
    const boom = new Error("boom");
    await assert.rejects(
      locks.withLock("with-error", () => {
        throw boom;
      }),
      (e) => e === boom,
    );
    assert.equal((await locks.read("with-error"))?.held, false);
    await assert.rejects(
      locks.withLock("with-error", async () => {
        await locks.forceRelease("with-error"); // makes the release fail
        throw boom;
      }),
      (e) => e === boom,
    );
  });

  it("withLock reports a lock lost during a successful function", async () => {
    await assert.rejects(
      locks.withLock("with-lost", async () => {
        await locks.forceRelease("with-lost");
        return "done";
      }),
      LockLostError,
    );
  });

  it("close() releases every lock the client holds", async () => {
    const own = new LockClient({ table, client: backend.client });
    const a = await own.acquire("close-a");
    await own.acquire("close-b");
    await a.release();
    await own.close();
    assert.equal((await locks.read("close-a"))?.held, false);
    assert.equal((await locks.read("close-b"))?.held, false);
    await assert.rejects(own.acquire("close-c"), /closed/);
  });

  it("read of a lock that never existed is undefined", async () => {
    assert.equal(await locks.read("never"), undefined);
  });
});

describe("tables", () => {
  it("a missing table is a LockError that names it and says what to do", async () => {
    const missing = new LockClient({ table: uniqueName("missing"), client: backend.client });
    const err = await missing.acquire("x").catch((e: unknown) => e);
    assert.ok(err instanceof LockError);
    assert.match(err.message, /missing-[0-9a-f]+" does not exist/);
    assert.match(err.message, /createTable\(\)/);
    assert.equal((err.cause as { name?: string })?.name, "ResourceNotFoundException");
    await assert.rejects(missing.read("x"), LockError);
  });

  it("createTable is idempotent, and refuses a table with another key schema", async () => {
    assert.equal(await locks.createTable(), false);
    const wrong = new LockClient({ table, client: backend.client, partitionKey: "other" });
    await assert.rejects(
      wrong.createTable(),
      (e) => e instanceof LockError && /another key schema/.test(e.message),
    );
  });

  it("a table with another key schema is a LockError on use", async () => {
    const wrong = new LockClient({ table, client: backend.client, partitionKey: "other" });
    const err = await wrong.acquire("x").catch((e: unknown) => e);
    assert.ok(err instanceof LockError, String(err));
    assert.match(err.message, /key schema/);
    assert.equal(err.code, "EKEYSCHEMA");
  });

  it("works on a table with a sort key (single-table design)", async () => {
    const sorted = new LockClient({
      table: uniqueName("single"),
      client: backend.client,
      partitionKey: "PK",
      sortKey: { name: "SK", value: "LOCK" },
    });
    assert.equal(await sorted.createTable(), true);
    const held = await sorted.acquire<{ n: number }>("tenant#1");
    assert.equal(held.fence, 1);
    assert.equal(await sorted.tryAcquire("tenant#1"), undefined);
    await held.release({ n: 1 });
    const again = await sorted.acquire<{ n: number }>("tenant#1");
    assert.deepEqual(again.data, { n: 1 });
    assert.equal(again.fence, 2);
    await again.release();
    await sorted.close();
  });
});

describe("seed-compatible lock() and read()", () => {
  it("locks, updates, unlocks with data, and reads", async () => {
    const { data, unlock, update, fence, signal } = await lock<{ value: string }>(table, "seed", {
      maxAgeMs: 30_000,
      heartbeatMs: 1_000,
      client: backend.client,
    });
    assert.equal(data, undefined);
    assert.equal(fence, 1);
    assert.equal(signal.aborted, false);
    await update({ value: "x" });
    await assert.rejects(lock(table, "seed", { client: backend.client }), LockHeldError);
    await unlock({ value: "updated" });
    assert.deepEqual(await read(table, "seed", { client: backend.client }), { value: "updated" });
    const again = await lock<{ value: string }>(table, "seed", { client: backend.client });
    assert.deepEqual(again.data, { value: "updated" });
    await again.unlock();
    assert.deepEqual(await read(table, "seed", { client: backend.client }), { value: "updated" });
    assert.equal(await read(table, "seed-never", { client: backend.client }), undefined);
  });

  it("uses the SDK's default configuration, so AWS_ENDPOINT_URL_DYNAMODB points it at a local server", async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_DYNAMODB: backend.endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "dynamolocal",
      AWS_SECRET_ACCESS_KEY: "dynamolocal",
    });
    try {
      // A fresh process sees only the environment: run the seed flow there.
      // Asynchronously: the in-process server must keep answering while the child runs.
      const { execFile } = await import("node:child_process");
      const { promisify } = await import("node:util");
      const script = `
        import { lock, read } from ${JSON.stringify(new URL("../src/index.ts", import.meta.url).href)};
        const held = await lock(${JSON.stringify(table)}, "seed-env", { maxAgeMs: 5000, heartbeatMs: 500 });
        await held.unlock({ from: "env" });
        console.log(JSON.stringify(await read(${JSON.stringify(table)}, "seed-env")));
      `;
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ["--import", "tsx", "--input-type=module", "-e", script],
        {
          env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
          timeout: 60_000,
        },
      );
      assert.deepEqual(JSON.parse(stdout.trim()), { from: "env" });
    } finally {
      for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
      Object.assign(process.env, saved);
    }
  });
});
