/**
 * The torture's short mode (`npm run torture -- --minutes N` is the long one): worker processes
 * contending through fault proxies, holders SIGKILLed, every record checked. And the checker itself,
 * fed records that break each rule, so a clean run means something.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Backend, startBackend } from "./support/backend.js";
import { testSeed } from "./support/random.js";
import { check, type FinalState, type Kill } from "./torture/checker.js";
import { runTorture, summary } from "./torture/main.js";
import type { EndRecord, Outcome, StartRecord } from "./torture/section.js";

let backend: Backend;
before(async () => {
  backend = await startBackend();
});
after(async () => {
  await backend.close();
});

describe("torture, short mode", () => {
  it("processes contending under faults and kills: no violation", { timeout: 120_000 }, async () => {
    const result = await runTorture({
      durationMs: 10_000,
      workers: 4,
      ids: 2,
      leaseMs: 1_500,
      seed: testSeed(),
      endpoint: backend.endpoint,
      transactions: backend.capabilities.transactions,
    });
    const text = summary(result, backend.name);
    assert.deepEqual(result.violations, [], text);
    // Something ran (the checks above are not vacuous); how much fits in 10 s is the machine's speed.
    assert.ok(result.acquisitions > 0, text);
    assert.ok(Object.values(result.faulted).reduce((a, b) => a + b, 0) > 0, text);
  });
});

describe("the torture's checker catches", () => {
  const ms = (n: number) => String(BigInt(n) * 1_000_000n);
  const start = (worker: string, fence: number, at: number, seen: [number, string | null]): StartRecord => ({
    t: "start",
    worker,
    id: "x",
    fence,
    start: ms(at),
    seen: { counter: seen[0], tag: seen[1] },
    tag: `${worker}:${fence}`,
  });
  const end = (
    worker: string,
    fence: number,
    at: number,
    outcome: Outcome,
    seen: number,
    extra = {},
  ): EndRecord => ({
    t: "end",
    worker,
    id: "x",
    fence,
    end: ms(at),
    outcome,
    wrote: { counter: seen + 1, tag: `${worker}:${fence}` },
    ...extra,
  });
  const run = (starts: StartRecord[], ends: EndRecord[], final: FinalState, kills: Kill[] = []) =>
    check({ starts, ends, kills, finals: new Map([["x", final]]) }).violations;

  it("nothing in a clean history", () => {
    const v = run(
      [start("a", 1, 0, [0, null]), start("b", 2, 20, [1, "a:1"])],
      [end("a", 1, 10, "acked", 0), end("b", 2, 30, "acked", 1)],
      { counter: 2, tag: "b:2" },
    );
    assert.deepEqual(v, []);
  });
  it("overlapping sections", () => {
    const v = run(
      [start("a", 1, 0, [0, null]), start("b", 2, 5, [1, "a:1"])],
      [end("a", 1, 10, "acked", 0), end("b", 2, 30, "acked", 1)],
      { counter: 2, tag: "b:2" },
    );
    assert.match(v.join(), /began 5 ms before a/);
  });
  it("fences out of order", () => {
    const v = run(
      [start("a", 2, 0, [0, null]), start("b", 1, 20, [0, null])],
      [end("a", 2, 10, "rejected", 0), end("b", 1, 30, "rejected", 0)],
      { counter: 0, tag: null },
    );
    assert.match(v.join(), /fence 1 of b began after fence 2/);
  });
  it("an acknowledged increment lost", () => {
    const v = run(
      [start("a", 1, 0, [0, null]), start("b", 2, 20, [0, null])],
      [end("a", 1, 10, "acked", 0), end("b", 2, 30, "rejected", 0)],
      { counter: 0, tag: null },
    );
    assert.match(v.join(), /saw 0@initial, expected 1@a:1/);
  });
  it("a refused write that appears", () => {
    const v = run([start("a", 1, 0, [0, null])], [end("a", 1, 10, "rejected", 0)], {
      counter: 1,
      tag: "a:1",
    });
    assert.match(v.join(), /stored 1@a:1, expected 0@initial/);
  });
  it("an increment counted twice (two holders from one value)", () => {
    const v = run(
      [start("a", 1, 0, [0, null]), start("b", 2, 20, [0, null])],
      [end("a", 1, 10, "uncertain", 0), end("b", 2, 30, "acked", 0)],
      { counter: 1, tag: "a:1" },
    );
    assert.match(v.join(), /stored 1@a:1, expected 1@b:2/);
  });
  it("a loss learnt (even while releasing) after the next holder began", () => {
    const v = run(
      [start("a", 1, 0, [0, null]), start("b", 2, 20, [0, null])],
      [end("a", 1, 10, "rejected", 0, { lossAt: ms(25) }), end("b", 2, 30, "acked", 0)],
      { counter: 1, tag: "b:2" },
    );
    assert.match(v.join(), /a \(fence 1\) learnt of its loss 5 ms after b \(fence 2\) began/);
  });
  it("but not a loss reported for a release that was applied (its answer lost, the lock taken again)", () => {
    const v = run(
      [start("a", 1, 0, [0, null]), start("b", 2, 20, [1, "a:1"])],
      [end("a", 1, 10, "uncertain", 0, { lossAt: ms(25) }), end("b", 2, 30, "acked", 1)],
      { counter: 2, tag: "b:2" },
    );
    assert.deepEqual(v, []);
  });
  it("a killed holder's section ends when it began its release, if it did", () => {
    const kills = [{ worker: "a", at: 25_000_000n }];
    const starts = [start("a", 1, 0, [0, null]), start("b", 2, 20, [1, "a:1"])];
    const ends = [end("b", 2, 30, "acked", 1)];
    const final = { counter: 2, tag: "b:2" };
    const stop = { t: "stop" as const, worker: "a", id: "x", fence: 1, at: ms(15) };
    assert.deepEqual(
      check({ starts, ends, stops: [stop], kills, finals: new Map([["x", final]]) }).violations,
      [],
    );
    assert.match(
      run(starts, ends, final, kills).join(),
      /began 5 ms before a \(fence 1\) stopped \(killed\)/,
    );
  });
  it("a killed holder's section ends when it was killed, and a section that never ended", () => {
    const kills = [{ worker: "a", at: 25_000_000n }];
    const v = run(
      [start("a", 1, 0, [0, null]), start("b", 2, 20, [0, null]), start("c", 3, 40, [0, null])],
      [end("b", 2, 30, "rejected", 0)],
      { counter: 0, tag: null },
      kills,
    );
    assert.match(v.join(), /b \(fence 2\) began 5 ms before a/);
    assert.match(v.join(), /c began a section .* never ended/);
  });
  it("a second counter off by one either way, or moved under its holder", () => {
    const tx = (outcome: string) => ({ tx: { outcome, seen: 0 } });
    const starts = [start("a", 1, 0, [0, null])];
    const ends = [end("a", 1, 10, "acked", 0, tx("acked"))];
    assert.match(run(starts, ends, { counter: 1, tag: "a:1", n: 0 }).join(), /second counter is 0/);
    assert.match(run(starts, ends, { counter: 1, tag: "a:1", n: 2 }).join(), /second counter is 2/);
    assert.deepEqual(run(starts, ends, { counter: 1, tag: "a:1", n: 1 }), []);
    const moved = [end("a", 1, 10, "acked", 0, tx("moved"))];
    assert.match(run(starts, moved, { counter: 1, tag: "a:1", n: 1 }).join(), /moved under a/);
  });
});
