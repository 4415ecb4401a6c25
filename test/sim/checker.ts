/**
 * The invariants, checked while the simulation runs. The checker sees two things: every write the
 * store applies (in apply order, at its instant) and what the workload observes through the public
 * API (locks handed out, writes acknowledged or rejected, signals aborting). The first violation
 * stops the run with a report that says which promise broke, when, and who was involved.
 *
 * Safety (always):
 *  - mutual exclusion: at no instant do two processes hold un-aborted locks on one id that both
 *    consider valid (`lock.held`, read on the holder's own clock at that instant);
 *  - the holder learns first: when a takeover (or any acquisition) is applied at the store, every
 *    earlier holder has been told (signal aborted) or its validity has ended — unless it released,
 *    or an administrator force-released it while it held the lock;
 *  - handed out valid: a lock is valid (`lock.held`) when acquire() resolves to it, even when the
 *    acquisition's answer came back after its lease;
 *  - fences strictly increase over the acquisitions handed out;
 *  - data: stored data only moves forward (a write from an older acquisition, or an older write of
 *    the same one, never overwrites a newer one), an acknowledged write was applied, and a write
 *    rejected as definitely not written never appears;
 *  - loss reports are true: "taken" / "released" means someone else really removed the owner;
 *  - writes stop at removal: no write of an acquisition (heartbeat, update, release, guarded write)
 *    applies once its owner was removed — it lands only on the very (owner, fence) it was sent for;
 *  - data handed out: `lock.data` at acquisition is the data stored at the instant it was applied;
 *  - the signal aborts no later than `held` turns false (allowing only the event loop's own lag);
 *  - no unexpected error reaches the caller, and no promise rejection goes unhandled.
 * Liveness (runs without network faults, pauses or clock steps):
 *  - a free lock with a waiter is taken within poll interval + round trips;
 *  - a crashed holder's lock is taken within lease + poll interval + round trips;
 *  - with the wall-clock shortcut, a newcomer takes a long-dead holder's lock at once;
 *  - every worker finishes;
 *  - a live, unstalled holder never loses its lock (only a forceRelease may take it);
 *  - a force-released holder learns it within one heartbeat interval and a round trip.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { decodeData } from "../../src/data.js";
import { LockError, LockHeldError, LockLostError } from "../../src/errors.js";
import { FIELD } from "../../src/item.js";
import { CLOCK_RATE_DRIFT } from "../../src/lease.js";
import { inspectLocks, type Lock } from "../../src/lock.js";
import { FORCED_RELEASE } from "../../src/requests.js";
import { SimProcess } from "./process.js";
import type { Scheduler } from "./scheduler.js";
import type { AppliedWrite } from "./store.js";

export type InvariantName =
  | "mutual exclusion"
  | "holder learns first"
  | "handed out valid"
  | "fences increase"
  | "data moves forward"
  | "guarded writes move forward"
  | "acknowledged write applied"
  | "rejected write absent"
  | "truthful loss report"
  | "free lock taken"
  | "crashed holder's lock taken"
  | "wall-clock shortcut"
  | "workers finish"
  | "waits are bounded"
  | "expected errors only"
  | "writes stop at removal"
  | "data handed out"
  | "signal aborts by expiry"
  | "calm holder keeps its lock"
  | "force-released holder learns"
  | "turn honoured"
  | "claims end with their wait"
  // Locks with several holders (test/sim/multi.ts).
  | "permits bound"
  | "exclusive alone"
  | "intent respected"
  | "writer waits bounded"
  | "administrator removes what it read";

export interface Violation {
  readonly invariant: InvariantName;
  readonly at: number;
  readonly detail: string;
}

/** A lock handed out to a workload, as the checker follows it. */
interface Holding {
  readonly process: SimProcess;
  readonly life: number;
  readonly lock: Lock;
  readonly id: string;
  readonly owner: string;
  readonly fence: number;
  /** Real time at which the store applied the acquisition the caller got (a token may be installed again later). */
  readonly acquiredAt: number;
  /** Real time at which the caller got the lock. */
  readonly adoptedAt: number;
  /** The caller has started to release it (release, the end of withLock, close): held may turn false quietly. */
  releasing?: boolean;
  /** Real time at which `held` was first seen false without the signal having aborted. */
  invalidSince?: number;
}

/** One acquisition's token as the store saw it. */
interface OwnerTrack {
  readonly token: string;
  readonly id: string;
  acquiredAt: number;
  lastWriteAt: number;
  heartbeatAt: number | undefined;
  /** How the owner was removed, each time it was (a late duplicate can reinstate a token). */
  readonly removals: {
    readonly at: number;
    readonly by: "self" | "takeover" | "force";
    readonly legitimate: boolean;
  }[];
}

/** A data write issued through the API, identified by the tag it carries. */
interface TaggedWrite {
  readonly tag: string;
  readonly id: string;
  /** (fence, sequence within the acquisition): the order in which writes are meant to land. */
  readonly fence: number;
  readonly seq: number;
  readonly what: string;
}

