/** Capped exponential backoff with jitter, as pure functions of the attempt number and a random draw. */

export interface BackoffSettings {
  /** The first delay's ceiling, in ms. */
  readonly minMs: number;
  /** No delay is longer than this, in ms. */
  readonly maxMs: number;
}

/**
 * The delay before retry number `attempt` (0-based): a ceiling of `minMs · 2^attempt` capped at
 * `maxMs`, drawn uniformly from its upper half ("equal jitter") so that contending waiters spread
 * out but none polls much faster than the schedule intends.
 */
export function backoffDelay(attempt: number, settings: BackoffSettings, random: number): number {
  const ceiling = Math.min(settings.maxMs, settings.minMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + (random * ceiling) / 2;
}

/**
 * How long a waiter sleeps before its next look: the backoff delay, but never past the moment the
 * observed lease would mature (so a dead holder is taken over promptly) nor past the deadline.
 */
export function waitBeforeNextPoll(backoffMs: number, staleInMs: number, remainingWaitMs: number): number {
  return Math.max(0, Math.min(backoffMs, staleInMs, remainingWaitMs));
}
