/**
 * The lock over real sockets, through a fault proxy (test/support/proxy.ts) between the real SDK and
 * a real server: the SDK's own retries, time-outs and connection pool are in the loop.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DynamoDBClient, GetItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { isRetryable, mayHaveBeenApplied } from "../src/aws.js";
import { type Lock, LockClient, LockLostError } from "../src/index.js";
import { PROTOCOL_KNOBS } from "../src/options.js";
import { LOCAL_CREDENTIALS } from "../src/testing.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";
import { FAULT_KINDS, type FaultKind, FaultProxy, stampAttempts } from "./support/proxy.js";
import { testSeed } from "./support/random.js";
import { eventually } from "./support/wait.js";
import { check, type FinalState } from "./torture/checker.js";
import {
  type Counter,
  type EndRecord,
  runSection,
  type SectionRecord,
  type StartRecord,
} from "./torture/section.js";

const unhandled: unknown[] = [];
process.on("unhandledRejection", (reason) => unhandled.push(reason));

const seed = testSeed();
let backend: Backend;
let table: string;
let admin: LockClient;
const proxies: FaultProxy[] = [];
const clients: DynamoDBClient[] = [];
const lockClients: LockClient[] = [];

/** The client settings the README recommends: a request time-out that ends the attempt. */
const REQUEST_TIMEOUT_MS = 500;
const LATE_REPLY_MS = 1_000;

before(async () => {
  backend = await startBackend();
  table = uniqueName();
  admin = new LockClient({ table, client: backend.client });
  await admin.createTable();
});

