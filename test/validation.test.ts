/** Every invalid argument is refused with a TypeError/RangeError naming it, before any request. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LockClient, lock, read } from "../src/index.js";
import { type Backend, countRequests, startBackend, uniqueName } from "./support/backend.js";

let backend: Backend;
let counter: ReturnType<typeof countRequests>;
let table: string;
let locks: LockClient;

before(async () => {
  backend = await startBackend();
  counter = countRequests(backend.client);
  table = uniqueName();
  locks = new LockClient({ table, client: backend.client });
  await locks.createTable();
});
after(async () => {
  await locks.close();
  await backend.close();
});

/** Asserts `run` fails with `type` whose message names `argument`, and that no request was sent. */
async function refuses(run: () => unknown, type: typeof TypeError | typeof RangeError, argument: string) {
  counter.reset();
  await assert.rejects(
    async () => run(),
    (err: unknown) => {
      assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
      assert.ok(
        (err as Error).message.includes(`\`${argument}`),
        `message names ${argument}: ${(err as Error).message}`,
      );
      return true;
    },
  );
  assert.equal(counter.total(), 0, "no request was sent");
}

const client = () => backend.client;

describe("LockClient options", () => {
  const cases: [string, Record<string, unknown>, typeof TypeError, string][] = [
    ["missing table", {}, TypeError, "table"],
    ["table too short", { table: "ab" }, RangeError, "table"],
    ["table with bad characters", { table: "my table!" }, RangeError, "table"],
    ["table not a string", { table: 42 }, TypeError, "table"],
    ["leaseMs negative", { table: "locks", leaseMs: -1 }, RangeError, "leaseMs"],
    ["leaseMs zero", { table: "locks", leaseMs: 0 }, RangeError, "leaseMs"],
    ["leaseMs NaN", { table: "locks", leaseMs: Number.NaN }, RangeError, "leaseMs"],
    ["leaseMs Infinity", { table: "locks", leaseMs: Number.POSITIVE_INFINITY }, RangeError, "leaseMs"],
    ["leaseMs string", { table: "locks", leaseMs: "30s" }, TypeError, "leaseMs"],
    [
      "heartbeatMs not well below leaseMs",
      { table: "locks", leaseMs: 30_000, heartbeatMs: 15_000 },
      RangeError,
      "heartbeatMs",
    ],
    ["heartbeatMs zero", { table: "locks", heartbeatMs: 0 }, RangeError, "heartbeatMs"],
    ["maxClockSkewMs negative", { table: "locks", maxClockSkewMs: -1 }, RangeError, "maxClockSkewMs"],
    ["maxClockSkewMs NaN", { table: "locks", maxClockSkewMs: Number.NaN }, RangeError, "maxClockSkewMs"],
    ["partitionKey empty", { table: "locks", partitionKey: "" }, RangeError, "partitionKey"],
    ["sortKey without value", { table: "locks", sortKey: { name: "sk" } }, TypeError, "sortKey.value"],
    [
      "sortKey same as partition key",
      { table: "locks", sortKey: { name: "id", value: "x" } },
      RangeError,
      "sortKey.name",
    ],
    ["holder empty", { table: "locks", holder: "" }, RangeError, "holder"],
    ["client without send", { table: "locks", client: {} }, TypeError, "client"],
    ["pollMaxMs below pollMinMs", { table: "locks", pollMinMs: 100, pollMaxMs: 10 }, RangeError, "pollMaxMs"],
  ];
  for (const [name, options, type, argument] of cases) {
    it(`refuses ${name}`, () => refuses(() => new LockClient(options as never), type, argument));
  }

  it("refuses a missing options object", () =>
    refuses(() => new LockClient(undefined as never), TypeError, "options"));

  it("defaults: 30 s lease, heartbeat a sixth of it, skew allowance 1 s", async () => {
    const defaults = new LockClient({ table, client: client() });
    const held = await defaults.acquire("defaults");
    assert.equal(held.leaseMs, 30_000);
    const info = await defaults.read("defaults");
    assert.equal(info?.leaseMs, 30_000);
    assert.match(info?.holder ?? "", /^.+:\d+$/);
    await defaults.close();
  });
});

describe("acquire arguments", () => {
  const bigId = "x".repeat(2049);
  const cases: [string, unknown, unknown, typeof TypeError, string][] = [
    ["empty id", "", undefined, RangeError, "id"],
    ["non-string id", 42, undefined, TypeError, "id"],
    ["id over 2048 bytes", bigId, undefined, RangeError, "id"],
    ["id over 2048 bytes in UTF-8", "é".repeat(1025), undefined, RangeError, "id"],
    ["negative waitMs", "a", { waitMs: -1 }, RangeError, "waitMs"],
    ["NaN waitMs", "a", { waitMs: Number.NaN }, RangeError, "waitMs"],
    ["string waitMs", "a", { waitMs: "10" }, TypeError, "waitMs"],
    ["signal that is not an AbortSignal", "a", { signal: {} }, TypeError, "signal"],
    ["onWait that is not a function", "a", { onWait: "log" }, TypeError, "onWait"],
    ["options that are not an object", "a", 5, TypeError, "options"],
  ];
  for (const [name, id, options, type, argument] of cases) {
    it(`acquire refuses ${name}`, () =>
      refuses(() => locks.acquire(id as string, options as never), type, argument));
    it(`tryAcquire/read refuse ${name}`, async () => {
      if (argument === "id") {
        await refuses(() => locks.tryAcquire(id as string), type, argument);
        await refuses(() => locks.read(id as string), type, argument);
        await refuses(() => locks.forceRelease(id as string), type, argument);
      }
    });
  }
  it("accepts an id of exactly 2048 bytes", async () => {
    const held = await locks.acquire("y".repeat(2048));
    await held.release();
  });
  it("withLock refuses a non-function", () =>
    refuses(() => locks.withLock("a", 5 as never), TypeError, "fn"));
});

