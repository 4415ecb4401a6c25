/**
 * Acquiring a lock with several holders (permits, shared mode), and the exclusive side's share of
 * reader–writer locks (waiting out the readers, recording a writer's intent). The requests are in
 * src/holders.ts; docs/protocol.md ("More than one holder") describes the protocol.
 *
 * The loop follows the mutex's (client.ts): write when the item looks free enough, else poll and
 * judge. Every holder entry is judged by the mutex's rules (src/lease.ts: observed lease on the
 * monotonic clock, or the bounded-skew wall-clock shortcut) on its own (token, version), and a
 * reclaim is conditioned on that exact pair. One difference: an acquisition whose answer we never
 * heard is never adopted (its fence, read later, could be another's); the entry it may have left is
 * removed instead, and the acquire writes again with a new token.
 */
import { UpdateItemCommand, type UpdateItemCommandInput } from "@aws-sdk/client-dynamodb";
import { type DynamoDBSender, isConditionFailed, isRetryable, mayHaveBeenApplied, oldItemOf } from "./aws.js";
import { backoffDelay, waitBeforeNextPoll } from "./backoff.js";
import type { WaitProgress } from "./client.js";
import { LockError, type LockHeldError } from "./errors.js";
import {
  describeKind,
  evictOwnerRequest,
  type HolderKind,
  intentRequest,
  kindValue,
  removeEntryRequest,
  takeRequest,
  withdrawIntentRequest,
} from "./holders.js";
import { type HolderEntry, type LockRecord, parseRecord } from "./item.js";
import { holderValidUntil, judge, type Observation, observe, type Verdict } from "./lease.js";
import { MAX_SHARED_HOLDERS } from "./multi-options.js";
import type { ResolvedOptions } from "./options.js";
import { pollRequest } from "./requests.js";
import { deadlineSignal, sleep } from "./runtime.js";
import { waitRequests } from "./wait-requests.js";

/** What the multi-holder acquire needs from its client. */
export interface MultiContext {
  readonly options: ResolvedOptions;
  readonly client: DynamoDBSender;
  /** The client's first-use look at the table (global-table and key-schema refusals), as every call makes. */
  readonly checkTable: (signal: AbortSignal) => Promise<void>;
  /** Hands out the Lock of an entry we hold (`record.version` is the entry's). */
  readonly adopt: <L>(token: string, record: LockRecord, sentAt: number) => L;
  readonly translate: (
    err: unknown,
    message: string,
    lockId: string,
    signal: AbortSignal,
  ) => Promise<unknown>;
  readonly heldError: (id: string, record: LockRecord | undefined, waitedMs: number) => LockHeldError;
  /** Sends a best-effort write that close() waits for (bounded by a lease). */
  readonly cleanUp: (input: UpdateItemCommandInput) => void;
  readonly closed: () => unknown | undefined;
}

/** DynamoDB's refusal of an update that would make the item larger than 400 KB (a ValidationException). */
function isItemTooLarge(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown } | undefined;
  return e?.name === "ValidationException" && /item size/i.test(String(e.message));
}

/** The refusal of a call that uses an id as another kind of lock than the item shows. */
export function mismatch(id: string, asked: string | undefined, stored: string | undefined): LockError {
  return new LockError(
    `Lock "${id}" is in use as ${describeKind(stored)}, but this call asked for ${describeKind(asked)}; one id must be used one way (docs/protocol.md)`,
    { code: "EMISMATCH", lockId: id },
  );
}

/** Judges one entry (or intent, or exclusive holder) by the mutex's rules, keeping observations by key. */
class Judge {
  readonly #seen = new Map<string, Observation>();
  constructor(
    readonly options: ResolvedOptions,
    readonly early: number,
  ) {}
  verdict(key: string, token: string, e: HolderEntry, arrivedAt: number): Verdict {
    const o = observe(
      this.#seen.get(key),
      {
        owner: token,
        version: e.version,
        leaseMs: e.leaseMs ?? this.options.leaseMs,
        heartbeatAt: e.heartbeatAt,
      },
      arrivedAt,
    );
    this.#seen.set(key, o);
    return judge(
      o,
      arrivedAt + this.early,
      this.options.runtime.wallNow() + this.early,
      this.options.maxClockSkewMs,
    );
  }

