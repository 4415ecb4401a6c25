/**
 * docs/errors.md, "Invalid arguments": every public entry point fed wrong types, empty, oversized,
 * non-finite and hostile values refuses them with the documented class, naming the argument, before
 * any request is sent.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { TransactWriteItem } from "@aws-sdk/client-dynamodb";
import { type Lock, LockClient, lock, read } from "../src/index.js";
import { type Backend, countRequests, startBackend, uniqueName } from "./support/backend.js";

let backend: Backend;
let counter: ReturnType<typeof countRequests>;
let table: string;
let locks: LockClient;
let held: Lock;

before(async () => {
  backend = await startBackend();
  counter = countRequests(backend.client);
  table = uniqueName();
  locks = new LockClient({ table, client: backend.client });
  await locks.createTable();
  held = await locks.acquire("held");
});
after(async () => {
  await locks.close();
  await backend.close();
});

type Case = [
  label: string,
  call: () => unknown,
  type: typeof TypeError | typeof RangeError,
  argument: string,
];

const big = (bytes: number) => "x".repeat(bytes);
const client = () => backend.client;
const opts = (o: Record<string, unknown>) => ({ table: "locks", client: client(), ...o }) as never;
const item = (o: object) => o as TransactWriteItem;
const any = (v: unknown) => v as never;

const CASES: Record<string, Case[]> = {
  "new LockClient(options)": [
    ["no options", () => new LockClient(any(undefined)), TypeError, "options"],
    ["options a string", () => new LockClient(any("locks")), TypeError, "options"],
    ["table missing", () => new LockClient(any({ client: client() })), TypeError, "table"],
    ["table empty", () => new LockClient(opts({ table: "" })), RangeError, "table"],
    ["table oversized", () => new LockClient(opts({ table: big(256) })), RangeError, "table"],
    ["table hostile", () => new LockClient(opts({ table: "locks; DROP" })), RangeError, "table"],
    ["table a number", () => new LockClient(opts({ table: 7 })), TypeError, "table"],
    ["client not a client", () => new LockClient(opts({ client: {} })), TypeError, "client"],
    ["leaseMs NaN", () => new LockClient(opts({ leaseMs: Number.NaN })), RangeError, "leaseMs"],
    [
      "leaseMs Infinity",
      () => new LockClient(opts({ leaseMs: Number.POSITIVE_INFINITY })),
      RangeError,
      "leaseMs",
    ],
    ["leaseMs negative", () => new LockClient(opts({ leaseMs: -5 })), RangeError, "leaseMs"],
    ["leaseMs a string", () => new LockClient(opts({ leaseMs: "30s" })), TypeError, "leaseMs"],
    [
      "heartbeatMs above leaseMs / 3",
      () => new LockClient(opts({ leaseMs: 900, heartbeatMs: 301 })),
      RangeError,
      "heartbeatMs",
    ],
    ["heartbeatMs NaN", () => new LockClient(opts({ heartbeatMs: Number.NaN })), RangeError, "heartbeatMs"],
    ["partitionKey empty", () => new LockClient(opts({ partitionKey: "" })), RangeError, "partitionKey"],
    [
      "partitionKey oversized",
      () => new LockClient(opts({ partitionKey: big(256) })),
      RangeError,
      "partitionKey",
    ],
    [
      "partitionKey a lock attribute",
      () => new LockClient(opts({ partitionKey: "owner" })),
      RangeError,
      "partitionKey",
    ],
    ["sortKey not an object", () => new LockClient(opts({ sortKey: "sk" })), TypeError, "sortKey"],
    [
      "sortKey.value empty",
      () => new LockClient(opts({ sortKey: { name: "sk", value: "" } })),
      RangeError,
      "sortKey.value",
    ],
    [
      "sortKey.value oversized",
      () => new LockClient(opts({ sortKey: { name: "sk", value: big(1025) } })),
      RangeError,
      "sortKey.value",
    ],
    [
      "sortKey.name the partition key",
      () => new LockClient(opts({ sortKey: { name: "id", value: "l" } })),
      RangeError,
      "sortKey.name",
    ],
    [
      "sortKey.name a lock attribute",
      () => new LockClient(opts({ sortKey: { name: "fence", value: "l" } })),
      RangeError,
      "sortKey.name",
    ],
    ["holder empty", () => new LockClient(opts({ holder: "" })), RangeError, "holder"],
    ["holder oversized", () => new LockClient(opts({ holder: big(1025) })), RangeError, "holder"],
    [
      "maxClockSkewMs negative",
      () => new LockClient(opts({ maxClockSkewMs: -1 })),
      RangeError,
      "maxClockSkewMs",
    ],
    [
      "maxClockSkewMs NaN",
      () => new LockClient(opts({ maxClockSkewMs: Number.NaN })),
      RangeError,
      "maxClockSkewMs",
    ],
    ["pollMinMs zero", () => new LockClient(opts({ pollMinMs: 0 })), RangeError, "pollMinMs"],
    [
      "pollMaxMs below pollMinMs",
      () => new LockClient(opts({ pollMinMs: 500, pollMaxMs: 100 })),
      RangeError,
      "pollMaxMs",
    ],
    [
      "releasedTtlMs a string",
      () => new LockClient(opts({ releasedTtlMs: "7d" })),
      TypeError,
      "releasedTtlMs",
    ],
    [
      "ttlAttribute a lock attribute",
      () => new LockClient(opts({ ttlAttribute: "owner" })),
      RangeError,
      "ttlAttribute",
    ],
  ],
  "acquire / tryAcquire / withLock / read / forceRelease": [
    ["acquire: id missing", () => locks.acquire(any(undefined)), TypeError, "id"],
    ["acquire: id empty", () => locks.acquire(""), RangeError, "id"],
    ["acquire: id over 2048 bytes", () => locks.acquire(`${"é".repeat(1024)}x`), RangeError, "id"],
    ["acquire: id an object", () => locks.acquire(any({ toString: () => "x" })), TypeError, "id"],
    ["acquire: options a string", () => locks.acquire("a", any("fast")), TypeError, "options"],
    ["acquire: waitMs NaN", () => locks.acquire("a", { waitMs: Number.NaN }), RangeError, "waitMs"],
    ["acquire: waitMs negative", () => locks.acquire("a", { waitMs: -1 }), RangeError, "waitMs"],
    ["acquire: waitMs a string", () => locks.acquire("a", any({ waitMs: "1s" })), TypeError, "waitMs"],
    ["acquire: signal not a signal", () => locks.acquire("a", any({ signal: {} })), TypeError, "signal"],
    ["acquire: onWait not a function", () => locks.acquire("a", any({ onWait: "log" })), TypeError, "onWait"],
    ["tryAcquire: id empty", () => locks.tryAcquire(""), RangeError, "id"],
    [
      "tryAcquire: signal not a signal",
      () => locks.tryAcquire("a", any({ signal: "stop" })),
      TypeError,
      "signal",
    ],
    ["withLock: id oversized", () => locks.withLock(big(2049), async () => 1), RangeError, "id"],
    ["withLock: fn not a function", () => locks.withLock("a", any("run")), TypeError, "fn"],
    ["read: id a number", () => locks.read(any(5)), TypeError, "id"],
    ["read: id empty", () => locks.read(""), RangeError, "id"],
    ["read: signal not a signal", () => locks.read("a", any({ signal: 1 })), TypeError, "signal"],
    ["forceRelease: id empty", () => locks.forceRelease(""), RangeError, "id"],
    ["forceRelease: id oversized", () => locks.forceRelease(big(2049)), RangeError, "id"],
    ["createTable: waitMs NaN", () => locks.createTable({ waitMs: Number.NaN }), RangeError, "waitMs"],
    ["createTable: ttl a string", () => locks.createTable(any({ ttl: "yes" })), TypeError, "ttl"],
    ["createTable: signal not a signal", () => locks.createTable(any({ signal: true })), TypeError, "signal"],
  ],
  "lock.update / release / transact": [
    ["update: data a number", () => held.update(any(42)), TypeError, "data"],
    ["update: data an array", () => held.update(any([1])), TypeError, "data"],
    ["update: a function inside", () => held.update(any({ f: () => 1 })), TypeError, "data.f"],
    ["update: a Date inside", () => held.update(any({ at: new Date() })), TypeError, "data.at"],
    ["update: NaN inside", () => held.update({ n: Number.NaN }), RangeError, "data.n"],
    ["update: Infinity inside", () => held.update({ n: Number.POSITIVE_INFINITY }), RangeError, "data.n"],
    ["update: an unsafe integer", () => held.update({ n: 2 ** 60 }), RangeError, "data.n"],
    ["update: undefined in an array", () => held.update(any({ l: [1, undefined] })), TypeError, "data.l[1]"],
    ["update: a lone surrogate", () => held.update({ s: "\ud800" }), RangeError, "data.s"],
    ["update: an empty key", () => held.update({ "": 1 }), RangeError, "data"],
    ["update: over 400 KB", () => held.update({ s: big(400 * 1024) }), RangeError, "data"],
    ["release: data a string", () => held.release(any("done")), TypeError, "data"],
    ["release: a Map inside", () => held.release(any({ m: new Map() })), TypeError, "data.m"],
    ["transact: items not an array", () => held.transact(any({})), TypeError, "items"],
    ["transact: items null inside", () => held.transact(any([null])), TypeError, "items[0]"],
    [
      "transact: too many items",
      () => held.transact(Array(100).fill(item({ Put: {} }))),
      RangeError,
      "items",
    ],
    [
      "transact: an item on the lock itself",
      () => held.transact([item({ Put: { TableName: table, Item: { id: { S: "held" } } } })]),
      RangeError,
      "items[0]",
    ],
    [
      "transact: signal not a signal",
      () => held.transact([], any({ signal: 1 })),
      TypeError,
      "options.signal",
    ],
  ],
  "lock() / read() helpers": [
    ["lock: table hostile", () => lock("bad table!", "a", { client: client() }), RangeError, "table"],
    ["lock: id empty", () => lock(table, "", { client: client() }), RangeError, "id"],
    ["lock: options a number", () => lock(table, "a", any(3)), TypeError, "options"],
    [
      "lock: maxAgeMs Infinity",
      () => lock(table, "a", { client: client(), maxAgeMs: Number.POSITIVE_INFINITY }),
      RangeError,
      "maxAgeMs",
    ],
    [
      "lock: heartbeatMs above maxAgeMs / 3",
      () => lock(table, "a", { client: client(), maxAgeMs: 900, heartbeatMs: 600 }),
      RangeError,
      "heartbeatMs",
    ],
    ["read: table a number", () => read(any(1), "a", { client: client() }), TypeError, "table"],
    ["read: id oversized", () => read(table, big(2049), { client: client() }), RangeError, "id"],
  ],
};

describe("every entry point refuses bad arguments before any request", () => {
  for (const [entry, cases] of Object.entries(CASES)) {
    describe(entry, () => {
      for (const [label, call, type, argument] of cases) {
        it(`${label}: ${type.name} naming \`${argument}\``, async () => {
          counter.reset();
          await assert.rejects(
            async () => call(),
            (err: unknown) => {
              assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
              assert.ok(
                (err as Error).message.includes(`\`${argument}`),
                `names ${argument}: ${(err as Error).message}`,
              );
              return true;
            },
          );
          assert.equal(counter.total(), 0, "no request was sent");
        });
      }
    });
  }
  it("and the lock those calls were made with is still held, its data untouched", async () => {
    assert.equal(held.held, true);
    assert.equal((await locks.read("held"))?.data, undefined);
  });
});
