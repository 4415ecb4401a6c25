/**
 * Locks with several holders in the simulation (issue 12): the workload of the "permits" and "rw"
 * profiles (real LockClients taking permits, or shared and exclusive locks, holding them while
 * heartbeats carry them, releasing or abandoning them) and the invariants it is held to:
 *
 *  - permits bound: at no instant do more than N processes hold a valid permit of one id;
 *  - exclusive alone: at no instant is a valid exclusive holder together with any other valid holder;
 *  - holder learns first: when an entry (or the exclusive owner) is removed by anyone but its own
 *    release, its holder has already been told (signal aborted) or its validity has ended;
 *  - fences increase: the store's fence only grows, and no two handed-out locks share a fence;
 *  - intent respected: no shared entry is added while a writer's intent stays in the item (a take
 *    may only remove an intent it judged stale);
 *  - writer waits bounded (calm runs): once the readers and the writer that were in when a writer's
 *    intent was recorded are gone, an exclusive acquisition applies within a poll interval and a few
 *    round trips; the longest such wait is measured.
 *
 * An administrator (in a fraction of the schedules) removes one holder now and then with
 * `forceRelease(id, { holder })`. As the mutex's checker treats `forceRelease(id)`: such a removal
 * frees the slot before its holder learns (the administrator takes that on), so the removed holder
 * no longer counts for the bounds and is exempt from "holder learns first" — if it held the entry
 * while a removal call ran; a removal of an entry taken after every call had ended is a violation —
 * and in calm runs it must be told within a heartbeat interval and a round trip. Its loss report says
 * "released" only if an administrator really removed it ("truthful loss report"), and the call
 * removes what it read: at most one entry, the one it reports, in the state it reports
 * ("administrator removes what it read").
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { LockError, LockLostError } from "../../src/errors.js";
import type { LockHolderInfo } from "../../src/holder-info.js";
import { FIELD } from "../../src/item.js";
import { inspectLocks, type Lock } from "../../src/lock.js";
import { FORCED_RELEASE } from "../../src/requests.js";
import { sleep } from "../../src/runtime.js";
import type { Checker, LivenessBounds } from "./checker.js";
import { SimProcess } from "./process.js";
import type { Scheduler } from "./scheduler.js";
import type { AppliedWrite } from "./store.js";
import type { WorkerContext } from "./workload.js";

/** What a multi-holder scenario exercises. */
export type MultiSetting = { readonly permits: number } | { readonly rw: true };

interface Holding {
  readonly process: SimProcess;
  readonly life: number;
  readonly lock: Lock;
  readonly exclusive: boolean;
  readonly token: string | undefined;
  releasing: boolean;
}

/** An administrator's removal, as applied at the store. */
interface AdminRemoval {
  readonly token: string;
  /** The removed entry's (or owner's) heartbeatAt just before the removal applied. */
  readonly heartbeatAt: number | undefined;
  readonly at: number;
}

const num = (v: AttributeValue | undefined) => (v?.N === undefined ? undefined : Number(v.N));

export class MultiChecker {
  readonly #main: Checker;
  readonly #scheduler: Scheduler;
  readonly #setting: MultiSetting;
  readonly #partitionKey: string;
  readonly #liveness: LivenessBounds | undefined;
  readonly #holdings = new Set<Holding>();
  /** Token of each acquisition, by id and fence, from the store's writes. */
  readonly #tokenByFence = new Map<string, string>();
  readonly #fencesHandedOut = new Map<string, Set<number>>();
  #crashes = 0;
  /** The writer-wait expectation of the current intent, per id. */
  readonly #intent = new Map<
    string,
    {
      token: string;
      holder: string | undefined;
      crashes: number;
      clearAt: number | undefined;
      checked: boolean;
    }
  >();
  /** Real time each token's acquisition applied (entries and exclusive owners alike). */
  readonly #acquiredAt = new Map<string, number>();
  /** forceRelease(id, { holder }) calls: when each ran, and the removals that applied meanwhile. */
  readonly #adminCalls: { start: number; end: number | undefined; removals: AdminRemoval[] }[] = [];
  /** Tokens an administrator removed while a removal call was running (excused from the bounds). */
  readonly #forced = new Map<string, number>();
  readonly stats = {
    acquisitions: 0,
    reclaims: 0,
    maxWriterWaitMs: 0,
    writerWaits: 0,
    maxHolders: 0,
    /** Holders an administrator removed (forceRelease(id, { holder })), and the calls it made. */
    adminRemovals: 0,
    adminCalls: 0,
    /** Removed holders told "released" (the others learn "taken" or by expiry, see docs/protocol.md). */
    toldReleased: 0,
  };

