/**
 * When a waiter looks at a held lock again: pure functions of what it has seen and its clock.
 *
 * Without a recorded hold length the schedule is the old capped exponential backoff. With one (each
 * release records a moving average, `holdMs`), the waiter expects the release at `seenAt + holdMs`,
 * where `seenAt` is when it first saw this owner: it sleeps towards that instant in long strides
 * (a long hold costs a few reads, not one per `pollMaxMs`), looks at it, then looks again after
 * gaps that grow with how overdue the release is (fast just after the expected instant, slower
 * past it). Every gap also stops at the instant the holder would become stale (a takeover is never
 * delayed) and at the end of the wait. See docs/protocol.md ("Waiting") and docs/performance.md.
 */
import { type BackoffSettings, backoffDelay } from "./backoff.js";

/**
 * How far past `pollMaxMs` a look may be put off while the recorded holds say the release is far
 * away: at most this many times `pollMaxMs`, and at most half the recorded hold. This bounds how
 * long a lock released much earlier than usual can stay free before a waiter notices.
 */
export const LONG_HOLD_STRIDE = 4;

/** The share a new hold gets in the recorded moving average (the rest is the old value). */
export const HOLD_WEIGHT = 0.25;

/** The longest gap between two looks the schedule may choose, for a recorded hold of `holdMs`. */
export function longestGapMs(poll: BackoffSettings, holdMs: number | undefined): number {
  if (holdMs === undefined) return poll.maxMs;
  return Math.max(poll.maxMs, Math.min(holdMs / 2, LONG_HOLD_STRIDE * poll.maxMs));
}

/**
 * How far past `pollMaxMs` the waiter whose turn is next may put off a look: nobody else may take
 * the lock when it is freed, so this waiter's lateness is the time the lock stays free. Twice
 * `pollMaxMs` (2 s by default) keeps that short while a long hold still costs this waiter about one
 * read every 2 s, not one per second; the longer strides are for the waiters behind it.
 */
export const CLAIMANT_STRIDE = 2;

/**
 * The gap of a waiter whose turn is next (its claim counts, or it is about to claim): at most
 * {@link CLAIMANT_STRIDE} × `pollMaxMs`, however long the recorded holds.
 */
export function claimantGapMs(gapMs: number, poll: BackoffSettings): number {
  return Math.min(gapMs, CLAIMANT_STRIDE * poll.maxMs);
}

/**
 * How far one hold may pull the recorded average up: a hold counts as at most this many times the
 * previous average (plus `HOLD_JUMP_MS`). One unusually long hold then moves the average by a
 * bounded factor instead of by a quarter of its length; a real change of habit shows in a few holds.
 */
export const HOLD_JUMP = 4;
/** See {@link HOLD_JUMP}: lets the average grow from very short holds (the default `pollMaxMs`). */
export const HOLD_JUMP_MS = 1_000;

export interface LookInput {
  /** Monotonic now. */
  readonly now: number;
  /** Monotonic instant of the first response that showed the current owner. */
  readonly seenAt: number;
  /**
   * How long the owner had already held the lock when first seen, if the item tells (its
   * `heartbeatAt` while at version 1 is its acquisition's wall clock). Clamped to one recorded hold:
   * a wrong wall clock can only move a look, by a hold at most.
   */
  readonly heldBeforeSeenMs?: number | undefined;
  /** The item's recorded typical hold, if any. */
  readonly holdMs: number | undefined;
  /** Looks so far at this owner (0 for the first gap). */
  readonly attempt: number;
  readonly poll: BackoffSettings;
  /** A draw from [0, 1). */
  readonly random: number;
}

/**
 * The monotonic instant the current owner is expected to release: when it was first seen plus the
 * recorded hold, less what it had already held then (clamped to one hold). Undefined while no
 * usable hold is recorded.
 */
