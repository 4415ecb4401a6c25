/**
 * Same-process hand-off (issue 10 item 2, docs/protocol.md "One poller per id in a process"): when a
 * mutex lock is released while another acquire of the same id waits in this client's local queue,
 * the releasing UpdateItem installs that waiter as the new owner (fresh token, version 1, fence + 1)
 * instead of leaving the lock free. One request instead of two, and no gap in which the lock is free.
 *
 * This module is the meeting point of the two sides, with no request logic of its own:
 *
 * - a queued follower registers a {@link HandOffCandidate} while it waits in the local queue;
 * - the releasing Lock asks {@link HandOffs.pick} for the first candidate still able to take the
 *   lock (not gone, not aborted, deadline not passed, client open) just before it sends its release,
 *   and settles the returned {@link Successor} with what became of the write.
 *
 * What the waiter may do with an outcome:
 * - `handed`: the release's own reply (ALL_NEW) shows the waiter's token as owner: the waiter adopts
 *   it, its lease counted from the SEND time of the release's first attempt (the instant its
 *   heartbeatAt was stamped, read first on the monotonic clock by the same process);
 * - `unsure`: the write was sent but its reply did not confirm the hand-off (lost reply, a retry that
 *   failed, a fallback to a plain release): the token is an unanswered write of the waiter's own,
 *   adopted if a look shows it, cleaned up (a release conditioned on it) if the waiter gives up.
 * An outcome that reaches a candidate that has left (aborted, closed, timed out) is cleaned up here.
 */
import type { LockRecord } from "./item.js";

/** What became of a release that carried a hand-off, as the waiter needs it. */
export type HandOffOutcome =
  | {
      readonly kind: "handed";
      readonly token: string;
      readonly record: LockRecord;
      /** Monotonic send time of the release's first attempt: the new lease counts from it. */
      readonly sentAt: number;
    }
  | { readonly kind: "unsure"; readonly token: string; readonly sentAt: number };

/** The waiter a releasing lock passes its ownership to, as that lock sees it. */
export interface Successor {
  /** A fresh owner token for this one offer. */
  readonly token: string;
  /** The waiter's holder name and lease (those of its client). */
  readonly holder: string;
  readonly leaseMs: number;
  /** Wall clock at which the waiter's acquire began: its place among other processes' waiters. */
  readonly since: number;
  /** Called exactly once: undefined if nothing carrying the offer was sent. */
  settle(outcome: HandOffOutcome | undefined): void;
}

/** What a candidate leaves the queue with. */
export interface Inherited {
  readonly handed?: Extract<HandOffOutcome, { kind: "handed" }> | undefined;
  readonly unsure: readonly Extract<HandOffOutcome, { kind: "unsure" }>[];
}

/** A queued follower, open to being handed the lock while it waits. */
export class HandOffCandidate {
  readonly since: number;
  readonly #eligible: () => boolean;
  readonly #leave: (c: HandOffCandidate) => void;
  #gone = false;
  #pending = 0;
  #handed: Inherited["handed"];
  readonly #unsure: Extract<HandOffOutcome, { kind: "unsure" }>[] = [];
  #wake: () => void = () => undefined;
  /** Resolves when an offer to this candidate settles (then replaced by a new one). */
  #news: Promise<void>;
  #onHanded: () => void = () => undefined;
  /** Resolves once a lock has been handed over (never, otherwise). */
  readonly handed: Promise<void>;

  constructor(since: number, eligible: () => boolean, leave: (c: HandOffCandidate) => void) {
    this.since = since;
    this.#eligible = eligible;
    this.#leave = leave;
    this.#news = this.#renew();
    this.handed = new Promise<void>((resolve) => {
      this.#onHanded = resolve;
    });
  }

  #renew(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
    });
  }

  /** Whether a release carrying an offer to us is in flight. */
  get pending(): boolean {
    return this.#pending > 0;
  }

  /** Resolves when no offer to us is in flight any more (at once if none is). */
  async idle(): Promise<void> {
    while (this.#pending > 0) await this.#news;
  }

  /** @internal Whether a releasing lock may pick us now. */
  available(): boolean {
    return !this.#gone && this.#pending === 0 && this.#handed === undefined && this.#eligible();
  }

  /** @internal An offer to us is being sent. */
  offered(): void {
    this.#pending++;
  }

  /** @internal The release that carried an offer to us has settled. False: we had left (clean it up). */
  settled(outcome: HandOffOutcome | undefined): boolean {
    this.#pending--;
    const news = this.#wake;
    this.#news = this.#renew();
    news();
    if (outcome === undefined) return true;
    if (this.#gone) return false;
    if (outcome.kind === "handed") {
      this.#handed = outcome;
      this.#onHanded();
    } else this.#unsure.push(outcome);
    return true;
  }

  /**
   * Leaves the queue (for good): no offer picks us any more. Returns what was handed to us, and the
   * tokens of offers whose outcome we never learned; offers still in flight are cleaned up when they
   * settle.
   */
  leave(): Inherited {
    if (!this.#gone) {
      this.#gone = true;
      this.#leave(this);
    }
    const inherited = { handed: this.#handed, unsure: [...this.#unsure] };
    this.#handed = undefined;
    this.#unsure.length = 0;
    return inherited;
  }
}

/** Every candidate of one LockClient, by lock id, first come first served. */
export class HandOffs {
  readonly #waiting = new Map<string, HandOffCandidate[]>();
  readonly #cleanUp: (id: string, token: string) => void;

  /** `cleanUp` frees a lock a hand-off may have installed for a candidate that has left. */
  constructor(cleanUp: (id: string, token: string) => void) {
    this.#cleanUp = cleanUp;
  }

  /** Registers a queued follower of `id`; it must `leave()` when it stops waiting in the queue. */
  enter(id: string, since: number, eligible: () => boolean): HandOffCandidate {
    const candidate = new HandOffCandidate(since, eligible, (c) => {
      const list = this.#waiting.get(id);
      if (list === undefined) return;
      const i = list.indexOf(c);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.#waiting.delete(id);
    });
    const list = this.#waiting.get(id);
    if (list === undefined) this.#waiting.set(id, [candidate]);
    else list.push(candidate);
    return candidate;
  }

  /** The first candidate of `id` that can take the lock now, as a successor for one release. */
  pick(
    id: string,
    offer: { readonly token: () => string; readonly holder: string; readonly leaseMs: number },
  ): Successor | undefined {
    const candidate = this.#waiting.get(id)?.find((c) => c.available());
    if (candidate === undefined) return undefined;
    candidate.offered();
    let settled = false;
    return {
      token: offer.token(),
      holder: offer.holder,
      leaseMs: offer.leaseMs,
      since: candidate.since,
      settle: (outcome) => {
        if (settled) return;
        settled = true;
        // A hand-off nobody will adopt: free the lock at once rather than leave it for a lease.
        if (!candidate.settled(outcome) && outcome !== undefined) this.#cleanUp(id, outcome.token);
      },
    };
  }
}