  constructor(o: {
    main: Checker;
    scheduler: Scheduler;
    setting: MultiSetting;
    partitionKey: string;
    liveness: LivenessBounds | undefined;
    maxDelayMs: number;
  }) {
    this.#main = o.main;
    this.#scheduler = o.scheduler;
    this.#setting = o.setting;
    this.#partitionKey = o.partitionKey;
    this.#liveness = o.liveness;
    this.#writerBoundMs = o.liveness === undefined ? undefined : o.liveness.freeMs + 4 * o.maxDelayMs + 5;
  }

  readonly #writerBoundMs: number | undefined;

  #valid(h: Holding): boolean {
    if (!h.process.alive || h.process.incarnation !== h.life) return false;
    SimProcess.peeking = true;
    try {
      return h.lock.held;
    } finally {
      SimProcess.peeking = false;
    }
  }

  crashed(): void {
    this.#crashes++;
  }

  onWrite(w: AppliedWrite): void {
    const id = (w.after ?? w.before)?.[this.#partitionKey]?.S;
    if (id === undefined || id.startsWith("resource/")) return;
    const now = this.#scheduler.now;
    const before = w.before?.[FIELD.holders]?.M ?? {};
    const after = w.after?.[FIELD.holders]?.M ?? {};
    const fenceBefore = num(w.before?.[FIELD.fence]) ?? 0;
    const fenceAfter = num(w.after?.[FIELD.fence]) ?? 0;
    if (fenceAfter < fenceBefore) this.#main.fail("fences increase", `the fence of "${id}" went back`);
    const input = w.input as { UpdateExpression?: string; ExpressionAttributeNames?: Record<string, string> };
    const values = (w.input as { ExpressionAttributeValues?: Record<string, AttributeValue> })
      .ExpressionAttributeValues;
    // An administrator's removal of one entry: it names the token it removes and marks it.
    const forcedToken =
      values?.[":token"]?.S !== undefined && w.after?.[FIELD.forcedOut]?.S === values[":token"].S
        ? values[":token"].S
        : undefined;
    const ownRelease =
      input.UpdateExpression === "REMOVE #holders.#me" &&
      !JSON.stringify(w.input).includes(":version") &&
      input.ExpressionAttributeNames?.["#me"];
    for (const token of Object.keys(after)) {
      if (before[token] === undefined) {
        this.#tokenByFence.set(`${id}#${fenceAfter}`, token);
        this.#acquiredAt.set(token, now);
        this.stats.acquisitions++;
      }
    }
    for (const token of Object.keys(before)) {
      if (after[token] !== undefined || ownRelease === token) continue;
      if (forcedToken === token) {
        this.#adminRemoved(id, token, num(before[token]?.M?.[FIELD.heartbeatAt]));
        continue;
      }
      this.stats.reclaims++;
      this.#expectTold(id, token, `its entry was removed at t=${now.toFixed(3)}`);
    }
    const ownerBefore = w.before?.[FIELD.owner]?.S;
    const ownerAfter = w.after?.[FIELD.owner]?.S;
    if (ownerAfter !== undefined && ownerAfter !== ownerBefore) {
      this.#tokenByFence.set(`${id}#${fenceAfter}`, ownerAfter);
      this.#acquiredAt.set(ownerAfter, now);
      this.stats.acquisitions++;
    }
    const forcedOwner = ownerAfter === undefined && w.after?.[FIELD.releasedBy]?.S === FORCED_RELEASE;
    if (ownerBefore !== undefined && ownerBefore !== ownerAfter && forcedOwner) {
      // A reader–writer lock's writer, named to forceRelease(id, { holder }): the mutex's request.
      this.#adminRemoved(id, ownerBefore, num(w.before?.[FIELD.heartbeatAt]));
    } else if (ownerBefore !== undefined && ownerBefore !== ownerAfter) {
      if (w.after?.[FIELD.releasedBy]?.S !== ownerBefore || ownerAfter !== undefined)
        this.#expectTold(id, ownerBefore, `it was removed as the exclusive owner at t=${now.toFixed(3)}`);
    }
    // Intent respected: a shared entry never comes in while a writer's intent stays.
    const added = Object.keys(after).some((t) => before[t] === undefined);
    if (added && w.before?.[FIELD.intent] !== undefined && w.after?.[FIELD.intent] !== undefined) {
      this.#main.fail(
        "intent respected",
        `a shared holder was let into "${id}" while writer ${w.after[FIELD.intent]?.M?.token?.S}'s intent stayed in the item`,
      );
    }
    // Only its own writer (withdrawing it, or getting in) or a reclaim aimed at it as judged stale
    // removes a writer's intent: another writer's acquisition must leave it, or readers overtake.
    const intentBefore = w.before?.[FIELD.intent]?.M;
    const intentGone = intentBefore?.token?.S;
    if (intentGone !== undefined && w.after?.[FIELD.intent]?.M?.token?.S !== intentGone) {
      const byItself =
        values?.[":me"]?.S === intentGone ||
        (ownerAfter !== undefined &&
          ownerAfter !== ownerBefore &&
          w.after?.[FIELD.holder]?.S === intentBefore?.[FIELD.holder]?.S);
      if (!byItself && values?.[":staleIntent"]?.S !== intentGone) {
        this.#main.fail(
          "intent respected",
          `writer ${intentGone}'s intent on "${id}" was removed by a write that was neither its own nor a reclaim of it as stale`,
        );
      }
    }
    const acquirer =
      ownerAfter !== undefined && ownerAfter !== ownerBefore ? w.after?.[FIELD.holder]?.S : undefined;
    this.#trackWriter(id, w, acquirer);
  }

  #trackWriter(id: string, w: AppliedWrite, acquirer: string | undefined): void {
    const now = this.#scheduler.now;
    const current = this.#intent.get(id);
    // Only the intent's own writer getting in ends its wait (every client of a process records the
    // process's name as holder): another writer's turn leaves it waiting.
    if (acquirer !== undefined && current !== undefined && acquirer === current.holder) {
      // Measured in calm runs only, where the bound is checked (faults excuse any delay).
      if (
        current.clearAt !== undefined &&
        this.#writerBoundMs !== undefined &&
        this.#crashes === current.crashes
      ) {
        this.stats.writerWaits++;
        this.stats.maxWriterWaitMs = Math.max(this.stats.maxWriterWaitMs, now - current.clearAt);
      }
      this.#intent.delete(id);
      return;
    }
    const token = w.after?.[FIELD.intent]?.M?.token?.S;
    if (token === undefined) {
      this.#intent.delete(id);
      return;
    }
    let t = current;
    if (t === undefined || t.token !== token) {
      t = {
        token,
        holder: w.after?.[FIELD.intent]?.M?.[FIELD.holder]?.S,
        crashes: this.#crashes,
        clearAt: undefined,
        checked: false,
      };
      this.#intent.set(id, t);
    }
    const clear =
      w.after?.[FIELD.owner] === undefined && Object.keys(w.after?.[FIELD.holders]?.M ?? {}).length === 0;
    if (!clear) {
      t.clearAt = undefined;
      return;
    }
    if (t.clearAt !== undefined) return;
    t.clearAt = now;
    const bound = this.#writerBoundMs;
    if (bound === undefined) return;
    const tracked = t;
    this.#scheduler.at(now + bound, () => {
      // A check of an earlier clear spell (another writer got in since, and left): not this one's.
      if (this.#intent.get(id) !== tracked || tracked.clearAt !== now) return;
      if (this.#crashes !== tracked.crashes) return; // the writer (or a holder) may have crashed
      if (now + bound > this.#scheduler.now) return;
      this.#main.fail(
        "writer waits bounded",
        `writer ${tracked.token} of "${id}" found the lock clear at t=${tracked.clearAt.toFixed(3)} and was not in ${bound.toFixed(1)} ms later`,
      );
    });
  }

  /**
   * An administrator removed `token`'s entry (or exclusive ownership). Mirrors the mutex checker's
   * forceRelease: legitimate if the acquisition applied before some removal call ended (the
   * administrator may remove a holder that has not even heard back yet: it learns at its next
   * heartbeat); a removal of an acquisition younger than every call is one nobody asked for.
   */
  #adminRemoved(id: string, token: string, heartbeatAt: number | undefined): void {
    const now = this.#scheduler.now;
    this.stats.adminRemovals++;
    const acquiredAt = this.#acquiredAt.get(token) ?? now;
    const legitimate = this.#adminCalls.some((c) => c.end === undefined || c.end >= acquiredAt);
    for (const c of this.#adminCalls)
      if (c.end === undefined) c.removals.push({ token, heartbeatAt, at: now });
    if (!legitimate) {
      this.#expectTold(id, token, `an administrator's late write removed it at t=${now.toFixed(3)}`);
      return;
    }
    this.#forced.set(token, now);
    const within = this.#liveness?.forceLearnMs;
    if (within === undefined) return;
    for (const h of this.#holdings) if (h.token === token) this.#expectToLearn(h, now, within);
  }

  /** A removed holder is told within a heartbeat interval and a round trip (calm runs only). */
  #expectToLearn(h: Holding, removedAt: number, within: number): void {
    this.#scheduler.at(Math.max(this.#scheduler.now, removedAt + within), () => {
      if (h.releasing || !h.process.alive || h.process.incarnation !== h.life) return;
      if (this.#peek(() => h.lock.signal.aborted)) return;
      this.#main.fail(
        "force-released holder learns",
        `${h.process.name} (fence ${h.lock.fence}) was removed from "${h.lock.id}" by an administrator at t=${removedAt.toFixed(3)} and has not been told ${within.toFixed(1)} ms later`,
      );
    });
  }

  #peek<T>(read: () => T): T {
    SimProcess.peeking = true;
    try {
      return inspectLocks(read);
    } finally {
      SimProcess.peeking = false;
    }
  }

  /**
   * An administrator's forceRelease(id, { holder }) call begins; the returned function ends it with
   * what it resolved to (undefined: threw, or "none": nobody matched).
   */
  adminStarted(): (outcome: LockHolderInfo | "none" | undefined) => void {
    const call = {
      start: this.#scheduler.now,
      end: undefined as number | undefined,
      removals: [] as AdminRemoval[],
    };
    this.#adminCalls.push(call);
    return (outcome) => {
      call.end = this.#scheduler.now;
      this.stats.adminCalls++;
      // A call that threw may have removed its holder unanswered; one that says "nobody" may not know
      // an unanswered attempt of its own removed an exclusive owner who has been replaced since.
      if (outcome === undefined || outcome === "none") return;
      // An entry is removed at the exact version read (a heartbeat since makes the call look
      // again), and the call resolves to what it read last; the exclusive owner, like
      // forceRelease(id), at the token read, whatever it renewed. One acquisition's token may go
      // twice: a late copy of its acquire can put the entry back (docs/protocol.md) before the
      // call's next round removes it again, at the version then read.
      const stray = call.removals.filter((r) => !r.token.startsWith(outcome.key));
      const asRead =
        outcome.mode === "exclusive" ||
        call.removals.length === 0 ||
        call.removals.some((r) => r.heartbeatAt === outcome.heartbeatAt);
      if (new Set(call.removals.map((r) => r.token)).size > 1 || stray.length > 0 || !asRead) {
        const seen = call.removals.map(
          (r) => `${r.token.slice(0, 8)} (heartbeat ${r.heartbeatAt}, t=${r.at.toFixed(3)})`,
        );
        this.#main.fail(
          "administrator removes what it read",
          `forceRelease(${outcome.key}) reported removing ${outcome.holder ?? "?"} ${outcome.key} as read with heartbeat ${outcome.heartbeatAt}, but removed ${seen.join(", ")}`,
        );
      }
    };
  }

  #expectTold(id: string, token: string, what: string): void {
    for (const h of this.#holdings) {
      if (h.lock.id !== id || h.token !== token || h.releasing) continue;
      if (this.#valid(h) && !h.lock.signal.aborted) {
        this.#main.fail(
          "holder learns first",
          `${h.process.name} (fence ${h.lock.fence}) still considered itself a holder of "${id}" and had not been told, but ${what}`,
        );
      }
    }
  }

  adopted(process: SimProcess, lock: Lock, exclusive: boolean): Holding {
    const fences = this.#fencesHandedOut.get(lock.id) ?? new Set<number>();
    if (fences.has(lock.fence)) {
      this.#main.fail("fences increase", `fence ${lock.fence} of "${lock.id}" was handed out twice`);
    }
    fences.add(lock.fence);
    this.#fencesHandedOut.set(lock.id, fences);
    const h: Holding = {
      process,
      life: process.incarnation,
      lock,
      exclusive,
      token: this.#tokenByFence.get(`${lock.id}#${lock.fence}`),
      releasing: false,
    };
    if (!this.#valid(h)) this.#main.fail("handed out valid", `${process.name} was handed an expired lock`);
    this.#holdings.add(h);
    // Removed by an administrator before it heard back: it learns at its next heartbeat.
    const forcedAt = h.token === undefined ? undefined : this.#forced.get(h.token);
    const within = this.#liveness?.forceLearnMs;
    if (forcedAt !== undefined && within !== undefined) this.#expectToLearn(h, forcedAt, within);
    this.#peek(() => lock.signal).addEventListener("abort", () => this.#lost(h), { once: true });
    return h;
  }

  /** A loss reported as "released" by someone else: an administrator must really have removed it. */
  #lost(h: Holding): void {
    if (h.releasing) return;
    const reason = this.#peek(() => h.lock.signal.reason) as unknown;
    if (!(reason instanceof LockLostError) || reason.reason !== "released" || reason.writeUncertain) return;
    if (h.token !== undefined && this.#forced.has(h.token)) {
      this.stats.toldReleased++;
      return;
    }
    this.#main.fail(
      "truthful loss report",
      `${h.process.name} was told its ${h.exclusive ? "exclusive lock" : "entry"} on "${h.lock.id}" (fence ${h.lock.fence}) was released by someone else, but no administrator removed it: ${reason.message}`,
    );
  }

  released(h: Holding): void {
    h.releasing = true;
  }

  afterEvent(): void {
    const byId = new Map<string, Holding[]>();
    for (const h of this.#holdings) {
      if (h.releasing) {
        // Its release may have applied already and the slot gone to someone else: not counted.
        if (!this.#valid(h)) this.#holdings.delete(h);
        continue;
      }
      if (!this.#valid(h)) {
        if (!h.process.alive || h.process.incarnation !== h.life) this.#holdings.delete(h);
        continue;
      }
      // Removed by an administrator, not told yet: out of the count, as the mutex's checker excuses
      // a force-released holder from mutual exclusion (the administrator's responsibility).
      if (h.token !== undefined && this.#forced.has(h.token)) continue;
      const list = byId.get(h.lock.id) ?? [];
      list.push(h);
      byId.set(h.lock.id, list);
    }
    for (const [id, list] of byId) {
      this.stats.maxHolders = Math.max(this.stats.maxHolders, list.length);
      const names = list.map(
        (h) => `${h.process.name}(fence ${h.lock.fence}${h.exclusive ? ", exclusive" : ""})`,
      );
      if ("permits" in this.#setting && list.length > this.#setting.permits) {
        this.#main.fail(
          "permits bound",
          `${list.length} valid holders of "${id}" at once, with ${this.#setting.permits} permits: ${names.join(", ")}`,
        );
      }
      if (list.length > 1 && list.some((h) => h.exclusive)) {
        this.#main.fail(
          "exclusive alone",
          `an exclusive holder of "${id}" together with others: ${names.join(", ")}`,
        );
      }
    }
  }
}

