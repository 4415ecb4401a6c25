/**
 * Global tables (docs/global-tables.md). Neither dynalite nor DynamoDB Local has replicas, so the
 * client's own middleware adds to the real server's DescribeTable answer the fields AWS documents
 * for each kind of table: `Replicas`, `GlobalTableWitnesses`, `MultiRegionConsistency`,
 * `GlobalTableVersion`. Every other request goes to the real server.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { DynamoDBClient, TableDescription } from "@aws-sdk/client-dynamodb";
import { keyOptions } from "../src/cli/connection.js";
import { EXIT } from "../src/cli/exit-codes.js";
import { explain } from "../src/cli/report.js";
import { judgeReplication, replicationOf } from "../src/global-table.js";
import { LockClient, LockError } from "../src/index.js";
import { countRequests } from "./support/backend.js";
import { sharedTable } from "./support/process.js";

const server = sharedTable();

const MREC: Partial<TableDescription> = {
  GlobalTableVersion: "2019.11.21",
  Replicas: [
    { RegionName: "us-east-1", ReplicaStatus: "ACTIVE" },
    { RegionName: "eu-west-1", ReplicaStatus: "ACTIVE" },
  ],
  MultiRegionConsistency: "EVENTUAL",
};
const MRSC: Partial<TableDescription> = {
  GlobalTableVersion: "2019.11.21",
  Replicas: [
    { RegionName: "us-east-1", ReplicaStatus: "ACTIVE" },
    { RegionName: "us-east-2", ReplicaStatus: "ACTIVE" },
  ],
  GlobalTableWitnesses: [{ RegionName: "us-west-2", WitnessStatus: "ACTIVE" }],
  MultiRegionConsistency: "STRONG",
};

/** A client whose DescribeTable answers add `fields` to the real table's description, or fail with `fields`. */
function clientDescribing(fields: Partial<TableDescription> | Error): DynamoDBClient {
  const client = server.backend.newClient(); // region us-east-1
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== "DescribeTableCommand") return next(args);
      if (fields instanceof Error) throw fields;
      const answer = await next(args);
      const output = answer.output as typeof answer.output & { Table?: TableDescription };
      return { ...answer, output: { ...output, Table: { ...output.Table, ...fields } } };
    },
    { step: "initialize", name: "describeAsGlobalTable" },
  );
  return client;
}

/** Process warnings emitted while a test runs. */
const warnings: Error[] = [];
const onWarning = (w: Error) => warnings.push(w);
let n = 0;
let id: string;
beforeEach(() => {
  id = `global-${++n}`;
  warnings.length = 0;
  process.on("warning", onWarning);
});
afterEach(() => {
  process.off("warning", onWarning);
});
/** Warnings are delivered on a later tick. */
const warned = async (code: string) => {
  await new Promise((resolve) => setImmediate(resolve));
  return warnings.filter((w) => (w as { code?: string }).code === code);
};

describe("an eventually consistent (MREC) global table", () => {
  it("is refused before any lock request, with what goes wrong and what to do", async () => {
    const client = clientDescribing(MREC);
    const counter = countRequests(client);
    const locks = new LockClient({ table: server.table, client });
    const err = await locks.acquire(id).catch((e: unknown) => e);
    assert.ok(err instanceof LockError, String(err));
    assert.match(err.message, /multi-Region eventual consistency/);
    assert.match(err.message, /two callers in two Regions can both take the same lock/);
    assert.match(err.message, /one Region|strong consistency \(MRSC\)|singleWriterRegion/);
    assert.deepEqual(counter.byOperation(), { DescribeTable: 1 }, "no lock request was sent");
    // Cached: refused again without another look, with a fresh error.
    const again = await locks.read(id).catch((e: unknown) => e);
    assert.ok(again instanceof LockError && again !== err);
    assert.deepEqual(counter.byOperation(), { DescribeTable: 1 });
    await assert.rejects(locks.forceRelease(id), LockError);
    await assert.rejects(locks.createTable(), LockError, "createTable() says so too");
    await locks.close();
    client.destroy();
  });

  for (const [label, opts] of [
    ["permits", { permits: 2 }],
    ["shared", { mode: "shared" as const }],
  ] as const) {
    it(`is refused for a ${label} acquire too, before any lock request`, async () => {
      const client = clientDescribing(MREC);
      const counter = countRequests(client);
      const locks = new LockClient({ table: server.table, client });
      const err = await locks.acquire(id, opts).catch((e: unknown) => e);
      assert.ok(err instanceof LockError, String(err));
      assert.equal(err.code, "EGLOBALTABLE");
      assert.deepEqual(counter.byOperation(), { DescribeTable: 1 }, "no lock request was sent");
      await locks.close();
      client.destroy();
    });
  }

  it("without MultiRegionConsistency (the default mode), or in the legacy version, is refused too", async () => {
    for (const fields of [
      { ...MREC, MultiRegionConsistency: undefined },
      { GlobalTableVersion: "2017.11.29" },
    ] as Partial<TableDescription>[]) {
      const client = clientDescribing(fields);
      const locks = new LockClient({ table: server.table, client });
      await assert.rejects(locks.acquire(id), /eventual consistency/);
      await locks.close();
      client.destroy();
    }
  });

  it("is used with singleWriterRegion naming this client's Region, which is written to the warnings once", async () => {
    const client = clientDescribing(MREC);
    const locks = new LockClient({ table: server.table, client, singleWriterRegion: "us-east-1" });
    const lock = await locks.acquire(id);
    await lock.release();
    await (await locks.acquire(id)).release();
    const seen = await warned("DYNAMOLOCK_SINGLE_WRITER_REGION");
    assert.equal(seen.length, 1, "once per client");
    assert.match(seen[0]?.message ?? "", /"us-east-1"/);
    await locks.close();
    client.destroy();
  });

  it("is refused when singleWriterRegion is not this client's Region, or has no replica", async () => {
    const client = clientDescribing(MREC);
    const elsewhere = new LockClient({ table: server.table, client, singleWriterRegion: "eu-west-1" });
    await assert.rejects(elsewhere.acquire(id), /sends its requests to "us-east-1"/);
    const nowhere = new LockClient({ table: server.table, client, singleWriterRegion: "ap-south-1" });
    await assert.rejects(nowhere.acquire(id), /no replica there/);
    await elsewhere.close();
    await nowhere.close();
    client.destroy();
  });
});

