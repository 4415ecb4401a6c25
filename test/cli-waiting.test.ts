/**
 * `run --wait` on a terminal: the live status line, and what Ctrl-C leaves of it. Needs a pty, made
 * with util-linux `script`; without it the test skips and says why.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { LockClient } from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";
import { cleanEnv } from "./support/cli.js";

const CLI = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
const TSX = import.meta.resolve("tsx");
const hasScript = spawnSync("script", ["--version"], { stdio: "ignore" }).status === 0;
const skip = hasScript ? false : "no util-linux `script` to run the CLI on a pty";
if (skip !== false) process.stdout.write(`# cli-waiting tests skipped: ${skip}\n`);

let backend: Backend;
let locks: LockClient;
const table = uniqueName("wait");

before(async () => {
  backend = await startBackend();
  locks = new LockClient({ table, client: backend.client, leaseMs: 30_000, holder: "other-host" });
  await locks.createTable();
});
after(async () => {
  await locks.close();
  await backend.close();
});

/** What StatusLine writes to erase its line: carriage return, then "erase the whole line". */
const ERASE = "\r\x1b[2K";

const quote = (arg: string) => `'${arg.replace(/'/g, "'\\''")}'`;

describe("run --wait on a terminal", { skip }, () => {
  it("Ctrl-C while the status line is drawn erases it before the final message", async () => {
    await using held = await locks.acquire("busy");
    assert.equal(held.holder, "other-host");
    const command = [process.execPath, "--import", TSX, CLI, "run", "--table", table, "--id", "busy"]
      .concat(["--wait", "30s", "--", "true"])
      .map(quote)
      .join(" ");
    // script gives the CLI a pty; the \x03 written to script's stdin reaches the pty, whose line
    // discipline turns it into SIGINT for the CLI, as a real Ctrl-C does.
    const child = spawn("script", ["-qec", command, "/dev/null"], {
      env: cleanEnv({ AWS_ENDPOINT_URL_DYNAMODB: backend.endpoint, TERM: "xterm", COLUMNS: "200" }),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
    });
    const limit = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const code = new Promise<number | null>((resolve) => child.once("close", resolve));
    try {
      for (let i = 0; i < 600 && !/waiting for lock "busy": held by "other-host"/.test(out); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(out.includes(`${ERASE}dynamolock: waiting for lock "busy"`), "the status line is drawn");
      child.stdin.write("\x03");
      await code;
    } finally {
      clearTimeout(limit);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    const final = out.lastIndexOf("dynamolock: interrupted by SIGINT");
    assert.ok(final > 0, `a final message: ${JSON.stringify(out)}`);
    const lastStatus = out.lastIndexOf("dynamolock: waiting for lock");
    assert.ok(lastStatus < final);
    // Between the last drawn status and the message, the line was erased (or ended): the message
    // starts a line of its own.
    const between = out.slice(lastStatus, final);
    assert.ok(
      between.endsWith(ERASE) || between.endsWith("\n"),
      `the status line was not ended: ${JSON.stringify(between)}`,
    );
  });
});
