/**
 * A table whose keys are not the ones the LockClient expects is recognised by asking the table
 * (DescribeTable), not by how a server words its ValidationException, and the error says what the
 * table's keys actually are.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LockClient, LockError } from "../src/index.js";
import { type Backend, countRequests, startBackend, uniqueName } from "./support/backend.js";

let backend: Backend;
let table: string;

before(async () => {
  backend = await startBackend();
  table = uniqueName();
  await new LockClient({ table, client: backend.client }).createTable();
});
after(async () => {
  await backend.close();
});

/** A server that words every ValidationException its own way (as another implementation might). */
function rewordingValidation(client: DynamoDBClient): DynamoDBClient {
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (err) {
        if ((err as Error).name === "ValidationException") (err as Error).message = "Request is not valid";
        throw err;
      }
    },
    { step: "initialize", name: "rewordValidation" },
  );
  return client;
}

describe("key schema mismatch", () => {
  it("is found by the first-use look at the table, before any lock request, with one DescribeTable", async () => {
    const client = backend.newClient();
    const counter = countRequests(client);
    const wrong = new LockClient({ table, client, partitionKey: "other" });
    for (const attempt of [
      () => wrong.acquire("x"),
      () => wrong.read("x"),
      () => wrong.acquire("x", { permits: 2 }),
      () => wrong.tryAcquire("x", { mode: "shared" }),
    ]) {
      const err = await attempt().catch((e: unknown) => e);
      assert.ok(err instanceof LockError, String(err));
      assert.equal(err.code, "EKEYSCHEMA");
      assert.match(err.message, /expects other \(S, HASH\)/);
      assert.match(err.message, /has id \(S, HASH\)/);
    }
    assert.deepEqual(counter.byOperation(), { DescribeTable: 1 });
    client.destroy();
  });

  for (const worded of ["as the server words it", "worded another way"]) {
    it(`${worded}: a LockError naming the expected and the actual keys`, async () => {
      const client =
        worded === "as the server words it" ? backend.newClient() : rewordingValidation(backend.newClient());
      // Without the first-use look at the table, which names the keys before any lock request
      // (tested below): this is the path of a request the server refused.
      const wrong = new LockClient({ table, client, partitionKey: "other", checkTable: false });
      for (const attempt of [
        () => wrong.acquire("x"),
        () => wrong.read("x"),
        () => wrong.forceRelease("x"),
      ]) {
        const err = await attempt().catch((e: unknown) => e);
        assert.ok(err instanceof LockError, String(err));
        assert.match(err.message, /key schema/);
        assert.match(err.message, /expects other \(S, HASH\)/);
        assert.match(err.message, /has id \(S, HASH\)/);
        assert.equal((err.cause as Error)?.name, "ValidationException");
      }
      client.destroy();
    });
  }

  it("a sort key the table does not have is named too", async () => {
    const client = rewordingValidation(backend.newClient());
    const wrong = new LockClient({
      table,
      client,
      sortKey: { name: "sk", value: "LOCK" },
      checkTable: false,
    });
    const err = await wrong.acquire("x").catch((e: unknown) => e);
    assert.ok(err instanceof LockError, String(err));
    assert.match(err.message, /expects id \(S, HASH\), sk \(S, RANGE\)/);
    assert.match(err.message, /has id \(S, HASH\);/);
    client.destroy();
  });
});
