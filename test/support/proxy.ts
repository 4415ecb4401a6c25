/**
 * A wire-level fault proxy: an HTTP server on 127.0.0.1 that sits between a real SDK client and a
 * real DynamoDB-compatible server and decides, request by request, what happens on the wire. Unlike
 * test/support/faults.ts (which decides what the caller hears inside the SDK), everything here goes
 * through the SDK's own retries, time-outs, connection pool and parser, so the tests see what users
 * run.
 *
 * Faults (switchable while running, by rate or queued for the next requests):
 *
 * - latency and jitter before a request is forwarded;
 * - `resetBefore`: the connection is reset (RST) once the request has arrived, and nothing is forwarded;
 * - `resetAfter`: the request is applied by the server, then the connection is reset instead of answering;
 * - `blackhole`: the request is accepted and never answered nor forwarded (a partition);
 * - `lateReply`: the request is applied, and its answer held for `lateReplyMs` (past the client's
 *   time-out, so the write is ambiguous), then delivered if anyone is still listening;
 * - `http500`: the request is applied, and the answer replaced by DynamoDB's InternalServerError (a
 *   500 from DynamoDB may have been applied, so the proxy makes it so);
 * - `http503`: ServiceUnavailable, not applied;
 * - `throughputExceeded` / `throttling`: DynamoDB's 400 ProvisionedThroughputExceededException and
 *   ThrottlingException answers, not applied.
 *
 * Bounded: request bodies over `maxBodyBytes` are refused, at most `maxHeld` connections are held
 * (black-holed or late) at once, nothing is held longer than `maxHoldMs`, the request log is a ring,
 * and close() destroys every socket and timer it made.
 */
import { randomUUID } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Random } from "./random.js";

