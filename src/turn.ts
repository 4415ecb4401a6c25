/**
 * Turns: how waiters of different processes share a contended lock fairly (docs/protocol.md,
 * "Turns"). The lock item holds at most one claim on the next turn (`next`, `nextSince`,
 * `nextUntil`): the waiter that has waited longest among those that claimed, until a wall-clock
 * instant by which it promises to look again. While a claim counts, only its waiter (or an older
 * one) may take the lock; a releasing holder that comes straight back is younger than every
 * claimant and waits its turn. A claim that is not renewed lapses, so a dead waiter blocks nobody
 * for longer than its claim. All of this decides who goes first, never whether two may hold: a
 * wrong wall clock can only make a turn last longer or shorter.
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

/**
 * - `open`: no claim counts; anyone may take the lock when it is free.
 * - `mine`: the claim is ours.
 * - `ahead`: someone else's claim counts, but we have waited longer: we may take the lock or the claim.
 * - `behind`: someone who has waited longer has the claim: the lock is theirs to take next.
 */
export type Standing = "open" | "mine" | "ahead" | "behind";

/** Where `me` stands, by the item as read and the wall clock now. Mirrors the acquire condition. */
export function standing(record: LockRecord | undefined, me: Waiter, wallNow: number): Standing {
  if (record?.next === undefined) return "open";
  if (record.nextUntil === undefined || record.nextUntil < wallNow) return "open";
  if (record.next === me.token) return "mine";
  if (record.nextSince !== undefined && record.nextSince > me.since) return "ahead";
  return "behind";
}

/** Extra life a claim gets beyond the claimant's next look: a request's round trip and a late timer. */
export const CLAIM_SLACK_MS = 100;

/**
 * How long a claim made now should count: three of the claimant's gaps and some slack, so that it
 * is renewed about every other look, and a claimant that stopped looking blocks a free lock for a
 * few gaps at most.
 */
export function claimLeaseMs(nextGapMs: number): number {
  return 3 * Math.max(0, nextGapMs) + CLAIM_SLACK_MS;
}

/**
 * Whether a waiter that sees the lock held should (re)claim the next turn now, given the gap to its
 * next look: when nobody's claim counts, when it has waited longer than the claimant, or when its
 * own claim would lapse before its next look has come back.
 */
export function shouldClaim(
  record: LockRecord | undefined,
  me: Waiter,
  wallNow: number,
  nextGapMs: number,
): boolean {
  if (record?.owner === undefined) return false; // free: take it (or wait for the claimant) instead
  const s = standing(record, me, wallNow);
  if (s === "open" || s === "ahead") return true;
  if (s === "behind") return false;
  return (record.nextUntil ?? 0) < wallNow + nextGapMs + CLAIM_SLACK_MS;
}