interface Waiter {
  readonly process: SimProcess;
  readonly life: number;
  readonly id: string;
  readonly startedAt: number;
  readonly deadline: number;
  /** The process's wall clock when the call began: the queue order turns use (src/turn.ts). */
  readonly since: number;
  /** Acquisitions by other processes' calls that began later (by wall clock) while this one waited. */
  overtaken: number;
}

export interface LivenessBounds {
  /** A free lock with a waiter must be taken within this, ms. */
  readonly freeMs: number;
  /** A crashed holder's lock, after its last write, within this, ms. */
  readonly crashedMs: number;
  /** A newcomer, when the shortcut already applies, within this, ms; undefined when the shortcut is off. */
  readonly shortcutMs: number | undefined;
  /** The wall-clock bound a newcomer checks: lease + maxClockSkewMs. */
  readonly shortcutAgeMs: number;
  /** A force-released holder must be told within this, ms. */
  readonly forceLearnMs: number;
}

export interface CheckerOptions {
  readonly scheduler: Scheduler;
  readonly table: string;
  readonly partitionKey: string;
  /** Items whose id starts with this are the resources locks protect, not locks. */
  readonly resourcePrefix: string;
  readonly processes: readonly SimProcess[];
  /** Liveness bounds, when the run has no faults that could excuse a delay. */
  readonly liveness: LivenessBounds | undefined;
  /**
   * How long past its own waitMs an acquire may take to settle, when every request is bounded
   * (answered or timed out) and no process stalls; undefined otherwise.
   */
  readonly waitGraceMs: number | undefined;
  /** No faults but crashes: a live holder never loses its lock. */
  readonly calm?: boolean;
  /** How late a timer may fire (event-loop lag), ms: the slack the signal has after `held` turns false. */
  readonly signalSlackMs: number;
  /** A run of locks with several holders: lock items are test/sim/multi.ts's to check. */
  readonly multiHolders?: boolean;
}

/** A stored or handed-out data value in one form: keys sorted. */
function canonicalData(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalData).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalData(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "undefined";
}

const tagOf = (item: Record<string, AttributeValue> | undefined): string | undefined =>
  item?.[FIELD.data]?.M?.tag?.S;
const num = (v: AttributeValue | undefined): number | undefined =>
  v?.N === undefined ? undefined : Number(v.N);

/** Whether a rejection admits that the write may have happened. */
export function admitsUncertainty(err: unknown): boolean {
  if (!(err instanceof LockLostError)) return true;
  return err.writeUncertain;
}

export class Checker {
  readonly #o: CheckerOptions;
  /** Holdings that may still be valid (a lock stops being valid for good once `held` turns false). */
  #active: Holding[] = [];
  readonly #owners = new Map<string, OwnerTrack>();
  readonly #currentOwner = new Map<string, string | undefined>();
  /** Which token each acquisition installed, by id and fence (a fence is unique per applied acquisition). */
  readonly #ownerByFence = new Map<string, string>();
  readonly #appliedAt = new Map<string, number>();
  readonly #freeSince = new Map<string, number>();
  readonly #lastValidFence = new Map<string, number>();
  readonly #writes = new Map<string, TaggedWrite>();
  readonly #applied = new Set<string>();
  readonly #forbidden = new Map<string, string>();
  readonly #newest = new Map<string, TaggedWrite>();
  readonly #resourceWrites = new Map<string, TaggedWrite & { readonly guarded: boolean }>();
  readonly #newestResource = new Map<string, TaggedWrite>();
  readonly #forceCalls: { start: number; end: number | undefined }[] = [];
  readonly #waiters = new Set<Waiter>();
  /** Holdings handed out whose signal has not aborted and whose release has not begun. */
  readonly #watch = new Set<Holding>();
  readonly #currentFence = new Map<string, number>();
  /** The data stored right after each acquisition applied, by id and fence. */
  readonly #dataAtAcquisition = new Map<string, string>();
  /** Waiters (the token of an acquire call's first write) whose call has acquired, with the fence it made. */
  readonly #servedWaiters = new Map<string, number>();
  readonly stats = {
    acquisitions: 0,
    takeovers: 0,
    forcedReleases: 0,
    losses: 0,
    /** extend() calls of holders without heartbeats: renewed, and refused (lost, released, refused). */
    extended: 0,
    extendRefused: 0,
    acked: 0,
    rejected: 0,
    /** Writes to a protected resource: guarded by the lock, and unguarded ones that landed after a newer holder's. */
    guardedWrites: 0,
    staleUnguardedWrites: 0,
    /** Liveness deadlines set while a waiter was waiting: free lock, dead holder, shortcut. */
    freeDeadlines: 0,
    deadHolderDeadlines: 0,
    shortcutDeadlines: 0,
    /** Releases that handed the lock to a waiter of the same process (src/hand-off.ts). */
    handOffs: 0,
    /** Acquisitions that passed a waiter of another process whose wait began earlier, and the most one waiter saw. */
    overtakes: 0,
    maxOvertaken: 0,
  };
  violation: Violation | undefined;
  /** A line for each lock event, when tracing. */
  log: ((line: string) => void) | undefined;

