/**
 * `dynamolock list` (text and --json) and `dynamolock top` in a real terminal: tmux, on its own
 * socket, stopped by its server's pid. The top test is skipped, with the reason, without tmux.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { LockClient } from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";
import { cleanEnv, cli, killAll } from "./support/cli.js";
import { clientTenMinutesBehind } from "./support/process.js";
import { eventually } from "./support/wait.js";

const run = promisify(execFile);
let backend: Backend;
let table: string;
let env: NodeJS.ProcessEnv;
const clients: LockClient[] = [];

before(async () => {
  backend = await startBackend();
  table = uniqueName("cli-list");
  env = cleanEnv({ AWS_ENDPOINT_URL_DYNAMODB: backend.endpoint });
  const setup = new LockClient({ table, client: backend.client, holder: "ci-runner" });
  clients.push(setup);
  await setup.createTable();
  await setup.acquire("deploy/prod");
  await (await setup.acquire("deploy/staging")).release();
  const withData = await setup.acquire("backup/nightly");
  await withData.update({ lastRun: "ok" });
  await withData.release();
});
after(async () => {
  await killAll();
  for (const c of clients) await c.close().catch(() => undefined);
  await backend.close();
});

describe("dynamolock list", () => {
  it("--json: one parseable object per line with every field", async () => {
    const result = await cli(["list", "--table", table, "--json"], { env });
    assert.equal(result.code, 0, result.stderr);
    const rows = result.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    assert.deepEqual(rows.map((r) => r.id).sort(), ["backup/nightly", "deploy/prod", "deploy/staging"]);
    const prod = rows.find((r) => r.id === "deploy/prod");
    assert.deepEqual(Object.keys(prod), [
      "id",
      "held",
      "stale",
      "holder",
      "fence",
      "heartbeatAt",
      "heartbeatAgeMs",
      "leaseMs",
      "leaseLeftMs",
      "releasedAt",
      "waiters",
      "dataBytes",
      "holders",
    ]);
    assert.equal(prod.held, true);
    assert.equal(prod.holder, "ci-runner");
    assert.equal(prod.waiters, null);
    assert.equal(
      rows.find((r) => r.id === "backup/nightly").dataBytes,
      JSON.stringify({ lastRun: "ok" }).length,
    );
  });

  it("--held and --prefix filter", async () => {
    const held = await cli(["list", "-t", table, "--json", "--held"], { env });
    assert.deepEqual(
      held.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).id),
      ["deploy/prod"],
    );
    const deploy = await cli(["list", "-t", table, "--json", "--prefix", "deploy/"], { env });
    assert.deepEqual(
      deploy.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).id)
        .sort(),
      ["deploy/prod", "deploy/staging"],
    );
    const none = await cli(["list", "-t", table, "--prefix", "nothing/"], { env });
    assert.match(none.stdout, /no locks in table .* \(with ids starting "nothing\/"\)/);
  });

  it("a table sorted by id, with the columns and the cost", async () => {
    const result = await cli(["list", "-t", table], { env });
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split("\n");
    assert.match(
      lines[0] as string,
      /^ID\s+HOLDER\s+FENCE\s+HEARTBEAT\s+LEASE LEFT\s+STALE\s+WAITERS\s+DATA$/,
    );
    assert.deepEqual(
      lines.slice(1, 4).map((l) => l.split(/\s+/)[0]),
      ["backup/nightly", "deploy/prod", "deploy/staging"],
    );
    assert.match(lines[2] as string, /deploy\/prod\s+ci-runner\s+1\s+\S+ ago\s+\S+\s+no\s+-\s+-/);
    assert.match(lines[4] as string, /3 locks, 1 held; 1 Scan page read/);
  });

  it("bad arguments: exit 64 naming the option, before any request", async () => {
    const bad = await cli(["list", "-t", table, "--page-size", "0"], {
      env: cleanEnv({ AWS_ENDPOINT_URL_DYNAMODB: "http://127.0.0.1:9" }),
    });
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /--page-size/);
    const missing = await cli(["list"], { env });
    assert.equal(missing.code, 64);
    assert.match(missing.stderr, /missing --table/);
    const top = await cli(["top", "-t", table], { env });
    assert.equal(top.code, 64);
    assert.match(top.stderr, /needs a terminal/);
  });
});

const tmux = (() => {
  try {
    execFileSync("tmux", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const skipTop = tmux ? false : "no tmux found (apt-get install tmux)";
if (skipTop !== false) process.stdout.write(`# skipping the top terminal test: ${skipTop}\n`);

describe("dynamolock top in a terminal", { skip: skipTop }, () => {
  const socket = `dynamolock-test-${process.pid}`;
  let serverPid: number | undefined;
  const tm = (...args: string[]) => run("tmux", ["-L", socket, "-f", "/dev/null", ...args]);
  after(async () => {
    if (serverPid !== undefined) {
      try {
        process.kill(serverPid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });

  it("highlights a takeover between refreshes and leaves the terminal clean on exit", async () => {
    const main = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
    const shellEnv = Object.entries({
      ...env,
      NO_COLOR: "",
      FORCE_COLOR: "1",
      TERM: "xterm-256color",
      PS1: "$ ",
    })
      .filter(([, v]) => v !== undefined)
      .flatMap(([k, v]) => ["-e", `${k}=${v}`]);
    await tm("new-session", "-d", "-x", "160", "-y", "30", ...shellEnv, "bash", "--norc", "--noprofile");
    serverPid = Number((await tm("display-message", "-p", "#{pid}")).stdout.trim());
    const pane = async (escapes = false) =>
      (await tm("capture-pane", "-p", ...(escapes ? ["-e"] : []))).stdout;
    const command = `${process.execPath} --import ${import.meta.resolve("tsx")} ${main} top -t ${table} --interval 200ms --prefix orders/; echo "top exited $?"`;
    await tm("send-keys", "-l", command);
    await tm("send-keys", "Enter");

    const alpha = clientTenMinutesBehind(backend.newClient(), { table, holder: "alpha", leaseMs: 10_000 });
    clients.push(alpha);
    await alpha.acquire("orders/7");
    await eventually(async () => /orders\/7\s+alpha/.test(await pane()), "alpha in top", 1_000);
    const beta = new LockClient({ table, client: backend.client, holder: "beta" });
    clients.push(beta);
    await beta.acquire("orders/7");
    await eventually(
      async () => /orders\/7\s+beta.*← taken over/.test(await pane()),
      "the takeover highlighted",
      1_000,
    );
    const coloured = (await pane(true))
      .split("\n")
      .find((l) => l.includes("taken over") && l.includes("orders/7"));
    assert.ok(
      (coloured ?? "").includes("\u001b[") && /\[(?:\d+;)*31m/.test(coloured ?? ""),
      "the takeover row is red",
    );
    assert.match(await pane(), /taken over by "beta" from "alpha" \(fence 1 → 2\)/);
    assert.match(await pane(), /cost: 1 Scan request per refresh/);

    await tm("send-keys", "q");
    await eventually(async () => (await pane()).includes("top exited 0"), "top to exit", 1_000);
    const screen = await pane();
    assert.doesNotMatch(screen, /HOLDER|taken over/, "the table is gone with the alternate screen");
    const flags = (await tm("display-message", "-p", "#{alternate_on} #{cursor_flag}")).stdout.trim();
    assert.equal(flags, "0 1", "main screen, cursor visible");
    await tm("send-keys", "-l", "stty -a | grep -o -- '-\\?icanon'\n");
    // The typed command line contains "icanon" too: wait for stty's own output line.
    await eventually(async () => /^-?icanon$/m.test(await pane()), "stty", 200);
    const mode = await pane();
    assert.match(mode, /^icanon$/m, "line mode restored");
  });
});
