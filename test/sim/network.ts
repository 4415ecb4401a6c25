/**
 * The simulated network between each process and the store, and the DynamoDB client each process's
 * lock code talks through.
 *
 * A request leaves when the process sends it, may be lost, delayed (with rare long spikes),
 * duplicated (sometimes very late: a retried request overtaken by its original), refused by the
 * server (throttling), or fail with a server error after or before being applied. The reply may be
 * lost or delayed too. Partitions drop whatever crosses them. Every ambiguous case the lock must
 * survive — applied but never acknowledged — comes out of these.
 *
 * The client mimics the SDK: each attempt has a time-out (`requestTimeoutMs`), retryable failures
 * are retried a few times with a short backoff (`sdkMaxAttempts`), and the caller's abortSignal turns
 * a request in flight into a rejection (an AbortError) at once.
 */
import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import type { DynamoDBSender } from "../../src/aws.js";
import { FIELD } from "../../src/item.js";
import type { SimProcess } from "./process.js";
import type { Random } from "./random.js";
import type { Scheduler } from "./scheduler.js";
import { ServiceError, type Store } from "./store.js";

export interface NetworkSettings {
  /** One-way delay, uniform in [min, max] ms. */
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  /** Chance of a much longer delay (up to spikeMaxMs). */
  readonly spikeChance: number;
  readonly spikeMaxMs: number;
  readonly requestLoss: number;
  readonly replyLoss: number;
  /** Chance a request is delivered twice; the copy may be `late` (up to lateDuplicateMaxMs). */
  readonly duplicateChance: number;
  readonly lateDuplicateChance: number;
  readonly lateDuplicateMaxMs: number;
  /** Server refuses without applying (ProvisionedThroughputExceededException). */
  readonly throttleChance: number;
  /**
   * Server refuses without applying, in a way retrying cannot fix (AccessDeniedException: an IAM
   * change, say). Optional: 0 unless a profile sets it.
   */
  readonly refuseChance?: number;
  /** Server answers 500, having applied the request or not (half each). */
  readonly serverErrorChance: number;
  /** The SDK's per-attempt time-out (Infinity: none). */
  readonly requestTimeoutMs: number;
  /** The SDK's attempts per call, retries of retryable failures included (1: no retries). */
  readonly sdkMaxAttempts: number;
}

export const QUIET_NETWORK: NetworkSettings = {
  minDelayMs: 0,
  maxDelayMs: 5,
  spikeChance: 0,
  spikeMaxMs: 0,
  requestLoss: 0,
  replyLoss: 0,
  duplicateChance: 0,
  lateDuplicateChance: 0,
  lateDuplicateMaxMs: 0,
  throttleChance: 0,
  serverErrorChance: 0,
  requestTimeoutMs: Number.POSITIVE_INFINITY,
  sdkMaxAttempts: 1,
};

export interface Partition {
  readonly process: number;
  readonly from: number;
  readonly to: number;
}

export interface NetworkStats {
  requests: number;
  attempts: number;
  requestsLost: number;
  repliesLost: number;
  duplicates: number;
  lateDuplicates: number;
  spikes: number;
  throttled: number;
  serverErrors: number;
  appliedThenFailed: number;
  timeouts: number;
  aborts: number;
  partitioned: number;
  /** Requests replayed by ghost faults, and how many of them the store applied. */
  ghostRequests: number;
  ghostApplied: number;
  refused: number;
}

export const emptyNetworkStats = (): NetworkStats => ({
  requests: 0,
  attempts: 0,
  requestsLost: 0,
  repliesLost: 0,
  duplicates: 0,
  lateDuplicates: 0,
  spikes: 0,
  throttled: 0,
  serverErrors: 0,
  appliedThenFailed: 0,
  timeouts: 0,
  aborts: 0,
  partitioned: 0,
  ghostRequests: 0,
  ghostApplied: 0,
  refused: 0,
});

type Operation = "GetItem" | "UpdateItem" | "PutItem" | "DeleteItem" | "TransactWriteItems";

type Outcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: unknown };