  constructor(options: CheckerOptions) {
    this.#o = options;
  }

  get #now(): number {
    return this.#o.scheduler.now;
  }

  /** Records the first violation; the run loop stops after the current event. */
  fail(invariant: InvariantName, detail: string, at = this.#now): void {
    this.violation ??= { invariant, at, detail };
  }

  /** Reads a lock's own view (its clock at the world's current instant), without stalling anyone. */
  #peek<T>(read: () => T): T {
    SimProcess.peeking = true;
    try {
      // Looking must not change what is watched: the lock's getters would otherwise declare an
      // expiry (and send a release) from inside the checker, at an instant the process never ran.
      return inspectLocks(read);
    } finally {
      SimProcess.peeking = false;
    }
  }

  /** Whether the holding's signal has aborted, read without side effects. */
  #aborted(h: Holding): boolean {
    return this.#peek(() => h.lock.signal.aborted);
  }

  #alive(h: Holding): boolean {
    return h.process.alive && h.process.incarnation === h.life;
  }

  /** Whether the holding thinks it holds the lock at this instant. */
  #valid(h: Holding): boolean {
    return this.#alive(h) && this.#peek(() => h.lock.held);
  }

  #validUntil(h: Holding): number {
    return this.#now + this.#peek(() => h.lock.remainingMs) / h.process.clock.rate;
  }

  /** Released it itself, or lost it to an administrator while holding it: no longer bound by exclusion. */
  /** How this holding's acquisition was ended at the store, if it was. */
  #removals(h: Holding): OwnerTrack["removals"] {
    return this.#owners.get(h.owner)?.removals.filter((r) => r.at >= h.acquiredAt) ?? [];
  }

  #excused(h: Holding): boolean {
    return this.#removals(h).some((r) => r.by === "self" || (r.by === "force" && r.legitimate));
  }

  #describe(h: Holding): string {
    return `${h.process.name} (owner ${h.owner}, fence ${h.fence}, got it at t=${h.adoptedAt.toFixed(3)}, valid until t=${this.#validUntil(h).toFixed(3)})`;
  }

  // ---- the store's side ----

  #idOf(w: AppliedWrite): string | undefined {
    const item = w.after ?? w.before;
    return item?.[this.#o.partitionKey]?.S;
  }

  onWrite(w: AppliedWrite): void {
    if (w.table !== this.#o.table) return;
    const id = this.#idOf(w);
    if (id === undefined) return;
    if (id.startsWith(this.#o.resourcePrefix)) {
      this.#resourceWritten(id, w.after?.writer?.M?.tag?.S);
      return;
    }
    // Locks with several holders (and a reader–writer lock's exclusive side): test/sim/multi.ts.
    if (this.#o.multiHolders === true) return;
    const before = w.before?.[FIELD.owner]?.S;
    const after = w.after?.[FIELD.owner]?.S;
    const now = this.#now;
    this.#holderWrite(id, w);
    this.#claimWhileWaiting(id, w);
    if (after !== undefined && after !== before) this.#turnHonoured(id, w);
    if (after !== undefined && after !== before) this.#overtaking(id, after, w);
    if (after !== undefined && after !== before) {
      this.#dataAtAcquisition.set(
        `${id}#${num(w.after?.[FIELD.fence]) ?? 0}`,
        canonicalData(decodeData(w.after?.[FIELD.data])),
      );
      if (before !== undefined && isHandOff(w)) {
        // A release that hands the lock on (src/hand-off.ts): its owner's own removal, and an
        // acquisition by the waiter, checked like any other (the old holder must not still believe
        // it holds the lock unless it is releasing it).
        this.stats.handOffs++;
        this.#owners.get(before)?.removals.push({ at: now, by: "self", legitimate: true });
        this.#acquired(id, after, undefined, w);
      } else this.#acquired(id, after, before, w);
    }
    if (after === undefined && before !== undefined) {
      const by = w.after?.[FIELD.releasedBy]?.S;
      const track = this.#owners.get(before);
      if (by === FORCED_RELEASE) {
        this.stats.forcedReleases++;
        // Legitimate if the owner held the lock at some point while a forceRelease call was running.
        const acquiredAt = track?.acquiredAt ?? now;
        const legitimate = this.#forceCalls.some((c) => c.end === undefined || c.end >= acquiredAt);
        track?.removals.push({ at: now, by: "force", legitimate });
        for (const h of this.#watch) if (h.owner === before) this.#expectToLearn(h, now);
      } else if (by === before) {
        track?.removals.push({ at: now, by: "self", legitimate: true });
      } else {
        this.fail(
          "truthful loss report",
          `owner ${before} of "${id}" was removed by an unexpected write (releasedBy ${by})`,
        );
      }
    }
    if (after !== undefined) {
      const key = `${id}#${num(w.after?.[FIELD.fence]) ?? 0}`;
      if (!this.#ownerByFence.has(key)) this.#appliedAt.set(key, now);
      this.#ownerByFence.set(key, after);
      const track = this.#owners.get(after);
      if (track !== undefined) {
        track.lastWriteAt = now;
        track.heartbeatAt = num(w.after?.[FIELD.heartbeatAt]);
      }
    }
    this.#currentOwner.set(id, after);
    this.#currentFence.set(id, num(w.after?.[FIELD.fence]) ?? 0);
    if (after === undefined) {
      if (before !== undefined || !this.#freeSince.has(id)) {
        this.#freeSince.set(id, now);
        this.#expectFreeTaken(id, now);
      }
    } else {
      this.#freeSince.delete(id);
      if (this.#deadOwner(after)) this.#expectCrashedTaken(now);
    }
    const tag = tagOf(w.after);
    if (tag !== undefined && tag !== tagOf(w.before)) this.#dataWritten(id, tag);
  }

  /**
   * A heartbeat, update or release (one that names its acquisition's fence) must land on that very
   * acquisition: the item still carries its owner token and its fence. Anything else is a write
   * applied after its owner was removed — to a later holder's lock, or to a ghost of its own.
   */
  #holderWrite(id: string, w: AppliedWrite): void {
    if (w.operation !== "UpdateItem") return;
    const input = w.input as {
      UpdateExpression?: string;
      ExpressionAttributeValues?: Record<string, AttributeValue>;
    };
    const values = input.ExpressionAttributeValues ?? {};
    const token = values[":owner"]?.S;
    const fence = num(values[":fence"]);
    if (token === undefined || token === FORCED_RELEASE || fence === undefined) return;
    if (input.UpdateExpression?.includes(`ADD #${FIELD.fence}`) && !isHandOff(w)) return;
    const owner = w.before?.[FIELD.owner]?.S;
    const stored = num(w.before?.[FIELD.fence]);
    if (owner !== token || stored !== fence) {
      this.fail(
        "writes stop at removal",
        `a write of ${token} (fence ${fence}) was applied to "${id}" while it was ${owner === undefined ? "free" : `owned by ${owner}`} at fence ${stored}`,
      );
    }
  }

  /**
   * An acquisition takes the lock only when the next turn is its caller's (src/turn.ts): nobody
   * else's claim counted at the acquirer's wall clock, or the acquirer's wait began before the
   * claimant's. Fairness, not safety: it holds the acquire's condition to what docs/protocol.md says.
   */
  #turnHonoured(id: string, w: AppliedWrite): void {
    if (w.operation !== "UpdateItem") return;
    const values = (w.input as { ExpressionAttributeValues?: Record<string, AttributeValue> })
      .ExpressionAttributeValues;
    const claimant = w.before?.[FIELD.next]?.S;
    if (claimant === undefined) return;
    const waiter = values?.[":waiter"]?.S;
    const since = num(values?.[":since"]) ?? Number.POSITIVE_INFINITY;
    const claimedSince = num(w.before?.[FIELD.nextSince]) ?? Number.NEGATIVE_INFINITY;
    if (waiter === claimant || claimedSince > since) return;
    // A claim the acquirer watched go unrenewed for its whole nextMs, exactly as it was.
    const lapsed =
      values?.[":lapsed"]?.S === claimant && num(values?.[":lapsedAt"]) === num(w.before?.[FIELD.nextAt]);
    if (lapsed) return;
    this.fail(
      "turn honoured",
      `${values?.[":owner"]?.S} took "${id}" while ${claimant} (waiting since ${claimedSince}) had the next turn`,
    );
  }

  /**
   * Counts, for every waiter of another process still waiting on `id`, an acquisition by a call that
   * began after it (by wall clocks, the order turns promise: docs/protocol.md "Turns"). A measure,
   * not an invariant: before a waiter's claim is in place (its first look; a look of a waiter behind
   * the claimant that comes a stride late) later callers may pass it, a chain of same-process
   * hand-offs among them; once it is in place nobody later passes it ("turn honoured").
   */
  #overtaking(id: string, owner: string, w: AppliedWrite): void {
    const values = (w.input as { ExpressionAttributeValues?: Record<string, AttributeValue> })
      .ExpressionAttributeValues;
    const since = num(values?.[":since"]);
    if (since === undefined) return;
    const [name] = owner.split(".");
    const now = this.#now;
    for (const waiter of this.#waiters) {
      if (waiter.id !== id || waiter.process.name === name || !waiter.process.alive) continue;
      if (waiter.process.incarnation !== waiter.life || waiter.deadline < now || since <= waiter.since)
        continue;
      waiter.overtaken++;
      this.stats.overtakes++;
      this.stats.maxOvertaken = Math.max(this.stats.maxOvertaken, waiter.overtaken);
    }
  }

  /**
   * A claim on the next turn lands only while its waiter still waits: never on the ownership its own
   * acquire call made (src/turn.ts; the claim is conditioned on the fence it was judged on, which
   * that acquisition moved on). Such a claim would hold up the lock, once free, for nobody.
   * Acquisitions carry their call's waiter token in the turn condition (`:waiter`). (A call whose
   * acquisition went unheard and was taken over may rightly claim again, on a later fence.)
   */
  #claimWhileWaiting(id: string, w: AppliedWrite): void {
    if (w.operation !== "UpdateItem") return;
    const input = w.input as {
      UpdateExpression?: string;
      ExpressionAttributeValues?: Record<string, AttributeValue>;
    };
    const waiter = input.ExpressionAttributeValues?.[":waiter"]?.S;
    if (waiter === undefined) return;
    const owner = w.after?.[FIELD.owner]?.S;
    const fence = num(w.after?.[FIELD.fence]);
    if (owner !== undefined && owner !== w.before?.[FIELD.owner]?.S && fence !== undefined) {
      this.#servedWaiters.set(waiter, fence);
      return;
    }
    const served = this.#servedWaiters.get(waiter);
    if (input.UpdateExpression?.startsWith("SET #next = :waiter") !== true || served === undefined) return;
    if (num(w.before?.[FIELD.fence]) === served) {
      this.fail(
        "claims end with their wait",
        `a claim of ${waiter} landed on "${id}" at fence ${served}, which its own acquire had made`,
      );
    }
  }

  /** A force-released holding must be told within the bound (calm runs only: faults excuse delays). */
  #expectToLearn(h: Holding, removedAt: number): void {
    const within = this.#o.liveness?.forceLearnMs;
    if (within === undefined) return;
    this.#o.scheduler.at(Math.max(this.#now, removedAt + within), () => {
      if (!this.#alive(h) || this.#aborted(h)) return;
      this.fail(
        "force-released holder learns",
        `${this.#describe(h)} was force-released at t=${removedAt.toFixed(3)} and has not been told ${within.toFixed(1)} ms later`,
      );
    });
  }

  /** The caller has begun to release `lock`: from now on `held` may turn false without a loss. */
  releasing(lock: Lock): void {
    for (const h of this.#watch) if (h.lock === lock) h.releasing = true;
  }

  /** A client of `process` is closing, releasing whatever it holds. */
  closing(process: SimProcess): void {
    for (const h of this.#watch) if (h.process === process) h.releasing = true;
  }

  #acquired(id: string, owner: string, previous: string | undefined, w: AppliedWrite): void {
    const now = this.#now;
    this.stats.acquisitions++;
    if (previous !== undefined) {
      this.stats.takeovers++;
      this.#owners.get(previous)?.removals.push({ at: now, by: "takeover", legitimate: false });
    }
    // Every other holding of this id must have ended (or been excused) before this write applied.
    for (const h of this.#active) {
      if (h.id !== id || h.owner === owner || this.#excused(h) || !this.#valid(h)) continue;
      this.fail(
        "holder learns first",
        `"${id}" was acquired by ${owner}${previous === undefined ? "" : ` (taking over from ${previous})`} while ${this.#describe(h)} still considered itself the holder${this.#aborted(h) ? "" : " and had not been told"}`,
      );
    }
    const known = this.#owners.get(owner);
    if (known !== undefined) known.acquiredAt = now;
    else {
      this.#owners.set(owner, {
        token: owner,
        id,
        acquiredAt: now,
        lastWriteAt: now,
        heartbeatAt: num(w.after?.[FIELD.heartbeatAt]),
        removals: [],
      });
    }
  }

  #dataWritten(id: string, tag: string): void {
    const write = this.#writes.get(tag);
    if (write === undefined) return;
    const refused = this.#forbidden.get(tag);
    if (refused !== undefined) {
      this.fail(
        "rejected write absent",
        `${write.what} was rejected as not written (${refused}) but has now been applied to "${id}"`,
      );
    }
    const newest = this.#newest.get(id);
    if (
      newest !== undefined &&
      (write.fence < newest.fence || (write.fence === newest.fence && write.seq < newest.seq))
    ) {
      this.fail(
        "data moves forward",
        `${write.what} (fence ${write.fence}, write ${write.seq}) overwrote the newer ${newest.what} (fence ${newest.fence}, write ${newest.seq}) in "${id}"`,
      );
    }
    this.#newest.set(id, write);
    this.#applied.add(tag);
  }

  // ---- the workload's side ----

  /** A lock was handed to the caller. */
  adopted(process: SimProcess, lock: Lock): void {
    const owner =
      this.#ownerByFence.get(`${lock.id}#${lock.fence}`) ?? `unknown owner of fence ${lock.fence}`;
    const h: Holding = {
      process,
      life: process.incarnation,
      lock,
      id: lock.id,
      owner,
      fence: lock.fence,
      acquiredAt: this.#appliedAt.get(`${lock.id}#${lock.fence}`) ?? this.#now,
      adoptedAt: process.now(),
    };
    const valid = this.#peek(() => lock.held);
    this.log?.(
      `${process.name} got "${lock.id}" as ${owner} (fence ${lock.fence})${valid ? `, valid until t=${this.#validUntil(h).toFixed(3)}` : ", already expired"}`,
    );
    const stored = this.#dataAtAcquisition.get(`${lock.id}#${lock.fence}`);
    if (stored !== undefined && stored !== canonicalData(lock.data)) {
      this.fail(
        "data handed out",
        `${this.#describe(h)} was handed data ${canonicalData(lock.data)}, but the item held ${stored} when its acquisition was applied`,
      );
    }
    if (!valid) {
      // acquire() promises a lock that is valid when it resolves: a late acquisition (its answer
      // came back after its lease) must be taken again or not handed out.
      this.fail(
        "handed out valid",
        `${this.#describe(h)} was handed a lock whose lease had already run out by its own clock`,
      );
      return;
    }
    // An administrator may force-release a lock whose holder has not heard back yet: it learns at
    // its next heartbeat. Anything else taken from under it before it even got it is a violation.
    const lost = this.#removals(h).find((r) => r.by === "takeover" || (r.by === "force" && !r.legitimate));
    if (lost !== undefined) {
      this.fail(
        "holder learns first",
        `${this.#describe(h)} was handed a lock that had already been ${lost.by === "force" ? "force-released" : "taken over"} at t=${lost.at.toFixed(3)}, and considers it valid`,
      );
    }
    // A holding an administrator already revoked is outside the order of fences (the next holder may
    // already have a higher one); it learns at its next heartbeat.
    if (!this.#excused(h)) {
      const last = this.#lastValidFence.get(lock.id) ?? 0;
      if (lock.fence <= last) {
        this.fail(
          "fences increase",
          `${this.#describe(h)} got fence ${lock.fence}, but an earlier valid holder of "${lock.id}" had fence ${last}`,
        );
      }
      this.#lastValidFence.set(lock.id, lock.fence);
    }
    this.#active.push(h);
    this.#watch.add(h);
    const forced = this.#removals(h).find((r) => r.by === "force");
    if (forced !== undefined) this.#expectToLearn(h, forced.at);
    this.#peek(() => lock.signal).addEventListener("abort", () => this.#lost(h), { once: true });
    if (h.adoptedAt > this.#now) {
      // Handed out in the middle of a stall: check exclusion again at the instant it really happened.
      this.#o.scheduler.at(h.adoptedAt, () => undefined);
    }
  }

  #lost(h: Holding): void {
    this.stats.losses++;
    this.log?.(`${h.process.name} is told: ${(h.lock.signal.reason as Error).message}`);
    const reason = (h.lock.signal.reason as LockLostError | undefined)?.reason;
    this.#watch.delete(h);
    if (this.#o.calm === true && !this.#removals(h).some((r) => r.by === "force")) {
      // Nothing in a calm run excuses a loss: no stalls, no lost or slow requests.
      this.fail(
        "calm holder keeps its lock",
        `${this.#describe(h)} lost its lock in a run without faults: ${(h.lock.signal.reason as Error).message}`,
      );
    }
    if (reason !== "taken" && reason !== "released") return;
    const removed = this.#removals(h).some((r) => r.by !== "self");
    // A report may leave open that our own unanswered release removed the owner, if it says so.
    if (!removed && !(h.lock.signal.reason as LockLostError).writeUncertain) {
      this.fail(
        "truthful loss report",
        `${h.process.name} was told its lock on "${h.id}" (fence ${h.fence}) was ${reason === "taken" ? "taken over" : "released by someone else"}, but nobody else removed its owner ${h.owner}: ${(h.lock.signal.reason as Error).message}`,
      );
    }
  }

  /** A write to the resource a lock protects is about to be issued. */
  resourceWriteIssued(tag: string, lock: Lock, seq: number, guarded: boolean): void {
    this.#resourceWrites.set(tag, {
      tag,
      id: lock.id,
      fence: lock.fence,
      seq,
      what: `${guarded ? "guarded" : "unguarded"} write ${tag}`,
      guarded,
    });
  }

  /**
   * Guarded writes commit only while their lock is held, so they land in fence order. Unguarded ones
   * (check `lock.held`, then write) can land after a newer holder's: counted, as the limitation a
   * lease cannot remove (docs/safety.md).
   */
  #resourceWritten(id: string, tag: string | undefined): void {
    const write = tag === undefined ? undefined : this.#resourceWrites.get(tag);
    if (write === undefined) return;
    // By fence only: one holder's own writes may land out of order (a transaction that timed out
    // can still commit while the lock is held), but never after a later holder's.
    const newest = this.#newestResource.get(id);
    const older = newest !== undefined && write.fence < newest.fence;
    if (write.guarded) {
      this.stats.guardedWrites++;
      // Committed only while its own acquisition is in place: owner token and fence both.
      const lockId = write.id;
      const owner = this.#ownerByFence.get(`${lockId}#${write.fence}`);
      const current = this.#currentOwner.get(lockId);
      const fence = this.#currentFence.get(lockId);
      if (owner === undefined || current !== owner || fence !== write.fence) {
        this.fail(
          "writes stop at removal",
          `${write.what} (fence ${write.fence}, owner ${owner}) committed while "${lockId}" was ${current === undefined ? "free" : `owned by ${current}`} at fence ${fence}`,
        );
      }
      if (older) {
        this.fail(
          "guarded writes move forward",
          `${write.what} (fence ${write.fence}) landed after ${newest?.what} (fence ${newest?.fence}) on "${id}"`,
        );
      }
    } else if (older) {
      this.stats.staleUnguardedWrites++;
    }
    if (!older) this.#newestResource.set(id, write);
  }

  /** A data write is about to be issued. */
  writeIssued(tag: string, lock: Lock, seq: number, what: string): void {
    this.#writes.set(tag, { tag, id: lock.id, fence: lock.fence, seq, what });
  }

  writeAcknowledged(tag: string): void {
    this.stats.acked++;
    this.log?.(`${tag} acknowledged`);
    const write = this.#writes.get(tag);
    if (!this.#applied.has(tag)) {
      this.fail("acknowledged write applied", `${write?.what ?? tag} was acknowledged but never applied`);
    }
  }

  writeRejected(tag: string, err: unknown): void {
    this.stats.rejected++;
    this.log?.(`${tag} rejected: ${(err as Error).message}`);
    if (admitsUncertainty(err)) return;
    const write = this.#writes.get(tag);
    const why = `${(err as Error).name}: ${(err as Error).message}`;
    if (this.#applied.has(tag)) {
      this.fail(
        "rejected write absent",
        `${write?.what ?? tag} was rejected as not written (${why}), but it was applied`,
      );
    }
    this.#forbidden.set(tag, why);
  }

  /** An administrator's forceRelease call; returns its end. */
  forceReleaseStarted(): () => void {
    const call = { start: this.#now, end: undefined as number | undefined };
    this.#forceCalls.push(call);
    return () => {
      call.end = this.#now;
    };
  }

  unexpected(process: SimProcess, what: string, err: unknown): void {
    const e = err as Error;
    this.fail(
      "expected errors only",
      `${process.name}: ${what} failed with ${e?.name}: ${e?.message}\n${e?.stack ?? ""}`,
    );
  }

  /** Errors the API documents for a call; anything else is a defect. */
  static expectedError(
    err: unknown,
    what: "acquire" | "update" | "extend" | "release" | "admin",
    signal?: AbortSignal,
  ): boolean {
    if (signal?.aborted && err === signal.reason) return true;
    if (what === "acquire") return err instanceof LockHeldError || err instanceof LockError;
    // A failure retrying cannot fix (a refused request) ends an update or release with a LockError.
    if (what === "update" || what === "extend" || what === "release") return err instanceof LockError;
    return err instanceof LockError;
  }

  // ---- liveness ----

  acquireStarted(process: SimProcess, id: string, waitMs: number): () => void {
    const startedAt = process.now();
    const waiter: Waiter = {
      process,
      life: process.incarnation,
      id,
      startedAt,
      deadline: startedAt + waitMs / process.clock.rate,
      since: process.wallAt(startedAt),
      overtaken: 0,
    };
    this.#waiters.add(waiter);
    let settled = false;
    const grace = this.#o.waitGraceMs;
    if (grace !== undefined && Number.isFinite(waitMs)) {
      const by = startedAt + (waitMs * (1 + 2 * CLOCK_RATE_DRIFT)) / process.clock.rate + grace;
      this.#o.scheduler.at(by, () => {
        if (settled || !process.alive || process.incarnation !== waiter.life) return;
        this.fail(
          "waits are bounded",
          `${process.name}'s acquire("${id}", { waitMs: ${waitMs.toFixed(1)} }) started at t=${startedAt.toFixed(3)} has not settled ${(by - startedAt).toFixed(1)} ms later`,
        );
      });
    }
    const bounds = this.#o.liveness;
    if (bounds !== undefined) {
      if (this.#currentOwner.get(id) === undefined) this.#expectFreeTaken(id, startedAt);
      else this.#expectCrashedTaken(startedAt);
      this.#expectShortcut(waiter);
    }
    return () => {
      settled = true;
      this.#waiters.delete(waiter);
    };
  }

  #waiting(id: string, since: number, until: number): boolean {
    for (const w of this.#waiters) {
      if (
        w.id === id &&
        w.startedAt <= since &&
        w.deadline >= until &&
        w.process.alive &&
        w.process.incarnation === w.life
      )
        return true;
    }
    return false;
  }

  #expectFreeTaken(id: string, from: number): void {
    const bounds = this.#o.liveness;
    if (bounds === undefined) return;
    const at = from + bounds.freeMs;
    if ([...this.#waiters].some((w) => w.id === id)) this.stats.freeDeadlines++;
    this.#o.scheduler.at(at, () => {
      const since = this.#freeSince.get(id);
      if (since === undefined || since > at - bounds.freeMs) return;
      if (this.#waiting(id, at - bounds.freeMs, at)) {
        this.fail(
          "free lock taken",
          `"${id}" has been free since t=${since.toFixed(3)} with a waiter, but nobody took it within ${bounds.freeMs.toFixed(1)} ms`,
        );
      }
    });
  }

  #deadOwner(token: string): boolean {
    const [name, life] = token.split(".");
    const p = this.#o.processes.find((q) => q.name === name);
    return p !== undefined && (!p.alive || p.incarnation !== Number(life));
  }

  #expectCrashedTaken(from: number): void {
    const bounds = this.#o.liveness;
    if (bounds === undefined) return;
    const at = from + bounds.crashedMs;
    const dead = [...this.#currentOwner].some(
      ([id, o]) => o !== undefined && this.#deadOwner(o) && this.#waiting(id, from, from),
    );
    if (dead) this.stats.deadHolderDeadlines++;
    this.#o.scheduler.at(at, () => {
      for (const [id, owner] of this.#currentOwner) {
        if (owner === undefined || !this.#deadOwner(owner)) continue;
        const track = this.#owners.get(owner);
        const since = Math.max(track?.lastWriteAt ?? 0, this.#crashTime(owner));
        if (since > at - bounds.crashedMs) continue;
        if (this.#waiting(id, at - bounds.crashedMs, at)) {
          this.fail(
            "crashed holder's lock taken",
            `"${id}" is still owned by ${owner}, dead since t=${since.toFixed(3)}, with a waiter, ${bounds.crashedMs.toFixed(1)} ms later`,
          );
        }
      }
    });
  }

  readonly #crashTimes = new Map<string, number>();
  crashed(process: SimProcess, life: number): void {
    this.#crashTimes.set(`${process.name}.${life}`, this.#now);
    this.#expectCrashedTaken(this.#now);
  }

  #crashTime(token: string): number {
    const [name, life] = token.split(".");
    return this.#crashTimes.get(`${name}.${life}`) ?? 0;
  }

  #expectShortcut(w: Waiter): void {
    const bounds = this.#o.liveness;
    const within = bounds?.shortcutMs;
    if (bounds === undefined || within === undefined) return;
    const owner = this.#currentOwner.get(w.id);
    if (owner === undefined || !this.#deadOwner(owner)) return;
    const track = this.#owners.get(owner);
    if (track?.heartbeatAt === undefined) return;
    const age = this.#peek(() => w.process.wallAt(w.startedAt)) - track.heartbeatAt;
    if (age <= bounds.shortcutAgeMs + 1) return;
    const lastWrite = track.lastWriteAt;
    this.stats.shortcutDeadlines++;
    this.#o.scheduler.at(w.startedAt + within, () => {
      if (this.#currentOwner.get(w.id) !== owner || track.lastWriteAt !== lastWrite) return;
      this.fail(
        "wall-clock shortcut",
        `${w.process.name} started acquiring "${w.id}" at t=${w.startedAt.toFixed(3)}, when its wall clock put the dead owner's last heartbeat ${age.toFixed(1)} ms back (bound ${bounds.shortcutAgeMs} ms), yet ${owner} still owns it ${within.toFixed(1)} ms later`,
      );
    });
  }

  /** Workers that never finished, in a run where nothing excuses them. */
  unfinished(names: readonly string[]): void {
    if (this.#o.liveness !== undefined && names.length > 0) {
      this.fail("workers finish", `${names.join(", ")} did not finish before the end of the run`);
    }
  }

  // ---- after every event ----

  /**
   * Once `held` reads false (the lease ran out on the holder's clock), the signal must abort as soon
   * as the holder runs: it may be stalled, and its timers may lag by the event loop's lag (plus
   * Node's 1 ms timer floor), but no longer. (Timers count from the start of the turn that set them,
   * as Node's do, so a stall in the middle of that turn does not delay them.) A lock whose release
   * has begun may stop being held quietly.
   */
  #signalFollowsHeld(): void {
    const slack = this.#o.signalSlackMs;
    const now = this.#now;
    for (const h of this.#watch) {
      if (!this.#alive(h) || h.releasing === true || this.#aborted(h)) {
        this.#watch.delete(h);
        continue;
      }
      if (this.#peek(() => h.lock.held)) continue;
      const first = h.invalidSince === undefined;
      h.invalidSince ??= now;
      const p = h.process;
      const by = Math.max(h.invalidSince, p.busyUntil, p.localNow) + slack + 2;
      if (now > by) {
        this.fail(
          "signal aborts by expiry",
          `${this.#describe(h)}: held has been false since t=${h.invalidSince.toFixed(3)}, yet its signal has not aborted`,
        );
      } else if (first) {
        this.#o.scheduler.at(by + 0.001, () => undefined);
      }
    }
  }

  afterEvent(): void {
    this.#signalFollowsHeld();
    if (this.#active.length === 0) return;
    this.#active = this.#active.filter((h) => this.#valid(h));
    const holders = this.#active.filter((h) => h.adoptedAt <= this.#now && !this.#excused(h));
    for (let i = 0; i < holders.length; i++) {
      for (let j = i + 1; j < holders.length; j++) {
        const a = holders[i] as Holding;
        const b = holders[j] as Holding;
        if (a.id !== b.id) continue;
        this.fail(
          "mutual exclusion",
          `two valid holders of "${a.id}": ${this.#describe(a)} and ${this.#describe(b)}`,
        );
      }
    }
  }
}

/** A release that hands the lock to a waiter of the same process (src/hand-off.ts). */
function isHandOff(w: AppliedWrite): boolean {
  const values = (w.input as { ExpressionAttributeValues?: Record<string, AttributeValue> })
    .ExpressionAttributeValues;
  return w.operation === "UpdateItem" && values?.[":newOwner"] !== undefined;
}
