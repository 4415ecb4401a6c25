/**
 * The edges of a lock's life, on a real server with injected clocks: a lock is never handed out
 * invalid, errors that cannot pass neither spin nor cost the lock, close() leaves nothing running,
 * every timer survives long durations, and no lock outlives its last reachable handle.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { DynamoDBSender } from "../src/aws.js";
import { type Lock, LockClient, LockError, LockHeldError, LockLostError } from "../src/index.js";
import { MAX_TIMER_MS, setLongTimer } from "../src/runtime.js";
import { sharedTable } from "./support/process.js";

const LEASE = 10_000;
const HEARTBEAT = 1_000;

const server = sharedTable({ leaseMs: LEASE, heartbeatMs: HEARTBEAT });

/** Unhandled rejections seen while a test ran: each test asserts there were none. */
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
let id: string;
let n = 0;
beforeEach(() => {
  id = `edge-${++n}`;
  unhandled.length = 0;
  process.on("unhandledRejection", onUnhandled);
});
afterEach(async () => {
  // Rejections are reported after the microtask queue drains: give them a turn.
  await new Promise((resolve) => setImmediate(resolve));
  process.off("unhandledRejection", onUnhandled);
  assert.deepEqual(unhandled, [], "no unhandled rejection");
});

describe("a lock is valid when it is handed out", () => {
  it("an acquisition answered after its lease ran out is taken again, never handed out expired", async () => {
    const p = server.process("p");
    const reply = p.link.holdReply("acquire");
    const acquiring = p.locks.acquire(id);
    await reply.reached;
    // The answer comes back 10 ms before the lease it was sent with ends, by the holder's own
    // measure (which keeps a margin for clock-rate drift): too late to use.
    await p.runtime.advance(LEASE - 10);
    reply.deliver();
    await p.advance(0);
    const lock = await acquiring;
    assert.equal(lock.held, true, "valid when handed out");
    assert.equal(lock.signal.aborted, false);
    assert.equal(lock.fence, 2, "taken again, by a takeover of its own too-late acquisition");
    assert.deepEqual(p.link.sent, ["acquire", "acquire"]);
    await p.advance(HEARTBEAT * 2);
    assert.equal(lock.held, true, "and it heartbeats as usual");
    await lock.release();
    assert.equal((await server.admin.read(id))?.held, false);
  });
});

describe("close()", () => {
  it("stops an acquire that is waiting: it rejects as closed and never takes the lock later", async () => {
    // (Holders here run on fake clocks too: the real wall clock is behind the fake ones, which
    // would make a real-clock holder look long dead to a fake-clock waiter.)
    const holder = await server.process("h").locks.acquire(id);
    const q = server.process("q");
    const waiting = q.locks.acquire(id, { waitMs: 60_000 }).catch((e: unknown) => e);
    await q.advance(500);
    await q.locks.close();
    const err = await waiting;
    assert.ok(err instanceof LockError, String(err));
    assert.equal(err.reason, "closed");
    assert.equal(err.lockId, id);
    await holder.release();
    await q.advance(LEASE * 2);
    assert.equal((await server.admin.read(id))?.held, false, "nobody took it after the close");
    assert.equal(q.runtime.pendingTimers, 0, "no timer left");
    await assert.rejects(
      q.locks.acquire(id),
      (e: unknown) => e instanceof LockError && e.reason === "closed",
    );
  });

  it("stops an acquire whose write is in flight, and frees what that write took", async () => {
    const q = server.process("q");
    const reply = q.link.holdReply("acquire");
    const acquiring = q.locks.acquire(id).catch((e: unknown) => e);
    await reply.reached; // applied by the server: q owns the lock, but has not heard so yet
    await q.locks.close();
    const err = await acquiring;
    assert.ok(err instanceof LockError && err.reason === "closed", String(err));
    const info = await server.admin.read(id);
    assert.equal(info?.held, false, "the write that went through was released by close()");
    reply.deliver();
  });
});

