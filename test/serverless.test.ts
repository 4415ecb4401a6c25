/**
 * Locks without heartbeats (`heartbeat: false`), renewed by `extend()`, and the truthfulness of
 * `held` and `signal` after a freeze: on a real server with injected clocks. A freeze is the
 * monotonic clock jumping while no timer runs (FakeRuntime.freeze), as in a stopped process or a
 * frozen Lambda environment; the timers that were due fire only at the next `advance`.
 */
import assert from "node:assert/strict";
import { tracingChannel } from "node:diagnostics_channel";
import { beforeEach, describe, it } from "node:test";
import { LockClient, LockError, LockLostError } from "../src/index.js";
import { driftMarginMs } from "../src/lease.js";
import { sharedTable } from "./support/process.js";

const LEASE = 10_000;
const HEARTBEAT = 1_000;
const VALID = LEASE - driftMarginMs(LEASE);

const server = sharedTable({ leaseMs: LEASE, heartbeatMs: HEARTBEAT });

let id: string;
let n = 0;
beforeEach(() => {
  id = `serverless-${++n}`;
});

describe("heartbeat: false", () => {
  it("sends nothing on its own and arms no timer that keeps the process alive", async () => {
    const p = server.process("p", { heartbeat: false });
    const lock = await p.locks.acquire(id);
    // Only the expiry timer, unref'd: it aborts `signal` in a process that is running anyway.
    assert.equal(p.runtime.pendingTimers, 1);
    assert.equal(p.runtime.keepAliveTimers, 0);
    await p.advance(VALID - 1);
    assert.deepEqual(p.link.sent, ["acquire"], "no heartbeat");
    assert.equal(lock.held, true);
    await p.advance(1);
    assert.equal(lock.held, false);
    assert.ok(lock.signal.reason instanceof LockLostError);
    assert.equal((lock.signal.reason as LockLostError).reason, "expired");
    assert.match((lock.signal.reason as Error).message, /without a confirmed renewal/);
    await p.advance(0);
    assert.deepEqual(p.link.sent, ["acquire", "release"], "the quiet release after an expiry");
    assert.equal(p.runtime.pendingTimers, 0);
  });

  it("is per acquire: overrides the client's setting either way", async () => {
    const beats = server.process("beats");
    const quiet = await beats.locks.acquire(id, { heartbeat: false });
    const tried = await beats.locks.tryAcquire(`${id}-try`, { heartbeat: false });
    assert.ok(tried !== undefined);
    await beats.advance(HEARTBEAT * 3 + 1);
    assert.deepEqual(beats.link.sent, ["acquire", "acquire"]);
    await quiet.release();
    await tried.release();

    const still = server.process("still", { heartbeat: false });
    const loud = await still.locks.acquire(`${id}-loud`, { heartbeat: true });
    await still.advance(HEARTBEAT * 2 + 1);
    assert.deepEqual(still.link.sent, ["acquire", "renew", "renew"]);
    await loud.release();
  });

  it("extend() renews with one request and reports the lease left, counted from its send", async () => {
    const p = server.process("p", { heartbeat: false });
    const lock = await p.locks.acquire<{ n: number }>(id);
    await p.advance(VALID - 100);
    assert.equal(lock.remainingMs, 100);
    const left = await lock.extend();
    assert.equal(left, VALID);
    assert.deepEqual(p.link.sent, ["acquire", "renew"]);
    const info = await server.admin.read(id);
    assert.equal(info?.heartbeatAt, p.runtime.wallNow(), "heartbeatAt is the extend's send time");
    // Valid a whole lease from the extend, no longer.
    await p.advance(VALID - 1);
    assert.equal(lock.held, true);
    await p.advance(1);
    assert.equal(lock.held, false);
  });

  it("extend() on a heartbeating lock renews early and moves the next heartbeat", async () => {
    const p = server.process("p");
    const lock = await p.locks.acquire(id);
    await p.advance(HEARTBEAT / 2);
    assert.equal(await lock.extend(), VALID);
    await p.advance(HEARTBEAT - 1);
    assert.deepEqual(p.link.sent, ["acquire", "renew"]);
    await p.advance(1);
    assert.deepEqual(p.link.sent, ["acquire", "renew", "renew"]);
    await lock.release();
    assert.equal(p.runtime.pendingTimers, 0);
  });

  it("extend() answered after the lease ran out does not revive the lock", async () => {
    const p = server.process("p", { heartbeat: false });
    const lock = await p.locks.acquire(id);
    const hold = p.link.holdReply("renew");
    const extending = lock.extend();
    await hold.reached;
    p.runtime.freeze(LEASE);
    hold.deliver();
    const err = await extending.catch((e: unknown) => e);
    assert.ok(err instanceof LockLostError, String(err));
    assert.equal(err.reason, "expired");
    assert.equal(lock.held, false);
    assert.ok(lock.signal.aborted);
  });

  it("extend() after a loss or a release rejects without sending anything", async () => {
    const p = server.process("p", { heartbeat: false });
    const released = await p.locks.acquire(id);
    await released.release();
    const sent = p.link.sent.length;
    const afterRelease = await released.extend().catch((e: unknown) => e);
    assert.ok(afterRelease instanceof LockError && !(afterRelease instanceof LockLostError));
    assert.equal(afterRelease.code, "ERELEASED");

    const other = await p.locks.acquire(`${id}-b`);
    const releasing = other.release();
    const during = await other.extend().catch((e: unknown) => e);
    assert.ok(during instanceof LockError && during.code === "ERELEASED", String(during));
    await releasing;
    assert.deepEqual(p.link.sent.slice(sent), ["acquire", "release"]);
  });

  it("refuses bad options with a typed error naming them, before any request", async () => {
    const p = server.process("p", { heartbeat: false });
    await assert.rejects(p.locks.acquire(id, { heartbeat: "no" as unknown as boolean }), (e: Error) => {
      return e instanceof TypeError && /`heartbeat`/.test(e.message);
    });
    await assert.rejects(p.locks.tryAcquire(id, { heartbeat: 0 as unknown as boolean }), /`heartbeat`/);
    assert.throws(
      () => new LockClient({ table: server.table, heartbeat: "off" as unknown as boolean }),
      /`heartbeat`/,
    );
    assert.deepEqual(p.link.sent, []);
    const lock = await p.locks.acquire(id);
    await assert.rejects(lock.extend("soon" as unknown as object), TypeError);
    await assert.rejects(lock.extend({ leaseMs: 5 } as unknown as object), /leaseMs/);
    await assert.rejects(lock.extend({ signal: 5 } as unknown as object), /`signal`/);
    const aborted = AbortSignal.abort(new Error("caller gave up"));
    await assert.rejects(lock.extend({ signal: aborted }), /caller gave up/);
    assert.deepEqual(p.link.sent, ["acquire"]);
    await lock.release();
  });
});