export function expectedReleaseAt(
  i: Pick<LookInput, "seenAt" | "heldBeforeSeenMs" | "holdMs">,
): number | undefined {
  if (i.holdMs === undefined || !Number.isFinite(i.holdMs) || i.holdMs < 0) return undefined;
  const before = Math.min(i.holdMs, Math.max(0, i.heldBeforeSeenMs ?? 0));
  return i.seenAt + i.holdMs - before;
}

/**
 * The pace of looks near the expected release: proportional to the hold (short holds are handed on
 * in a few ms), but never faster than 1 ms nor slower than `pollMinMs`.
 */
export function finePaceMs(poll: BackoffSettings, holdMs: number): number {
  return Math.min(poll.minMs, Math.max(1, holdMs / 4));
}

/**
 * The gap before the next look, in ms, before the staleness and deadline bounds are applied
 * (`waitBeforeNextPoll` applies those).
 */
export function nextLookMs(i: LookInput): number {
  const expected = expectedReleaseAt(i);
  if (i.holdMs === undefined || expected === undefined) {
    return backoffDelay(i.attempt, i.poll, i.random);
  }
  const longest = longestGapMs(i.poll, i.holdMs);
  const fine = finePaceMs(i.poll, i.holdMs);
  if (i.now < expected) {
    // No jitter here: waiters first saw the owner at different instants, so they look apart anyway.
    return Math.min(longest, Math.max(fine, expected - i.now));
  }
  const overdue = i.now - expected;
  return Math.min(longest, Math.max(fine, (overdue / 2) * (1 + 0.5 * i.random)));
}

/**
 * The typical hold a release records: a moving average of the holds, starting from the first.
 * Rounded to whole ms (it is a scheduling hint, never a safety bound).
 */
export function recordedHoldMs(previous: number | undefined, heldMs: number): number {
  const held = Math.max(0, heldMs);
  if (previous === undefined || !Number.isFinite(previous) || previous < 0) return Math.round(held);
  const bounded = Math.min(held, HOLD_JUMP * previous + HOLD_JUMP_MS);
  return Math.round(previous + HOLD_WEIGHT * (bounded - previous));
}

/** At most this many looks at one owner are made by writing (see {@link looksByWriting}). */
export const WRITE_LOOKS = 8;

/**
 * Whether the next look should be the acquire write itself rather than a read. On servers that
 * return the old item when a condition fails (DynamoDB, DynamoDB Local), a failed acquire shows the
 * holder as a read would, and a successful one has taken the lock: a round trip less per hand-off.
 * Only for the waiter whose turn is next (nobody else could take the lock), only for the look at
 * the expected release of a recorded hold and the dense ones after it, and for a few looks: a write
 * costs more than a read, and a holder that overstays is watched by reads again. The look at the
 * expected release counts too: it is the one most likely to find the lock just freed, and as a read
 * it would cost the hand-off a second round trip (measured: the claimant of 50 ms holds read the
 * lock free, then wrote).
 */
export function looksByWriting(i: {
  readonly turnIsMine: boolean;
  readonly returnsOldItem: boolean;
  readonly holdMs: number | undefined;
  readonly gapMs: number;
  /** Looks by writing already made at this owner. */
  readonly writeLooks: number;
  readonly poll: BackoffSettings;
  /** Monotonic instant the look will be sent (now + gap). */
  readonly lookAt: number;
  /** {@link expectedReleaseAt} of the current owner. */
  readonly expectedAt: number | undefined;
}): boolean {
  if (!i.turnIsMine || !i.returnsOldItem || i.holdMs === undefined || i.writeLooks >= WRITE_LOOKS)
    return false;
  const fine = finePaceMs(i.poll, i.holdMs);
  // The look that crosses the expected release (scheduled from before it, landing at or after it),
  // not every look after it: a holder that overstays is watched by reads at the overdue pace.
  const crossesExpected =
    i.expectedAt !== undefined && i.lookAt - i.gapMs < i.expectedAt && i.lookAt >= i.expectedAt - fine;
  return crossesExpected || i.gapMs <= 2 * fine;
}
