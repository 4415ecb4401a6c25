/**
 * The `dynamolock` CLI as users run it: separate processes against a real local server (dynalite
 * by default, or DYNAMOLOCK_TEST_ENDPOINT, see support/backend.ts). Commands run by `run` are small
 * Node scripts that report what they saw; each exits by itself after 30 s at the latest, and every
 * one whose pid we learn is killed at the end.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LockClient } from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";
import { alive, cleanEnv, cli, killAll, startCli } from "./support/cli.js";

let backend: Backend;
let table: string;
let locks: LockClient;
let env: NodeJS.ProcessEnv;
const grandchildren = new Set<number>();

before(async () => {
  backend = await startBackend();
  table = uniqueName("cli");
  locks = new LockClient({
    table,
    client: backend.client,
    leaseMs: 10_000,
    heartbeatMs: 1_000,
    holder: "test-holder",
  });
  await locks.createTable();
  env = cleanEnv({ AWS_ENDPOINT_URL_DYNAMODB: backend.endpoint });
});
after(async () => {
  await killAll();
  for (const pid of grandchildren) if (alive(pid)) process.kill(pid, "SIGKILL");
  await locks.close();
  await backend.close();
});

/** A command for `run`: a Node script, bounded to 30 s, announcing its pid once it is ready. */
function script(body: string): string[] {
  return [process.execPath, "-e", `setTimeout(() => process.exit(99), 30000).unref(); ${body}`];
}
const READY = /ready (\d+)/;
function track(output: string): number {
  const pid = Number(READY.exec(output)?.[1]);
  assert.ok(Number.isInteger(pid), `no pid in ${output}`);
  grandchildren.add(pid);
  return pid;
}

const lockArgs = (id: string) => ["--table", table, "--id", id];

