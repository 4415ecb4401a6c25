/**
 * AWS DynamoDB Local through the package's own entry points: `startLocalDynamoDB({ engine:
 * "ddb-local" })` from `dynamolock/testing`, and `dynamolock serve --engine ddb-local`. Needs Java
 * 17+ and, unless DynamoDB Local is in the project's .cache/ already, Maven; without them the tests
 * skip and say why. They use the project's .cache/ (as scripts/ddb-local.mjs does) so that a run
 * fetches at most once.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { CreateTableCommand, GetItemCommand, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { checkJava, DDB_LOCAL_VERSION } from "../src/ddb-local.js";
import { LockClient } from "../src/index.js";
import { LocalServerError, localClient, startLocalDynamoDB } from "../src/testing.js";
import { cleanEnv, killAll, startCli, stillRunning } from "./support/cli.js";

const cacheDir = join(fileURLToPath(new URL("..", import.meta.url)), ".cache");

/** Why these tests cannot run here, or undefined when they can. */
function unavailable(): string | undefined {
  try {
    checkJava();
  } catch (err) {
    return `no Java 17+: ${(err as Error).message}`;
  }
  const cached = existsSync(
    join(cacheDir, "ddb-local", DDB_LOCAL_VERSION, `DynamoDBLocal-${DDB_LOCAL_VERSION}.jar`),
  );
  if (cached) return undefined;
  const mvn = spawnSync(process.platform === "win32" ? "mvn.cmd" : "mvn", ["-v"], { stdio: "ignore" });
  if (mvn.error !== undefined || mvn.status !== 0) {
    return "DynamoDB Local is not in .cache/ and there is no Maven (mvn) to fetch it";
  }
  return undefined;
}

const skip = unavailable() ?? false;
if (skip !== false) process.stdout.write(`# ddb-local tests skipped: ${skip}\n`);

after(killAll);

describe("DynamoDB Local (engine: ddb-local)", { skip }, () => {
  it("startLocalDynamoDB starts it; a lock and a guarded write work; close() ends its process", async () => {
    let pid: number | undefined;
    {
      await using db = await startLocalDynamoDB({ engine: "ddb-local", cacheDir });
      assert.equal(db.engine, "ddb-local");
      pid = db.pid;
      assert.ok(pid !== undefined && stillRunning(pid), "a running java process");
      await db.client.send(
        new CreateTableCommand({
          TableName: "accounts",
          KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
          AttributeDefinitions: [{ AttributeName: "id", AttributeType: "S" }],
          BillingMode: "PAY_PER_REQUEST",
        }),
      );
      await using locks = new LockClient({ table: "locks", client: db.client });
      await locks.createTable();
      await using lock = await locks.acquire("account-1");
      // TransactWriteItems: dynalite has none, so this only passes on a real DynamoDB Local.
      await lock.transact([
        {
          Put: {
            TableName: "accounts",
            Item: { id: { S: "account-1" }, fence: { N: String(lock.fence) } },
          },
        },
      ]);
      const out = await db.client.send(
        new GetItemCommand({ TableName: "accounts", Key: { id: { S: "account-1" } }, ConsistentRead: true }),
      );
      assert.equal(out.Item?.fence?.N, String(lock.fence));
    }
    assert.equal(stillRunning(pid), false, `java (pid ${pid}) is gone after await using`);
  });

  it("an unknown engine and dynalite-only options are refused", async () => {
    await assert.rejects(
      startLocalDynamoDB({ engine: "dynamodb" as "ddb-local" }),
      /engine must be "dynalite" or "ddb-local"/,
    );
    await assert.rejects(startLocalDynamoDB({ engine: "ddb-local", createTableMs: 5 }), /createTableMs/);
  });

  it("serve --engine ddb-local prints an endpoint that answers, and stops its java on SIGTERM", async () => {
    const serve = startCli(["serve", "--engine", "ddb-local", "--port", "0"], {
      env: cleanEnv({ DYNAMOLOCK_CACHE_DIR: cacheDir }),
    });
    await serve.waitFor(/listening on .*\n/, "stderr");
    const endpoint = /^AWS_ENDPOINT_URL_DYNAMODB=(http:\/\/127\.0\.0\.1:\d+)$/m.exec(serve.stdout())?.[1];
    assert.ok(endpoint !== undefined, `an endpoint on stdout: ${serve.stdout()}`);
    const javaPid = Number(/pid (\d+)/.exec(serve.stderr())?.[1]);
    assert.ok(stillRunning(javaPid), "the java process named on stderr runs");
    const client = localClient(endpoint);
    try {
      const tables = await client.send(new ListTablesCommand({}));
      assert.deepEqual(tables.TableNames, []);
    } finally {
      client.destroy();
    }
    serve.child.kill("SIGTERM");
    const result = await serve.done;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(stillRunning(javaPid), false, `java (pid ${javaPid}) is gone after serve stopped`);
  });
});

describe("LocalServerError", () => {
  it("names Java when JAVA_HOME points at no java", async () => {
    const saved = process.env.JAVA_HOME;
    process.env.JAVA_HOME = join(cacheDir, "no-such-jdk");
    try {
      const err = await startLocalDynamoDB({ engine: "ddb-local", cacheDir }).catch((e: unknown) => e);
      assert.ok(err instanceof LocalServerError);
      assert.equal(err.code, "ENOJAVA");
      assert.match(err.message, /Java 17\+/);
    } finally {
      if (saved === undefined) delete process.env.JAVA_HOME;
      else process.env.JAVA_HOME = saved;
    }
  });
});
