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
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { LockError } from "../../src/errors.js";
import { FIELD } from "../../src/item.js";
import type { Lock } from "../../src/lock.js";
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
    { token: string; crashes: number; clearAt: number | undefined; checked: boolean }
  >();
  readonly stats = { acquisitions: 0, reclaims: 0, maxWriterWaitMs: 0, writerWaits: 0, maxHolders: 0 };

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
    const ownRelease =
      input.UpdateExpression === "REMOVE #holders.#me" &&
      !JSON.stringify(w.input).includes(":version") &&
      input.ExpressionAttributeNames?.["#me"];
    for (const token of Object.keys(after)) {
      if (before[token] === undefined) {
        this.#tokenByFence.set(`${id}#${fenceAfter}`, token);
        this.stats.acquisitions++;
      }
    }
    for (const token of Object.keys(before)) {
      if (after[token] !== undefined || ownRelease === token) continue;
      this.stats.reclaims++;
      this.#expectTold(id, token, `its entry was removed at t=${now.toFixed(3)}`);
    }
    const ownerBefore = w.before?.[FIELD.owner]?.S;
    const ownerAfter = w.after?.[FIELD.owner]?.S;
    if (ownerAfter !== undefined && ownerAfter !== ownerBefore) {
      this.#tokenByFence.set(`${id}#${fenceAfter}`, ownerAfter);
      this.stats.acquisitions++;
    }
    if (ownerBefore !== undefined && ownerBefore !== ownerAfter) {
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
    this.#trackWriter(id, w, ownerAfter !== undefined && ownerAfter !== ownerBefore);
  }

  #trackWriter(id: string, w: AppliedWrite, exclusiveAcquired: boolean): void {
    const now = this.#scheduler.now;
    const current = this.#intent.get(id);
    if (exclusiveAcquired && current !== undefined) {
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
      t = { token, crashes: this.#crashes, clearAt: undefined, checked: false };
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
      if (this.#intent.get(id) !== tracked || tracked.clearAt === undefined) return;
      if (this.#crashes !== tracked.crashes) return; // the writer (or a holder) may have crashed
      if (now + bound > this.#scheduler.now) return;
      this.#main.fail(
        "writer waits bounded",
        `writer ${tracked.token} of "${id}" found the lock clear at t=${tracked.clearAt.toFixed(3)} and was not in ${bound.toFixed(1)} ms later`,
      );
    });
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
    return h;
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
