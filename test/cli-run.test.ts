/**
 * `dynamolock run` and the processes it starts: a lock that is no longer valid never starts the
 * command, the whole process group (grandchildren too) is stopped before a lost lock's `run` exits,
 * a normal exit keeps the lock while the group still has members, and every signal that would stop
 * `run` reaches the command. Real processes against a real local server; every pid a test learns is
 * killed at the end, by pid.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type HeldLock, Interrupted, supervise } from "../src/cli/run.js";
import { Supervisor } from "../src/cli/supervisor.js";
import { LockLostError } from "../src/errors.js";
import { LockClient } from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";
import { cleanEnv, killAll, startCli, stillRunning } from "./support/cli.js";
import { eventually } from "./support/wait.js";

let backend: Backend;
let table: string;
let locks: LockClient;
let env: NodeJS.ProcessEnv;
let dir: string;
const started = new Set<number>();

/**
 * A grandchild that ignores SIGTERM: writes its pid to the file named by its first argument once
 * its handler is in place, then idles; it exits by itself after 30 s at the latest.
 */
const STUBBORN = `
  process.on("SIGTERM", () => {});
  setTimeout(() => process.exit(0), 30000);
  const fs = require("node:fs");
  fs.writeFileSync(process.argv[1] + ".tmp", String(process.pid));
  fs.renameSync(process.argv[1] + ".tmp", process.argv[1]);
  setInterval(() => {}, 1000);
`;

before(async () => {
  backend = await startBackend();
  table = uniqueName("cli-run");
  locks = new LockClient({ table, client: backend.client, leaseMs: 10_000, heartbeatMs: 1_000 });
  await locks.createTable();
  dir = await mkdtemp(join(tmpdir(), "dynamolock-cli-run-"));
  env = cleanEnv({
    AWS_ENDPOINT_URL_DYNAMODB: backend.endpoint,
    NODE_BIN: process.execPath,
    STUBBORN,
  });
});
after(async () => {
  await killAll();
  for (const pid of started) if (stillRunning(pid)) process.kill(pid, "SIGKILL");
  await locks.close();
  await backend.close();
  await rm(dir, { recursive: true, force: true });
});

const lockArgs = (id: string) => ["--table", table, "--id", id];

/** `sh -c` leading a stubborn background grandchild, then doing `then` (e.g. `wait`, `exit 5`). */
function leaderWithGrandchild(pidFile: string, then: string): string[] {
  return ["sh", "-c", `"$NODE_BIN" -e "$STUBBORN" "$1" >/dev/null 2>&1 & ${then}`, "sh", pidFile];
}

/** The grandchild's pid, once it has written it (and so ignores SIGTERM). */
async function grandchildPid(pidFile: string): Promise<number> {
  await eventually(() => existsSync(pidFile), `the grandchild writing ${pidFile}`);
  const pid = Number(readFileSync(pidFile, "utf8"));
  started.add(pid);
  return pid;
}

/** Heartbeats every 100 ms, so `run` learns of a forceRelease at once, and 300 ms of --grace. */
const LOSE_FAST = ["--lease", "3s", "--heartbeat", "100ms", "--grace", "300ms"];

/** `run` on lock `id` (with `options`) over `leaderWithGrandchild(…, then)`, once the grandchild is up. */
async function runWithGrandchild(id: string, then: string, options: string[] = []) {
  const pidFile = join(dir, `${id}.pid`);
  const run = startCli(["run", ...lockArgs(id), ...options, "--", ...leaderWithGrandchild(pidFile, then)], {
    env,
  });
  return { run, grandchild: await grandchildPid(pidFile) };
}