/** The multi-holder workload: take, hold (heartbeats carry long holds), release or abandon. */
export async function multiWorker(
  ctx: WorkerContext,
  setting: MultiSetting,
  multi: MultiChecker,
): Promise<void> {
  const r = ctx.random;
  const rounds = r.int(1, 5);
  for (let round = 0; round < rounds; round++) {
    await sleep(ctx.runtime, r.between(0, ctx.leaseMs));
    const id = r.pick(ctx.ids);
    const exclusive = "rw" in setting && r.chance(0.35);
    const options =
      "permits" in setting
        ? { permits: setting.permits }
        : ({ mode: exclusive ? "exclusive" : "shared" } as const);
    const waitMs = ctx.abortWaits
      ? r.pick([0, r.between(0, ctx.leaseMs), r.between(ctx.leaseMs, 4 * ctx.leaseMs)])
      : r.pick([0, 20 * ctx.leaseMs]);
    let lock: Lock | undefined;
    try {
      lock = await ctx.client.acquire(id, { ...options, waitMs });
    } catch (err) {
      // A malformed request (a ValidationException) or a mixing error is never expected here.
      const cause = (err as { cause?: { name?: string } }).cause?.name;
      if (!(err instanceof LockError) || err.code === "EMISMATCH" || cause === "ValidationException")
        ctx.checker.unexpected(ctx.process, `acquire("${id}")`, err);
      continue;
    }
    const h = multi.adopted(ctx.process, lock, exclusive);
    const hold = r.chance(0.15) ? r.between(ctx.leaseMs, 3 * ctx.leaseMs) : r.between(0, 2 * ctx.heartbeatMs);
    await sleep(ctx.runtime, hold);
    if (r.chance(0.12)) {
      ctx.lastUser?.();
      return; // abandoned: the process exits holding it, like a crash
    }
    multi.released(h);
    try {
      await lock.release();
    } catch (err) {
      const cause = (err as { cause?: { name?: string } }).cause?.name;
      if (!(err instanceof LockError) || cause === "ValidationException")
        ctx.checker.unexpected(ctx.process, "release", err);
    }
  }
  ctx.lastUser?.();
}