after(async () => {
  for (const locks of lockClients) await locks.close();
  await admin.close();
  for (const client of clients) client.destroy();
  for (const proxy of proxies) await proxy.close();
  await backend.close();
  // Nothing left behind: no socket, server or timer of ours keeps the process alive (the runner's
  // own pipes to this process are the only handles allowed).
  // Closed handles leave the list a few event-loop turns after their close callbacks: look a bounded
  // number of times.
  const ours = () =>
    process
      .getActiveResourcesInfo()
      .filter((r) => !["PipeWrap", "TTYWrap", "FSReqCallback", "CloseReq"].includes(r));
  for (let i = 0; i < 200 && ours().length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  const left = ours();
  assert.deepEqual(left, [], `resources left: ${left.join(", ")}`);
  assert.deepEqual(unhandled, [], "no unhandled rejection");
});

async function proxy(): Promise<FaultProxy> {
  const p = await FaultProxy.start(backend.endpoint, {
    seed: seed + proxies.length,
    lateReplyMs: LATE_REPLY_MS,
    maxHoldMs: 10_000,
  });
  proxies.push(p);
  return p;
}

function clientVia(p: FaultProxy, settings: { maxAttempts?: number; requestHandler?: object } = {}) {
  const client = new DynamoDBClient({
    endpoint: p.endpoint,
    region: "us-east-1",
    credentials: LOCAL_CREDENTIALS,
    requestHandler: { requestTimeout: REQUEST_TIMEOUT_MS, throwOnRequestTimeout: true },
    ...settings,
  });
  stampAttempts(client);
  clients.push(client);
  return client;
}

function locksVia(client: DynamoDBClient, holder: string, leaseMs = 1_500, broken = false): LockClient {
  const locks = new LockClient({
    // A deliberately broken lock, to show the checks can fail: waiters take over at once.
    ...(broken ? { [PROTOCOL_KNOBS]: { takeoverEarlyMs: leaseMs * 10 } } : {}),
    table,
    client,
    leaseMs,
    heartbeatMs: leaseMs / 6,
    holder,
    pollMinMs: 20,
    pollMaxMs: 100,
  });
  lockClients.push(locks);
  return locks;
}

async function finalOf(id: string): Promise<FinalState> {
  const info = await admin.read<Counter>(id);
  return { counter: info?.data?.counter ?? 0, tag: info?.data?.tag ?? null };
}

describe("what the SDK makes of each fault on the wire", () => {
  const expected: Record<FaultKind, { applied: boolean; name?: RegExp }> = {
    resetBefore: { applied: false },
    resetAfter: { applied: true },
    blackhole: { applied: false, name: /TimeoutError/ },
    lateReply: { applied: true, name: /TimeoutError/ },
    http500: { applied: true, name: /InternalServerError/ },
    http503: { applied: false },
    throughputExceeded: { applied: false, name: /ProvisionedThroughputExceededException/ },
    throttling: { applied: false, name: /ThrottlingException/ },
  };
  for (const kind of FAULT_KINDS) {
    it(`${kind}: a retryable error that ${expected[kind].applied ? "was" : "was not"} applied, classified as possibly applied`, async () => {
      const p = await proxy();
      const client = clientVia(p, { maxAttempts: 1 });
      p.next(kind);
      const key = { id: { S: `wire-${kind}` } };
      const err = await client
        .send(
          new UpdateItemCommand({
            TableName: table,
            Key: key,
            UpdateExpression: "SET v = :v",
            ExpressionAttributeValues: { ":v": { S: "written" } },
          }),
        )
        .then(
          () => assert.fail("the fault should have failed the request"),
          (e: unknown) => e as Error,
        );
      if (expected[kind].name) assert.match(err.name, expected[kind].name as RegExp, String(err));
      assert.equal(isRetryable(err), true, `${err.name}: ${err.message}`);
      // A conservative verdict: a reset or a throttle is never promised "not written".
      assert.equal(mayHaveBeenApplied(err), true, `${err.name}: ${err.message}`);
      const got = await backend.client.send(
        new GetItemCommand({ TableName: table, Key: key, ConsistentRead: true }),
      );
      assert.equal(got.Item !== undefined, expected[kind].applied);
    });
  }

  it("the SDK retries throttling on its own, each attempt on the wire (4 attempts by default)", async () => {
    const p = await proxy();
    const defaults = new DynamoDBClient({ region: "us-east-1", credentials: LOCAL_CREDENTIALS });
    assert.equal(await defaults.config.maxAttempts(), 4, "the SDK's default this README was written from");
    const mode = defaults.config.retryMode;
    assert.equal(typeof mode === "string" ? mode : await mode(), "standard");
    defaults.destroy();
    // Three attempts keep the test short: the standard mode backs throttling off for seconds.
    const client = clientVia(p, { maxAttempts: 3 });
    p.next("throughputExceeded", 3);
    const err = await client.send(new GetItemCommand({ TableName: table, Key: { id: { S: "x" } } })).then(
      () => assert.fail("expected throttling"),
      (e: unknown) => e as Error & { $metadata: { attempts?: number } },
    );
    assert.equal(err.name, "ProvisionedThroughputExceededException");
    assert.equal(err.$metadata.attempts, 3);
    assert.equal(p.counts.throughputExceeded, 3);
  });

  it("requestTimeout alone only warns: a black-holed request stays pending until aborted", async () => {
    const p = await proxy();
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, warn: (m: string) => warnings.push(String(m)), error() {} };
    const client = new DynamoDBClient({
      endpoint: p.endpoint,
      region: "us-east-1",
      credentials: LOCAL_CREDENTIALS,
      maxAttempts: 1,
      requestHandler: { requestTimeout: 100, logger },
    });
    clients.push(client);
    p.partition();
    const abort = new AbortController();
    let settled = false;
    const sent = client
      .send(new GetItemCommand({ TableName: table, Key: { id: { S: "x" } } }), { abortSignal: abort.signal })
      .finally(() => {
        settled = true;
      });
    sent.catch(() => undefined);
    await eventually(() => warnings.some((w) => w.includes("requestTimeout")), "the time-out warning");
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, "the request outlived its requestTimeout");
    abort.abort();
    await assert.rejects(sent, { name: "AbortError" });
  });
});