describe("dynamolock run: a lock that is no longer valid never starts the command", () => {
  /** A lock as `acquire` may hand it out: `lose()` aborts its signal as the library would. */
  function fakeLock(options: { held?: boolean } = {}) {
    const controller = new AbortController();
    const lock: HeldLock = {
      fence: 7,
      holder: "fake",
      data: undefined,
      signal: controller.signal,
      get held() {
        return options.held ?? !controller.signal.aborted;
      },
      release: async () => {
        if (controller.signal.aborted) throw controller.signal.reason;
      },
    };
    const lose = () =>
      controller.abort(new LockLostError("late", "expired", 7, "the lease ran out before the answer came"));
    return { lock, lose };
  }

  async function superviseMarking(lock: HeldLock, marker: string, child: Supervisor): Promise<number> {
    return supervise(lock, {
      id: "late",
      table: "t",
      command: ["sh", "-c", 'echo ran > "$0"', marker],
      child,
      graceMs: 1_000,
      recordExit: false,
      verbose: false,
      interrupted: new AbortController().signal,
      explain: String,
    });
  }

  it("exits 79 without starting the command when the lock was lost before run saw it", async () => {
    const { lock, lose } = fakeLock();
    lose();
    const marker = join(dir, "lost-before");
    const child = new Supervisor({ ownGroup: true });
    assert.equal(await superviseMarking(lock, marker, child), 79);
    assert.equal(child.started, false);
    assert.equal(existsSync(marker), false, "the command ran");
  });

  it("exits 79 without starting the command when the loss comes while the data file is written", async () => {
    const { lock, lose } = fakeLock();
    const marker = join(dir, "lost-during-setup");
    const child = new Supervisor({ ownGroup: true });
    // supervise() runs synchronously up to its first file-system await; the loss lands during it,
    // as a late acquisition's abort does one timer tick after acquire resolved.
    const code = superviseMarking(lock, marker, child);
    lose();
    assert.equal(await code, 79);
    assert.equal(child.started, false);
    assert.equal(existsSync(marker), false, "the command ran");
  });

  it("exits 79 without starting the command when the lease ran out but the signal has not fired yet", async () => {
    const { lock } = fakeLock({ held: false });
    const marker = join(dir, "not-held");
    const child = new Supervisor({ ownGroup: true });
    assert.equal(await superviseMarking(lock, marker, child), 79);
    assert.equal(child.started, false);
    assert.equal(existsSync(marker), false, "the command ran");
  });

  it("still answers a signal that arrived before the command started with 128 + N", async () => {
    const { lock } = fakeLock();
    const interrupted = new AbortController();
    interrupted.abort(new Interrupted("SIGTERM"));
    const child = new Supervisor({ ownGroup: true });
    const code = await supervise(lock, {
      id: "late",
      table: "t",
      command: ["true"],
      child,
      graceMs: 1_000,
      recordExit: false,
      verbose: false,
      interrupted: interrupted.signal,
      explain: String,
    });
    assert.equal(code, 143);
    assert.equal(child.started, false);
  });
});

describe("dynamolock run: the command's process group", { concurrency: 3 }, () => {
  it("on a lost lock, SIGKILLs grandchildren that ignore SIGTERM after --grace, though the leader died first", async () => {
    const id = "lost-grandchild";
    const { run, grandchild } = await runWithGrandchild(id, "wait", LOSE_FAST);
    await locks.forceRelease(id);
    const result = await run.done;
    assert.equal(result.code, 79, result.stderr);
    assert.equal(stillRunning(grandchild), false, "a grandchild outlived run after the lock was lost");
  });

  it("keeps the lock after a normal exit until the group's last member is gone, then exits with the leader's code", async () => {
    const id = "straggler";
    const { run, grandchild } = await runWithGrandchild(id, "exit 5");
    await run.waitFor("keeping the lock", "stderr");
    assert.equal((await locks.read(id))?.held, true, "released while the group still had a member");
    assert.equal(stillRunning(grandchild), true);
    process.kill(grandchild, "SIGKILL");
    const result = await run.done;
    assert.equal(result.code, 5, result.stderr);
    assert.equal((await locks.read(id))?.held, false);
  });

  it("stops the group before exiting 79 when the lock is lost while it waits for stragglers", async () => {
    const id = "straggler-lost";
    const { run, grandchild } = await runWithGrandchild(id, "exit 0", LOSE_FAST);
    await run.waitFor("keeping the lock", "stderr");
    await locks.forceRelease(id);
    const result = await run.done;
    assert.equal(result.code, 79, result.stderr);
    assert.match(result.stderr, /was lost.*stopping the command/);
    assert.equal(stillRunning(grandchild), false, "a grandchild outlived run after the lock was lost");
  });
});