  /**
   * An entry (or owner) of another kind than the caller's: "live" while it may still be held (its
   * heartbeat is within its lease by our wall clock, or it heartbeat while we watched), so the
   * caller is told the id is used another way; else the mutex's verdict, so a dead holder is
   * waited out and reclaimed like any other instead of refusing every other use for ever.
   */
  foreign(key: string, token: string, e: HolderEntry, arrivedAt: number): "live" | Verdict {
    const before = this.#seen.get(key);
    const v = this.verdict(key, token, e, arrivedAt);
    if (v.stale) return v;
    const moved = before !== undefined && before.version !== e.version;
    const leaseMs = e.leaseMs ?? this.options.leaseMs;
    const fresh = e.heartbeatAt !== undefined && this.options.runtime.wallNow() - e.heartbeatAt <= leaseMs;
    return moved || fresh ? "live" : v;
  }
}

/**
 * Judges the holders of another kind in an item: a mismatch if any may be live, else the first
 * one judged stale (to reclaim at its exact version), else how long until one could be.
 */
function judgeForeign(
  judgeOf: Judge,
  holders: ReadonlyMap<string, HolderEntry>,
  arrivedAt: number,
): "live" | { stale: { token: string; version: number } } | { staleInMs: number } {
  let stale: { token: string; version: number } | undefined;
  let staleInMs = Number.POSITIVE_INFINITY;
  for (const [token, e] of holders) {
    const v = judgeOf.foreign(`e:${token}`, token, e, arrivedAt);
    if (v === "live") return "live";
    if (v.stale) stale ??= { token, version: e.version };
    else staleInMs = Math.min(staleInMs, v.staleInMs);
  }
  return stale !== undefined ? { stale } : { staleInMs };
}

type Plan =
  | {
      readonly write: true;
      readonly create: boolean;
      /**
       * Written without having seen the map (the first write, or the create form): a failure only
       * says the map was missing or another caller created it first, so it does not count toward
       * the writes a try may make after its deadline (the next write knows the item).
       */
      readonly blind?: boolean;
      readonly stale?: { token: string; version: number } | undefined;
      readonly staleIntent?: { token: string; version: number } | undefined;
    }
  | { readonly write: false; readonly staleInMs: number; readonly send?: UpdateItemCommandInput };