/**
 * The administrator of the multi-holder profiles: now and then reads an id and removes one of its
 * holders with forceRelease(id, { holder }), naming it by key, or by name when only one holder has
 * it (a shared name is refused with EAMBIGUOUS before any write: an expected error).
 */
export async function multiAdmin(ctx: WorkerContext, multi: MultiChecker): Promise<void> {
  const r = ctx.random;
  const rounds = r.int(2, 8);
  for (let round = 0; round < rounds; round++) {
    await sleep(ctx.runtime, r.between(0, 2 * ctx.leaseMs));
    const id = r.pick(ctx.ids);
    let target: string | undefined;
    try {
      const info = await ctx.client.read(id);
      const holders = info?.holders ?? [];
      if (holders.length === 0) continue;
      const h = r.pick(holders);
      target = h.holder !== undefined && r.chance(0.4) ? h.holder : h.key;
    } catch (err) {
      if (!(err instanceof LockError)) ctx.checker.unexpected(ctx.process, "read", err);
      continue;
    }
    const ended = multi.adminStarted();
    let outcome: LockHolderInfo | "none" | undefined;
    try {
      outcome = (await ctx.client.forceRelease(id, { holder: target })) ?? "none";
    } catch (err) {
      const cause = (err as { cause?: { name?: string } }).cause?.name;
      if (!(err instanceof LockError) || cause === "ValidationException")
        ctx.checker.unexpected(ctx.process, "forceRelease(holder)", err);
    } finally {
      ended(outcome);
    }
  }
}
