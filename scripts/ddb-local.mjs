#!/usr/bin/env node
/**
 * AWS DynamoDB Local for the conformance suite: fetched from Maven Central into the git-ignored
 * .cache/ folder (its licence forbids redistributing it, so it is never committed or published),
 * started on a free port, and stopped by its own pid.
 *
 *   node scripts/ddb-local.mjs test [test files...]  start it, run the behaviour tests against it, stop it
 *   node scripts/ddb-local.mjs start                 start it and keep it running until Ctrl-C
 *   node scripts/ddb-local.mjs fetch                 only fetch it
 *
 * Needs Java 17+ (`java` on PATH, or JAVA_HOME) and, for the first fetch, Maven (`mvn`).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const pom = join(root, "tools", "ddb-local", "pom.xml");
/** The version is pinned in the pom alone; read it from there so the two cannot disagree. */
const version = /<ddblocal\.version>([^<]+)<\/ddblocal\.version>/.exec(readFileSync(pom, "utf8"))?.[1];
if (version === undefined) throw new Error(`No <ddblocal.version> in ${pom}`);
const dir = join(root, ".cache", "ddb-local", version);
const jar = join(dir, `DynamoDBLocal-${version}.jar`);

/** How long a start may take before we give up (a cold JVM on a busy 2-core machine: a few seconds). */
const START_TIMEOUT_MS = 120_000;
/** How long a stopping server gets for its shutdown hooks before SIGKILL. */
const STOP_GRACE_MS = 5_000;

function log(message) {
  process.stderr.write(`[ddb-local] ${message}\n`);
}