describe("contention through the proxy, each fault alone and mixed", () => {
  // Three processes' worth of clients, each behind its own link; the fault is on every link.
  const plans: [string, Parameters<FaultProxy["set"]>[0], FaultKind | "latency"][] = [
    ...FAULT_KINDS.map(
      (kind) =>
        [kind, { rates: { [kind]: kind === "blackhole" ? 0.1 : 0.25 } }, kind] as [
          string,
          Parameters<FaultProxy["set"]>[0],
          FaultKind,
        ],
    ),
    ["latency and jitter", { latencyMs: 20, jitterMs: 200 }, "latency"],
    [
      "mixed",
      {
        latencyMs: 5,
        jitterMs: 50,
        rates: Object.fromEntries(FAULT_KINDS.map((k) => [k, k === "blackhole" ? 0.03 : 0.05])),
      },
      "latency",
    ],
  ];

  it("mutual exclusion holds, no acknowledged write is lost, no refused one appears, and all recover", async () => {
    const results = await Promise.all(
      plans.map(async ([name, plan, kind]) => {
        const id = `contend-${name}`;
        const starts: StartRecord[] = [];
        const ends: EndRecord[] = [];
        const emit = (r: SectionRecord) =>
          r.t === "start" ? starts.push(r) : r.t === "end" ? ends.push(r) : 0;
        const links = await Promise.all([0, 1, 2].map(() => proxy()));
        const workers = links.map((p, i) => {
          const client = clientVia(p);
          return { p, client, locks: locksVia(client, `w${i}`) };
        });
        for (const { p } of workers) {
          p.set(plan);
          // At least once on every link whatever the dice say: a run without its fault proves nothing.
          if (kind !== "latency") p.next(kind);
        }
        let errors = 0;
        await Promise.all(
          workers.map(async ({ locks, client }, i) => {
            for (let round = 0; round < 2; round++) {
              try {
                await runSection(
                  locks,
                  client,
                  id,
                  `w${i}:${round}`,
                  `w${i}`,
                  { waitMs: 8_000, workMs: 100 },
                  emit,
                );
              } catch {
                errors++; // an acquire that failed outright (the fault outlasted its retries)
              }
            }
          }),
        );
        const faults = kind === "latency" ? 1 : workers.reduce((n, { p }) => n + p.counts[kind], 0);
        // The fault clears: every worker takes the lock again at once.
        for (const { p } of workers) p.clear();
        for (const [i, { locks, client }] of workers.entries()) {
          const end = await runSection(
            locks,
            client,
            id,
            `w${i}:after`,
            `w${i}`,
            { waitMs: 8_000, workMs: 0 },
            emit,
          );
          assert.equal(end?.outcome, "acked", `${name}: w${i} recovered`);
        }
        const result = check({ starts, ends, kills: [], finals: new Map([[id, await finalOf(id)]]) });
        return { name, faults, errors, result };
      }),
    );
    for (const { name, faults, result } of results) {
      assert.deepEqual(result.violations, [], `${name} (seed ${seed})`);
      assert.ok(faults > 0, `${name}: the fault was injected`);
      assert.ok(result.acked >= 3, `${name}: sections completed`);
    }
  });
});

describe("the checks can fail", () => {
  it("a lock whose waiters take over before the lease ends is caught overlapping", async () => {
    const id = "broken";
    const starts: StartRecord[] = [];
    const ends: EndRecord[] = [];
    const emit = (r: SectionRecord) => (r.t === "start" ? starts.push(r) : r.t === "end" ? ends.push(r) : 0);
    const workers = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const client = clientVia(await proxy());
        return { client, locks: locksVia(client, `b${i}`, 1_500, true) };
      }),
    );
    await Promise.all(
      workers.map(async ({ locks, client }, i) => {
        for (let round = 0; round < 2; round++)
          await runSection(
            locks,
            client,
            id,
            `b${i}:${round}`,
            `b${i}`,
            { waitMs: 5_000, workMs: 300 },
            emit,
          );
      }),
    );
    const result = check({ starts, ends, kills: [], finals: new Map([[id, await finalOf(id)]]) });
    assert.ok(
      result.violations.some((v) => v.includes("before")),
      `overlap found: ${result.violations.join("; ")}`,
    );
  });
});

