/**
 * `dynamolock demo` in a test-sized run: it starts its own server and worker processes, kills one
 * holder, and must reach a passing verification and write its timeline.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { DemoModel } from "../src/cli/demo/model.js";
import { verify } from "../src/cli/demo/verify.js";
import { cleanEnv, cli, killAll } from "./support/cli.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dynamolock-demo-"));
});
after(async () => {
  await killAll();
  await rm(dir, { recursive: true, force: true });
});

it("runs to a passing verification: counter, fences, takeover after the lease", async () => {
  const out = join(dir, "timeline.svg");
  const result = await cli(
    ["demo", "--workers", "3", "--rounds", "2", "--lease", "1s", "--work", "50ms", "--out", out],
    { env: cleanEnv(), limitMs: 90_000 },
  );
  assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
  assert.match(result.stdout, /Verification passed/);
  assert.match(result.stdout, /SIGKILL w\d \(pid \d+\) while it holds fence/);
  assert.match(result.stdout, /took over/);
  assert.doesNotMatch(result.stdout, /✗/);
  // Not a terminal: plain lines, no cursor movement.
  assert.ok(!result.stdout.includes("\u001b["), "no escape sequences");
  const counter = /counter in the lock's data is (\d+); completed critical sections: (\d+)/.exec(
    result.stdout,
  );
  assert.ok(counter !== null);
  assert.equal(counter[1], counter[2]);
  // The two survivors complete all their rounds; the killed worker only those before its death.
  assert.ok(Number(counter[1]) >= 2 * 2 && Number(counter[1]) < 3 * 2, counter[0]);

  const svg = await readFile(out, "utf8");
  assert.ok(svg.startsWith("<?xml") && svg.includes("<svg ") && svg.trimEnd().endsWith("</svg>"));
  assert.match(svg, /SIGKILL/);
  assert.match(svg, /verification passed/);
});

it("the verification catches a lost update, an overlap and an early takeover", () => {
  const t0 = 1_000_000;
  const model = new DemoModel(["w1", "w2", "w3"], t0);
  const acquired = (worker: string, at: number, fence: number, counter: number, victim = false) =>
    model.apply({
      type: "acquired",
      worker,
      round: 1,
      at,
      waitedMs: 0,
      fence,
      counter,
      previousFence: 0,
      victim,
    });
  const released = (worker: string, at: number, fence: number, counter: number) =>
    model.apply({ type: "released", worker, round: 1, at, fence, counter });
  acquired("w1", t0 + 100, 1, 0);
  acquired("w3", t0 + 150, 2, 0); // took the lock while w1 still held it, read the same count
  released("w1", t0 + 200, 1, 1);
  released("w3", t0 + 250, 2, 1);
  acquired("w2", t0 + 300, 3, 1, true);
  model.observed({ held: true, holder: "w2", fence: 3, heartbeatAt: t0 + 400, counter: 1, readAt: t0 + 410 });
  model.killed("w2", 4242, 3, t0 + 450);
  acquired("w1", t0 + 900, 4, 1); // only 500 ms after the last heartbeat, with a 1 s lease
  released("w1", t0 + 1_000, 4, 2);
  for (const worker of ["w1", "w3"]) model.apply({ type: "done", worker, at: t0 + 1_100 });
  model.end(t0 + 1_200);
  const result = verify(
    model,
    { counter: 2, held: false },
    { leaseMs: 1_000, expectKill: true, expectedWorkers: 3 },
  );
  assert.equal(result.ok, false);
  const failed = result.checks.filter((c) => !c.ok).map((c) => c.text);
  assert.equal(failed.length, 4, failed.join("\n"));
  assert.match(failed.join("\n"), /counter in the lock's data is 2; completed critical sections: 3/);
  assert.match(failed.join("\n"), /lost or repeated updates: fence 2 read 0, expected 1/);
  assert.match(failed.join("\n"), /overlapping holders: fences 1 and 2/);
  assert.match(failed.join("\n"), /BEFORE the lease ran out/);
});