describe("data", () => {
  const cases: [string, unknown, typeof TypeError, string][] = [
    ["a non-object", "text", TypeError, "data"],
    ["an array", [1, 2], TypeError, "data"],
    ["null", null, TypeError, "data"],
    ["a Map", new Map([["a", 1]]), TypeError, "data"],
    ["a function value (marshall drops it silently)", { a: 1, f: () => 1 }, TypeError, "data.f"],
    ["a nested function", { a: { b: [() => 1] } }, TypeError, "data.a.b[0]"],
    ["a symbol", { s: Symbol("x") }, TypeError, "data.s"],
    ["a Date (would become an empty map)", { when: new Date() }, TypeError, "data.when"],
    ["a class instance", { c: new (class Point {})() }, TypeError, "data.c"],
    ["NaN", { n: Number.NaN }, RangeError, "data.n"],
    ["Infinity", { n: Number.POSITIVE_INFINITY }, RangeError, "data.n"],
    ["an unsafe integer", { n: 2 ** 60 }, RangeError, "data.n"],
    ["undefined inside a list", { l: [1, undefined] }, TypeError, "data.l[1]"],
    ["an empty set", { s: new Set() }, RangeError, "data.s"],
    ["a mixed set", { s: new Set(["a", 1]) }, TypeError, "data.s"],
    [
      "a circular object",
      (() => {
        const o: Record<string, unknown> = {};
        o.self = o;
        return o;
      })(),
      RangeError,
      "data.self",
    ],
    ["an item over 400 KB", { big: "x".repeat(400 * 1024) }, RangeError, "data"],
  ];
  for (const [name, data, type, argument] of cases) {
    it(`update refuses ${name}, writing nothing`, async () => {
      const held = await locks.acquire<Record<string, unknown>>("data-checks");
      await held.update({ keep: 1 });
      await refuses(() => held.update(data as never), type, argument);
      await refuses(() => held.release(data as never), type, argument);
      assert.equal(held.signal.aborted, false);
      await held.release();
      assert.deepEqual((await locks.read("data-checks"))?.data, { keep: 1 });
    });
  }
});

describe("seed functions", () => {
  it("lock() refuses bad arguments before any request", async () => {
    await refuses(() => lock("ab", "x", { client: client() }), RangeError, "table");
    await refuses(() => lock(table, "", { client: client() }), RangeError, "id");
    await refuses(() => lock(table, "x", { client: client(), maxAgeMs: -5 }), RangeError, "maxAgeMs");
    await refuses(
      () => lock(table, "x", { client: client(), maxAgeMs: 3_000, heartbeatMs: 2_000 }),
      RangeError,
      "heartbeatMs",
    );
    await refuses(() => lock(table, "x", { client: client(), waitMs: -1 }), RangeError, "waitMs");
    await refuses(() => read(table, "", { client: client() }), RangeError, "id");
  });
});

describe("unknown option keys", () => {
  /** Asserts a TypeError that names the unknown key and suggests `closest`, with no request sent. */
  async function refusesUnknown(run: () => unknown, key: string, closest: string) {
    await refuses(run, TypeError, key);
    await assert.rejects(async () => run(), new RegExp(`did you mean \`${closest}\``));
  }

  it("the LockClient's options (a misspelt lease would silently be the default)", async () => {
    await refusesUnknown(
      () => new LockClient({ table, client: client(), leseMs: 3000 } as never),
      "leseMs",
      "leaseMs",
    );
    await refusesUnknown(
      () => new LockClient({ table, client: client(), sortKey: { name: "sk", valeu: "x" } } as never),
      "valeu",
      "value",
    );
  });

  it("every call's trailing options", async () => {
    await refusesUnknown(() => locks.acquire("a", { wait: 1000 } as never), "wait", "waitMs");
    await refusesUnknown(() => locks.tryAcquire("a", { singal: undefined } as never), "singal", "signal");
    await refusesUnknown(() => locks.read("a", { sginal: undefined } as never), "sginal", "signal");
    await refusesUnknown(() => locks.forceRelease("a", { signals: undefined } as never), "signals", "signal");
    await refusesUnknown(() => locks.createTable({ tll: true } as never), "tll", "ttl");
    await refusesUnknown(
      () => lock(table, "a", { client: client(), maxAge: 3000 } as never),
      "maxAge",
      "maxAgeMs",
    );
    await refusesUnknown(
      () => read(table, "a", { client: client(), partitionkey: "id" } as never),
      "partitionkey",
      "partitionKey",
    );
    const held = await locks.acquire("unknown-keys");
    await refusesUnknown(() => held.update({ a: 1 }, { singal: undefined } as never), "singal", "signal");
    await refusesUnknown(() => held.release(undefined, { singal: undefined } as never), "singal", "signal");
    await refusesUnknown(() => held.transact([], { singal: undefined } as never), "singal", "signal");
    await held.release();
  });

  it("no suggestion for a key like no option, but the list of known ones", async () => {
    await assert.rejects(
      async () => locks.acquire("a", { colour: "red" } as never),
      /Unknown option `colour` in `options`: known options: waitMs, signal, onWait/,
    );
  });
});
