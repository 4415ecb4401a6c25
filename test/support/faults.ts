/**
 * Fault injection in front of a real client: the requests still reach the real server (or are
 * refused before leaving, as in a partition), but the test decides what the caller hears.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { DynamoDBSender } from "../../src/aws.js";

/** What a request does, read from its shape (see src/requests.ts). */
export type RequestKind = "acquire" | "renew" | "release" | "handoff" | "read" | "other";

interface AnyCommand {
  constructor: { name: string };
  input: { UpdateExpression?: string };
}

export function kindOf(command: AnyCommand): RequestKind {
  const name = command.constructor.name;
  if (name === "GetItemCommand") return "read";
  if (name !== "UpdateItemCommand") return "other";
  const update = command.input.UpdateExpression ?? "";
  // A release that hands the lock to a waiter of the same process (src/hand-off.ts).
  if (update.startsWith("SET #owner = :newOwner")) return "handoff";
  if (update.startsWith("SET #owner")) return "acquire";
  if (update.startsWith("SET #version")) return "renew";
  if (update.startsWith("REMOVE")) return "release";
  return "other";
}

/** A network failure: no HTTP answer, so the SDK and the lock treat it as retryable and ambiguous. */
export function networkError(): Error {
  return Object.assign(new Error("socket hang up (injected)"), { name: "TimeoutError", code: "ECONNRESET" });
}

/** Like the SDK: an aborted request rejects at once, whatever the server did with it. */
function abortable(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return promise;
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(Object.assign(new Error("Request aborted"), { name: "AbortError" }));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, reject);
  });
}

export class FaultyClient {
  /** While true, every request fails before reaching the server. */
  partitioned = false;
  /** While true, requests are swallowed: no answer ever comes, unless the caller aborts. */
  blackholed = false;
  /** Every request that reached the server, by kind, in order. */
  readonly sent: RequestKind[] = [];
  readonly #inner: DynamoDBClient;
  #loseReplies = new Map<RequestKind, number>();
  #refusals = new Map<RequestKind, number>();
  /** Kinds of request swallowed like `blackholed`, the others going through. */
  readonly #blackholedKinds = new Set<RequestKind>();
  #holds = new Map<RequestKind, { reached: () => void; gate: Promise<void> }>();

  constructor(inner: DynamoDBClient) {
    this.#inner = inner;
  }

  /**
   * The next `count` requests of `kind` are sent with an expression placeholder they do not use, so
   * the real server refuses them (a 400 ValidationException, answered and not applied): an error
   * that trying again cannot fix.
   */
  refuse(kind: RequestKind, count = 1): void {
    this.#refusals.set(kind, count);
  }

  /** Requests of `kind` get no answer (until the caller aborts them); others go through. */
  blackhole(kind: RequestKind): void {
    this.#blackholedKinds.add(kind);
  }

  /**
   * The next `count` requests of `kind` are lost on their way (a network error, never applied); they
   * are listed in `dropped`, not in `sent`.
   */
  dropNext(kind: RequestKind, count = 1): void {
    this.#drops.set(kind, count);
  }

  /** Requests `dropNext` lost, by kind, in order. */
  readonly dropped: RequestKind[] = [];
  #drops = new Map<RequestKind, number>();

  /** The next `count` requests of `kind` are applied by the server, but their replies are lost. */
  loseReplies(kind: RequestKind, count = 1): void {
    this.#loseReplies.set(kind, count);
  }

  /**
   * The next request of `kind` is applied, but its reply waits until `deliver()` is called.
   * `reached` resolves once the server has applied it.
   */
  holdReply(kind: RequestKind): { reached: Promise<void>; deliver: () => void } {
    let reached!: () => void;
    let deliver!: () => void;
    const reachedPromise = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const gate = new Promise<void>((resolve) => {
      deliver = resolve;
    });
    this.#holds.set(kind, { reached, gate });
    return { reached: reachedPromise, deliver };
  }

  #inFlight = 0;

  /** Resolves once no request is in flight and none was started by the callbacks that ran meanwhile. */
  async settle(): Promise<void> {
    for (let quiet = 0; quiet < 3; ) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.#inFlight > 0) {
        quiet = 0;
        await new Promise((resolve) => setTimeout(resolve, 1));
      } else quiet++;
    }
  }

  async send(command: AnyCommand, options?: { abortSignal?: AbortSignal }): Promise<unknown> {
    // A swallowed request is not in flight for settle(): nothing will ever come back.
    if (this.blackholed || this.#blackholedKinds.has(kindOf(command)))
      return abortable(new Promise<void>(() => undefined), options?.abortSignal);
    this.#inFlight++;
    try {
      return await this.#send(command, options);
    } finally {
      this.#inFlight--;
    }
  }

  async #send(command: AnyCommand, options?: { abortSignal?: AbortSignal }): Promise<unknown> {
    if (this.partitioned) throw networkError();
    const kind = kindOf(command);
    const drops = this.#drops.get(kind) ?? 0;
    if (drops > 0) {
      this.#drops.set(kind, drops - 1);
      this.dropped.push(kind);
      throw networkError();
    }
    this.sent.push(kind);
    const refusals = this.#refusals.get(kind) ?? 0;
    if (refusals > 0) {
      this.#refusals.set(kind, refusals - 1);
      const input = command.input as { ExpressionAttributeValues?: Record<string, unknown> };
      const Ctor = command.constructor as unknown as new (input: unknown) => AnyCommand;
      command = new Ctor({
        ...input,
        ExpressionAttributeValues: { ...input.ExpressionAttributeValues, ":unused": { S: "x" } },
      });
    }
    const reply = await (this.#inner.send as (c: unknown, o?: unknown) => Promise<unknown>)(command, options);
    const hold = this.#holds.get(kind);
    if (hold !== undefined) {
      this.#holds.delete(kind);
      hold.reached();
      // A held reply is the test's to deliver: it does not count as in flight for settle().
      this.#inFlight--;
      try {
        await abortable(hold.gate, options?.abortSignal);
      } finally {
        this.#inFlight++;
      }
    }
    const lose = this.#loseReplies.get(kind) ?? 0;
    if (lose > 0) {
      this.#loseReplies.set(kind, lose - 1);
      throw networkError();
    }
    return reply;
  }

  get asSender(): DynamoDBSender {
    return this as unknown as DynamoDBSender;
  }
}
