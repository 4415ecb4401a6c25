/**
 * The deterministic simulation, quick mode (the long mode is `npm run sim`). It runs the real
 * LockClient and Lock in simulated processes against a simulated DynamoDB and network, and checks
 * the lock's invariants after every event. See test/sim/ and docs/safety.md.
 *
 * SIM_SCHEDULES=n overrides how many schedules the quick search runs.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BREAKS, type BreakName, type RunName, replayCommand, scenarioOf } from "./sim/replay.js";
import { generateScenario } from "./sim/scenario.js";
import { search } from "./sim/search.js";
import { runScenario } from "./sim/simulation.js";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

const QUICK_SCHEDULES = Number(process.env.SIM_SCHEDULES ?? 2_000);

describe("simulation", () => {
  it("is deterministic: one seed, one run", async () => {
    for (const seed of [3, 656]) {
      const scenario = generateScenario(seed, "stormy");
      const first = await runScenario(scenario, { trace: true });
      const second = await runScenario(generateScenario(seed, "stormy"), { trace: true });
      assert.ok(first.trace.length > 10);
      assert.deepEqual(second.trace, first.trace);
      assert.deepEqual(second.network, first.network);
      assert.equal(second.steps, first.steps);
    }
  });

  it(`finds no violation in ${QUICK_SCHEDULES} schedules of every supported profile`, async () => {
    const outcome = await search({ from: 1, count: QUICK_SCHEDULES, profile: "rotate" });
    const found = outcome.found;
    assert.ok(
      found === undefined,
      found &&
        `${found.result.violation?.invariant}: ${found.result.violation?.detail}\nreplay: ${replayCommand(found.name)}`,
    );
    assert.equal(outcome.ran, QUICK_SCHEDULES);
  });
});

/**
 * Each deliberate break must be found, within a budget of schedules. The budgets are generous; the
 * numbers actually needed are printed (they are part of the evidence that the search has teeth).
 */
describe("simulation finds deliberate protocol breaks", () => {
  const budgets: Record<BreakName, number> = {
    "skew-beyond-bound": 200,
    "renew-exact-version": 200,
    "release-races-heartbeat": 1_000,
    "takeover-ignores-version": 2_000,
    "takeover-early": 2_000,
    "late-acquisition-handed-out": 2_000,
  };
  for (const name of Object.keys(BREAKS) as BreakName[]) {
    it(`${name} (profile ${BREAKS[name].profile})`, async (t) => {
      const outcome = await search({ from: 1, count: budgets[name], profile: "rotate", break: name });
      assert.ok(outcome.found, `not found in ${budgets[name]} schedules`);
      const v = outcome.found.result.violation;
      t.diagnostic(`found after ${outcome.found.after} schedules: ${v?.invariant}`);
    });
  }
});

/**
 * Runs that found real defects: each fails against the library as it was before the fix and passes
 * now. The seeds are tied to this version of the scenario generator and workloads; every defect
 * also has a targeted test in test/sim-regressions.test.ts that does not depend on them.
 */
describe("simulation regressions", () => {
  const runs: { readonly name: RunName; readonly defect: string }[] = [
    {
      name: { seed: 2, profile: "tight" },
      defect: "a release applied but unanswered was reported as released by someone else",
    },
    {
      name: { seed: 25, profile: "stormy" },
      defect:
        "a release applied but unanswered, then another holder's acquisition, was reported as a takeover",
    },
    {
      name: { seed: 187, profile: "stormy" },
      defect: "an update lost while an attempt went unanswered was rejected as not written, but was applied",
    },
    { name: { seed: 247, profile: "stormy" }, defect: "the same for a release with data" },
    {
      name: { seed: 1478, profile: "tight" },
      defect: "a stall between a heartbeat's wall stamp and its send let the holder outlast the shortcut",
    },
    {
      name: { seed: 656, profile: "stormy" },
      defect: "late duplicates of an acquire and an update rolled back data written since",
    },
    { name: { seed: 2153, profile: "stormy" }, defect: "the same with a late duplicate of a release" },
    {
      name: { seed: 1201, profile: "stormy" },
      defect: "a late duplicate of forceRelease removed a later holder",
    },
    {
      name: { seed: 877, profile: "stormy" },
      defect: "the same, before the later holder had even heard back from its acquire",
    },
    {
      name: { seed: 1872, profile: "stormy" },
      defect: "an update the SDK retried across a forceRelease was rejected as unwritten",
    },
  ];
  for (const { name, defect } of runs) {
    it(`${replayCommand(name)}: ${defect}`, async () => {
      const result = await runScenario(scenarioOf(name));
      assert.equal(
        result.violation,
        undefined,
        `${result.violation?.invariant}: ${result.violation?.detail}`,
      );
    });
  }
});
