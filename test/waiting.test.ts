import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseRecord } from "../src/item.js";
import {
  CLAIM_SLACK_MS,
  claimLapsed,
  claimLeaseMs,
  observeClaim,
  shouldClaim,
  standing,
} from "../src/turn.js";
import {
  expectedReleaseAt,
  LONG_HOLD_STRIDE,
  longestGapMs,
  looksByWriting,
  nextLookMs,
  recordedHoldMs,
  WRITE_LOOKS,
} from "../src/waiting.js";

const poll = { minMs: 50, maxMs: 1_000 };

/** Simulates one waiter's looks at a lock held for `holdMs` (recorded `recordedMs`): returns the look times. */
function looks(recordedMs: number | undefined, holdMs: number, random = 0.5): number[] {
  const out: number[] = [];
  let now = 0;
  for (let attempt = 0; now < holdMs && attempt < 10_000; attempt++) {
    now += nextLookMs({ now, seenAt: 0, holdMs: recordedMs, attempt, poll, random });
    out.push(now);
  }
  return out;
}

describe("waiting schedule", () => {
  it("without a recorded hold, is the old capped backoff", () => {
    for (const attempt of [0, 3, 10]) {
      const gap = nextLookMs({ now: 0, seenAt: 0, holdMs: undefined, attempt, poll, random: 0 });
      assert.equal(gap, Math.min(poll.maxMs, poll.minMs * 2 ** attempt) / 2);
    }
  });

  it("looks at the expected release of a long hold, not once per pollMaxMs", () => {
    const times = looks(10_000, 10_000);
    // Strides of at most LONG_HOLD_STRIDE·pollMaxMs up to the expected release, which is looked at.
    assert.ok(times.includes(10_000), `looks at ${times.join(", ")}`);
    assert.ok(times.length <= 10_000 / (LONG_HOLD_STRIDE * poll.maxMs) + 2, `looks at ${times.join(", ")}`);
    // (So cheaper than one read per second while the holder holds.)
  });

  it("backs off past the expected release, never beyond the longest gap", () => {
    const gaps: number[] = [];
    let now = 10_000;
    for (let attempt = 0; attempt < 30; attempt++) {
      const gap = nextLookMs({ now, seenAt: 0, holdMs: 10_000, attempt, poll, random: 0.5 });
      gaps.push(gap);
      now += gap;
    }
    for (let i = 1; i < gaps.length; i++) assert.ok((gaps[i] as number) >= (gaps[i - 1] as number));
    assert.equal(Math.max(...gaps), longestGapMs(poll, 10_000));
    assert.ok((gaps[0] as number) <= poll.minMs, "looks again soon just after the expected release");
  });

  it("looks at the pace of short holds near their expected release (hand-off is not slowed)", () => {
    const gap = nextLookMs({ now: 6, seenAt: 0, holdMs: 5, attempt: 3, poll, random: 0 });
    assert.ok(gap <= 2, `gap ${gap}`);
    // but never faster than 1 ms
    assert.ok(nextLookMs({ now: 0.5, seenAt: 0, holdMs: 0, attempt: 0, poll, random: 0 }) >= 1);
  });

  it("counts the expected release from the acquisition when the item tells, by one hold at most", () => {
    const base = { now: 100, seenAt: 100, holdMs: 40, attempt: 0, poll, random: 0 };
    assert.equal(nextLookMs(base), 40);
    assert.equal(nextLookMs({ ...base, heldBeforeSeenMs: 30 }), 10);
    // A wall clock far off cannot make a waiter look sooner than "overdue by nothing".
    assert.equal(
      nextLookMs({ ...base, heldBeforeSeenMs: 3_600_000 }),
      nextLookMs({ ...base, heldBeforeSeenMs: 40 }),
    );
    assert.equal(nextLookMs({ ...base, heldBeforeSeenMs: -5_000 }), 40);
  });

  it("the claimant's look at the expected release, and the dense ones after it, are writes", () => {
    // A 50 ms hold first seen at t=100: the release is expected at t=150; the fine pace is 12.5 ms.
    const expectedAt = expectedReleaseAt({ seenAt: 100, holdMs: 50 });
    assert.equal(expectedAt, 150);
    const look = { turnIsMine: true, returnsOldItem: true, holdMs: 50, writeLooks: 0, poll, expectedAt };
    // The one stride to the expected release (sent from t=100, 50 ms): a write. (It was a read, and
    // a claimant that read the lock free then needed a second round trip to take it.)
    assert.equal(looksByWriting({ ...look, gapMs: 50, lookAt: 150 }), true);
    // A stride that ends well before the expected release (a long hold's): a read.
    assert.equal(looksByWriting({ ...look, gapMs: 30, lookAt: 130 }), false);
    // The dense looks after it: writes, for a few only.
    assert.equal(looksByWriting({ ...look, gapMs: 12.5, lookAt: 163, writeLooks: 1 }), true);
    assert.equal(looksByWriting({ ...look, gapMs: 12.5, lookAt: 300, writeLooks: WRITE_LOOKS }), false);
    // A holder that overstays is watched by reads: a look well past the expected release, at the
    // overdue pace (not dense), is a read.
    assert.equal(looksByWriting({ ...look, gapMs: 200, lookAt: 600, writeLooks: 2 }), false);
    // A long hold: the stride that crosses its expected release is a write however many reads came
    // before it (write-looks are counted apart from reads).
    const longAt = expectedReleaseAt({ seenAt: 0, holdMs: 60_000 });
    assert.equal(
      looksByWriting({ ...look, holdMs: 60_000, expectedAt: longAt, gapMs: 2_000, lookAt: 60_000 }),
      true,
    );
    // Never when it is not our turn, on a server that does not return the old item, or without a hold.
    assert.equal(looksByWriting({ ...look, gapMs: 50, lookAt: 150, turnIsMine: false }), false);
    assert.equal(looksByWriting({ ...look, gapMs: 50, lookAt: 150, returnsOldItem: false }), false);
    assert.equal(looksByWriting({ ...look, gapMs: 50, lookAt: 150, holdMs: undefined }), false);
  });

  it("the longest gap is pollMaxMs until recorded holds are long, then at most a few pollMaxMs", () => {
    assert.equal(longestGapMs(poll, undefined), poll.maxMs);
    assert.equal(longestGapMs(poll, 100), poll.maxMs);
    assert.equal(longestGapMs(poll, 3_000), 1_500);
    assert.equal(longestGapMs(poll, 3_600_000), LONG_HOLD_STRIDE * poll.maxMs);
  });

  it("records a moving average of holds", () => {
    assert.equal(recordedHoldMs(undefined, 12.4), 12);
    assert.equal(recordedHoldMs(100, 200), 125);
    assert.equal(recordedHoldMs(100, -5), 75);
    let avg: number | undefined;
    for (let i = 0; i < 40; i++) avg = recordedHoldMs(avg, 1_000);
    assert.equal(avg, 1_000);
  });
});