export async function acquireMulti<L>(
  ctx: MultiContext,
  id: string,
  kind: HolderKind,
  waitMs: number,
  stop: AbortController,
  onWait: ((progress: WaitProgress) => unknown) | undefined,
): Promise<L> {
  const { signal } = stop;
  await ctx.checkTable(signal);
  const { runtime, schema, holder, leaseMs, poll, clockDrift, knobs } = ctx.options;
  const started = runtime.monotonicNow();
  const deadline = started + waitMs;
  const judgeOf = new Judge(ctx.options, knobs?.takeoverEarlyMs ?? 0);
  const stored = kindValue(kind);
  const written = new Set<string>();
  const unanswered = new Set<string>();
  let lateWrites = 0;
  let lastSeen: LockRecord | undefined;
  /**
   * The last take was refused for the item's size (its data leaves no room for another entry): no
   * room, as for a full semaphore, until an entry leaves (wait, or be judged stale and reclaimed).
   */
  let full = false;

  const giveUp = (err: unknown): never => {
    for (const token of unanswered) ctx.cleanUp(removeEntryRequest(schema, id, token));
    throw err;
  };

  // Its requests: each cut off, failures that may pass backed off within the wait (wait-requests.ts).
  const { bounded, look, backOff, nextBackoffMs } = waitRequests({
    runtime,
    client: ctx.client,
    poll,
    leaseMs,
    deadline,
    signal,
    id,
    giveUp,
    translate: ctx.translate,
  });

  /**
   * A conditional side write (a reclaim, an owner eviction): a failed condition only means things
   * moved (look again at once); a failure that may pass (throttling, no answer) waits its backoff
   * first, so a throttled partition is not hammered.
   */
  const sideWrite = async (input: UpdateItemCommandInput): Promise<void> => {
    try {
      await bounded((abortSignal) => ctx.client.send(new UpdateItemCommand(input), { abortSignal }));
    } catch (err) {
      if (signal.aborted) giveUp(signal.reason);
      if (isConditionFailed(err)) return;
      if (!isRetryable(err)) giveUp(await ctx.translate(err, `Acquiring lock "${id}" failed`, id, signal));
      await backOff();
    }
  };

  /** What the item allows: write (how), or wait (how long at most), or refuse (a mixing error). */
  const decide = (record: LockRecord | undefined, arrivedAt: number): Plan => {
    if (record === undefined) return { write: true, create: true, blind: true };
    const holders = record.holders;
    // An entry of ours that we never heard back about: remove it (its fence is unknown to us).
    for (const token of written) {
      if (holders?.has(token) === true) {
        unanswered.delete(token);
        return { write: false, staleInMs: 0, send: removeEntryRequest(schema, id, token) };
      }
    }
    if (record.owner !== undefined) {
      // The exclusive side holds the id: a semaphore never shares an id with it; a reader waits
      // for it, and removes it once judged stale by the mutex's rules.
      const e = {
        version: record.version,
        leaseMs: record.leaseMs,
        heartbeatAt: record.heartbeatAt,
        holder: record.holder,
      };
      // A semaphore is refused only while the owner may be live: a dead one is removed as a reader would.
      const v =
        "permits" in kind
          ? judgeOf.foreign(`o:${record.owner}`, record.owner, e, arrivedAt)
          : judgeOf.verdict(`o:${record.owner}`, record.owner, e, arrivedAt);
      if (v === "live") throw mismatch(id, stored, undefined);
      if (!v.stale) return { write: false, staleInMs: v.staleInMs };
      return {
        write: false,
        staleInMs: 0,
        send: evictOwnerRequest(schema, id, { owner: record.owner, version: record.version }),
      };
    }
    if (holders === undefined) return { write: true, create: true, blind: true };
    if (holders.size > 0 && record.kind !== stored) {
      // Holders of another kind: refused while any may be live; dead ones are reclaimed, each at
      // its exact version, and then the id may be used another way (docs/protocol.md).
      const f = judgeForeign(judgeOf, holders, arrivedAt);
      if (f === "live") throw mismatch(id, stored, record.kind);
      if ("stale" in f) {
        return {
          write: false,
          staleInMs: 0,
          send: removeEntryRequest(schema, id, f.stale.token, f.stale.version),
        };
      }
      return { write: false, staleInMs: f.staleInMs };
    }
    let staleIntent: { token: string; version: number } | undefined;
    if ("shared" in kind && record.intent !== undefined && knobs?.sharedIgnoresIntent !== true) {
      const v = judgeOf.verdict(`i:${record.intent.token}`, record.intent.token, record.intent, arrivedAt);
      if (!v.stale) return { write: false, staleInMs: v.staleInMs };
      staleIntent = { token: record.intent.token, version: record.intent.version };
    }
    const cap = "permits" in kind ? kind.permits : MAX_SHARED_HOLDERS;
    if (holders.size < cap && !full) return { write: true, create: false, staleIntent };
    let staleInMs = Number.POSITIVE_INFINITY;
    for (const [token, e] of holders) {
      const v = judgeOf.verdict(`e:${token}`, token, e, arrivedAt);
      if (v.stale) return { write: true, create: false, stale: { token, version: e.version }, staleIntent };
      staleInMs = Math.min(staleInMs, v.staleInMs);
    }
    return { write: false, staleInMs };
  };

  let plan: Plan = { write: true, create: false, blind: true };
  /** Blind writes past the deadline: bounded too, should the item keep vanishing under us. */
  let blindWrites = 0;
  for (;;) {
    if (plan.write) {
      const sentAt = runtime.monotonicNow();
      if (sentAt >= deadline && (plan.blind === true ? ++blindWrites > 4 : ++lateWrites > 2)) {
        giveUp(ctx.heldError(id, lastSeen, sentAt - started));
      }
      const token = runtime.token();
      written.add(token);
      let record: LockRecord | undefined;
      try {
        const input = takeRequest(schema, id, {
          token,
          holder,
          leaseMs,
          wallNow: runtime.wallNow(),
          kind,
          create: plan.create,
          stale: plan.stale,
          staleIntent: plan.staleIntent,
          knobs,
        });
        const out = await bounded((abortSignal) =>
          ctx.client.send(new UpdateItemCommand(input), { abortSignal }),
        );
        const acquired = parseRecord(out.Attributes);
        const entry = acquired?.holders?.get(token);
        if (acquired === undefined || entry === undefined) {
          unanswered.add(token);
          throw new LockError(`Acquire of "${id}" returned no entry`, { code: "EDYNAMODB", lockId: id });
        }
        const closed = ctx.closed();
        if (closed !== undefined) {
          unanswered.add(token);
          giveUp(signal.aborted ? signal.reason : closed);
        }
        if (runtime.monotonicNow() < holderValidUntil(sentAt, leaseMs, clockDrift)) {
          return ctx.adopt<L>(token, { ...acquired, version: entry.version }, sentAt);
        }
        // Came back after its lease: nobody may rely on it. Give the entry back and write again.
        await sideWrite(removeEntryRequest(schema, id, token));
        plan = { write: true, create: false };
        continue;
      } catch (err) {
        if (!isConditionFailed(err) && (mayHaveBeenApplied(err) || signal.aborted)) unanswered.add(token);
        if (signal.aborted) giveUp(signal.reason);
        if (isItemTooLarge(err)) {
          // Refused, not applied: nothing of ours is in. Wait for room (the holders already in).
          full = true;
          plan = decideOrGiveUp(await look(pollRequest(schema, id)));
          full = false;
          continue;
        }
        if (!isConditionFailed(err)) {
          if (err instanceof LockError || !isRetryable(err) || runtime.monotonicNow() >= deadline) {
            giveUp(await ctx.translate(err, `Acquiring lock "${id}" failed`, id, signal));
          }
          await backOff();
          // Unknown outcome: look before writing again, so an entry of ours that did land is seen.
          plan = decideOrGiveUp(await look(pollRequest(schema, id)));
          continue;
        }
        record = parseRecord(oldItemOf(err));
        if (record === undefined) record = await look(pollRequest(schema, id));
      }
      plan = decideOrGiveUp(record);
      continue;
    }
    if (plan.send !== undefined) {
      await sideWrite(plan.send);
      plan = decideOrGiveUp(await look(pollRequest(schema, id)));
      continue;
    }
    const arrivedAt = runtime.monotonicNow();
    const remaining = deadline - arrivedAt;
    if (remaining <= 0) giveUp(ctx.heldError(id, lastSeen, arrivedAt - started));
    const delay = waitBeforeNextPoll(nextBackoffMs(), plan.staleInMs, remaining);
    if (onWait !== undefined) {
      // As the mutex's wait (client.ts): a throw ends the wait, a rejection too, never unhandled.
      let result: unknown;
      try {
        result = onWait({
          lockId: id,
          holder: lastSeen?.holder,
          fence: lastSeen?.fence ?? 0,
          heartbeatAt: lastSeen?.heartbeatAt,
          leaseMs: lastSeen?.leaseMs,
          waitedMs: arrivedAt - started,
          nextLookInMs: delay,
        });
      } catch (err) {
        giveUp(err);
      }
      if (typeof (result as PromiseLike<unknown> | undefined)?.then === "function") {
        (result as PromiseLike<unknown>).then(undefined, (err: unknown) => stop.abort(err));
      }
    }
    await sleep(runtime, delay, signal).catch(giveUp);
    plan = decideOrGiveUp(await look(pollRequest(schema, id)));
  }

  function decideOrGiveUp(record: LockRecord | undefined): Plan {
    lastSeen = record;
    try {
      return decide(record, runtime.monotonicNow());
    } catch (err) {
      return giveUp(err);
    }
  }
}