export const FAULT_KINDS = [
  "resetBefore",
  "resetAfter",
  "blackhole",
  "lateReply",
  "http500",
  "http503",
  "throughputExceeded",
  "throttling",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What a request does, read from its operation and expression (as test/support/faults.ts does). */
export type RequestKind = "acquire" | "renew" | "release" | "read" | "transact" | "other";

export interface ProxiedRequest {
  /** e.g. `UpdateItem`, from the X-Amz-Target header. */
  readonly operation: string;
  readonly kind: RequestKind;
  readonly body: Record<string, unknown>;
}

export interface FaultPlan {
  /** Added before forwarding, in ms. */
  readonly latencyMs?: number;
  /** A uniform extra delay in [0, jitterMs). */
  readonly jitterMs?: number;
  /** Probability of each fault per request (their sum at most 1). */
  readonly rates?: Partial<Record<FaultKind, number>>;
  /** Only requests this returns true for are faulted (latency applies to all). */
  readonly only?: (request: ProxiedRequest) => boolean;
}

export interface ProxyLogEntry {
  readonly operation: string;
  readonly kind: RequestKind;
  readonly fault: FaultKind | "none";
  /** process.hrtime.bigint() when the whole request had arrived. */
  readonly at: bigint;
  /** The sender's process.hrtime.bigint() when it sent this attempt, if it stamped one (SENT_AT_HEADER). */
  readonly sentAt: bigint | undefined;
}

/** A header a test client may stamp on each attempt (see stampAttempts), read into the log. */
export const SENT_AT_HEADER = "x-dynamolock-test-sent-at";

export interface ProxyOptions {
  readonly seed?: number;
  /** How long a `lateReply` answer is held. @default 2_000 */
  readonly lateReplyMs?: number;
  /** Upper bound on holding anything (a black-holed or late request). @default 60_000 */
  readonly maxHoldMs?: number;
  readonly maxHeld?: number;
  readonly maxBodyBytes?: number;
  /** Entries kept in `log`. @default 10_000 */
  readonly maxLog?: number;
}

const TARGET = /^DynamoDB_\d+\.(\w+)$/;

function kindOf(operation: string, body: Record<string, unknown>): RequestKind {
  if (operation === "GetItem") return "read";
  if (operation === "TransactWriteItems") return "transact";
  if (operation !== "UpdateItem") return "other";
  const update = typeof body.UpdateExpression === "string" ? body.UpdateExpression : "";
  if (update.startsWith("SET #owner")) return "acquire";
  if (update.startsWith("SET #version")) return "renew";
  if (update.startsWith("REMOVE")) return "release";
  return "other";
}

/** The answers DynamoDB sends for these errors (awsJson1_0: the type in `__type` and the header). */
function errorAnswer(kind: FaultKind): { status: number; type: string; body: Record<string, string> } {
  switch (kind) {
    case "http500":
      return {
        status: 500,
        type: "InternalServerError",
        body: {
          __type: "com.amazonaws.dynamodb.v20120810#InternalServerError",
          message: "Internal server error",
        },
      };
    case "http503":
      return {
        status: 503,
        type: "ServiceUnavailable",
        body: { __type: "com.amazon.coral.availability#ServiceUnavailable", message: "Service unavailable" },
      };
    case "throughputExceeded":
      return {
        status: 400,
        type: "ProvisionedThroughputExceededException",
        body: {
          __type: "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
          message:
            "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
        },
      };
    default:
      return {
        status: 400,
        type: "ThrottlingException",
        body: {
          __type: "com.amazon.coral.availability#ThrottlingException",
          message: "Rate of requests exceeds the allowed throughput.",
        },
      };
  }
}

export class FaultProxy {
  readonly endpoint: string;
  /** Requests by the fault they met (`forwarded`: none). */
  readonly counts: Record<FaultKind | "forwarded", number>;
  readonly log: ProxyLogEntry[] = [];

  readonly #server: http.Server;
  readonly #upstream: URL;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  readonly #random: Random;
  readonly #options: Required<Omit<ProxyOptions, "seed">>;
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #plan: FaultPlan = {};
  #queued: { kind: FaultKind; count: number; only: ((r: ProxiedRequest) => boolean) | undefined }[] = [];
  #held = 0;
  #closing: Promise<void> | undefined;

  private constructor(server: http.Server, upstream: string, options: ProxyOptions) {
    this.#server = server;
    this.#upstream = new URL(upstream);
    this.#random = new Random(options.seed ?? 1);
    this.#options = {
      lateReplyMs: options.lateReplyMs ?? 2_000,
      maxHoldMs: options.maxHoldMs ?? 60_000,
      maxHeld: options.maxHeld ?? 256,
      maxBodyBytes: options.maxBodyBytes ?? 4 * 1024 * 1024,
      maxLog: options.maxLog ?? 10_000,
    };
    this.counts = Object.fromEntries([...FAULT_KINDS, "forwarded"].map((k) => [k, 0])) as Record<
      FaultKind | "forwarded",
      number
    >;
    const { port } = server.address() as AddressInfo;
    this.endpoint = `http://127.0.0.1:${port}`;
  }

  /** Starts a proxy on 127.0.0.1 (a free port) in front of `upstream` (which must be on 127.0.0.1). */
  static async start(upstream: string, options: ProxyOptions = {}): Promise<FaultProxy> {
    const host = new URL(upstream).hostname;
    if (host !== "127.0.0.1" && host !== "localhost") {
      throw new Error(`The fault proxy only forwards to 127.0.0.1, not ${host}`);
    }
    const server = http.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    const proxy = new FaultProxy(server, upstream, options);
    server.on("connection", (socket: Socket) => {
      proxy.#sockets.add(socket);
      socket.once("close", () => proxy.#sockets.delete(socket));
      // A reset or a client giving up makes the socket error; that is the point, not a failure.
      socket.on("error", () => undefined);
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => proxy.#handle(req, res));
    return proxy;
  }

  /** Replaces the fault plan (latency, jitter, rates) for the requests that arrive from now on. */
  set(plan: FaultPlan): void {
    this.#plan = plan;
  }

  /** No faults, no latency; queued faults are dropped. Held requests stay held until their time. */
  clear(): void {
    this.#plan = {};
    this.#queued = [];
  }

  /** The next `count` requests (of those `only` accepts) meet `kind`, before any rate applies. */
  next(kind: FaultKind, count = 1, only?: (request: ProxiedRequest) => boolean): void {
    this.#queued.push({ kind, count, only });
  }

  /** A partition: every request from now on is accepted and never answered, until clear(). */
  partition(): void {
    this.set({ rates: { blackhole: 1 } });
  }

  /** Requests of the log, filtered. */
  requests(filter: (entry: ProxyLogEntry) => boolean = () => true): ProxyLogEntry[] {
    return this.log.filter(filter);
  }

  #choose(request: ProxiedRequest): FaultKind | "none" {
    for (const queued of this.#queued) {
      if (queued.count > 0 && (queued.only === undefined || queued.only(request))) {
        queued.count--;
        this.#queued = this.#queued.filter((q) => q.count > 0);
        return queued.kind;
      }
    }
    const { rates, only } = this.#plan;
    if (rates === undefined || (only !== undefined && !only(request))) return "none";
    let x = this.#random.next();
    for (const kind of FAULT_KINDS) {
      const p = rates[kind] ?? 0;
      if (x < p) return kind;
      x -= p;
    }
    return "none";
  }

  #delay(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      this.#timers.add(timer);
    });
  }

  /** Holds a connection (never answering), for at most maxHoldMs; then resets it. */
  #hold(socket: Socket, ms: number): Promise<boolean> {
    this.#held++;
    return new Promise<boolean>((resolve) => {
      const done = (open: boolean) => {
        clearTimeout(timer);
        this.#timers.delete(timer);
        socket.off("close", onClose);
        this.#held--;
        resolve(open);
      };
      const onClose = () => done(false);
      const timer = setTimeout(() => done(!socket.destroyed), Math.min(ms, this.#options.maxHoldMs));
      this.#timers.add(timer);
      socket.once("close", onClose);
    });
  }

  #reset(socket: Socket): void {
    // resetAndDestroy sends a TCP RST (ECONNRESET for the client), as a dropped middlebox would.
    if (typeof socket.resetAndDestroy === "function" && !socket.destroyed) socket.resetAndDestroy();
    else socket.destroy();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const socket = req.socket;
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > this.#options.maxBodyBytes) {
          this.#reset(socket);
          return;
        }
        chunks.push(chunk);
      }
      const raw = Buffer.concat(chunks);
      const operation = TARGET.exec(String(req.headers["x-amz-target"] ?? ""))?.[1] ?? "unknown";
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(raw.toString("utf8") || "{}") as Record<string, unknown>;
      } catch {
        // Not JSON: forwarded as is, classified as "other".
      }
      const request: ProxiedRequest = { operation, kind: kindOf(operation, body), body };
      const fault = this.#closing === undefined ? this.#choose(request) : "resetBefore";
      const stamp = req.headers[SENT_AT_HEADER];
      const sentAt = typeof stamp === "string" && /^\d+$/.test(stamp) ? BigInt(stamp) : undefined;
      this.log.push({ operation, kind: request.kind, fault, at: process.hrtime.bigint(), sentAt });
      if (this.log.length > this.#options.maxLog) this.log.splice(0, this.log.length - this.#options.maxLog);
      this.counts[fault === "none" ? "forwarded" : fault]++;

      const { latencyMs = 0, jitterMs = 0 } = this.#plan;
      await this.#delay(latencyMs + (jitterMs > 0 ? this.#random.next() * jitterMs : 0));
      if (socket.destroyed) return;

      switch (fault) {
        case "resetBefore":
          this.#reset(socket);
          return;
        case "blackhole":
          if (this.#held >= this.#options.maxHeld) this.#reset(socket);
          else if (await this.#hold(socket, this.#options.maxHoldMs)) this.#reset(socket);
          return;
        case "http503":
        case "throughputExceeded":
        case "throttling":
          this.#answer(res, fault);
          return;
      }
      const answer = await this.#forward(req, raw);
      if (socket.destroyed) return;
      if (fault === "resetAfter") {
        this.#reset(socket);
        return;
      }
      if (fault === "http500") {
        this.#answer(res, fault);
        return;
      }
      if (fault === "lateReply") {
        if (this.#held >= this.#options.maxHeld) {
          this.#reset(socket);
          return;
        }
        if (!(await this.#hold(socket, this.#options.lateReplyMs))) return;
      }
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
    } catch {
      // The upstream failed (a server stopping under us): the client sees a reset, as it would.
      this.#reset(socket);
    }
  }

  #answer(res: ServerResponse, kind: FaultKind): void {
    const { status, type, body } = errorAnswer(kind);
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/x-amz-json-1.0",
      "x-amzn-errortype": `${type}:`,
      "x-amzn-requestid": randomUUID(),
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
  }

  #forward(
    req: IncomingMessage,
    body: Buffer,
  ): Promise<{ status: number; headers: http.OutgoingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const headers = { ...req.headers };
      delete headers.connection;
      delete headers[SENT_AT_HEADER];
      const upstream = http.request(
        {
          host: this.#upstream.hostname,
          port: this.#upstream.port,
          method: req.method,
          path: req.url,
          headers,
          agent: this.#agent,
        },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on("data", (c: Buffer) => chunks.push(c));
          answer.once("error", reject);
          answer.once("end", () => {
            const out = { ...answer.headers };
            delete out.connection;
            delete out["keep-alive"];
            delete out["transfer-encoding"];
            const data = Buffer.concat(chunks);
            out["content-length"] = String(data.length);
            resolve({ status: answer.statusCode ?? 502, headers: out, body: data });
          });
        },
      );
      upstream.once("error", reject);
      upstream.end(body);
    });
  }

  /** Stops listening, resets every connection, clears every timer. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      for (const timer of this.#timers) clearTimeout(timer);
      this.#timers.clear();
      this.#server.close(() => {
        this.#agent.destroy();
        resolve();
      });
      for (const socket of this.#sockets) socket.destroy();
      this.#server.closeAllConnections();
    });
    return this.#closing;
  }
}

/**
 * Stamps every attempt a client sends (the SDK's own retries included: this runs inside its retry
 * step) with the sender's monotonic time, so a test can tell when an attempt that reached the wire
 * was sent, exactly.
 */
export function stampAttempts(client: { middlewareStack: { add: (...args: never[]) => unknown } }): void {
  const add = client.middlewareStack.add as (
    mw: (next: (a: unknown) => Promise<unknown>) => (a: unknown) => Promise<unknown>,
    o: { step: string; name: string },
  ) => void;
  add(
    (next) => async (args) => {
      const request = (args as { request?: { headers?: Record<string, string> } }).request;
      if (request?.headers !== undefined) request.headers[SENT_AT_HEADER] = String(process.hrtime.bigint());
      return next(args);
    },
    { step: "finalizeRequest", name: "dynamolockTestSentAt" },
  );
}