describe("dynamolock run", { concurrency: 3 }, () => {
  it("passes the command's exit code through and releases the lock", async () => {
    const result = await cli(["run", ...lockArgs("exit-code"), "--", ...script("process.exit(7)")], { env });
    assert.equal(result.code, 7, result.stderr);
    const info = await locks.read("exit-code");
    assert.equal(info?.held, false);
    assert.equal(info?.fence, 1);
  });

  it("gives the command DYNAMOLOCK_FENCE and DYNAMOLOCK_ID, a new fence each time", async () => {
    const show = script(
      "console.log(JSON.stringify({ fence: process.env.DYNAMOLOCK_FENCE, id: process.env.DYNAMOLOCK_ID }))",
    );
    const first = await cli(["run", ...lockArgs("fence-env"), "--", ...show], { env });
    const second = await cli(["run", ...lockArgs("fence-env"), "--", ...show], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(JSON.parse(first.stdout), { fence: "1", id: "fence-env" });
    assert.deepEqual(JSON.parse(second.stdout), { fence: "2", id: "fence-env" });
  });

  it("exits 75 with one line naming the holder when the lock is held", async () => {
    const held = await locks.acquire("held");
    try {
      const now = await cli(["run", ...lockArgs("held"), "--", ...script("console.log('ran')")], { env });
      assert.equal(now.code, 75);
      assert.equal(now.stdout, "", "the command must not run");
      assert.equal(now.stderr.trim().split("\n").length, 1, now.stderr);
      assert.match(
        now.stderr,
        /^dynamolock: lock "held" is held by "test-holder" \(fence 1, last heartbeat .* ago\); not waiting/,
      );

      const waited = await cli(
        ["run", ...lockArgs("held"), "--wait", "300ms", "--", ...script("console.log('ran')")],
        { env },
      );
      assert.equal(waited.code, 75);
      assert.equal(waited.stdout, "");
      assert.match(waited.stderr, /held by "test-holder".*gave up after waiting/);
    } finally {
      await held.release();
    }
  });

  it("waits for a held lock when asked, logging who holds it, then runs", async () => {
    const held = await locks.acquire("wait-then-run");
    const run = startCli(
      [
        "run",
        ...lockArgs("wait-then-run"),
        "--wait",
        "30s",
        "--",
        ...script("console.log('ran', process.env.DYNAMOLOCK_FENCE)"),
      ],
      { env },
    );
    await run.waitFor('waiting for lock "wait-then-run": held by "test-holder"', "stderr");
    await held.release();
    const result = await run.done;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), "ran 2");
  });

  it("stops the command and exits 79 when the lock is force-released", async () => {
    const run = startCli(
      [
        "run",
        ...lockArgs("lost"),
        "--lease",
        "3s",
        "--heartbeat",
        "100ms",
        "--grace",
        "20s",
        "--",
        ...script(
          "process.on('SIGTERM', () => { console.log('got SIGTERM'); process.exit(0); }); console.log('ready', process.pid); setInterval(() => {}, 1000);",
        ),
      ],
      { env },
    );
    await run.waitFor(READY, "stdout");
    const pid = track(run.stdout());
    const released = await cli(["release", "--force", ...lockArgs("lost")], { env });
    assert.equal(released.code, 0, released.stderr);
    assert.match(released.stdout, /released lock "lost" held by/);
    const result = await run.done;
    assert.equal(result.code, 79, result.stderr);
    assert.match(result.stdout, /got SIGTERM/);
    assert.match(result.stderr, /was lost.*stopping the command/);
    assert.equal(alive(pid), false);
  });

  it("SIGKILLs a command that ignores SIGTERM once the grace period is over", async () => {
    const run = startCli(
      [
        "run",
        ...lockArgs("lost-stubborn"),
        "--lease",
        "3s",
        "--heartbeat",
        "100ms",
        "--grace",
        "200ms",
        "--",
        ...script(
          "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('ready', process.pid); setInterval(() => {}, 1000);",
        ),
      ],
      { env },
    );
    await run.waitFor(READY, "stdout");
    const pid = track(run.stdout());
    await locks.forceRelease("lost-stubborn");
    const result = await run.done;
    assert.equal(result.code, 79, result.stderr);
    assert.match(result.stdout, /ignoring SIGTERM/);
    assert.match(result.stderr, /exit 137/);
    assert.equal(alive(pid), false);
  });

  for (const [signal, code] of [
    ["SIGTERM", 21],
    ["SIGINT", 22],
    ["SIGHUP", 23],
  ] as const) {
    it(`forwards ${signal} to the command and exits with its code`, async () => {
      const id = `signal-${signal}`;
      const run = startCli(
        [
          "run",
          ...lockArgs(id),
          "--",
          ...script(
            `process.on('${signal}', () => { console.log('got ${signal}'); process.exit(${code}); }); console.log('ready', process.pid); setInterval(() => {}, 1000);`,
          ),
        ],
        { env },
      );
      await run.waitFor(READY, "stdout");
      track(run.stdout());
      process.kill(run.pid, signal);
      const result = await run.done;
      assert.equal(result.code, code, result.stderr);
      assert.match(result.stdout, new RegExp(`got ${signal}`));
      assert.equal((await locks.read(id))?.held, false, "released after the command exited");
    });
  }

  it("gives up waiting on SIGTERM with 143, without running the command", async () => {
    const held = await locks.acquire("interrupt-wait");
    try {
      const run = startCli(
        ["run", ...lockArgs("interrupt-wait"), "--wait", "1m", "--", ...script("console.log('ran')")],
        { env },
      );
      await run.waitFor("waiting for lock", "stderr");
      process.kill(run.pid, "SIGTERM");
      const result = await run.done;
      assert.equal(result.code, 143, result.stderr);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, /interrupted by SIGTERM while waiting/);
    } finally {
      await held.release();
    }
  });

  it("stores what the command writes to DYNAMOLOCK_DATA_FILE, and the exit status with --record-exit", async () => {
    await (await locks.acquire("data-file")).release({ seen: 1 });
    const write = script(
      "const fs = require('node:fs'); const f = process.env.DYNAMOLOCK_DATA_FILE; const d = JSON.parse(fs.readFileSync(f, 'utf8')); fs.writeFileSync(f, JSON.stringify({ seen: d.seen + 1 })); process.exit(3);",
    );
    const result = await cli(["run", ...lockArgs("data-file"), "--record-exit", "--", ...write], { env });
    assert.equal(result.code, 3, result.stderr);
    const data = (await locks.read<{ seen: number; lastRun: Record<string, unknown> }>("data-file"))?.data;
    assert.equal(data?.seen, 2);
    assert.equal(data?.lastRun.exitCode, 3);
    assert.equal(data?.lastRun.fence, 2);
    assert.equal(typeof data?.lastRun.endedAt, "string");
  });

  it("reports a missing command as 127", async () => {
    const result = await cli(["run", ...lockArgs("missing-command"), "--", "/nonexistent/command"], { env });
    assert.equal(result.code, 127);
    assert.match(result.stderr, /command not found: \/nonexistent\/command/);
    assert.equal((await locks.read("missing-command"))?.held, false);
  });
});