/**
 * The exclusive side of a reader–writer lock, for the mutex's acquire loop (client.ts): refuses an
 * id used as a semaphore, records this writer's intent while others are in (so no new reader comes
 * in, and the wait behind the readers already in is bounded by their hold), and reclaims stale
 * shared entries, each at the exact version judged. Ids never used in shared mode cost nothing.
 */
export class ExclusiveWait {
  readonly #ctx: MultiContext;
  readonly #id: string;
  readonly #judge: Judge;
  /** Drawn at the first intent write: acquires of ids never used in shared mode draw nothing. */
  #token: string | undefined;
  #version = 0;
  #refreshedAt = Number.NEGATIVE_INFINITY;
  /** Refreshes that failed in a row since the last that went through: the retry backs off. */
  #refreshFailures = 0;
  #withdrawn = false;

  constructor(ctx: MultiContext, id: string) {
    this.#ctx = ctx;
    this.#id = id;
    this.#judge = new Judge(ctx.options, ctx.options.knobs?.takeoverEarlyMs ?? 0);
  }

  /**
   * Looks at a record the mutex loop saw. Undefined: nothing here for us (the mutex loop goes on
   * as before). A number: shared holders are in; look again within that many ms.
   */
  async step(
    record: LockRecord | undefined,
    arrivedAt: number,
    signal: AbortSignal,
    /** The acquire will wait: a try that gives up at once records no intent. */
    willWait: boolean,
  ): Promise<number | undefined> {
    if (record === undefined) return undefined;
    const holders = record.holders;
    const count = holders?.size ?? 0;
    if (holders !== undefined && count > 0 && record.kind !== "shared") {
      // Permit holders: refused while any may be live; dead ones are reclaimed at their exact version.
      const f = judgeForeign(this.#judge, holders, arrivedAt);
      if (f === "live") throw mismatch(this.#id, undefined, record.kind);
      if (!("stale" in f)) return f.staleInMs;
      const { schema } = this.#ctx.options;
      const sent = await this.#send(
        removeEntryRequest(schema, this.#id, f.stale.token, f.stale.version),
        signal,
      );
      return sent ? 0 : Number.POSITIVE_INFINITY;
    }
    if (record.kind !== "shared") return undefined;
    if (record.owner === undefined && count === 0) return undefined;
    if (willWait) await this.#intend(record, arrivedAt, signal);
    if (record.owner !== undefined || holders === undefined) return undefined;
    let staleIn = Number.POSITIVE_INFINITY;
    for (const [token, e] of holders) {
      const v = this.#judge.verdict(`e:${token}`, token, e, arrivedAt);
      if (!v.stale) {
        staleIn = Math.min(staleIn, v.staleInMs);
        continue;
      }
      const exact = this.#ctx.options.knobs?.evictIgnoresVersion === true ? undefined : e.version;
      // Look again at once only after a reclaim went through: a throttled one waits its backoff.
      if (await this.#send(removeEntryRequest(this.#ctx.options.schema, this.#id, token, exact), signal)) {
        staleIn = 0;
      }
    }
    return staleIn;
  }

  /**
   * How long the writer may sleep before its intent needs a refresh (Infinity without one): the
   * intent lives by its lease, so a waiting writer's sleep is capped by this, not only by the poll
   * settings (a poll interval may be longer than a lease). A refresh that failed is due again
   * after the poll backoff of its failures in a row (capped by a heartbeat interval): a throttled
   * item is not written every `pollMinMs`.
   */
  refreshDueInMs(now: number): number {
    if (this.#version === 0 || this.#withdrawn || !Number.isFinite(this.#refreshedAt)) {
      return Number.POSITIVE_INFINITY;
    }
    const { heartbeatMs, poll } = this.#ctx.options;
    const due = heartbeatMs - (now - this.#refreshedAt);
    if (due > 0) return due;
    const backoff = backoffDelay(
      Math.max(0, this.#refreshFailures - 1),
      poll,
      this.#ctx.options.runtime.random(),
    );
    return Math.min(backoff, heartbeatMs);
  }

  /** Withdraws our intent (the acquire gave up), best effort. */
  withdraw(): void {
    if (this.#version === 0 || this.#token === undefined || this.#withdrawn) return;
    this.#withdrawn = true;
    this.#ctx.cleanUp(withdrawIntentRequest(this.#ctx.options.schema, this.#id, this.#token));
  }

  /**
   * The writer is in: its intent, if it recorded one, goes (conditioned on its own token, so no
   * other writer's). Another writer's acquisition never removes it (src/requests.ts): only the
   * writer itself ends its wait. One request, only for writers that waited behind readers.
   */
  adopted(): void {
    this.withdraw();
  }

  async #intend(record: LockRecord, arrivedAt: number, signal: AbortSignal): Promise<void> {
    const { runtime, schema, holder, leaseMs, heartbeatMs } = this.#ctx.options;
    const intent = record.intent;
    let stale: { token: string; version: number } | undefined;
    if (intent !== undefined && intent.token !== this.#token) {
      // Another writer waits: its intent already holds readers back. Replace it only once stale.
      const v = this.#judge.verdict(`i:${intent.token}`, intent.token, intent, arrivedAt);
      if (!v.stale) return;
      stale = { token: intent.token, version: intent.version };
    } else if (intent !== undefined && arrivedAt - this.#refreshedAt < heartbeatMs) return;
    const sentAt = runtime.monotonicNow();
    const version = this.#version + 1;
    this.#token ??= runtime.token();
    const input = intentRequest(schema, this.#id, {
      token: this.#token,
      version,
      holder,
      leaseMs,
      wallNow: runtime.wallNow(),
      stale,
      // A refresh of the intent we saw in: conditioned on it still being there, so a refresh that
      // the network delivers late, after our withdraw, cannot put the intent back.
      refresh: intent !== undefined && intent.token === this.#token,
    });
    // Counted whether or not the write is answered: a (token, version) pair is never written twice.
    this.#version = version;
    if (await this.#send(input, signal)) {
      this.#refreshedAt = sentAt;
      this.#refreshFailures = 0;
    } else this.#refreshFailures++;
  }

  /** A conditional write: true if applied; a failed condition only means the item moved on. */
  async #send(input: UpdateItemCommandInput, signal: AbortSignal): Promise<boolean> {
    const { runtime, leaseMs } = this.#ctx.options;
    const cutOff = deadlineSignal(runtime, leaseMs, signal, () => new Error("no answer"));
    try {
      await this.#ctx.client.send(new UpdateItemCommand(input), { abortSignal: cutOff.signal });
      return true;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (isConditionFailed(err) || isRetryable(err)) return false;
      throw await this.#ctx.translate(err, `Acquiring lock "${this.#id}" failed`, this.#id, signal);
    } finally {
      cutOff.dispose();
    }
  }
}
