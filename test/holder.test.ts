/**
 * Holding a lock under faults, on a real server with injected clocks: time moves only when the
 * test says so, so every lease boundary is checked exactly, with no wall-clock windows.
 */
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import { LockError, LockLostError } from "../src/index.js";
import { driftMarginMs } from "../src/lease.js";
import { FakeRuntime } from "./support/fake-runtime.js";
import { sharedTable } from "./support/process.js";

const LEASE = 10_000;
const HEARTBEAT = 1_000;

const server = sharedTable({ leaseMs: LEASE, heartbeatMs: HEARTBEAT });

let id: string;
let n = 0;
beforeEach(() => {
  id = `lock-${++n}`;
});

describe("holder", () => {
  it("heartbeats every heartbeatMs and leaves no timer behind after release", async () => {
    const p = server.process("p");
    const held = await p.locks.acquire(id);
    await p.advance(HEARTBEAT * 3 + 1);
    assert.deepEqual(p.link.sent, ["acquire", "renew", "renew", "renew"]);
    await held.release();
    assert.equal(p.runtime.pendingTimers, 0);
  });

  it("loses the lock exactly when its lease runs out without a confirmed heartbeat", async () => {
    const p = server.process("p");
    const held = await p.locks.acquire(id);
    p.link.partitioned = true;
    const validFor = LEASE - driftMarginMs(LEASE);
    await p.advance(validFor - 1);
    assert.equal(held.signal.aborted, false);
    assert.equal(held.held, true);
    assert.equal(held.remainingMs, 1);
    await p.advance(1);
    assert.equal(held.signal.aborted, true);
    assert.equal(held.held, false);
    const reason = held.signal.reason;
    assert.ok(reason instanceof LockLostError);
    assert.equal(reason.reason, "expired");
    assert.equal(reason.fence, held.fence);
    // A late write of a lost lock rejects and sends nothing.
    const sentBefore = p.link.sent.length;
    const writtenNothing = (e: unknown) => e instanceof LockLostError && !e.writeUncertain;
    await assert.rejects(held.update({ late: true }), writtenNothing);
    await assert.rejects(held.release({ late: true }), writtenNothing);
    assert.equal(p.link.sent.length, sentBefore);
  });

  it("an update still unanswered when the lease runs out is reported as maybe written", async () => {
    const p = server.process("p");
    const held = await p.locks.acquire(id);
    p.link.partitioned = true; // no answers: every attempt may or may not have been applied
    const updating = held.update({ maybe: true });
    const outcome = updating.catch((e: unknown) => e);
    await p.advance(LEASE);
    const err = await outcome;
    assert.ok(err instanceof LockLostError);
    assert.equal(err.reason, "expired");
    assert.equal(err.writeUncertain, true);
    assert.match(err.message, /may or may not have been written/);
  });

  it("after losing by expiry, frees its own record as soon as it can reach the server", async () => {
    const p = server.process("p");
    await p.locks.acquire(id);
    p.link.partitioned = true;
    await p.advance(LEASE);
    // The best-effort release was attempted during the partition and failed; nothing was freed.
    assert.equal((await server.admin.read(id))?.held, true);
    const late = server.process("late");
    const held = await late.locks.acquire(`${id}-b`);
    late.link.partitioned = true;
    await late.advance(LEASE - driftMarginMs(LEASE) - 1);
    late.link.partitioned = false; // the partition heals just as the lease ends
    await late.advance(1);
    assert.equal(held.signal.aborted, true);
    assert.equal(
      (await server.admin.read(`${id}-b`))?.held,
      false,
      "the expired holder released its own record",
    );
  });

  it("a heartbeat applied but not acknowledged does not cost the lock", async () => {
    const p = server.process("p");
    const held = await p.locks.acquire(id);
    p.link.loseReplies("renew", 2);
    await p.advance(HEARTBEAT * 2);
    assert.equal(held.signal.aborted, false);
    await p.advance(LEASE * 2);
    assert.equal(held.signal.aborted, false, "later heartbeats keep it");
    assert.equal((await server.admin.read(id))?.held, true);
    await held.release();
  });

  it("a release applied but not acknowledged is recognised on retry, with its data", async () => {
    const p = server.process("p");
    const held = await p.locks.acquire(id);
    p.link.loseReplies("release");
    const releasing = held.release({ done: 1 });
    await p.advance(2_000);
    await releasing;
    assert.equal(held.signal.aborted, false);
    const info = await server.admin.read(id);
    assert.equal(info?.held, false);
    assert.deepEqual(info?.data, { done: 1 });
  });

  it("an update applied but not acknowledged is retried and succeeds", async () => {
    const p = server.process("p");
    const held = await p.locks.acquire<{ n: number }>(id);
    p.link.loseReplies("renew");
    const updating = held.update({ n: 1 });
    await p.advance(2_000);
    await updating;
    assert.deepEqual(held.data, { n: 1 });
    assert.deepEqual((await server.admin.read(id))?.data, { n: 1 });
    await held.release();
  });

  it("a release waits for the heartbeat in flight and never races it", async () => {
    const p = server.process("p");
    const held = await p.locks.acquire(id);
    const heartbeat = p.link.holdReply("renew");
    const ticking = p.advance(HEARTBEAT);
    await heartbeat.reached;
    const releasing = held.release({ after: "heartbeat" });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(p.link.sent, ["acquire", "renew"], "the release waits");
    heartbeat.deliver();
    await ticking;
    await releasing;
    assert.deepEqual(p.link.sent, ["acquire", "renew", "release"]);
    assert.equal(held.signal.aborted, false);
    assert.equal((await server.admin.read(id))?.held, false);
  });

  it("an acquire applied but not acknowledged is retried into the same acquisition", async () => {
    const p = server.process("p");
    p.link.loseReplies("acquire");
    const acquiring = p.locks.acquire(id, { waitMs: 5_000 });
    await p.advance(1_000);
    const held = await acquiring;
    assert.equal(held.signal.aborted, false);
    const info = await server.admin.read(id);
    assert.equal(info?.holder, "p");
    assert.equal(info?.fence, held.fence);
    await held.release();
  });

  it("an acquire whose outcome stays unknown is cleaned up, not left held for a lease", async () => {
    const p = server.process("p");
    p.link.loseReplies("acquire");
    await assert.rejects(p.locks.acquire(id), (e) => e instanceof LockError && !(e instanceof LockLostError));
    await p.link.settle();
    assert.equal((await server.admin.read(id))?.held, false);
  });

  it("an acquire aborted while its request is in flight is cleaned up", async () => {
    const p = server.process("p");
    const reply = p.link.holdReply("acquire");
    const controller = new AbortController();
    const acquiring = p.locks.acquire(id, { signal: controller.signal, waitMs: 5_000 });
    await reply.reached; // the server has made us the owner; the reply has not arrived
    const reason = new Error("caller gave up");
    controller.abort(reason);
    await assert.rejects(acquiring, (e) => e === reason);
    await p.link.settle();
    assert.equal((await server.admin.read(id))?.held, false);
  });
});

