/**
 * The data validator agrees with the server. Random values, many at the edges of what DynamoDB
 * stores (number magnitude and precision, set members that collide, odd map keys, nesting, sizes),
 * are given to `encodeData` and to the server:
 *
 * - whatever the validator accepts, the server stores, and it reads back as documented;
 * - whatever the validator refuses, the server refuses too (sent as the value's faithful encoding,
 *   built here independently of src/data.ts), or dynamolock refuses it for a stated reason.
 *
 * DynamoDB Local is the authority. dynalite stores some values DynamoDB refuses; those cases are
 * skipped on dynalite, and how many of each is printed. The seed is printed, and failures name it:
 * DYNAMOLOCK_TEST_SEED=<seed> replays a run.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { type AttributeValue, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { decodeData, encodeData, MAX_ITEM_BYTES } from "../src/data.js";
import { LockClient } from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";
import { Random, testSeed } from "./support/random.js";

const CASES = 300;

let backend: Backend;
let table: string;

before(async () => {
  backend = await startBackend();
  table = uniqueName("prop");
  await new LockClient({ table, client: backend.client }).createTable();
});
after(async () => {
  await backend.close();
});

// ---- the generator ----

const NUMBERS = [
  0,
  -0,
  1,
  -1,
  0.5,
  1e-130,
  -1e-130,
  1.5e-130,
  9.99e-131,
  1e-131,
  1e-200,
  5e-324,
  Number.EPSILON,
  Number.MAX_SAFE_INTEGER,
  -Number.MAX_SAFE_INTEGER,
  2 ** 53,
  2 ** 60,
  1e21,
  1.7976931348623157e308,
  123.456,
  0.1,
  1 / 3,
];

function randomNumber(r: Random): number {
  if (r.chance(0.5)) return r.pick(NUMBERS);
  const mantissa = r.next() * 10 * (r.chance(0.5) ? -1 : 1);
  return Number(`${mantissa}e${r.int(-140, 20)}`);
}

function randomBigint(r: Random): bigint {
  const sign = r.chance(0.3) ? -1n : 1n;
  switch (r.int(0, 3)) {
    case 0:
      return sign * BigInt(r.int(0, 1_000));
    case 1:
      // Around 38 significant digits, with trailing zeros (which do not count) now and then.
      return (
        sign *
        BigInt(`${r.int(1, 9)}${r.digits(r.int(30, 40))}${"0".repeat(r.chance(0.5) ? r.int(1, 90) : 0)}`)
      );
    case 2:
      // Around DynamoDB's largest magnitude, 10^126.
      return sign * 10n ** BigInt(r.int(120, 128)) - (r.chance(0.5) ? 1n : 0n);
    default:
      return sign * (10n ** 125n * BigInt(r.int(1, 9)) + BigInt(r.digits(5)));
  }
}

const STRINGS = ["", "a", "héllo ✓", "😀", "\u0000", "\uD800", "\uFFFD", "0", "1", "", "a"];

function randomString(r: Random): string {
  if (r.chance(0.6)) return r.pick(STRINGS);
  // Now and then half of a surrogate pair, alone.
  return r
    .digits(r.int(0, 8))
    .replace(/\d/g, (d) => r.pick(["a", "é", "😀", " ", d, r.chance(0.1) ? "\uD83D" : "b"]));
}

function randomKey(r: Random): string {
  const choice = r.int(0, 23);
  if (choice === 0) return "";
  if (choice === 1) return "__proto__";
  if (choice === 2) return r.chance(0.5) ? "k".repeat(65_535) : "k".repeat(65_536);
  if (choice === 3) return "é".repeat(r.pick([32_767, 32_768]));
  if (choice === 4) return r.pick(["constructor", "toString", "\uD800", "a.b", "#x", ":v"]);
  return randomString(r) || "x";
}

function randomBytes(r: Random): Uint8Array {
  const bytes = new Uint8Array(r.int(0, 3));
  for (let i = 0; i < bytes.length; i++) bytes[i] = r.int(0, 2);
  return bytes;
}

function randomSet(r: Random): Set<unknown> {
  const set = new Set<unknown>();
  const size = r.int(0, 4);
  const kind = r.int(0, 3);
  for (let i = 0; i < size; i++) {
    if (kind === 0) set.add(randomString(r));
    else if (kind === 1) set.add(r.chance(0.5) ? randomNumber(r) : BigInt(r.int(-2, 2)));
    else if (kind === 2) set.add(r.chance(0.5) ? r.int(-2, 2) : BigInt(r.int(-2, 2)));
    else set.add(randomBytes(r));
  }
  return set;
}

function nested(r: Random, levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = r.chance(0.5) ? [value] : { n: value };
  return value;
}

function randomValue(r: Random, depth: number): unknown {
  const choice = r.int(0, depth > 3 ? 6 : 10);
  switch (choice) {
    case 0:
      return randomString(r);
    case 1:
      return randomNumber(r);
    case 2:
      return randomBigint(r);
    case 3:
      return r.pick([true, false, null]);
    case 4:
      return randomBytes(r);
    case 5:
    case 6:
      return randomSet(r);
    case 7:
      return Array.from({ length: r.int(0, 3) }, () => randomValue(r, depth + 1));
    case 8:
      // Around DynamoDB's 32 levels of nesting (the data map itself is one).
      return r.chance(0.3) ? nested(r, r.int(27, 33)) : randomMap(r, depth + 1);
    default:
      return randomMap(r, depth + 1);
  }
}

/** A plain object; keys such as `__proto__` are own properties, as JSON.parse makes them. */
function randomMap(r: Random, depth: number): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  for (let i = r.int(0, 3); i > 0; i--) {
    Object.defineProperty(map, randomKey(r), {
      value: randomValue(r, depth),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return map;
}

// ---- the reference: what the value is, independently of src/data.ts ----

/** The value's faithful DynamoDB encoding, or a reason it has none. */
function faithful(value: unknown): AttributeValue | string {
  if (typeof value === "string") return { S: value };
  if (typeof value === "number") return { N: String(value) };
  if (typeof value === "bigint") return { N: value.toString() };
  if (typeof value === "boolean") return { BOOL: value };
  if (value === null) return { NULL: true };
  if (value instanceof Uint8Array) return { B: value };
  if (Array.isArray(value)) {
    const items = value.map(faithful);
    const bad = items.find((v) => typeof v === "string");
    return bad ?? { L: items as AttributeValue[] };
  }
  if (value instanceof Set) {
    const members = [...value];
    if (members.length === 0) return { SS: [] }; // the server refuses an empty set
    if (members.every((m) => typeof m === "string")) return { SS: members as string[] };
    if (members.every((m) => typeof m === "number" || typeof m === "bigint"))
      return { NS: members.map(String) };
    if (members.every((m) => m instanceof Uint8Array)) return { BS: members as Uint8Array[] };
    return "a set mixing types";
  }
  const map: Record<string, AttributeValue> = {};
  for (const [key, child] of Object.entries(value as object)) {
    const encoded = faithful(child);
    if (typeof encoded === "string") return encoded;
    Object.defineProperty(map, key, { value: encoded, enumerable: true, writable: true, configurable: true });
  }
  return { M: map };
}

/** The documented read-back: bigints within Number.MAX_SAFE_INTEGER come back as numbers, -0 as 0. */
function readBack(value: unknown): unknown {
  if (typeof value === "bigint")
    return value >= -(2n ** 53n - 1n) && value <= 2n ** 53n - 1n ? Number(value) : value;
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(readBack);
  if (value instanceof Set) return new Set([...value].map(readBack));
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return value;
  const map: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    Object.defineProperty(map, key, {
      value: readBack(child),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return map;
}

/**
 * Values the server stores that dynamolock refuses on purpose: why, and how the refusal says it.
 * An integer beyond Number.MAX_SAFE_INTEGER given as a number is not exact (it must be a bigint); a
 * lone surrogate has no UTF-8 form, and DynamoDB stores strings as UTF-8 (DynamoDB Local keeps it,
 * which says nothing of how AWS stores it).
 */
function refusedOnPurpose(value: unknown): RegExp | undefined {
  if (typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value)) {
    return /MAX_SAFE_INTEGER/;
  }
  if (typeof value === "string" && /\p{Cs}/u.test(value)) return /lone surrogate/;
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return undefined;
  const children = value instanceof Set || Array.isArray(value) ? [...value] : Object.entries(value).flat();
  for (const child of children) {
    const reason = refusedOnPurpose(child);
    if (reason !== undefined) return reason;
  }
  return undefined;
}

const utf8Bytes = (s: string) => Buffer.byteLength(s, "utf8");

/** How the validator words a refusal of what dynalite stores although DynamoDB refuses it. */
const DYNALITE_LAX = /has an empty key|has a key of \d+ bytes|nested deeper|as the same member/;

/** What dynalite stores although DynamoDB refuses it. */
function dynaliteLaxity(value: unknown, level = 1): string | undefined {
  if (value instanceof Set) {
    const empties = [...value].filter((m) => m instanceof Uint8Array && m.length === 0).length;
    return empties > 1 ? "a set with two empty members (dynalite sees no duplicate)" : undefined;
  }
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return undefined;
  if (level > 31) return "nesting beyond 32 levels (dynalite has no limit)";
  const entries = Array.isArray(value) ? value.map((v) => ["0", v] as const) : Object.entries(value);
  for (const [key, child] of entries) {
    if (!Array.isArray(value) && key === "") return "an empty map key (dynalite stores it)";
    if (!Array.isArray(value) && utf8Bytes(key) >= 65_536)
      return "a map key of 64 KB or more (dynalite stores it)";
    const reason = dynaliteLaxity(child, level + 1);
    if (reason !== undefined) return reason;
  }
  return undefined;
}

/** "stored", "refused" (a ValidationException), or how the server failed otherwise. */
/** A `__proto__` key anywhere: dynalite, itself JavaScript, refuses it or drops what it holds. */
function hasProtoKey(value: unknown): boolean {
  if (value === null || typeof value !== "object" || value instanceof Uint8Array || value instanceof Set)
    return false;
  if (!Array.isArray(value) && Object.hasOwn(value, "__proto__")) return true;
  return Object.values(value).some(hasProtoKey);
}

async function serverStores(id: string, data: AttributeValue): Promise<string> {
  try {
    await backend.client.send(new PutItemCommand({ TableName: table, Item: { id: { S: id }, data } }));
    return "stored";
  } catch (err) {
    if ((err as Error).name === "ValidationException") return "refused";
    return `failed: ${(err as Error).name} ${(err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode}`;
  }
}

/** A short, readable rendering of a case for failure messages (long strings and keys cut). */
function show(value: unknown): string {
  const cut = (text: string) => (text.length > 40 ? `${text.slice(0, 10)}...(${text.length} chars)` : text);
  const plain = (v: unknown): unknown => {
    if (typeof v === "bigint") return `${v}n`;
    if (typeof v === "string") return cut(v);
    if (v instanceof Uint8Array) return { bytes: [...v] };
    if (v instanceof Set) return { Set: [...v].map(plain) };
    if (Array.isArray(v)) return v.map(plain);
    if (v === null || typeof v !== "object") return Object.is(v, -0) ? "-0" : v;
    return Object.fromEntries(Object.entries(v).map(([k, c]) => [cut(k), plain(c)]));
  };
  return JSON.stringify(plain(value));
}

describe("data validator against the server", () => {
  it(`${CASES} random values: accepted ⇔ stored`, async (t) => {
    const r = new Random(testSeed());
    t.diagnostic(`seed ${r.seed} (replay with DYNAMOLOCK_TEST_SEED=${r.seed})`);
    const skipped = new Map<string, number>();
    const serverFailures = new Map<string, number>();
    const stats = { accepted: 0, refusedByServer: 0, refusedOnPurpose: 0 };
    /** Every disagreement, so that one run shows them all. */
    const failures: string[] = [];
    const check = (ok: boolean, message: string) => {
      if (!ok) failures.push(message);
      return ok;
    };
    for (let i = 0; i < CASES; i++) {
      const value = randomMap(r, 1);
      const context = `seed ${r.seed}, case ${i}: ${show(value)}`;
      const id = `case-${i}`;
      let encoded: AttributeValue | undefined;
      let refusal: Error | undefined;
      try {
        encoded = encodeData("data", value, MAX_ITEM_BYTES - 100);
      } catch (err) {
        refusal = err as Error;
        assert.ok(err instanceof TypeError || err instanceof RangeError, `${context}: ${String(err)}`);
        assert.match(refusal.message, /`data/, `${context}: the message names the path`);
      }
      if (backend.name === "dynalite" && hasProtoKey(value)) {
        const reason = "a __proto__ key (dynalite refuses it, or drops what it holds)";
        skipped.set(reason, (skipped.get(reason) ?? 0) + 1);
        continue;
      }
      if (encoded !== undefined) {
        stats.accepted++;
        const outcome = await serverStores(id, encoded);
        if (!check(outcome === "stored", `${context}: accepted, but the server ${outcome} it`)) continue;
        const out = await backend.client.send(
          new GetItemCommand({ TableName: table, Key: { id: { S: id } }, ConsistentRead: true }),
        );
        const back = decodeData(out.Item?.data);
        check(isDeepStrictEqual(back, readBack(value)), `${context}: read back changed, to ${show(back)}`);
        continue;
      }
      const reference = faithful(value);
      const outcome = typeof reference === "string" ? "refused" : await serverStores(id, reference);
      if (outcome !== "stored") {
        // A server error on a refused value is no disagreement: the server cannot store it either
        // (DynamoDB Local answers 500 to a map key of 64 KB of two-byte characters, for one).
        if (outcome !== "refused") serverFailures.set(outcome, (serverFailures.get(outcome) ?? 0) + 1);
        stats.refusedByServer++;
        continue;
      }
      const onPurpose = refusedOnPurpose(value);
      if (onPurpose?.test(refusal?.message ?? "")) {
        stats.refusedOnPurpose++;
        continue;
      }
      const lax = backend.name === "dynalite" ? dynaliteLaxity(value) : undefined;
      if (lax !== undefined && DYNALITE_LAX.test(refusal?.message ?? "")) {
        skipped.set(lax, (skipped.get(lax) ?? 0) + 1);
        continue;
      }
      check(false, `${context}: refused (${refusal?.message}), but the server stores it`);
    }
    assert.deepEqual(failures, [], `seed ${r.seed}: the validator and the server disagree`);
    t.diagnostic(`${JSON.stringify(stats)}`);
    for (const [outcome, count] of serverFailures) {
      t.diagnostic(`${backend.name} ${outcome} on ${count} values the validator refused`);
    }
    for (const [reason, count] of skipped) {
      t.diagnostic(
        `skipped on ${backend.name}, which differs from DynamoDB here: ${reason} (${count} cases)`,
      );
    }
  });
});