describe("dynamolock status, release, data, create-table", { concurrency: 3 }, () => {
  it("status --json has a stable shape, held and free", async () => {
    const held = await locks.acquire("status-json");
    await held.update({ step: 4 });
    const heldStatus = await cli(["status", ...lockArgs("status-json"), "--json"], { env });
    assert.equal(heldStatus.code, 0, heldStatus.stderr);
    const s = JSON.parse(heldStatus.stdout);
    assert.deepEqual(Object.keys(s).sort(), [
      "dataBytes",
      "dataKeys",
      "exists",
      "expiresInMs",
      "fence",
      "heartbeatAgeMs",
      "heartbeatAt",
      "held",
      "holder",
      "holders",
      "id",
      "intent",
      "kind",
      "leaseMs",
      "permits",
      "releasedAt",
      "stale",
      "table",
    ]);
    assert.equal(s.table, table);
    assert.equal(s.id, "status-json");
    assert.equal(s.exists, true);
    assert.equal(s.held, true);
    assert.equal(s.stale, false);
    assert.equal(s.holder, "test-holder");
    assert.equal(s.fence, 1);
    assert.equal(s.leaseMs, 10_000);
    assert.equal(typeof s.heartbeatAt, "number");
    assert.equal(typeof s.heartbeatAgeMs, "number");
    assert.equal(typeof s.expiresInMs, "number");
    // Keys and size, never values: `data get` prints those.
    assert.deepEqual(s.dataKeys, ["step"]);
    assert.equal(s.dataBytes, Buffer.byteLength('{"step":4}'));
    assert.doesNotMatch(heldStatus.stdout, /"step":\s*4/);

    await held.release();
    const free = JSON.parse((await cli(["status", ...lockArgs("status-json"), "--json"], { env })).stdout);
    assert.equal(free.held, false);
    assert.equal(free.holder, null);
    assert.equal(free.heartbeatAt, null);
    assert.equal(typeof free.releasedAt, "number");

    const never = JSON.parse((await cli(["status", ...lockArgs("never-taken"), "--json"], { env })).stdout);
    assert.equal(never.exists, false);
    assert.equal(never.fence, 0);
    assert.equal(never.dataKeys, null);
    assert.equal(never.dataBytes, null);
  });

  it("status in text names the holder", async () => {
    const held = await locks.acquire("status-text");
    try {
      const result = await cli(["status", ...lockArgs("status-text")], { env });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /lock "status-text" in table ".*": held/);
      assert.match(result.stdout, /holder\s+test-holder/);
    } finally {
      await held.release();
    }
  });

  it("release needs --force, and says when there was nothing to release", async () => {
    const refused = await cli(["release", ...lockArgs("release-free")], { env });
    assert.equal(refused.code, 64);
    assert.match(refused.stderr, /--force/);
    const free = await cli(["release", "--force", ...lockArgs("release-free")], { env });
    assert.equal(free.code, 0, free.stderr);
    assert.match(free.stdout, /was not held/);
  });

  it("data set and data get round-trip JSON; set on a held lock exits 75", async () => {
    const set = await cli(["data", "set", ...lockArgs("data-cmd"), '{"n": 1, "tags": ["a"]}'], { env });
    assert.equal(set.code, 0, set.stderr);
    const get = await cli(["data", "get", ...lockArgs("data-cmd")], { env });
    assert.deepEqual(JSON.parse(get.stdout), { n: 1, tags: ["a"] });
    const fromStdin = await cli(["data", "set", ...lockArgs("data-cmd"), "--file", "-"], {
      env,
      input: '{"n": 2}',
    });
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.deepEqual((await locks.read("data-cmd"))?.data, { n: 2 });

    const held = await locks.acquire("data-cmd");
    try {
      const blocked = await cli(["data", "set", ...lockArgs("data-cmd"), '{"n": 3}'], { env });
      assert.equal(blocked.code, 75);
    } finally {
      await held.release();
    }
    const bad = await cli(["data", "set", ...lockArgs("data-cmd"), "[1]"], { env });
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /must be a JSON object/);
  });

  it("create-table creates a table once, with an optional sort key", async () => {
    const name = uniqueName("cli-created");
    const created = await cli(["create-table", name, "--sort-key", "sk"], { env });
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /created table/);
    // --table, like every other command, names the same table as the positional.
    const again = await cli(["create-table", "--table", name, "--sort-key", "sk"], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already exists/);
    const both = await cli(["create-table", "--table", name, "other-name"], { env });
    assert.equal(both.code, 64);
    assert.match(both.stderr, /two table names/);
    const run = await cli(
      ["run", "--table", name, "--id", "x", "--sort-key", "sk", "--", ...script("process.exit(0)")],
      { env },
    );
    assert.equal(run.code, 0, run.stderr);
    const wrongSchema = await cli(["status", "--table", name, "--id", "x"], { env });
    assert.equal(wrongSchema.code, 78);
    assert.match(wrongSchema.stderr, /has id \(S, HASH\), sk \(S, RANGE\), not the expected id \(S, HASH\):/);
  });
});

