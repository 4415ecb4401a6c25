#!/usr/bin/env node
/**
 * AWS DynamoDB Local for the conformance suite, through the package's own implementation
 * (src/ddb-local.ts, which `dynamolock/testing` and `dynamolock serve --engine ddb-local` use too):
 * fetched with Maven into the git-ignored .cache/ folder (its licence forbids redistributing it, so it
 * is never committed or published), started on a free port, and stopped by its own pid. Run with
 * tsx (`node --import tsx`), as the npm scripts do, since it imports the TypeScript source.
 *
 *   node --import tsx scripts/ddb-local.mjs test [test files...]  start it, run the behaviour tests against it, stop it
 *   node --import tsx scripts/ddb-local.mjs start                 start it and keep it running until Ctrl-C
 *   node --import tsx scripts/ddb-local.mjs fetch                 only fetch it
 *
 * Needs Java 17+ (`java` on PATH, or JAVA_HOME) and, for the first fetch, Maven (`mvn`).
 */
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  fetchDynamoDBLocal,
  startDynamoDBLocalProcess,
  DDB_LOCAL_VERSION as version,
} from "../src/ddb-local.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The project's own cache stays in the repository (git-ignored), apart from the users' default. */
const cacheDir = join(root, ".cache");

function log(message) {
  process.stderr.write(`[ddb-local] ${message}\n`);
}

const startDynamoDBLocal = () => startDynamoDBLocalProcess({ cacheDir, log });

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
      log(`DynamoDB Local ${version} is in ${fetchDynamoDBLocal({ cacheDir, log })}`);
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