function operationOf(command: unknown): Operation | undefined {
  if (command instanceof UpdateItemCommand) return "UpdateItem";
  if (command instanceof GetItemCommand) return "GetItem";
  if (command instanceof PutItemCommand) return "PutItem";
  if (command instanceof DeleteItemCommand) return "DeleteItem";
  if (command instanceof TransactWriteItemsCommand) return "TransactWriteItems";
  return undefined;
}

function namedError(name: string, message: string): Error {
  const err = new Error(message);
  err.name = name;
  return err;
}

/** The SDK's view of what is worth another attempt: throttling, 5xx, time-outs. */
function sdkRetryable(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  if (e.name === "TimeoutError" || e.name === "ProvisionedThroughputExceededException") return true;
  return (e.$metadata?.httpStatusCode ?? 0) >= 500;
}

/** A request as one acquisition sent it, kept so a ghost can replay it. */
interface SentRequest {
  readonly operation: Operation;
  readonly input: unknown;
  readonly label: string;
  /** The acquire that installs the token (the first request of a token, save for a reused one). */
  readonly acquire: boolean;
}

interface SentByToken {
  readonly token: string;
  readonly process: number;
  readonly key: string;
  readonly requests: SentRequest[];
}

type Values = Record<string, { S?: string }> | undefined;

/** The owner token a lock request acts for, and the lock item it targets; undefined for the rest. */
function tokenOf(operation: Operation, input: unknown): { token: string; key: string } | undefined {
  if (operation === "UpdateItem") {
    const i = input as { Key?: unknown; ExpressionAttributeValues?: Values };
    const token = i.ExpressionAttributeValues?.[":owner"]?.S;
    if (token === undefined) return undefined;
    // forceRelease writes the marker "force-release" as :owner and names its target: its copies are
    // kept by the target it was aimed at (a ghost replays them as late duplicates).
    const target = i.ExpressionAttributeValues?.[":target"]?.S;
    if (token === "force-release")
      return target === undefined
        ? undefined
        : { token: `force-release of ${target}`, key: JSON.stringify(i.Key) };
    return { token, key: JSON.stringify(i.Key) };
  }
  if (operation === "TransactWriteItems") {
    const items = (
      input as {
        TransactItems?: { ConditionCheck?: { Key?: unknown; ExpressionAttributeValues?: Values } }[];
      }
    ).TransactItems;
    const guard = items?.find((t) => t.ConditionCheck?.ExpressionAttributeValues?.[":owner"] !== undefined);
    const token = guard?.ConditionCheck?.ExpressionAttributeValues?.[":owner"]?.S;
    return token === undefined ? undefined : { token, key: JSON.stringify(guard?.ConditionCheck?.Key) };
  }
  return undefined;
}

export interface Ghost {
  readonly process: number;
  readonly table: string;
  readonly key: Record<string, unknown>;
  readonly pick: number;
  readonly mode: "acquire" | "late" | "afterRelease";
  /** The replayed requests arrive up to this far apart, ms. */
  readonly stepMs: number;
  readonly random: Random;
}

export class Network {
  readonly stats = emptyNetworkStats();
  /** Every lock request sent, by the token it acts for, in send order (for ghosts). */
  readonly #sent = new Map<string, SentByToken>();
  readonly #scheduler: Scheduler;
  readonly #store: Store;
  readonly #settings: NetworkSettings;
  readonly #random: Random;
  readonly #partitions: readonly Partition[];
  readonly #refusals: readonly Partition[];
  /** A line for each request's fate, when tracing. */
  trace: ((line: string) => void) | undefined;

  constructor(options: {
    scheduler: Scheduler;
    store: Store;
    settings: NetworkSettings;
    random: Random;
    partitions: readonly Partition[];
    /** Windows in which the server refuses a process's requests (AccessDenied), as an IAM outage would. */
    refusals?: readonly Partition[];
  }) {
    this.#scheduler = options.scheduler;
    this.#store = options.store;
    this.#settings = options.settings;
    this.#random = options.random;
    this.#partitions = options.partitions;
    this.#refusals = options.refusals ?? [];
  }