describe("close() under faults", () => {
  it("settles during a partition: the cleanup of an unanswered acquire is bounded", async () => {
    const q = server.process("q");
    q.link.blackholed = true;
    const acquiring = q.locks.acquire(id, { waitMs: 60_000 }).catch((e: unknown) => e);
    await q.advance(10);
    let closed = false;
    const closing = q.locks.close().then(() => {
      closed = true;
    });
    await q.advance(LEASE * 2);
    const err = await acquiring;
    assert.ok(err instanceof LockError && err.reason === "closed", String(err));
    assert.equal(closed, true, "close() settled within the cleanup's bound");
    await closing;
  });

  it("a refused acquire whose error translation hangs still ends on abort, and close() settles", async () => {
    const q = server.process("q");
    q.link.refuse("acquire");
    q.link.blackhole("other"); // the DescribeTable that would name the table's keys never answers
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    const acquiring = q.locks
      .acquire(id, { waitMs: 60_000, signal: controller.signal })
      .catch((e: unknown) => e);
    await q.advance(10);
    controller.abort(reason);
    await q.advance(HEARTBEAT);
    assert.equal(await acquiring, reason);
    await q.locks.close();
  });

  it("leaves no lock held by an acquire that settles as close() runs, whichever microtask it runs in", async () => {
    // A promise settles a few microtasks after acquire() decided: a lock handed out just before
    // close() reaches the caller just after it. Either way close() releases it.
    for (let k = 0; k < 12; k++) {
      const q = server.process("q");
      const reply = q.link.holdReply("acquire");
      const acquiring = q.locks.acquire(`${id}-${k}`).catch((e: unknown) => e);
      await reply.reached;
      reply.deliver();
      for (let i = 0; i < k; i++) await Promise.resolve();
      const closing = q.locks.close();
      const outcome = await acquiring;
      await closing;
      if (outcome instanceof LockError) assert.equal(outcome.reason, "closed", `after ${k} microtasks`);
      else assert.equal((outcome as Lock).held, false, `after ${k} microtasks: released by close()`);
      assert.equal((await server.admin.read(`${id}-${k}`))?.held, false, `after ${k} microtasks`);
    }
  });

  it("an acquire applied but failing after the SDK tried to send it is cleaned up when it gives up", async () => {
    const inner = server.backend.newClient();
    const sender = {
      async send(
        command: { constructor: { name: string }; input: { UpdateExpression?: string } },
        o?: unknown,
      ) {
        const out = await (inner.send as (c: unknown, o?: unknown) => Promise<unknown>)(command, o);
        if (command.input.UpdateExpression?.startsWith("SET #owner")) {
          // Applied, then the answer broke while being read. The SDK stamps $metadata on every
          // error of a request it tried to send.
          throw Object.assign(new Error("Premature close"), {
            code: "ERR_STREAM_PREMATURE_CLOSE",
            $metadata: { attempts: 1 },
          });
        }
        return out;
      },
    } as unknown as DynamoDBSender;
    const locks = new LockClient({ table: server.table, client: sender });
    const err = await locks.acquire(id).catch((e: unknown) => e);
    assert.ok(err instanceof LockError, String(err));
    await locks.close();
    assert.equal((await server.admin.read(id))?.held, false, "not left held by nobody");
    inner.destroy();
  });
});

