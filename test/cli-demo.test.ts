/**
 * `dynamolock demo` in a test-sized run: it starts its own server and worker processes, kills one
 * holder, and must reach a passing verification and write its timeline.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
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
  assert.match(result.stdout, /SIGKILL w2/);
  assert.match(result.stdout, /took over/);
  assert.doesNotMatch(result.stdout, /✗/);
  // Not a terminal: plain lines, no cursor movement.
  assert.ok(!result.stdout.includes("\u001b["), "no escape sequences");
  const counter = /counter in the lock's data is (\d+); completed critical sections: (\d+)/.exec(
    result.stdout,
  );
  assert.ok(counter !== null);
  assert.equal(counter[1], counter[2]);
  assert.equal(
    Number(counter[1]),
    3 * 2 - 1,
    "the killed worker's section and its remaining rounds never complete",
  );

  const svg = await readFile(out, "utf8");
  assert.ok(svg.startsWith("<?xml") && svg.includes("<svg ") && svg.trimEnd().endsWith("</svg>"));
  assert.match(svg, /SIGKILL/);
  assert.match(svg, /verification passed/);
});
