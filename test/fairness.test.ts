/**
 * Equal contenders in separate processes share a lock fairly (docs/protocol.md, "Turns"): counted in
 * acquisitions over a bounded number of rounds, never in wall-clock time.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, it } from "node:test";
import { sharedTable } from "./support/process.js";
import { eventually } from "./support/wait.js";
import { workerStarter } from "./support/workers.js";

const server = sharedTable();
const startWorker = workerStarter(server);

describe("fairness across processes", () => {
  it("4 equal contenders looping acquire → 5 ms → release: none below half the mean share", {
    timeout: 120_000,
  }, async (t) => {
    const workers = 4;
    const total = 80;
    const started = Array.from({ length: workers }, (_, i) =>
      startWorker(
        "fair-worker.ts",
        { LOCK_ID: "fair", TOTAL: String(total), WORKER: `w${i}`, HOLD_MS: "5" },
        { stdin: "pipe" },
      ),
    );
    // Everyone starts contending at once: a worker that starts first must not count as favoured.
    await eventually(() => started.every(({ lines }) => lines[0] === "ready"), "workers ready", 12_000);
    for (const { child } of started) child.stdin?.write("go\n");
    const codes = await Promise.all(started.map(async ({ child }) => (await once(child, "close"))[0]));
    assert.deepEqual(codes, Array(workers).fill(0));
    const sections = started
      .flatMap(({ lines }) =>
        lines.slice(1).map((l) => JSON.parse(l) as { worker: string; fence: number; seen: number }),
      )
      .sort((a, b) => a.fence - b.fence);
    assert.equal(sections.length, total);
    assert.deepEqual(
      sections.map((s) => s.seen),
      sections.map((_, k) => k),
      "mutual exclusion: each section saw every earlier one",
    );
    const shares = started.map((_, i) => sections.filter((s) => s.worker === `w${i}`).length);
    const mean = total / workers;
    t.diagnostic(`acquisitions per process: ${shares.join(", ")}`);
    assert.ok(
      shares.every((n) => n >= mean / 2),
      `acquisitions per process ${shares.join(", ")}: one below half the mean (${mean})`,
    );
  });
});
