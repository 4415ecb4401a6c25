/**
 * The mutation catalogue (test/sim/mutants.ts) must stay in step with the code: a patch that no
 * longer applies, or applies twice, silently drops a mutant from `npm run mutate` and weakens the
 * evidence. This runs `npm run mutate -- --check`, which applies every patch in memory and runs nothing.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";

describe("mutation catalogue", () => {
  it("every mutant's patch applies exactly once to the current code", () => {
    const out = spawnSync(process.execPath, ["--import", "tsx", "test/sim/mutate.ts", "--check"], {
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.equal(out.status, 0, `mutate --check failed:\n${out.stdout}\n${out.stderr}`);
    assert.match(out.stdout, /every patch applies exactly once/);
  });
});
