/**
 * The benchmark's pure helpers (bench/stats.ts): what its tables say rests on them. The bench
 * itself is never run by a test.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  alternation,
  fixed,
  jsonIn,
  percentile,
  ratio,
  rowsFromJson,
  summarize,
  table,
} from "../bench/stats.js";

describe("bench helpers", () => {
  it("percentile takes the nearest rank of sorted samples", () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(sorted, 50), 50);
    assert.equal(percentile(sorted, 99), 99);
    assert.equal(percentile(sorted, 100), 100);
    assert.equal(percentile(sorted, 0), 1);
    assert.equal(percentile([7], 99), 7);
    assert.equal(percentile([1, 2, 3], 50), 2);
    assert.ok(Number.isNaN(percentile([], 50)));
  });

  it("summarize sorts its samples and leaves the input alone", () => {
    const samples = [5, 1, 3, 2, 4];
    assert.deepEqual(summarize(samples), { n: 5, mean: 3, p50: 3, p99: 5 });
    assert.deepEqual(samples, [5, 1, 3, 2, 4]);
  });

  it("ratio divides by the floor, and says nothing without one", () => {
    assert.equal(ratio(3, 4), "0.75×");
    assert.equal(ratio(4, 4), "1.00×");
    assert.equal(ratio(1, 0), "–");
    assert.equal(ratio(Number.NaN, 2), "–");
    assert.equal(ratio(2, Number.NaN), "–");
    assert.equal(fixed(1.005, 1), "1.0");
    assert.equal(fixed(undefined), "–");
  });

  it("alternation runs everyone once a round and rotates who goes first", () => {
    const rounds = alternation(["A", "B", "C"], 4);
    assert.deepEqual(rounds, [
      ["A", "B", "C"],
      ["B", "C", "A"],
      ["C", "A", "B"],
      ["A", "B", "C"],
    ]);
    // Over whole cycles of rotation, every contender holds every position equally often.
    const positions = new Map<string, number[]>();
    for (const round of alternation(["A", "B"], 6)) {
      for (const [i, c] of round.entries()) positions.set(c, [...(positions.get(c) ?? []), i]);
    }
    assert.deepEqual(
      positions.get("A")?.reduce((a, b) => a + b, 0),
      positions.get("B")?.reduce((a, b) => a + b, 0),
    );
    assert.deepEqual(alternation([], 3), [[], [], []]);
  });

  it("table lines up a header, a rule and rows", () => {
    assert.equal(
      table([
        ["name", "ms"],
        ["floor", "1.50"],
        ["x", "12.00"],
      ]),
      ["| name  |    ms |", "|-------|------:|", "| floor |  1.50 |", "| x     | 12.00 |"].join("\n"),
    );
    assert.equal(table([]), "");
  });

  it("rowsFromJson turns another script's JSON into table rows", () => {
    assert.deepEqual(
      rowsFromJson([
        { a: 1, b: 2.5 },
        { a: 2, c: "x" },
      ]),
      [
        ["a", "b", "c"],
        ["1", "2.50", ""],
        ["2", "", "x"],
      ],
    );
    assert.deepEqual(rowsFromJson({ rows: [{ p: 2 }] }), [["p"], ["2"]]);
    assert.deepEqual(rowsFromJson({ processes: 8, perSecond: 100 }), [
      ["processes", "perSecond"],
      ["8", "100"],
    ]);
    assert.deepEqual(rowsFromJson("text"), []);
  });

  it("jsonIn finds the JSON a script printed, after its log lines too", () => {
    assert.deepEqual(jsonIn('{"a":1}'), { a: 1 });
    assert.deepEqual(jsonIn('starting server\n{\n  "rows": [1, 2]\n}\n'), { rows: [1, 2] });
    assert.deepEqual(jsonIn('log\n{"a":1}\nmore log\n{"b":2}'), { b: 2 });
    assert.deepEqual(jsonIn("[1,2]"), [1, 2]);
    assert.equal(jsonIn("no json here\n{ broken"), undefined);
  });
});
