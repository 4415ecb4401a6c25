/** Command-line durations: compound forms, and one message for zero and negative values. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDuration } from "../src/cli/duration.js";

describe("parseDuration", () => {
  it("accepts single and compound forms, largest unit first", () => {
    const cases: [string, number][] = [
      ["1500ms", 1_500],
      ["30s", 30_000],
      ["1m30s", 90_000],
      ["1h5m", 3_900_000],
      ["2s500ms", 2_500],
      ["1.5m", 90_000],
    ];
    for (const [text, ms] of cases) assert.equal(parseDuration("lease", text), ms, text);
  });

  it("refuses units out of order or repeated, and bare numbers", () => {
    assert.throws(() => parseDuration("lease", "30s1m"), /--lease: "30s1m" \(units from the largest down/);
    assert.throws(() => parseDuration("lease", "1s1s"), /units from the largest down/);
    assert.throws(() => parseDuration("lease", "30"), /add a unit: 30s or 30ms\?/);
    assert.throws(() => parseDuration("lease", "1m30"), /--lease: "1m30" \(e\.g\./);
  });

  it("zero and negative values get one message, by whether zero is allowed", () => {
    for (const text of ["0s", "-5s", "0m0s"]) {
      assert.throws(
        () => parseDuration("lease", text),
        new RegExp(`--lease: "${text}" \\(must be more than 0\\)`),
      );
    }
    assert.throws(() => parseDuration("wait", "-1s", { allowZero: true }), /\(must be 0 or more\)/);
    assert.equal(parseDuration("wait", "0", { allowZero: true }), 0);
    assert.equal(parseDuration("wait", "0s", { allowZero: true }), 0);
  });
});
