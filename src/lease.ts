/**
 * Lease and staleness decisions, as pure functions of observed state and clock readings.
 * The reasoning behind each rule is in docs/protocol.md ("When is a lock stale?").
 */

/**
 * Bound on how much faster or slower any participant's monotonic clock may run than real time
 * (1000 ppm; crystal oscillators and NTP-disciplined clocks are within 100 ppm).
 */
export const CLOCK_RATE_DRIFT = 1e-3;

/**
 * How much of the lease a holder gives up so that rate drift between its clock and a waiter's can
 * never make both believe in the lock at once: a waiter measures `leaseMs` on its clock, the holder
 * measures `leaseMs - margin` on its own, and `margin > 2·drift·leaseMs` keeps the holder's end first.
 */
export function driftMarginMs(leaseMs: number, drift = CLOCK_RATE_DRIFT): number {
  return Math.ceil(2 * drift * leaseMs) + 1;
}

/**
 * The monotonic instant until which a holder may act as the owner, given the send time of the
 * first attempt of its last confirmed write. A write's effect can be observed no earlier than it
 * was sent, so every waiter's observed-lease clock starts after `sentAt`.
 */
export function holderValidUntil(sentAt: number, leaseMs: number, drift = CLOCK_RATE_DRIFT): number {
  return sentAt + leaseMs - driftMarginMs(leaseMs, drift);
}

/** The parts of a held lock's record that staleness depends on. */
export interface HeldState {
  readonly owner: string;
  readonly version: number;
  /** The lease the holder promised; waiters always use the holder's value, never their own. */
  readonly leaseMs: number;
  /** The holder's wall clock at the send of its last write, if recorded. */
  readonly heartbeatAt: number | undefined;
}

/** A held lock as a waiter has seen it, with the monotonic arrival time of the first sighting. */
export interface Observation extends HeldState {
  readonly observedAt: number;
}

/**
 * Records a sighting of a held lock. The same (owner, version) seen again keeps the earlier
 * `observedAt`: the write that produced it happened before the first response showing it arrived.
 * A different (owner, version) starts a new observation.
 */
export function observe(previous: Observation | undefined, seen: HeldState, arrivedAt: number): Observation {
  if (previous !== undefined && previous.owner === seen.owner && previous.version === seen.version) {
    return { ...seen, observedAt: Math.min(previous.observedAt, arrivedAt) };
  }
  return { ...seen, observedAt: arrivedAt };
}

export type StaleRule = "observed-lease" | "wall-clock";

export type Verdict =
  | { readonly stale: true; readonly rule: StaleRule }
  | {
      readonly stale: false /** ms until one of the rules would call it stale (may be Infinity) */;
      readonly staleInMs: number;
    };

/**
 * Whether a waiter may take over a held lock.
 *
 * 1. Observed lease (skew-immune): `leaseMs` has passed on the waiter's monotonic clock since it
 *    first saw this (owner, version).
 * 2. Wall-clock shortcut (bounded skew): the waiter's wall clock is more than
 *    `leaseMs + maxClockSkewMs` past the holder's recorded `heartbeatAt`. `Infinity` turns it off.
 */
export function judge(
  observation: Observation,
  monotonicNow: number,
  wallNow: number,
  maxClockSkewMs: number,
): Verdict {
  const observedStaleIn = observation.observedAt + observation.leaseMs - monotonicNow;
  if (observedStaleIn <= 0) return { stale: true, rule: "observed-lease" };
  let wallStaleIn = Number.POSITIVE_INFINITY;
  if (observation.heartbeatAt !== undefined && Number.isFinite(maxClockSkewMs)) {
    // Strictly greater than the bound: the +1 makes "stale in" the first instant that qualifies.
    wallStaleIn = observation.heartbeatAt + observation.leaseMs + maxClockSkewMs + 1 - wallNow;
    if (wallStaleIn <= 0) return { stale: true, rule: "wall-clock" };
  }
  return { stale: false, staleInMs: Math.min(observedStaleIn, wallStaleIn) };
}