/** Fetches DynamoDB Local (and its native sqlite4java libraries) with Maven, unless already there. */
export function fetchDynamoDBLocal() {
  if (existsSync(jar)) return dir;
  log(`fetching DynamoDB Local ${version} from Maven Central into ${dir} ...`);
  const mvn = spawnSync(
    process.platform === "win32" ? "mvn.cmd" : "mvn",
    ["-q", "-B", "-f", pom, "dependency:copy-dependencies"],
    // Maven's own output (even quiet, it prints terminal escapes) is shown only if it fails.
    { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  if (mvn.error !== undefined) {
    throw new Error(
      `Could not run Maven (${mvn.error.message}). DynamoDB Local is fetched with Maven: install it (and Java 17+), or run your own DynamoDB Local and point the suite at it with DYNAMOLOCK_TEST_ENDPOINT (see docs/servers.md)`,
    );
  }
  if (mvn.status !== 0 || !existsSync(jar)) {
    process.stderr.write(`${mvn.stdout ?? ""}${mvn.stderr ?? ""}\n`);
    throw new Error(`Fetching DynamoDB Local with Maven failed (exit ${mvn.status}); see its output above`);
  }
  return dir;
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** Resolves true if anything answers HTTP at the endpoint (DynamoDB Local answers a bare GET with 400). */
function answers(port) {
  return new Promise((resolveAnswer) => {
    const req = request({ host: "127.0.0.1", port, path: "/", method: "GET", timeout: 1_000 }, (res) => {
      res.resume();
      resolveAnswer(true);
    });
    req.once("timeout", () => req.destroy());
    req.once("error", () => resolveAnswer(false));
    req.end();
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Servers started by this process, so an exit or a signal never leaves one behind. */
const running = new Set();
let exitHookInstalled = false;
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const pid of running) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  });
}

/**
 * Starts DynamoDB Local in memory on 127.0.0.1:<free port> and waits until it answers.
 * Resolves to { endpoint, port, pid, startMs, stop(), exited }: stop() ends it by its pid; exited
 * settles when it has ended.
 */
export async function startDynamoDBLocal() {
  fetchDynamoDBLocal();
  const javaHome = process.env.JAVA_HOME;
  const java = javaHome ? join(javaHome, "bin", "java") : "java";
  // The port is chosen before java binds it; another process could take it in between, so retry.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const started = performance.now();
    const child = spawn(
      java,
      [
        `-Djava.library.path=${dir}`,
        "-cp",
        join(dir, "*"),
        "software.amazon.dynamodb.services.local.main.ServerRunner",
        "-inMemory",
        "-sharedDb",
        "-port",
        String(port),
        "-disableTelemetry",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    const keep = (chunk) => {
      output = (output + chunk).slice(-8_000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    let exited = false;
    const exit = new Promise((resolveExit) => {
      child.once("exit", (code, signal) => {
        exited = true;
        running.delete(child.pid);
        resolveExit({ code, signal });
      });
      child.once("error", (error) => {
        exited = true;
        resolveExit({ error });
      });
    });
    if (child.pid !== undefined) running.add(child.pid);
    installExitHook();

    const stop = async () => {
      if (exited) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
      }, STOP_GRACE_MS);
      await exit;
      clearTimeout(timer);
    };

    while (!exited && performance.now() - started < START_TIMEOUT_MS) {
      if (await answers(port)) {
        const startMs = Math.round(performance.now() - started);
        return { endpoint: `http://127.0.0.1:${port}`, port, pid: child.pid, startMs, stop, exited: exit };
      }
      await sleep(100);
    }
    if (!exited) {
      await stop();
      throw new Error(`DynamoDB Local did not answer within ${START_TIMEOUT_MS} ms. Its output:\n${output}`);
    }
    const result = await exit;
    if (result.error !== undefined) {
      throw new Error(
        `Could not start Java (${result.error.message}): DynamoDB Local needs Java 17+ on PATH or JAVA_HOME`,
      );
    }
    if (attempt < 3 && /address already in use|BindException/i.test(output)) continue;
    throw new Error(
      `DynamoDB Local exited during start (code ${result.code}, signal ${result.signal}). Its output:\n${output}`,
    );
  }
}

/** The behaviour test files, as `npm test` runs them (the shell glob test/*.test.ts, expanded here). */
function testFiles() {
  return readdirSync(join(root, "test"))
    .filter((f) => f.endsWith(".test.ts"))
    .sort()
    .map((f) => join("test", f));
}

/** Stops the server (and a running child) on Ctrl-C / SIGTERM, then exits as that signal would. */
function onSignals(cleanup) {
  const codes = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };
  for (const [signal, number] of Object.entries(codes)) {
    process.once(signal, () => {
      log(`${signal}: stopping`);
      cleanup().finally(() => process.exit(128 + number));
    });
  }
}

async function runTests(files) {
  const server = await startDynamoDBLocal();
  log(
    `DynamoDB Local ${version} answered on ${server.endpoint} after ${server.startMs} ms (pid ${server.pid})`,
  );
  let tests;
  onSignals(async () => {
    if (tests !== undefined && tests.exitCode === null) tests.kill("SIGTERM");
    await server.stop();
  });
  const started = performance.now();
  tests = spawn(
    process.execPath,
    ["--import", "tsx", "--test", "--test-concurrency=2", ...(files.length > 0 ? files : testFiles())],
    {
      cwd: root,
      stdio: ["ignore", "inherit", "inherit"],
      env: {
        ...process.env,
        DYNAMOLOCK_TEST_ENDPOINT: server.endpoint,
        DYNAMOLOCK_TEST_BACKEND: "ddb-local",
      },
    },
  );
  const code = await new Promise((resolveCode) => {
    tests.once("exit", (exitCode, signal) => resolveCode(exitCode ?? (signal === null ? 1 : 128)));
    tests.once("error", (error) => {
      log(`could not start the tests: ${error.message}`);
      resolveCode(1);
    });
  });
  log(`tests finished in ${Math.round(performance.now() - started)} ms with exit code ${code}`);
  await server.stop();
  log(`DynamoDB Local (pid ${server.pid}) stopped`);
  return code;
}

async function serve() {
  const server = await startDynamoDBLocal();
  log(`DynamoDB Local ${version} answered after ${server.startMs} ms (pid ${server.pid}). Ctrl-C stops it.`);
  process.stdout.write(
    `DYNAMOLOCK_TEST_ENDPOINT=${server.endpoint} DYNAMOLOCK_TEST_BACKEND=ddb-local npm run test:only\n`,
  );
  onSignals(() => server.stop());
  const { code, signal } = await server.exited;
  log(`DynamoDB Local exited by itself (code ${code}, signal ${signal})`);
  return 1;
}

async function main() {
  const [command = "test", ...rest] = process.argv.slice(2);
  switch (command) {
    case "fetch":
      log(`DynamoDB Local ${version} is in ${fetchDynamoDBLocal()}`);
      return 0;
    case "start":
      return serve();
    case "test":
      return runTests(rest);
    default:
      log(`unknown command "${command}": use test, start or fetch`);
      return 2;
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      log(err instanceof Error ? err.message : String(err));
      process.exit(1);
    },
  );
}