describe("a strongly consistent (MRSC) global table", () => {
  it("is used like a single-Region table, without a warning", async () => {
    const client = clientDescribing(MRSC);
    const locks = new LockClient({ table: server.table, client });
    const lock = await locks.acquire<{ n: number }>(id);
    await lock.update({ n: 1 });
    await lock.release();
    assert.deepEqual((await locks.read(id))?.data, { n: 1 });
    assert.deepEqual(await warned("DYNAMOLOCK_SINGLE_WRITER_REGION"), []);
    await locks.close();
    client.destroy();
  });

  it("a guarded write it refuses names the feature and the table's mode", async () => {
    // The refusal is made by client middleware, so this runs on servers without transactions too.
    const client = clientDescribing(MRSC);
    // How a server that does not offer transactions on this table answers (a 400 refusal).
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== "TransactWriteItemsCommand") return next(args);
        throw Object.assign(new Error("Transactions are not supported for this table"), {
          name: "ValidationException",
          $fault: "client",
          $metadata: { httpStatusCode: 400, attempts: 1 },
        });
      },
      { step: "initialize", name: "refuseTransactions" },
    );
    const locks = new LockClient({ table: server.table, client });
    const lock = await locks.acquire(id);
    const put = { Put: { TableName: server.table, Item: { id: { S: `${id}-work` } } } };
    const err = await lock.transact([put]).catch((e: unknown) => e);
    assert.ok(err instanceof LockError, String(err));
    assert.match(err.message, /multi-Region strong consistency/);
    assert.match(err.message, /TransactWriteItems/);
    assert.equal(err.writeUncertain, false);
    assert.equal(lock.held, true, "the lock is not lost by it");
    await lock.release();
    await locks.close();
    client.destroy();
  });
});

describe("when the table cannot be looked at", () => {
  it("a DescribeTable denied by IAM does not stop locking: it says what is unknown, once", async () => {
    const denied = Object.assign(new Error("not authorized to perform: dynamodb:DescribeTable"), {
      name: "AccessDeniedException",
      $metadata: { httpStatusCode: 400, attempts: 1 },
    });
    const client = clientDescribing(denied);
    const counter = countRequests(client);
    const locks = new LockClient({ table: server.table, client });
    await (await locks.acquire(id)).release();
    await (await locks.acquire(id)).release();
    const seen = await warned("DYNAMOLOCK_TABLE_UNCHECKED");
    assert.equal(seen.length, 1);
    assert.match(seen[0]?.message ?? "", /AccessDeniedException/);
    assert.match(seen[0]?.message ?? "", /dynamodb:DescribeTable|checkTable: false/);
    assert.equal(counter.byOperation().UpdateItem, 4, "both lock cycles went through");
    await locks.close();
    client.destroy();
  });

  it("checkTable: false skips the look", async () => {
    const client = clientDescribing(MREC);
    const counter = countRequests(client);
    const locks = new LockClient({ table: server.table, client, checkTable: false });
    await (await locks.acquire(id)).release();
    assert.deepEqual(counter.byOperation(), { UpdateItem: 2 });
    await locks.close();
    client.destroy();
  });
});

describe("judging a table (pure)", () => {
  const context = { table: "locks", singleWriterRegion: undefined, clientRegion: "us-east-1" };
  it("single-Region and MRSC tables are fine; MREC needs the opt-in", () => {
    assert.deepEqual(judgeReplication(replicationOf({}), context), { ok: true });
    assert.deepEqual(judgeReplication(replicationOf(MRSC), context), { ok: true });
    assert.equal(judgeReplication(replicationOf(MREC), context).ok, false);
    const optIn = judgeReplication(replicationOf(MREC), { ...context, singleWriterRegion: "us-east-1" });
    assert.equal(optIn.ok, true);
  });
  it("an unknown client Region is accepted with the opt-in, and the warning says it was not checked", () => {
    const verdict = judgeReplication(replicationOf(MREC), {
      table: "locks",
      singleWriterRegion: "us-east-1",
      clientRegion: undefined,
    });
    assert.ok(verdict.ok && /could not be read/.test(verdict.warning ?? ""));
  });
  it("reads the replicas and witnesses", () => {
    assert.deepEqual(replicationOf(MRSC), {
      mode: "MRSC",
      replicas: ["us-east-1", "us-east-2"],
      witnesses: ["us-west-2"],
    });
  });
});

describe("the CLI", () => {
  it("--single-writer-region reaches the LockClient; a refusal is a configuration error naming the flag", () => {
    assert.deepEqual(keyOptions({ "single-writer-region": "us-east-1" }), {
      singleWriterRegion: "us-east-1",
    });
    const verdict = judgeReplication(replicationOf(MREC), {
      table: "locks",
      singleWriterRegion: undefined,
      clientRegion: "us-east-1",
    });
    assert.ok(!verdict.ok);
    const { message, exitCode } = explain(verdict.error);
    assert.equal(exitCode, EXIT.config);
    assert.match(message, /--single-writer-region REGION/);
    assert.doesNotMatch(message, /singleWriterRegion/);
  });
});
