/**
 * The one-request failure path: a conditional write that fails asks for the old item
 * (`ReturnValuesOnConditionCheckFailure: ALL_OLD`), so the caller learns who holds the lock from the
 * error itself. Servers that honour it (DynamoDB Local, AWS) need no extra GetItem; servers that
 * ignore it (dynalite) get exactly one fallback read. The counts are asserted per backend.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LockClient, LockHeldError, LockLostError } from "../src/index.js";
import { type Backend, countRequests, startBackend, uniqueName } from "./support/backend.js";
import { FakeRuntime } from "./support/fake-runtime.js";
import { eventually } from "./support/wait.js";

let backend: Backend;
let table: string;
let locks: LockClient;

before(async () => {
  backend = await startBackend();
  table = uniqueName();
  locks = new LockClient({ table, client: backend.client, leaseMs: 10_000, heartbeatMs: 1_000 });
  await locks.createTable();
});
after(async () => {
  await locks.close();
  await backend.close();
});

/** The reads a failed conditional write costs on this backend to learn the current holder. */
function fallbackReads(): Record<string, number> {
  return backend.capabilities.returnsOldItemOnConditionFailure ? {} : { GetItem: 1 };
}

/** A contender with its own client, so only its own requests are counted. */
function contender(options: { holder?: string } = {}) {
  const client = backend.newClient();
  const counter = countRequests(client);
  // Counted from the second request on: the one look at the table a client takes at its first
  // use is counted in lock.test.ts.
  const lockClient = new LockClient({ table, client, leaseMs: 10_000, checkTable: false, ...options });
  return {
    counter,
    locks: lockClient,
    async close() {
      await lockClient.close();
      client.destroy();
    },
  };
}

describe(`the one-request failure path`, () => {
  it("a failed acquire learns the holder from the error, or from exactly one fallback read", async () => {
    const holder = new LockClient({ table, client: backend.client, holder: "worker-1", leaseMs: 10_000 });
    const held = await holder.acquire("busy");
    const other = contender();
    const err = await other.locks.acquire("busy").catch((e: unknown) => e);
    assert.ok(err instanceof LockHeldError, String(err));
    // Whichever way it was learned, the holder is reported exactly.
    assert.equal(err.holder, "worker-1");
    assert.equal(err.fence, held.fence);
    assert.equal(err.leaseMs, 10_000);
    assert.deepEqual(other.counter.byOperation(), { UpdateItem: 1, ...fallbackReads() });
    // tryAcquire takes the same path.
    other.counter.reset();
    assert.equal(await other.locks.tryAcquire("busy"), undefined);
    assert.deepEqual(other.counter.byOperation(), { UpdateItem: 1, ...fallbackReads() });
    await held.release();
    await other.close();
    await holder.close();
  });

  it("a dead holder's lock is taken over by the second write, with no read where the error carries the holder", async () => {
    // A holder that crashed an hour ago: its clock never moves again (no heartbeat), and its last
    // heartbeat is an hour old by the wall clock, so the wall-clock shortcut judges it dead at once.
    const crashed = new FakeRuntime();
    crashed.wallOffset = Date.now() - 3_600_000;
    const dead = new LockClient({
      table,
      client: backend.client,
      holder: "crashed",
      leaseMs: 10_000,
      runtime: crashed,
    });
    const old = await dead.acquire("dead-holder");
    const other = contender({ holder: "successor" });
    const taken = await other.locks.acquire("dead-holder");
    assert.equal(taken.fence, old.fence + 1);
    assert.deepEqual(other.counter.byOperation(), { UpdateItem: 2, ...fallbackReads() });
    await taken.release();
    await other.close();
    await dead.close(); // its late release finds the lock taken: reported as lost, not thrown by close()
  });

  it("a heartbeat that finds the lock force-released says why, reading at most the fallback", async () => {
    const client = backend.newClient();
    const counter = countRequests(client);
    const own = new LockClient({ table, client, leaseMs: 3_000, heartbeatMs: 50 });
    const lock = await own.acquire("forced-heartbeat");
    await locks.forceRelease("forced-heartbeat");
    await eventually(() => lock.signal.aborted, "the heartbeat to notice the force-release");
    const reason = lock.signal.reason;
    assert.ok(reason instanceof LockLostError);
    assert.equal(reason.reason, "released");
    assert.match(reason.message, /force-released by someone else/);
    const { GetItem = 0 } = counter.byOperation();
    assert.equal(GetItem, fallbackReads().GetItem ?? 0);
    await own.close();
    client.destroy();
  });

  it("a release that finds the lock force-released says why, reading at most the fallback", async () => {
    const client = backend.newClient();
    const counter = countRequests(client);
    // Heartbeats far apart: the holder has not noticed the force-release when it releases.
    const own = new LockClient({ table, client, leaseMs: 60_000, heartbeatMs: 20_000 });
    const lock = await own.acquire("forced-release");
    await locks.forceRelease("forced-release");
    counter.reset();
    const err = await lock.release({ late: true }).catch((e: unknown) => e);
    assert.ok(err instanceof LockLostError, String(err));
    assert.equal(err.reason, "released");
    assert.match(err.message, /force-released by someone else/);
    assert.deepEqual(counter.byOperation(), { UpdateItem: 1, ...fallbackReads() });
    assert.equal((await locks.read("forced-release"))?.data, undefined, "the late release wrote nothing");
    await own.close();
    client.destroy();
  });
});
