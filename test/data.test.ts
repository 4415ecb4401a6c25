/** Data round-trips through a real server exactly. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LockClient } from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";

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
});