describe("dynamolock run: ending by any other path", () => {
  it("kills the command's whole group when the process supervising it crashes", async () => {
    const pidFile = join(dir, "crash.pid");
    const supervisor = new URL("../src/cli/supervisor.ts", import.meta.url).href;
    // A stand-in for run failing in a way nobody planned for (a bug, an unhandled rejection's
    // exit 70): it starts the command like run does, then throws once the grandchild is ready.
    const crash = `
      import { existsSync } from "node:fs";
      import { Supervisor } from ${JSON.stringify(supervisor)};
      const child = new Supervisor({ ownGroup: true });
      void child.run(${JSON.stringify(leaderWithGrandchild(pidFile, "wait"))}, process.env);
      const look = setInterval(() => {
        if (!existsSync(${JSON.stringify(pidFile)})) return;
        clearInterval(look);
        throw new Error("an unplanned failure");
      }, 10);
    `;
    const crashing = spawn(
      process.execPath,
      ["--import", import.meta.resolve("tsx"), "--input-type=module", "-e", crash],
      { env, stdio: "ignore" },
    );
    assert.ok(crashing.pid !== undefined);
    started.add(crashing.pid);
    const code = await new Promise<number | null>((resolve) => crashing.on("exit", resolve));
    assert.equal(code, 1, "the uncaught exception's exit code");
    const grandchild = await grandchildPid(pidFile);
    // A crashing process cannot wait for its SIGKILL to land; the signal is sent, the death follows.
    await eventually(() => !stillRunning(grandchild), "the grandchild to die with its supervisor");
  });
});

describe("dynamolock run: every signal that would stop run reaches the command", { concurrency: 3 }, () => {
  /** A command that reports `signal` and exits with `code`; it exits 99 by itself after 20 s. */
  const catching = (signal: string, code: number) => [
    process.execPath,
    "-e",
    `setTimeout(() => process.exit(99), 20000).unref();
     process.on("${signal}", () => { console.log("got ${signal}"); process.exit(${code}); });
     console.log("ready", process.pid, process.ppid, process.stdin.isTTY === true);
     setInterval(() => {}, 1000);`,
  ];
  const READY = /ready (\d+) (\d+) (true|false)/;

  for (const [signal, code] of [
    ["SIGQUIT", 24],
    ["SIGUSR2", 25],
  ] as const) {
    it(`forwards ${signal}, which would otherwise kill run and leave the command unguarded`, async () => {
      const id = `signal-${signal}`;
      const run = startCli(["run", ...lockArgs(id), "--", ...catching(signal, code)], { env });
      await run.waitFor(READY, "stdout");
      started.add(Number(READY.exec(run.stdout())?.[1]));
      process.kill(run.pid, signal);
      const result = await run.done;
      assert.equal(result.code, code, result.stderr);
      assert.match(result.stdout, new RegExp(`got ${signal}`));
      assert.equal((await locks.read(id))?.held, false, "released after the command exited");
    });
  }

  const hasScript = existsSync("/usr/bin/script") || existsSync("/bin/script");
  it("on a terminal, forwards a SIGINT sent with kill to run (not typed on the terminal)", {
    skip: hasScript ? false : "needs script(1) from util-linux for a pseudo-terminal",
  }, async () => {
    const id = "tty-kill-int";
    const cliArgs = [
      process.execPath,
      "--import",
      import.meta.resolve("tsx"),
      fileURLToPath(new URL("../src/cli/main.ts", import.meta.url)),
      "run",
      ...lockArgs(id),
      "--",
      ...catching("SIGINT", 22),
    ];
    const quote = (arg: string) => `'${arg.replaceAll("'", "'\\''")}'`;
    // script(1) runs the command on a new pseudo-terminal: run sees a terminal on stdin and keeps
    // the command in its own (the terminal's foreground) process group.
    const term = spawn("script", ["-qec", cliArgs.map(quote).join(" "), "/dev/null"], {
      env: { ...env, TERM: "xterm" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    assert.ok(term.pid !== undefined);
    started.add(term.pid);
    let output = "";
    term.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    term.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    const done = new Promise<number | null>((resolve) => term.on("close", (c) => resolve(c)));
    try {
      await eventually(() => READY.test(output), "the command to start", 6_000);
      const [, commandPid, runPid, tty] = READY.exec(output) ?? [];
      started.add(Number(commandPid));
      started.add(Number(runPid));
      assert.equal(tty, "true", "the command was not on a terminal");
      process.kill(Number(runPid), "SIGINT");
      assert.equal(await done, 22, output);
      assert.match(output, /got SIGINT/);
    } finally {
      term.stdin.end();
      if (term.exitCode === null && term.signalCode === null) term.kill("SIGKILL");
    }
    assert.equal((await locks.read(id))?.held, false, "released after the command exited");
  });
});