describe("errors that retrying cannot fix", () => {
  it("an update the server refuses fails at once, writes nothing, and keeps the lock", async () => {
    const p = server.process("p");
    const lock = await p.locks.acquire<{ n: number }>(id, {});
    await lock.update({ n: 1 });
    p.link.refuse("renew");
    const err = await lock.update({ n: 2 }).catch((e: unknown) => e);
    assert.ok(err instanceof LockError && !(err instanceof LockLostError), String(err));
    assert.equal((err.cause as Error).name, "ValidationException", "the server's error is the cause");
    assert.match(err.message, /nothing was written/);
    assert.equal(err.writeUncertain, false, "every attempt was answered, with a refusal");
    assert.deepEqual(p.link.sent, ["acquire", "renew", "renew"], "one attempt, not retried");
    assert.equal(lock.held, true);
    assert.equal(lock.signal.aborted, false);
    assert.deepEqual(lock.data, { n: 1 });
    await p.advance(LEASE * 2);
    assert.equal(lock.held, true, "heartbeats go on");
    await lock.release();
    assert.deepEqual((await server.admin.read(id))?.data, { n: 1 });
  });

  it("an update refused after an unanswered attempt says, in code, that it may have been written", async () => {
    const p = server.process("p");
    const lock = await p.locks.acquire<{ n: number }>(id);
    p.link.loseReplies("renew");
    const updating = lock.update({ n: 1 }).catch((e: unknown) => e);
    await p.advance(0); // the first attempt: applied, its answer lost
    p.link.refuse("renew"); // the retry is refused
    await p.advance(HEARTBEAT);
    const err = await updating;
    assert.ok(err instanceof LockError && !(err instanceof LockLostError), String(err));
    assert.equal(err.writeUncertain, true);
    assert.deepEqual((await server.admin.read(id))?.data, { n: 1 }, "and it was written");
    assert.equal(lock.held, true);
    await lock.release();
  });

  it("a heartbeat the server refuses is tried again a heartbeat later; should it last, the loss names it", async () => {
    const p = server.process("p");
    const lock = await p.locks.acquire(id);
    p.link.refuse("renew", 1_000);
    await p.advance(LEASE);
    const renews = p.link.sent.filter((k) => k === "renew").length;
    assert.ok(renews <= LEASE / HEARTBEAT, `no tight retry loop (${renews} heartbeats in one lease)`);
    assert.equal(lock.signal.aborted, true);
    const reason = lock.signal.reason as LockLostError;
    assert.equal(reason.reason, "expired");
    assert.match(reason.message, /ValidationException/);
  });

  it("a release the server refuses stops heartbeats: the lease runs out even though the handle is gone", async () => {
    const p = server.process("p");
    p.link.refuse("release");
    let handle: Lock | undefined;
    const err = await p.locks
      .withLock(id, (lock) => {
        handle = lock;
        return "done";
      })
      .catch((e: unknown) => e);
    assert.ok(err instanceof LockError && !(err instanceof LockLostError), String(err));
    assert.match(err.message, /retrying cannot fix; nothing was written/);
    const sentAtFailure = p.link.sent.length;
    await p.advance(LEASE * 3);
    assert.deepEqual(
      p.link.sent.slice(sentAtFailure),
      ["release"],
      "no heartbeat after the failed release; only the release sent when the lease ran out",
    );
    assert.ok(handle !== undefined);
    assert.equal((handle.signal.reason as LockLostError).reason, "expired");
    assert.equal((await server.admin.read(id))?.held, false, "and that one freed the lock");
  });

  it("release(data) while a release is in flight, or after one, rejects: its data is not written", async () => {
    const p = server.process("p");
    const lock = await p.locks.acquire<{ n: number }>(id);
    const reply = p.link.holdReply("release");
    const first = lock.release({ n: 1 });
    await reply.reached;
    const again = lock.release();
    await assert.rejects(
      lock.release({ n: 2 }),
      (e: unknown) => e instanceof LockError && /not written/.test(e.message),
    );
    reply.deliver();
    await first;
    await again;
    await assert.rejects(
      lock.release({ n: 3 }),
      (e: unknown) => e instanceof LockError && /already released/.test(e.message),
    );
    await lock.release(); // without data: idempotent
    assert.deepEqual((await server.admin.read(id))?.data, { n: 1 });
  });

  it("a read after a failed heartbeat is bounded: release() and close() cannot hang behind it", async (t) => {
    if (server.backend.capabilities.returnsOldItemOnConditionFailure) {
      t.skip(`${server.backend.name} returns the item with a failed condition: there is no read to hang`);
      return;
    }
    const p = server.process("p");
    const lock = await p.locks.acquire(id);
    await server.admin.forceRelease(id);
    p.link.blackhole("read");
    await p.advance(LEASE * 2);
    assert.equal(lock.signal.aborted, true, "the loss is reported without the read's answer");
    await assert.rejects(lock.release(), LockLostError);
    await p.locks.close();
  });
});

