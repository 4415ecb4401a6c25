/** Data round-trips through a real server exactly. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LockClient } from "../src/index.js";
import { type Backend, countRequests, startBackend, uniqueName } from "./support/backend.js";

let backend: Backend;
let locks: LockClient;

before(async () => {
  backend = await startBackend();
  locks = new LockClient({ table: uniqueName(), client: backend.client });
  await locks.createTable();
});
after(async () => {
  await locks.close();
  await backend.close();
});

describe("data round-trip", () => {
  const samples: [string, Record<string, unknown>][] = [
    [
      "strings, numbers, booleans, null",
      { s: "héllo ✓", empty: "", n: 42, neg: -1.5, zero: 0, t: true, f: false, nil: null },
    ],
    ["nested maps and lists", { a: { b: { c: [1, "two", { three: [3] }, [], {}] } }, list: [null, true, 0] }],
    ["binary", { bytes: new Uint8Array([0, 1, 2, 254, 255]), empty: new Uint8Array() }],
    [
      "string, number and binary sets",
      {
        ss: new Set(["a", "b"]),
        ns: new Set([1, 2.5, -3]),
        bs: new Set([new Uint8Array([1]), new Uint8Array([2, 3])]),
      },
    ],
    ["bigints beyond 2^53", { big: 2n ** 63n, negative: -(2n ** 60n) }],
    ["keys that look like lock fields", { owner: "me", version: 9, fence: -1, id: "x", data: { data: 1 } }],
    ["an empty object", {}],
  ];
  for (const [name, data] of samples) {
    it(name, async () => {
      const id = `round-trip-${name}`;
      const held = await locks.acquire(id);
      await held.release(data);
      const again = await locks.acquire(id);
      assert.deepEqual(again.data, data);
      assert.deepEqual((await locks.read(id))?.data, data);
      await again.release();
    });
  }

  it("undefined properties are left out, like JSON, and read back as undefined", async () => {
    const held = await locks.acquire("undefined-props");
    await held.release({ kept: 1, gone: undefined });
    const again = await locks.acquire<{ kept: number; gone?: number }>("undefined-props");
    assert.deepEqual(again.data, { kept: 1 });
    assert.equal(again.data?.gone, undefined);
    await again.release();
  });

  it("fence and lock fields never collide with the caller's keys", async () => {
    const held = await locks.acquire("collide");
    await held.release({ fence: 1_000, owner: "fake" });
    const again = await locks.acquire("collide");
    assert.equal(again.fence, 2);
    assert.deepEqual(again.data, { fence: 1_000, owner: "fake" });
    await again.release();
  });

  it("data just under the 400 KB item limit is stored; just over is refused before sending", async () => {
    const held = await locks.acquire("large");
    await held.update({ blob: "x".repeat(390 * 1024) });
    await assert.rejects(held.update({ blob: "x".repeat(400 * 1024) }), RangeError);
    await held.release();
    const again = await locks.acquire<{ blob: string }>("large");
    assert.equal(again.data?.blob.length, 390 * 1024);
    await again.release();
  });

  it("bigints within Number.MAX_SAFE_INTEGER read back as numbers, larger ones as bigints", async () => {
    const held = await locks.acquire("bigints");
    await held.release({
      small: 5n,
      negative: -(2n ** 53n - 1n),
      large: 2n ** 53n,
      set: new Set([1n, 2n ** 70n]),
    });
    const again = await locks.acquire("bigints");
    assert.deepStrictEqual(again.data, {
      small: 5,
      negative: -(2 ** 53 - 1),
      large: 2n ** 53n,
      set: new Set([1, 2n ** 70n]),
    });
    await again.release();
  });

  it("numbers at the edges of DynamoDB's range and precision round-trip", async () => {
    const data = {
      tiny: 1e-130,
      negativeTiny: -1.5e-130,
      huge: 99999999999999999999999999999999999999n * 10n ** 88n,
      precise: 12345678901234567890123456789012345678n,
      zeros: 10n ** 100n,
    };
    const held = await locks.acquire("edges");
    await held.update(data);
    assert.deepStrictEqual((await locks.read("edges"))?.data, data);
    await held.release();
  });

  it("a __proto__ key (as JSON.parse makes it) is stored as a key, and never becomes a prototype", async (t) => {
    if (backend.name === "dynalite") {
      t.skip("dynalite, itself JavaScript, refuses a __proto__ map key; DynamoDB stores it");
      return;
    }
    const data = JSON.parse('{"__proto__": {"admin": true}, "n": 1}') as Record<string, unknown>;
    const held = await locks.acquire("proto");
    await held.update(data);
    const back = (await locks.read("proto"))?.data as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.deepStrictEqual(Object.getOwnPropertyDescriptor(back, "__proto__")?.value, { admin: true });
    assert.deepStrictEqual(back, data);
    await held.release();
  });

  it("31 levels of maps and lists are stored; 32 are refused before sending", async () => {
    const nest = (levels: number) => {
      let value: unknown = 1;
      for (let i = 1; i < levels; i++) value = i % 2 === 0 ? [value] : { n: value };
      return { n: value };
    };
    const held = await locks.acquire("deep");
    await held.update(nest(31));
    assert.deepStrictEqual((await locks.read("deep"))?.data, nest(31));
    await assert.rejects(
      held.update(nest(32)),
      (e) => e instanceof RangeError && /nested deeper/.test(e.message),
    );
    await held.release();
  });
});

describe("values DynamoDB refuses are refused before any request, and the lock stays held", () => {
  const refused: [string, Record<string, unknown>, typeof TypeError | typeof RangeError, string][] = [
    ["a number below DynamoDB's smallest magnitude", { x: { tiny: 1e-200 } }, RangeError, "data.x.tiny"],
    ["the smallest double", { x: 5e-324 }, RangeError, "data.x"],
    ["a bigint of 10^126", { big: 10n ** 126n }, RangeError, "data.big"],
    ["a bigint of 39 significant digits", { big: 2n ** 127n }, RangeError, "data.big"],
    ["a Set holding 1 and 1n", { s: new Set<unknown>([1, 1n]) }, RangeError, "data.s"],
    ["a Set holding 0 and 0n", { s: new Set<unknown>([0, 0n]) }, RangeError, "data.s"],
    [
      "a Set holding equal byte arrays",
      { s: new Set([new Uint8Array([1]), new Uint8Array([1])]) },
      RangeError,
      "data.s",
    ],
    ["an empty map key", { m: { "": 1 } }, RangeError, "data.m"],
    ["a map key of 64 KB", { ["k".repeat(65_536)]: 1 }, RangeError, "data.kkk"],
    ["a lone surrogate", { s: "\uD800" }, RangeError, "data.s"],
    ["a lone surrogate in a key", { m: { "\uDC00": 1 } }, RangeError, "data.m"],
  ];
  for (const [name, data, type, path] of refused) {
    it(name, async () => {
      const client = backend.newClient();
      const counter = countRequests(client);
      const own = new LockClient({ table: locks.table, client });
      const held = await own.acquire(`refused-${name}`);
      counter.reset();
      await assert.rejects(held.update(data), (e: unknown) => {
        assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
        assert.ok((e as Error).message.includes(`\`${path}`), (e as Error).message);
        return true;
      });
      await assert.rejects(held.release(data), type);
      assert.equal(counter.total(), 0, "no request was sent");
      assert.equal(held.signal.aborted, false, "the lock is still held");
      await held.release();
      await own.close();
      client.destroy();
    });
  }
});