describe("dynamolock errors and help", () => {
  it("a missing table is one line suggesting create-table (exit 78)", async () => {
    const result = await cli(["status", "--table", "no-such-table", "--id", "x"], { env });
    assert.equal(result.code, 78);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.match(
      result.stderr,
      /table "no-such-table" does not exist.*dynamolock create-table no-such-table/,
    );
  });

  it("a bad duration or option is a usage error naming it (exit 64)", async () => {
    const duration = await cli(["run", ...lockArgs("x"), "--lease", "30", "--", "true"], { env });
    assert.equal(duration.code, 64);
    assert.match(duration.stderr, /bad duration for --lease: "30"/);
    const option = await cli(["status", ...lockArgs("x"), "--frobnicate"], { env });
    assert.equal(option.code, 64);
    assert.match(option.stderr, /unknown option --frobnicate/);
    assert.doesNotMatch(duration.stderr + option.stderr, /\n\s+at /, "no stack trace");
  });

  it("a misspelt command or option gets the closest one suggested (exit 64)", async () => {
    const command = await cli(["stauts", ...lockArgs("x")], { env });
    assert.equal(command.code, 64);
    assert.match(command.stderr, /unknown command "stauts" \(did you mean "status"\?/);
    const option = await cli(["status", ...lockArgs("x"), "--jsno"], { env });
    assert.equal(option.code, 64);
    assert.match(option.stderr, /unknown option --jsno \(did you mean --json\?\)/);
  });

  it("no region and no credentials are one line each (exit 78), without any request", async () => {
    const home = await mkdtemp(join(tmpdir(), "dynamolock-home-"));
    try {
      const bare = cleanEnv({ HOME: home });
      const noRegion = await cli(["status", "--table", "locks", "--id", "x"], { env: bare });
      assert.equal(noRegion.code, 78, noRegion.stderr);
      assert.match(noRegion.stderr, /no AWS region/);
      const noCredentials = await cli(["status", "--table", "locks", "--id", "x"], {
        env: { ...bare, AWS_REGION: "eu-west-1" },
      });
      assert.equal(noCredentials.code, 78, noCredentials.stderr);
      assert.match(noCredentials.stderr, /no AWS credentials/);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it("--help works for every command, with examples", async () => {
    const results = await Promise.all(
      ["run", "status", "release", "create-table", "data", "serve", "demo"].map((command) =>
        cli([command, "--help"]),
      ),
    );
    for (const result of results) {
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Usage: dynamolock/);
      assert.match(result.stdout, /Examples:/);
    }
    const top = await cli(["--help"]);
    assert.match(top.stdout, /Exit codes:/);
  });
});

describe("dynamolock serve", () => {
  it("prints the endpoint, serves it, and stops cleanly on SIGINT", async () => {
    const serve = startCli(["serve", "--port", "0"], { env: cleanEnv() });
    await serve.waitFor(/AWS_ENDPOINT_URL_DYNAMODB=http:\/\/127\.0\.0\.1:\d+\n/, "stdout");
    const endpoint = serve.stdout().trim().split("=")[1] as string;
    const created = await cli(["create-table", "served", "--endpoint", endpoint]);
    assert.equal(created.code, 0, created.stderr);
    const status = await cli(["status", "--table", "served", "--id", "a", "--json"], {
      env: cleanEnv({ AWS_ENDPOINT_URL_DYNAMODB: endpoint }),
    });
    assert.equal(JSON.parse(status.stdout).exists, false);
    process.kill(serve.pid, "SIGINT");
    const result = await serve.done;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /stopping the local server/);
  });
});
