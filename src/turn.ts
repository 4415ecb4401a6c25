/**
 * Turns: how waiters of different processes share a contended lock fairly (docs/protocol.md,
 * "Turns"). The lock item holds at most one claim on the next turn: `next` (the waiter's token),
 * `nextSince` (when its wait began, on its wall clock: the queue order), `nextMs` (how long the
 * claim counts without renewal) and `nextAt` (the claimant's wall clock at its last claim write,
 * strictly increasing: any renewal changes it). While a claim counts, only its waiter, or one whose
 * wait began earlier, may take the lock; a holder that comes straight back after its release has
 * just begun a new wait, so it queues behind every claimant.
 *
 * A claim lapses like a lease, judged on the observer's monotonic clock: the observer remembers the
 * (next, nextAt) pair and when it first saw it, and once `nextMs` has passed with the pair
 * unchanged, the claimant has stopped looking (dead, or gone). With the wall clock shortcut on
 * (`maxClockSkewMs` finite) it has also lapsed once `nextAt + nextMs + maxClockSkewMs` is past, so
 * a leftover claim does not refuse a free lock to callers that never watch it for long. Taking over
 * a lapsed claim is conditioned on that exact pair. A skewed wall clock moves a waiter in the queue
 * (by its error: fairness assumes clocks within `maxClockSkewMs`), and turns never decide whether
 * two may hold the lock: mutual exclusion rests on the ownership conditions alone.
 *
 * Pure functions of the record and clock readings; the requests are built in requests.ts.
 */
import type { LockRecord } from "./item.js";

/** One acquire call as a waiter: its token (the token of its first write) and when it began. */
export interface Waiter {
  readonly token: string;
  /** Wall clock (ms since epoch) at which the acquire call began. */
  readonly since: number;
}

/** A claim as one waiter has watched it: the monotonic arrival of the first response showing it. */
export interface ClaimObservation {
  readonly next: string;
  readonly nextAt: number;
  readonly nextMs: number;
  readonly seenAt: number;
}

/** Records a sighting of the claim in `record` (undefined when there is none). */
export function observeClaim(
  previous: ClaimObservation | undefined,
  record: LockRecord | undefined,
  arrivedAt: number,
): ClaimObservation | undefined {
  if (record?.next === undefined) return undefined;
  const nextAt = record.nextAt ?? 0;
  const nextMs = record.nextMs ?? 0;
  if (previous !== undefined && previous.next === record.next && previous.nextAt === nextAt) {
    return { ...previous, seenAt: Math.min(previous.seenAt, arrivedAt) };
  }
  return { next: record.next, nextAt, nextMs, seenAt: arrivedAt };
}

/** The observer's wall clock and the skew it may assume between clocks (Infinity: trust no wall clock). */
export interface WallReading {
  readonly wallNow: number;
  readonly maxClockSkewMs: number;
}

/**
 * Whether the watched claim has gone unrenewed for its whole `nextMs` on our monotonic clock, or,
 * when clocks are trusted within `maxClockSkewMs`, whether its last write (`nextAt`, the claimant's
 * wall clock) is older than `nextMs` plus that skew: the shortcut leases have too. Without it a
 * leftover claim (a dead claimant, a failed withdrawal) would keep a free lock from every caller
 * that does not watch it for a whole `nextMs` (tryAcquire, short waits). Only fairness rides on it:
 * taking a lapsed claim over is still conditioned on the exact (next, nextAt) pair.
 */
export function claimLapsed(claim: ClaimObservation, monotonicNow: number, wall?: WallReading): boolean {
  if (monotonicNow >= claim.seenAt + claim.nextMs) return true;
  return (
    wall !== undefined &&
    Number.isFinite(wall.maxClockSkewMs) &&
    wall.wallNow > claim.nextAt + claim.nextMs + wall.maxClockSkewMs
  );
}

