/**
 * Every program in examples/ runs against a local server and prints what it promises. They import
 * "dynamolock" by name (the package's own exports, so dist/ must be built), as users will.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { type LocalDynamoDB, startLocalDynamoDB } from "../src/testing.js";

const run = promisify(execFile);
const root = new URL("..", import.meta.url);
const built =
  existsSync(new URL("dist/esm/index.js", root)) && existsSync(new URL("dist/esm/cli/main.js", root));

let db: LocalDynamoDB;
let env: NodeJS.ProcessEnv;
before(async () => {
  db = await startLocalDynamoDB();
  env = {
    ...process.env,
    AWS_ENDPOINT_URL_DYNAMODB: db.endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  };
});
after(() => db.close());

async function example(file: string, args: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): Promise<string> {
  const { stdout } = await run(process.execPath, [...args, file], {
    cwd: new URL("examples/", root),
    env: { ...env, ...extraEnv },
  });
  return stdout.trim();
}

describe("examples", { skip: built ? false : "dist/ is not built (npm test builds it first)" }, () => {
  it("cron-job.mjs under `dynamolock run`: runs with the fence; a second host is skipped with 75", async () => {
    const cli = new URL("dist/esm/cli/main.js", root).pathname;
    await run(process.execPath, [cli, "create-table", "--table", "cron-locks"], { env });
    const job = (jobMs: string) =>
      run(
        process.execPath,
        [cli, "run", "-t", "cron-locks", "-i", "nightly", "--", process.execPath, "cron-job.mjs"],
        {
          cwd: new URL("examples/", root),
          env: { ...env, JOB_MS: jobMs },
        },
      ).then(
        ({ stdout }) => ({ code: 0, stdout: stdout.trim() }),
        (err: { code: number; stdout: string }) => ({ code: err.code, stdout: err.stdout.trim() }),
      );
    const long = job("2000");
    // Started once the first holds the lock: `run` without --wait skips a held lock.
    for (let i = 0; i < 200 && (await startedJobs()) === 0; i++) await new Promise((r) => setTimeout(r, 20));
    const skipped = await job("0");
    assert.deepEqual(
      [await long, skipped],
      [
        { code: 0, stdout: "synced with fence 1" },
        { code: 75, stdout: "" },
      ],
    );
  });

  it("lambda-handler.mjs: one of two concurrent invocations runs, the other gets 409", async () => {
    assert.equal(await example("lambda-handler.mjs"), JSON.stringify({ concurrent: [200, 409], later: 200 }));
  });

  it("lambda-steps.ts: one invocation per key at a time, and a killed invocation's lock taken over", async () => {
    // Short steps: the lease (3 steps) comes to 600 ms. The timeout is long enough that the
    // invocation after the takeover never runs short of time on a loaded machine (a wall clock).
    const out = await example("lambda-steps.ts", ["--import", "tsx"], {
      FUNCTION_TIMEOUT_MS: "10000",
      STEP_MS: "200",
    });
    assert.deepEqual(JSON.parse(out), {
      concurrent: [200, 200],
      mostInFlight: 1,
      afterKill: 200,
      takenOver: true,
    });
  });

  it("fenced-worker.mjs: the paused holder's write is refused by its fence", async () => {
    const out = await example("fenced-worker.mjs");
    assert.match(out, /newer holder writes: true\nstale holder writes: false\nguarded write: /);
  });

  it("leader-election.mjs: a leads until told to step down, then b leads", async () => {
    assert.equal(await example("leader-election.mjs"), "a leads; a steps down; b leads; b steps down");
  });

  it("http-handler.mjs: of two requests for one account, one is served and one gets 409", async () => {
    assert.equal(await example("http-handler.mjs"), "[200,409]");
  });
});

/** Whether the first `run` took the lock yet: its lock item names a holder. */
async function startedJobs(): Promise<number> {
  const { LockClient } = await import("../src/index.js");
  const locks = new LockClient({ table: "cron-locks", client: db.client });
  try {
    return (await locks.read("nightly"))?.held === true ? 1 : 0;
  } finally {
    await locks.close();
  }
}