describe("waiter", () => {
  it("a server that never answers cannot hold an acquire past its wait (plus one lease)", async () => {
    const p = server.process("p");
    p.link.blackholed = true;
    let settled = false;
    const acquiring = p.locks.acquire(id, { waitMs: 2_000 }).finally(() => {
      settled = true;
    });
    const outcome = acquiring.catch((e: unknown) => e);
    await p.advance(2_000 + LEASE - 1);
    assert.equal(settled, false);
    await p.advance(1);
    const err = await outcome;
    assert.ok(err instanceof LockError, String(err));
    assert.match(err.message, /Acquiring lock/);
  });

  it("a transient failure of a poll does not end the wait", async () => {
    const runtime = new FakeRuntime();
    const holder = server.process("holder", { runtime });
    const waiter = server.process("waiter", { runtime });
    const held = await holder.locks.acquire(id);
    const acquiring = waiter.locks.acquire(id, { waitMs: 5_000 });
    const settleBoth = async () => {
      await holder.link.settle();
      await waiter.link.settle();
    };
    await runtime.advance(100, settleBoth);
    waiter.link.partitioned = true; // its polls fail for a while
    await runtime.advance(1_000, settleBoth);
    waiter.link.partitioned = false;
    await held.release();
    await runtime.advance(2_000, settleBoth);
    const lock = await acquiring;
    assert.equal(lock.fence, held.fence + 1);
    await lock.release();
  });

  it("takes over a dead holder by the observed lease: not a millisecond before it", async () => {
    const runtime = new FakeRuntime();
    const dead = server.process("dead", { runtime });
    const waiter = server.process("waiter", { runtime, maxClockSkewMs: Number.POSITIVE_INFINITY });
    const held = await dead.locks.acquire(id);
    dead.link.partitioned = true; // it never heartbeats again
    let holderLearnedAt: number | undefined;
    held.signal.addEventListener("abort", () => {
      holderLearnedAt = runtime.monotonicNow();
    });
    let takenAt: number | undefined;
    const observedAt = runtime.monotonicNow();
    const taking = waiter.locks.acquire(id, { waitMs: LEASE * 3 }).then((lock) => {
      takenAt = runtime.monotonicNow();
      return lock;
    });
    const settleBoth = async () => {
      await dead.link.settle();
      await waiter.link.settle();
    };
    await runtime.advance(LEASE - 1, settleBoth);
    assert.equal(takenAt, undefined, "no takeover before a whole lease");
    await runtime.advance(2_000, settleBoth);
    const lock = await taking;
    assert.ok(takenAt !== undefined && takenAt >= observedAt + LEASE);
    assert.ok(holderLearnedAt !== undefined && holderLearnedAt < takenAt, "the holder learned first");
    assert.equal(lock.fence, held.fence + 1);
    await lock.release();
  });

  it("takes over a holder that died long ago at once, by the wall-clock shortcut", async () => {
    const old = server.process("old");
    const held = await old.locks.acquire(id);
    old.link.partitioned = true;
    const later = new FakeRuntime();
    const skew = 1_000;
    // The newcomer's wall clock reads exactly the shortcut's bound: not yet.
    later.wallOffset = old.runtime.wallNow() + LEASE + skew;
    const fresh = server.process("fresh", { runtime: later, maxClockSkewMs: skew });
    assert.equal(await fresh.locks.tryAcquire(id), undefined);
    later.wallOffset += 1;
    const taken = await fresh.locks.tryAcquire(id);
    assert.ok(taken !== undefined);
    assert.equal(taken.fence, held.fence + 1);
    await taken.release();
  });

  it("never takes the shortcut with maxClockSkewMs: Infinity", async () => {
    const old = server.process("old");
    await old.locks.acquire(id);
    old.link.partitioned = true;
    const later = new FakeRuntime();
    later.wallOffset = old.runtime.wallNow() + 365 * 24 * 3_600_000;
    const fresh = server.process("fresh", { runtime: later, maxClockSkewMs: Number.POSITIVE_INFINITY });
    assert.equal(await fresh.locks.tryAcquire(id), undefined);
    await server.admin.forceRelease(id);
  });

  it("a live holder's heartbeats keep resetting the observed lease", async () => {
    const runtime = new FakeRuntime();
    const live = server.process("live", { runtime });
    const waiter = server.process("waiter", { runtime, maxClockSkewMs: Number.POSITIVE_INFINITY });
    const held = await live.locks.acquire(id);
    const settleBoth = async () => {
      await live.link.settle();
      await waiter.link.settle();
    };
    const waiting = waiter.locks.acquire(id, { waitMs: LEASE * 3 });
    const outcome = waiting.then(
      () => "acquired",
      (e: unknown) => e,
    );
    await runtime.advance(LEASE * 3 + 1, settleBoth);
    const result = await outcome;
    assert.equal((result as Error).name, "LockHeldError");
    assert.equal(held.signal.aborted, false);
    await held.release();
  });
});