/** Ms until the watched claim lapses (by either rule of {@link claimLapsed}); 0 if it has. */
export function claimLapsesInMs(claim: ClaimObservation, monotonicNow: number, wall?: WallReading): number {
  let ms = claim.seenAt + claim.nextMs - monotonicNow;
  if (wall !== undefined && Number.isFinite(wall.maxClockSkewMs)) {
    ms = Math.min(ms, claim.nextAt + claim.nextMs + wall.maxClockSkewMs - wall.wallNow + 1);
  }
  return Math.max(0, ms);
}

/**
 * - `open`: no claim counts; anyone may take the lock when it is free.
 * - `lapsed`: a claim is recorded but has lapsed: it may be taken over (conditioned on it exactly).
 * - `mine`: the claim is ours.
 * - `ahead`: someone else's claim counts, but our wait began earlier: we may take the lock or the claim.
 * - `behind`: someone whose wait began earlier has the claim: the lock is theirs to take next.
 */
export type Standing = "open" | "lapsed" | "mine" | "ahead" | "behind";

/** Where `me` stands, by the item as read and our watch of its claim. Mirrors the acquire condition. */
export function standing(
  record: LockRecord | undefined,
  me: Waiter,
  claim: ClaimObservation | undefined,
  monotonicNow: number,
  wall?: WallReading,
): Standing {
  if (record?.next === undefined) return "open";
  if (record.next === me.token) return "mine";
  if (record.nextSince !== undefined && record.nextSince > me.since) return "ahead";
  if (claim !== undefined && claim.next === record.next && claimLapsed(claim, monotonicNow, wall))
    return "lapsed";
  return "behind";
}

/** Extra life a claim gets beyond the claimant's next look: a request's round trip and a late timer. */
export const CLAIM_SLACK_MS = 100;

/** A claim counts at least this long (or a lease, if shorter): short claims would be renewed on almost every look. */
export const CLAIM_MIN_MS = 1_000;

/** The slack, scaled down for very short leases (the simulation's, mostly). */
export function claimSlackMs(leaseMs: number): number {
  return Math.min(CLAIM_SLACK_MS, Math.ceil(leaseMs / 10));
}

/** A claim counts for this many of the claimant's longest gaps (plus slack). */
export const CLAIM_GAPS = 3;

/**
 * How long a claim made now should count: CLAIM_GAPS of the longest gap of the waiting schedule
 * (`longestGapMs`: `pollMaxMs`, up to 4 × `pollMaxMs` while recorded holds are long), at least
 * CLAIM_MIN_MS, plus some slack, and never longer than a lease. Sized on the longest gap, not on the
 * current (jittered) one, so that the claimant (which looks at least every 2 × `pollMaxMs`,
 * waiting.ts `claimantGapMs`) renews it every other `pollMaxMs` or less often, not every other
 * look. A claimant that stopped looking blocks a free lock for this long at most after each
 * watcher first saw its last claim write (sooner by the wall clock shortcut, {@link claimLapsed}):
 * 3.1 s by default, up to 12.1 s while recorded holds are long, never more than a lease.
 */
export function claimLeaseMs(longestGapMs: number, leaseMs: number): number {
  const floor = Math.min(CLAIM_MIN_MS, leaseMs);
  const ms = Math.ceil(Math.max(floor, CLAIM_GAPS * Math.max(0, longestGapMs)) + claimSlackMs(leaseMs));
  return Math.min(ms, leaseMs);
}

/**
 * Whether a waiter that sees the lock held should (re)claim the next turn now, given the gap to its
 * next look: when nobody's claim counts, when its wait began before the claimant's, or when its own
 * claim (last sent at `myClaim.sentAt` on our monotonic clock, for `myClaim.ms`) would lapse before
 * its next look has come back.
 */
export function shouldClaim(
  s: Standing,
  myClaim: { readonly sentAt: number; readonly ms: number } | undefined,
  monotonicNow: number,
  nextGapMs: number,
  leaseMs: number,
): boolean {
  if (s === "behind") return false;
  if (s !== "mine" || myClaim === undefined) return true;
  return myClaim.sentAt + myClaim.ms < monotonicNow + nextGapMs + claimSlackMs(leaseMs);
}