  #cut(process: SimProcess, at: number): boolean {
    return this.#partitions.some((p) => p.process === process.index && p.from <= at && at < p.to);
  }

  #delay(): number {
    const s = this.#settings;
    if (this.#random.chance(s.spikeChance)) {
      this.stats.spikes++;
      return this.#random.between(s.maxDelayMs, Math.max(s.maxDelayMs, s.spikeMaxMs));
    }
    return this.#random.between(s.minDelayMs, s.maxDelayMs);
  }

  /** Carries one attempt to the store and its reply back; `onReply` runs in the sender's life, if it gets one. */
  #transmit(
    process: SimProcess,
    operation: Operation,
    input: unknown,
    label: string,
    onReply: (o: Outcome) => void,
  ): void {
    const s = this.#settings;
    const departed = process.now();
    const arrivals: number[] = [];
    if (this.#cut(process, departed)) {
      this.stats.partitioned++;
      this.trace?.(`${label} lost in a partition`);
    } else if (this.#random.chance(s.requestLoss)) {
      this.stats.requestsLost++;
      this.trace?.(`${label} request lost`);
    } else {
      arrivals.push(departed + this.#delay());
    }
    if (this.#random.chance(s.duplicateChance)) {
      this.stats.duplicates++;
      const late = this.#random.chance(s.lateDuplicateChance);
      if (late) this.stats.lateDuplicates++;
      arrivals.push(departed + (late ? this.#random.between(0, s.lateDuplicateMaxMs) : this.#delay()));
    }
    for (const [copy, arrival] of arrivals.entries()) {
      this.#scheduler.at(arrival, () => {
        const what = copy === 0 ? label : `${label} (duplicate)`;
        if (this.#cut(process, arrival)) {
          this.stats.partitioned++;
          this.trace?.(`${what} dropped at the partition`);
          return;
        }
        const refused = this.#refusals.some(
          (r) => r.process === process.index && r.from <= arrival && arrival < r.to,
        );
        const outcome = this.#serve(operation, input, refused);
        this.trace?.(`${what} at store: ${describeOutcome(outcome)}`);
        const replyAt = this.#scheduler.now + this.#delay();
        if (this.#cut(process, this.#scheduler.now) || this.#cut(process, replyAt)) {
          this.stats.partitioned++;
          return;
        }
        if (this.#random.chance(s.replyLoss)) {
          this.stats.repliesLost++;
          this.trace?.(`${what} reply lost`);
          return;
        }
        process.at(replyAt, () => onReply(outcome));
      });
    }
  }

  #serve(operation: Operation, input: unknown, refused = false): Outcome {
    const s = this.#settings;
    // Drawn only where refusals are on, so that other runs keep their random streams.
    if (refused || ((s.refuseChance ?? 0) > 0 && this.#random.chance(s.refuseChance ?? 0))) {
      this.stats.refused++;
      return {
        ok: false,
        error: new ServiceError("AccessDeniedException", "Access denied (simulated, not applied)", 400),
      };
    }
    if (this.#random.chance(s.throttleChance)) {
      this.stats.throttled++;
      return {
        ok: false,
        error: new ServiceError(
          "ProvisionedThroughputExceededException",
          "Throughput exceeded (simulated)",
          400,
        ),
      };
    }
    const failAfter = this.#random.chance(s.serverErrorChance) ? this.#random.chance(0.5) : undefined;
    if (failAfter === false) {
      this.stats.serverErrors++;
      return {
        ok: false,
        error: new ServiceError("InternalServerError", "Internal server error (simulated, not applied)", 500),
      };
    }
    let outcome: Outcome;
    try {
      outcome = {
        ok: true,
        value: { ...(this.#apply(operation, input) as object), $metadata: { httpStatusCode: 200 } },
      };
    } catch (error) {
      outcome = { ok: false, error };
    }
    if (failAfter === true) {
      this.stats.serverErrors++;
      this.stats.appliedThenFailed++;
      return {
        ok: false,
        error: new ServiceError(
          "InternalServerError",
          "Internal server error (simulated, after applying)",
          500,
        ),
      };
    }
    return outcome;
  }

  #apply(operation: Operation, input: unknown): unknown {
    const store = this.#store;
    switch (operation) {
      case "GetItem":
        return store.getItem(input as Parameters<Store["getItem"]>[0]);
      case "UpdateItem":
        return store.updateItem(input as Parameters<Store["updateItem"]>[0]);
      case "PutItem":
        return store.putItem(input as Parameters<Store["putItem"]>[0]);
      case "DeleteItem":
        return store.deleteItem(input as Parameters<Store["deleteItem"]>[0]);
      case "TransactWriteItems":
        return store.transactWriteItems(input as Parameters<Store["transactWriteItems"]>[0]);
    }
  }

  /** Ghosts waiting for the lock to be free (or for a first request to replay). */
  readonly #ghosts = new Set<Ghost>();

  /**
   * A ghost (see the scenario's fault): replays every request one earlier acquisition of `process`
   * sent to the lock item `key`, straight to the store, as very late duplicates. With `withAcquire`,
   * waits for the lock to be free and not that token's, so the replayed acquire can put the old
   * token back; then its later writes follow, a little apart. Waiting is done by watching the
   * store's writes (never by polling, which would keep a finished run going).
   */
  ghost(g: Ghost): void {
    if (!this.#tryGhost(g)) this.#ghosts.add(g);
  }

  /** Called for every write the store applies: a waiting ghost may now find its moment. */
  storeWritten(table: string): void {
    for (const g of this.#ghosts) {
      if (g.table !== table) continue;
      // After the write's own turn, so that the replay is not nested inside it.
      this.#scheduler.at(this.#scheduler.now, () => {
        if (this.#ghosts.has(g) && this.#tryGhost(g)) this.#ghosts.delete(g);
      });
    }
  }

  #tryGhost(o: Ghost): boolean {
    const key = JSON.stringify(o.key);
    const withAcquire = o.mode === "acquire";
    const candidates = [...this.#sent.values()].filter(
      (e) => e.process === o.process && e.key === key && e.requests.length > (withAcquire ? 1 : 0),
    );
    const current = this.#store.getItem({ TableName: o.table, Key: o.key } as never).Item as
      | Record<string, { S?: string }>
      | undefined;
    const owner = current?.[FIELD.owner]?.S;
    if (o.mode !== "late" && owner !== undefined) return false;
    const releasedBy = current?.[FIELD.releasedBy]?.S;
    const pool =
      o.mode === "acquire"
        ? candidates.filter((e) => e.token !== owner)
        : o.mode === "afterRelease"
          ? candidates.filter((e) => e.token === releasedBy)
          : candidates;
    const chosen = pool[Math.floor(o.pick * pool.length)];
    if (chosen === undefined) return false;
    const replay = chosen.requests.filter((r) => withAcquire || !r.acquire);
    // An acquire first (its copies are all alike: one is enough), then everything sent after it.
    const first = replay.findIndex((r) => r.acquire);
    const ordered = withAcquire && first >= 0 ? replay.slice(first) : replay;
    let at = this.#scheduler.now;
    this.trace?.(`ghost of ${chosen.token}: ${ordered.length} requests replayed from now on`);
    for (const r of ordered) {
      this.#scheduler.at(at, () => {
        this.stats.ghostRequests++;
        let outcome: Outcome;
        try {
          outcome = { ok: true, value: this.#apply(r.operation, r.input) };
          this.stats.ghostApplied++;
        } catch (error) {
          outcome = { ok: false, error };
        }
        this.trace?.(`ghost copy of ${r.label} at store: ${describeOutcome(outcome)}`);
      });
      at += o.random.between(0, o.stepMs);
    }
    return true;
  }

  /** The DynamoDB client of one life of `process`. */
  client(process: SimProcess, describe: (operation: string, input: unknown) => string): DynamoDBSender {
    const life = process.incarnation;
    let requests = 0;
    const send = (command: unknown, options?: { abortSignal?: AbortSignal }): Promise<unknown> => {
      const operation = operationOf(command);
      if (operation === undefined) {
        return Promise.reject(
          new Error(`The simulated store does not model ${(command as object)?.constructor?.name}`),
        );
      }
      const signal = options?.abortSignal;
      if (signal?.aborted) return Promise.reject(namedError("AbortError", "Request aborted"));
      // The SDK serialises the input when it sends; later changes by the caller must not leak in.
      const input = structuredClone((command as { input: unknown }).input);
      const label = `${process.name} #${++requests} ${describe(operation, input)}`;
      this.stats.requests++;
      const acting = tokenOf(operation, input);
      if (acting !== undefined) {
        let entry = this.#sent.get(acting.token);
        if (entry === undefined) {
          entry = { token: acting.token, process: process.index, key: acting.key, requests: [] };
          this.#sent.set(acting.token, entry);
        }
        const update = (input as { UpdateExpression?: string }).UpdateExpression ?? "";
        entry.requests.push({ operation, input, label, acquire: update.includes("ADD #fence") });
      }
      return new Promise((resolve, reject) => {
        let settled = false;
        process.inFlight++;
        const finish = (outcome: Outcome) => {
          if (settled) return;
          settled = true;
          if (process.incarnation === life) process.inFlight--;
          signal?.removeEventListener("abort", onAbort);
          const armed = process.pauseAfterHeartbeatMs;
          if (armed !== undefined && outcome.ok && label.includes(" heartbeat(")) {
            // Stops once this turn is over: the holder has taken in the confirmation, then stalls.
            process.pauseAfterHeartbeatMs = undefined;
            process.stall(process.now() + armed);
            this.trace?.(
              `${process.name} stalls for ${armed.toFixed(1)} ms right after its heartbeat's confirmation`,
            );
          }
          if (outcome.ok) resolve(outcome.value);
          else reject(outcome.error);
        };
        const onAbort = () => {
          this.stats.aborts++;
          this.trace?.(`${label} aborted by the caller`);
          finish({ ok: false, error: namedError("AbortError", "Request aborted") });
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        const attempt = (n: number) => {
          if (settled) return;
          this.stats.attempts++;
          let answered = false;
          const s = this.#settings;
          const timeout = Number.isFinite(s.requestTimeoutMs)
            ? process.at(process.now() + s.requestTimeoutMs / process.clock.rate, () => {
                if (answered) return;
                answered = true;
                this.stats.timeouts++;
                this.trace?.(`${label} attempt ${n} timed out`);
                failed(
                  namedError("TimeoutError", `Request timed out after ${s.requestTimeoutMs} ms (simulated)`),
                );
              })
            : undefined;
          const failed = (error: unknown) => {
            if (settled) return;
            if (sdkRetryable(error) && n < s.sdkMaxAttempts) {
              // The SDK's own backoff, on the process's timers.
              const wait = this.#random.between(0, 20 * 2 ** n);
              process.at(process.now() + wait / process.clock.rate, () => attempt(n + 1));
              return;
            }
            // As the SDK does: an error says how many attempts the call made (the lock relies on it
            // to tell a write that certainly did not apply from one an earlier attempt may have).
            const e = error as { $metadata?: Record<string, unknown> };
            if (typeof e === "object" && e !== null) e.$metadata = { ...e.$metadata, attempts: n };
            finish({ ok: false, error });
          };
          this.#transmit(process, operation, input, n === 1 ? label : `${label} retry ${n}`, (outcome) => {
            if (answered || settled) return;
            answered = true;
            timeout?.cancel();
            if (outcome.ok) finish(outcome);
            else failed(outcome.error);
          });
        };
        attempt(1);
      });
    };
    return { send } as unknown as DynamoDBSender;
  }
}

function describeOutcome(o: Outcome): string {
  if (o.ok) return "ok";
  const e = o.error as { name?: string; message?: string };
  return `${e.name ?? "Error"}${e.name === "ValidationException" ? `: ${e.message}` : ""}`;
}