describe("a guarded write after a release that was applied unheard", () => {
  it("says the lock was released by this holder, not taken by someone else", async (t) => {
    if (!server.backend.capabilities.transactions) {
      t.skip(`${server.backend.name} has no transactions`);
      return;
    }
    // Found by the simulation (forceful seed 1136): the release's first attempt is applied and its
    // answer lost, its retry refused, so release() rejects and the lock still looks held; a guarded
    // write then fails its guard on our own release.
    const p = server.process("p");
    const lock = await p.locks.acquire(id);
    p.link.loseReplies("release");
    const releasing = lock.release().catch((e: unknown) => e);
    await p.advance(0);
    p.link.refuse("release");
    await p.advance(HEARTBEAT);
    assert.ok((await releasing) instanceof LockError);
    const put = { Put: { TableName: server.table, Item: { id: { S: `${id}-work` } } } };
    const err = await lock.transact([put]).catch((e: unknown) => e);
    assert.ok(err instanceof LockError && !(err instanceof LockLostError), String(err));
    assert.equal(err.code, "ERELEASED");
    assert.equal(lock.signal.aborted, false, "not a loss: nobody else took or released it");
    assert.equal(lock.held, false);
    assert.equal((await server.admin.read(`${id}-work`)) === undefined, true, "nothing committed");
  });
});

describe("onWait", () => {
  it("a promise it returns that rejects ends the wait with its reason, never unhandled", async () => {
    const holder = await server.process("h").locks.acquire(id);
    const q = server.process("q");
    const boom = new Error("status line failed");
    const waiting = q.locks
      .acquire(id, { waitMs: 60_000, onWait: () => Promise.reject(boom) })
      .catch((e: unknown) => e);
    await q.advance(100);
    assert.equal(await waiting, boom);
    await holder.release();
    await q.locks.close();
  });
});

describe("long durations", () => {
  it("a timer longer than Node's limit does not fire early; Infinity never fires", async () => {
    let fired = 0;
    const long = setLongTimer(() => fired++, MAX_TIMER_MS + 1_000, false);
    const never = setLongTimer(() => fired++, Number.POSITIVE_INFINITY, false);
    await new Promise((resolve) => setTimeout(resolve, 50));
    long.cancel();
    never.cancel();
    assert.equal(fired, 0);
  });

  it("a wait beyond 2^31 ms takes a free lock, and waitMs: Infinity waits for a release", async () => {
    const locks = new LockClient({ table: server.table, client: server.backend.client });
    const first = await locks.acquire(id, { waitMs: 2 ** 31 + 1 });
    assert.equal(first.held, true);
    await first.release();
    await locks.close();
    const lock = await server.process("h").locks.acquire(id);
    const q = server.process("q");
    let looks = 0;
    const waiting = q.locks.acquire(id, { waitMs: Number.POSITIVE_INFINITY, onWait: () => void looks++ });
    await q.advance(LEASE / 2);
    assert.ok(looks > 0, "waiting");
    await lock.release();
    await q.advance(2_000);
    const taken = await waiting;
    assert.equal(taken.held, true);
    await taken.release();
  });

  it("a lease beyond 2^31 ms does not expire at once", async () => {
    const locks = new LockClient({
      table: server.table,
      client: server.backend.client,
      leaseMs: 3 * 2 ** 31,
    });
    const lock = await locks.acquire(id);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(lock.signal.aborted, false);
    assert.equal(lock.held, true);
    await locks.close();
  });
});

describe("re-acquiring an id this client holds", () => {
  it("waits like any contender; the error says the holder is this same client", async () => {
    const locks = new LockClient({ table: server.table, client: server.backend.client });
    const lock = await locks.acquire(id);
    await assert.rejects(
      locks.acquire(id),
      (e: unknown) => e instanceof LockHeldError && /this same LockClient/.test(e.message),
    );
    await assert.rejects(
      server.admin.acquire(id),
      (e: unknown) => e instanceof LockHeldError && !/this same LockClient/.test(e.message),
    );
    await lock.release();
    await locks.close();
  });
});

describe("key names", () => {
  for (const name of [
    "owner",
    "version",
    "leaseMs",
    "heartbeatAt",
    "holder",
    "fence",
    "data",
    "releasedBy",
    "releasedAt",
    "expiresAt",
  ]) {
    it(`refuses partitionKey or sortKey.name "${name}", a lock attribute, before any request`, () => {
      assert.throws(() => new LockClient({ table: server.table, partitionKey: name }), RangeError);
      assert.throws(
        () => new LockClient({ table: server.table, sortKey: { name, value: "lock" } }),
        RangeError,
      );
    });
  }
});