describe("a holder cut off from the server", () => {
  it("partitioned longer than its lease: its signal fires before the next holder's acquire reaches the server", async () => {
    const [ph, pw] = [await proxy(), await proxy()];
    const holder = locksVia(clientVia(ph), "holder", 1_200);
    const waiter = locksVia(clientVia(pw), "waiter", 1_200);
    const lock = await holder.acquire("partitioned");
    let lossAt: bigint | undefined;
    lock.signal.addEventListener("abort", () => {
      lossAt = process.hrtime.bigint();
    });
    ph.partition();
    const taken = await waiter.acquire("partitioned", { waitMs: 10_000 });
    assert.ok(lossAt !== undefined, "the holder learnt of the loss");
    assert.equal((lock.signal.reason as LockLostError).reason, "expired");
    const won = pw.requests((r) => r.kind === "acquire" && r.fault === "none").at(-1);
    assert.ok(won !== undefined && (lossAt as bigint) < won.at, "signalled before the winning write arrived");
    assert.equal(taken.fence, lock.fence + 1);
    // Nothing is sent for a lost lock, and it says nothing was written.
    const before = ph.log.length;
    await assert.rejects(
      lock.update({ x: 1 }),
      (e: unknown) => e instanceof LockLostError && !e.writeUncertain,
    );
    assert.equal(ph.log.length, before);
    // The partition heals: the old holder's side works again.
    ph.clear();
    await taken.release();
    const again = await holder.acquire("partitioned", { waitMs: 5_000 });
    assert.equal(again.fence, taken.fence + 1);
    await again.release();
  });

  for (const kind of ["http503", "throughputExceeded"] as const) {
    it(`${kind} on every heartbeat: retried until the lease ends, never after`, async () => {
      const p = await proxy();
      const client = clientVia(p);
      // When this process dispatched each heartbeat attempt, the SDK's own retries included: a
      // middleware inside the retry loop runs once per attempt, before the attempt is signed and
      // written. The proxy's receipt time would not do: the socket write reaches it a tick later,
      // after an expiry timer that fired in between, on a loaded machine.
      const dispatched: bigint[] = [];
      client.middlewareStack.add(
        (next, context) => async (args) => {
          const input = (args as { input?: { UpdateExpression?: string } }).input;
          if (
            context.commandName === "UpdateItemCommand" &&
            input?.UpdateExpression?.startsWith("SET #version")
          ) {
            dispatched.push(process.hrtime.bigint());
          }
          return next(args);
        },
        { step: "finalizeRequest", priority: "low", name: "dispatchedAt" },
      );
      const holder = locksVia(client, `retry-${kind}`, 1_200);
      const lock = await holder.acquire(`retry-${kind}`);
      let lossAt: bigint | undefined;
      lock.signal.addEventListener("abort", () => {
        lossAt = process.hrtime.bigint();
      });
      const failingFrom = process.hrtime.bigint();
      p.set({ rates: { [kind]: 1 }, only: (r) => r.kind === "renew" });
      await eventually(() => lossAt !== undefined, "the loss");
      assert.equal((lock.signal.reason as LockLostError).reason, "expired");
      // Give any late retry every chance to show up: three heartbeat intervals.
      await new Promise((resolve) => setTimeout(resolve, 600));
      const renews = p.requests((r) => r.kind === "renew" && (r.sentAt ?? 0n) > failingFrom);
      // At least one retry: how many fit in the lease depends on the machine's speed, not the lock.
      assert.ok(renews.length >= 2, `retried within the lease (${renews.length} attempts)`);
      const late = dispatched.filter((at) => at > (lossAt as bigint));
      assert.deepEqual(late, [], "no attempt dispatched after the lease ended");
      assert.ok(renews.every((r) => r.sentAt !== undefined));
    });
  }
});

describe("ambiguous writes: applied, answered too late or not at all", () => {
  for (const kind of ["lateReply", "resetAfter", "http500"] as const) {
    it(`${kind}: acquire, update and release each still succeed once, and the data is there`, async () => {
      const p = await proxy();
      const locks = locksVia(clientVia(p), `amb-${kind}`, 3_000);
      const id = `ambiguous-${kind}`;
      const before = (await admin.read(id))?.fence ?? 0;
      p.next(kind, 1, (r) => r.kind === "acquire");
      const lock: Lock<{ step: number }> = await locks.acquire(id, { waitMs: 5_000 });
      assert.equal(lock.fence, before + 1, "the applied attempt was adopted, not a second acquisition");
      p.next(kind, 1, (r) => r.kind === "renew");
      await lock.update({ step: 1 });
      assert.deepEqual((await admin.read(id))?.data, { step: 1 });
      p.next(kind, 1, (r) => r.kind === "release");
      await lock.release({ step: 2 });
      const info = await admin.read(id);
      assert.deepEqual(info?.data, { step: 2 });
      assert.equal(info?.held, false);
      assert.ok(p.counts[kind] >= 3);
    });
  }
});