const held = (extra: Record<string, unknown> = {}) =>
  parseRecord({
    owner: { S: "holder" },
    version: { N: "1" },
    fence: { N: "4" },
    ...(extra as Record<string, never>),
  });
const claimBy = (next: string, since: number, at = 5, ms = 300) =>
  held({
    next: { S: next },
    nextSince: { N: String(since) },
    nextAt: { N: String(at) },
    nextMs: { N: String(ms) },
  });

describe("turns", () => {
  const me = { token: "me", since: 1_000 };

  it("stands open without a claim, and by the claim's age with one", () => {
    assert.equal(standing(held(), me, undefined, 0), "open");
    assert.equal(standing(claimBy("me", 1_000), me, undefined, 0), "mine");
    assert.equal(standing(claimBy("other", 999), me, undefined, 0), "behind");
    // Equal ages: whoever claimed first keeps it.
    assert.equal(standing(claimBy("other", 1_000), me, undefined, 0), "behind");
    assert.equal(standing(claimBy("other", 1_001), me, undefined, 0), "ahead");
  });

  it("judges a claim lapsed only after its nextMs unchanged on the watcher's own clock", () => {
    const record = claimBy("other", 10, 77, 300);
    const first = observeClaim(undefined, record, 1_000);
    assert.ok(first !== undefined);
    assert.equal(standing(record, me, first, 1_299), "behind");
    assert.equal(standing(record, me, first, 1_300), "lapsed");
    // Seen again later: the first sighting counts.
    const again = observeClaim(first, record, 1_200);
    assert.equal(again?.seenAt, 1_000);
    // A renewal (a new nextAt) restarts the watch.
    const renewed = observeClaim(again, claimBy("other", 10, 78, 300), 1_250);
    assert.equal(renewed?.seenAt, 1_250);
    assert.ok(renewed !== undefined && !claimLapsed(renewed, 1_500));
    assert.equal(observeClaim(renewed, held(), 1_600), undefined);
  });

  it("claims when nobody's claim counts or ours would lapse before our next look", () => {
    assert.equal(shouldClaim("open", undefined, 0, 100, 30_000), true);
    assert.equal(shouldClaim("lapsed", undefined, 0, 100, 30_000), true);
    assert.equal(shouldClaim("ahead", undefined, 0, 100, 30_000), true);
    assert.equal(shouldClaim("behind", undefined, 0, 100, 30_000), false);
    const mine = { sentAt: 0, ms: claimLeaseMs(100, 30_000) };
    assert.equal(shouldClaim("mine", mine, 0, 100, 30_000), false);
    assert.equal(shouldClaim("mine", mine, mine.ms - 100 - CLAIM_SLACK_MS + 1, 100, 30_000), true);
    assert.equal(shouldClaim("mine", undefined, 0, 100, 30_000), true);
    // A claim counts long enough not to be renewed on every look of a fast waiter, but never
    // longer than a lease.
    assert.equal(claimLeaseMs(5, 30_000), 1_000 + CLAIM_SLACK_MS);
    assert.equal(claimLeaseMs(5, 200), 200);
    assert.equal(claimLeaseMs(2_000, 30_000), 6_000 + CLAIM_SLACK_MS);
  });
});