describe("after a freeze past the lease", () => {
  it("signal is aborted when first looked at, before any timer has run", async () => {
    const p = server.process("p", { heartbeat: false });
    const lock = await p.locks.acquire(id);
    let told = false;
    lock.signal.addEventListener("abort", () => {
      told = true;
    });
    p.runtime.freeze(VALID);
    assert.equal(told, false, "no timer has run yet");
    assert.equal(lock.signal.aborted, true);
    assert.equal(told, true, "listeners hear of it at once");
    assert.equal((lock.signal.reason as LockLostError).reason, "expired");
    assert.equal(lock.held, false);
    assert.equal(lock.remainingMs, 0);
  });

  it("held is false when first looked at, and the signal has aborted with it", async () => {
    const p = server.process("p");
    const lock = await p.locks.acquire(id);
    p.runtime.freeze(VALID);
    assert.equal(lock.held, false);
    assert.equal(lock.signal.aborted, true);
  });

  for (const heartbeat of [false, true]) {
    it(`every owner's act refuses without sending (heartbeat: ${heartbeat}), while another has taken over`, async () => {
      const p = server.process("frozen", { heartbeat });
      const lock = await p.locks.acquire(id);
      // The other process's wall clock is past the holder's lease and skew bound: it takes over at once.
      const q = server.process("next", { maxClockSkewMs: 0 });
      q.runtime.wallOffset = p.runtime.wallOffset + LEASE + 1;
      const next = await q.locks.acquire(id);
      p.runtime.freeze(LEASE);
      const before = p.link.sent.length;
      const acts: (() => Promise<unknown>)[] = [
        () => lock.update({ late: true }),
        () => lock.extend(),
        () => lock.transact([]),
        () => lock.release(),
      ];
      for (const act of acts) {
        const err = await Promise.resolve()
          .then(act)
          .catch((e: unknown) => e);
        assert.ok(err instanceof LockLostError, String(err));
        assert.equal(err.reason, "expired");
      }
      assert.throws(() => lock.guard(), LockLostError);
      await p.advance(0);
      // Only the quiet release after the expiry, conditioned on our own token: it changes nothing.
      assert.deepEqual(p.link.sent.slice(before), ["release"]);
      const info = await server.admin.read(id);
      assert.equal(info?.holder, "next");
      assert.equal(info?.fence, next.fence);
      await next.release();
    });
  }

  it("withLock does not start fn on a lock that is no longer held", async () => {
    const p = server.process("p", { heartbeat: false });
    // The freeze lands between the acquisition being handed out (the traced acquire has ended, valid)
    // and withLock calling fn: the last await between taking the lock and acting on it.
    const frozen = { done: false };
    const none = () => undefined;
    const freeze = {
      start: none,
      end: none,
      asyncStart: none,
      error: none,
      asyncEnd(context: object) {
        if ((context as { lockId?: string }).lockId !== id || frozen.done) return;
        frozen.done = true;
        p.runtime.freeze(LEASE);
      },
    };
    tracingChannel("dynamolock:acquire").subscribe(freeze);
    let ran = false;
    try {
      const err = await p.locks
        .withLock(id, () => {
          ran = true;
        })
        .catch((e: unknown) => e);
      assert.equal(frozen.done, true);
      assert.equal(ran, false);
      assert.ok(err instanceof LockLostError, String(err));
      assert.equal(err.reason, "expired");
    } finally {
      tracingChannel("dynamolock:acquire").unsubscribe(freeze);
    }
  });
});
