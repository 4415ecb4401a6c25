import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffDelay, waitBeforeNextPoll } from "../src/backoff.js";
import { CLOCK_RATE_DRIFT, driftMarginMs, holderValidUntil, judge, observe } from "../src/lease.js";

const held = { owner: "a", version: 3, leaseMs: 10_000, heartbeatAt: 1_000_000 };

describe("holder validity", () => {
  it("ends a drift margin before sentAt + leaseMs", () => {
    assert.equal(holderValidUntil(500, 10_000), 500 + 10_000 - driftMarginMs(10_000));
    assert.ok(driftMarginMs(10_000) > 2 * CLOCK_RATE_DRIFT * 10_000);
  });

  it("outlasts no waiter whose clock runs at the opposite drift bound", () => {
    for (const leaseMs of [10, 1_000, 30_000, 3_600_000]) {
      // The holder's local end, stretched to real time by the slowest allowed clock, must come
      // before the waiter's takeover, shrunk to real time by the fastest allowed clock.
      const holderEndReal = (leaseMs - driftMarginMs(leaseMs)) / (1 - CLOCK_RATE_DRIFT);
      const waiterTakeoverReal = leaseMs / (1 + CLOCK_RATE_DRIFT);
      assert.ok(holderEndReal < waiterTakeoverReal, `leaseMs ${leaseMs}`);
    }
  });
});

describe("observe", () => {
  it("keeps the first sighting of the same (owner, version)", () => {
    const first = observe(undefined, held, 100);
    const again = observe(first, { ...held, heartbeatAt: 1_000_500 }, 900);
    assert.equal(again.observedAt, 100);
  });

  it("starts over when the version or the owner changes", () => {
    const first = observe(undefined, held, 100);
    assert.equal(observe(first, { ...held, version: 4 }, 900).observedAt, 900);
    assert.equal(observe(first, { ...held, owner: "b" }, 900).observedAt, 900);
  });
});

describe("judge", () => {
  const seen = observe(undefined, held, 100);
  const wallAtHeartbeat = held.heartbeatAt;

  it("is not stale before a whole lease has been observed", () => {
    const verdict = judge(seen, 100 + 9_999, wallAtHeartbeat, Number.POSITIVE_INFINITY);
    assert.deepEqual(verdict, { stale: false, staleInMs: 1 });
  });

  it("is stale once the holder's lease has passed on the waiter's monotonic clock", () => {
    assert.deepEqual(judge(seen, 100 + 10_000, wallAtHeartbeat, Number.POSITIVE_INFINITY), {
      stale: true,
      rule: "observed-lease",
    });
  });

  it("uses the holder's lease, not the waiter's", () => {
    const short = observe(undefined, { ...held, leaseMs: 50 }, 100);
    assert.equal(judge(short, 150, wallAtHeartbeat, Number.POSITIVE_INFINITY).stale, true);
  });

  it("takes the wall-clock shortcut only past leaseMs + maxClockSkewMs", () => {
    const skew = 1_000;
    const edge = held.heartbeatAt + held.leaseMs + skew;
    assert.deepEqual(judge(seen, 101, edge, skew), { stale: false, staleInMs: 1 });
    assert.deepEqual(judge(seen, 101, edge + 1, skew), { stale: true, rule: "wall-clock" });
  });

  it("never takes the shortcut when maxClockSkewMs is Infinity or heartbeatAt is unknown", () => {
    const farFuture = held.heartbeatAt + 10 * 365 * 24 * 3_600_000;
    assert.equal(judge(seen, 101, farFuture, Number.POSITIVE_INFINITY).stale, false);
    const noHeartbeat = observe(undefined, { ...held, heartbeatAt: undefined }, 100);
    assert.equal(judge(noHeartbeat, 101, farFuture, 1_000).stale, false);
  });

  it("reports the nearer of the two maturities", () => {
    const verdict = judge(seen, 100, held.heartbeatAt + held.leaseMs, 1_000);
    assert.deepEqual(verdict, { stale: false, staleInMs: 1_001 });
  });
});

describe("backoff", () => {
  const settings = { minMs: 50, maxMs: 1_000 };

  it("doubles from minMs and is capped at maxMs", () => {
    assert.equal(backoffDelay(0, settings, 1), 50);
    assert.equal(backoffDelay(1, settings, 1), 100);
    assert.equal(backoffDelay(4, settings, 1), 800);
    assert.equal(backoffDelay(5, settings, 1), 1_000);
    assert.equal(backoffDelay(1_000, settings, 1), 1_000);
  });

  it("jitters within the upper half of the ceiling", () => {
    assert.equal(backoffDelay(3, settings, 0), 200);
    assert.equal(backoffDelay(3, settings, 0.5), 300);
  });

  it("never sleeps past the lease's maturity or the deadline", () => {
    assert.equal(waitBeforeNextPoll(800, 120, 5_000), 120);
    assert.equal(waitBeforeNextPoll(800, 5_000, 30), 30);
    assert.equal(waitBeforeNextPoll(800, -5, 30), 0);
  });
});
