/**
 * Hostile input and secrets: ids and data keys that look like expression syntax, reserved words,
 * the lock's own attribute names, quotes, NUL, unicode and maximum-length ids round-trip exactly and
 * never change which attributes a request touches; owner tokens and data values never appear in an
 * error, a LockHeldError's fields or the CLI's output.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { inspect } from "node:util";
import { GetItemCommand, ScanCommand } from "@aws-sdk/client-dynamodb";
import { LockClient, LockHeldError, LockLostError } from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";
import { cleanEnv, cli, killAll } from "./support/cli.js";

const LOCK_ATTRIBUTES = [
  "owner",
  "version",
  "leaseMs",
  "heartbeatAt",
  "holder",
  "fence",
  "data",
  "releasedBy",
  "releasedAt",
  "expiresAt",
  "next",
  "nextSince",
  "nextMs",
  "nextAt",
  "holdMs",
];

const HOSTILE = [
  "#x",
  ":v",
  "size",
  "status",
  "#owner",
  ":owner",
  "owner",
  "version",
  "fence",
  "data",
  "id",
  "a\"b'c`",
  "nul\u0000inside",
  "ünïcødé 🔒 字",
  "SET #owner = :owner",
  "attribute_not_exists(#owner) OR 1=1",
  " ",
];

let backend: Backend;
let table: string;
const inputs: Record<string, unknown>[] = [];
let locks: LockClient;

before(async () => {
  backend = await startBackend();
  table = uniqueName();
  const client = backend.newClient();
  client.middlewareStack.add(
    (next) => async (args) => {
      inputs.push(args.input as Record<string, unknown>);
      return next(args);
    },
    { step: "initialize", name: "inputRecorder" },
  );
  locks = new LockClient({ table, client, holder: "sec" });
  await locks.createTable();
});
after(async () => {
  await killAll();
  await locks.close();
  await backend.close();
});

/**
 * The shape of a request: everything but the values. A hostile id or data key must leave it exactly
 * as a plain one does, so it can never change which attributes a request reads, writes or tests.
 */
function shapeOf(input: Record<string, unknown>): string {
  return JSON.stringify({
    update: input.UpdateExpression,
    condition: input.ConditionExpression,
    projection: input.ProjectionExpression,
    names: input.ExpressionAttributeNames,
    values: Object.keys((input.ExpressionAttributeValues ?? {}) as object).sort(),
    key: Object.keys((input.Key ?? {}) as object),
  });
}

/** The same lifecycle for every id and data: acquire, update, release with data, read. */
async function lifecycle(id: string, data: Record<string, unknown>): Promise<Set<string>> {
  const from = inputs.length;
  const lock = await locks.acquire(id);
  await lock.update(data);
  await lock.release(data);
  await locks.read(id);
  return new Set(inputs.slice(from).map(shapeOf));
}

let baseline: Set<string>;
async function assertSameShapes(id: string, data: Record<string, unknown>): Promise<void> {
  baseline ??= await lifecycle("plain-id", { plain: 1 });
  for (const shape of await lifecycle(id, data)) {
    assert.ok(baseline.has(shape), `${JSON.stringify(id)}: a request shape no plain id has: ${shape}`);
  }
}

describe("hostile ids and data keys", () => {
  it("ids round-trip exactly, each to its own item, up to DynamoDB's 2048 bytes", async () => {
    const longest = "é".repeat(1024); // 2048 UTF-8 bytes, DynamoDB's limit for a partition key
    const ids = [...HOSTILE, longest];
    for (const [i, id] of ids.entries()) {
      const lock = await locks.acquire<{ i: number }>(id);
      assert.equal(lock.id, id);
      await lock.update({ i });
      await lock.release({ i: i + 1000 });
      const info = await locks.read<{ i: number }>(id);
      assert.equal(info?.lockId, id);
      assert.deepEqual(info?.data, { i: i + 1000 });
    }
    const scan = await backend.client.send(new ScanCommand({ TableName: table }));
    const stored = (scan.Items ?? []).map((item) => item.id?.S).sort();
    assert.deepEqual(stored, [...ids].sort(), "one item per id, keyed by the id exactly");
    for (const item of scan.Items ?? []) {
      for (const name of Object.keys(item)) assert.ok(name === "id" || LOCK_ATTRIBUTES.includes(name), name);
    }
    for (const id of ids) await assertSameShapes(id, { [id]: id });
  });

  it("data keys and values that look like expressions or the lock's own attributes stay inside data", async () => {
    const plain: Record<string, unknown> = {};
    for (const [i, key] of [...HOSTILE, ...LOCK_ATTRIBUTES, "id"].entries()) plain[key] = `${key}=${i}`;
    plain.nested = { "#owner": { ":owner": ["owner", "SET #fence = :zero"] } };
    // An own "__proto__" key, as JSON.parse makes it (a literal would set the prototype instead);
    // not on dynalite, which drops it (see data.test.ts).
    const data = (
      backend.name === "dynalite"
        ? plain
        : JSON.parse(`${JSON.stringify(plain).slice(0, -1)},"__proto__":{"polluted":true}}`)
    ) as Record<string, unknown>;
    const lock = await locks.acquire<typeof data>("data-keys");
    const fence = lock.fence;
    await lock.update(data);
    assert.deepEqual((await locks.read("data-keys"))?.data, data);
    await lock.release(data);
    const again = await locks.acquire<typeof data>("data-keys");
    assert.deepEqual(again.data, data);
    assert.equal(again.fence, fence + 1, "the fence was not touched by a data key named fence");
    await again.release();
    const raw = await backend.client.send(
      new GetItemCommand({ TableName: table, Key: { id: { S: "data-keys" } }, ConsistentRead: true }),
    );
    for (const name of Object.keys(raw.Item ?? {}))
      assert.ok(name === "id" || LOCK_ATTRIBUTES.includes(name), name);
    assert.deepEqual(Object.keys(raw.Item?.data?.M ?? {}).sort(), Object.keys(data).sort());
    assert.equal(({} as Record<string, unknown>).polluted, undefined, "no prototype was polluted");
    await assertSameShapes("data-keys-2", data);
  });
});

describe("secrets stay out of errors and output", () => {
  const SECRET = "s3cr3t-DATA-value-7f1c";

  async function ownerOf(id: string): Promise<string> {
    const raw = await backend.client.send(
      new GetItemCommand({ TableName: table, Key: { id: { S: id } }, ConsistentRead: true }),
    );
    const owner = raw.Item?.owner?.S;
    assert.ok(owner !== undefined && owner.length >= 16);
    return owner;
  }

  function assertClean(what: string, value: unknown, secrets: string[]): void {
    const shown = [
      inspect(value, { depth: Number.POSITIVE_INFINITY, showHidden: true }),
      value instanceof Error ? `${value.message}\n${value.stack}` : "",
      JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? String(v) : v)) ?? "",
    ].join("\n");
    for (const secret of secrets) assert.ok(!shown.includes(secret), `${what} shows a secret: ${shown}`);
  }

  it("LockHeldError (fields, message, stack, inspect) and wait progress show no token and no data", async () => {
    const holder = await locks.acquire<{ secret: string }>("secret-held");
    await holder.update({ secret: SECRET });
    const token = await ownerOf("secret-held");
    const other = new LockClient({ table, client: backend.client, holder: "other" });
    const progress: unknown[] = [];
    const err = await other
      .acquire("secret-held", { waitMs: 200, onWait: (p) => void progress.push(p) })
      .then(
        () => assert.fail("should be held"),
        (e: unknown) => e,
      );
    assert.ok(err instanceof LockHeldError);
    assertClean("LockHeldError", err, [token, SECRET]);
    assertClean("wait progress", progress, [token, SECRET]);
    assertClean("read()", { ...(await other.read("secret-held")), data: undefined }, [token]);
    await holder.release();
    await other.close();
  });

  it("LockLostError after a takeover or force-release shows neither holder's token nor the data", async () => {
    const first = await locks.acquire<{ secret: string }>("secret-lost");
    await first.update({ secret: SECRET });
    const firstToken = await ownerOf("secret-lost");
    const admin = new LockClient({ table, client: backend.client, holder: "admin" });
    const removed = await admin.forceRelease("secret-lost");
    assertClean("forceRelease()'s answer", { ...removed, data: undefined }, [firstToken]);
    const second = await admin.acquire<{ secret: string }>("secret-lost");
    await second.update({ secret: `${SECRET}-2` });
    const secondToken = await ownerOf("secret-lost");
    const err = await first.update({ secret: "late" }).then(
      () => assert.fail("should be lost"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof LockLostError);
    // The library's own errors down the cause chain: messages, stacks, fields.
    for (let e: unknown = err; e instanceof LockLostError; e = e.cause) {
      assertClean("LockLostError", { message: e.message, stack: e.stack, fields: { ...e } }, [
        firstToken,
        secondToken,
        SECRET,
      ]);
    }
    await second.release();
    await admin.close();
  });

  it("LockLostError's cause, as a logger prints it, shows no token or data", async () => {
    // On servers that return the old item with a failed condition (DynamoDB, DynamoDB Local), the
    // cause is the SDK's ConditionalCheckFailedException: its Item (the new holder's owner token and
    // data) is removed before it becomes the cause.
    const first = await locks.acquire<{ secret: string }>("secret-cause");
    const admin = new LockClient({ table, client: backend.client, holder: "admin" });
    await admin.forceRelease("secret-cause");
    const second = await admin.acquire<{ secret: string }>("secret-cause");
    await second.update({ secret: SECRET });
    const token = await ownerOf("secret-cause");
    const err = await first.update({ secret: "late" }).then(
      () => assert.fail("should be lost"),
      (e: unknown) => e,
    );
    await second.release();
    await admin.close();
    assertClean("LockLostError with its cause", err, [token, SECRET]);
  });

  it("the CLI's status, release and a refused run never show an owner token", {
    timeout: 60_000,
  }, async () => {
    const { outputs, token } = await cliOutputs("secret-cli");
    for (const out of outputs) {
      assert.ok(
        !`${out.stdout}${out.stderr}`.includes(token),
        `CLI output shows a token: ${out.stdout}${out.stderr}`,
      );
    }
    // A refused run and a forced release show no data either.
    for (const out of [outputs[2], outputs[3]]) {
      assert.ok(
        !`${out?.stdout}${out?.stderr}`.includes(SECRET),
        `shows the data: ${out?.stdout}${out?.stderr}`,
      );
    }
  });

  it("the CLI's status shows no data value", { timeout: 60_000 }, async () => {
    const { outputs } = await cliOutputs("secret-cli-status");
    for (const out of outputs.slice(0, 2)) {
      assert.ok(!`${out.stdout}${out.stderr}`.includes(SECRET), `status shows the data: ${out.stdout}`);
    }
  });

  // Both tests read the same runs: each CLI process costs a second of CPU.
  const runs = new Map<string, ReturnType<typeof runCli>>();
  function cliOutputs(id: string) {
    if (!runs.has(id)) runs.set(id, runCli(id));
    return runs.get(id) as ReturnType<typeof runCli>;
  }
  async function runCli(id: string) {
    const holder = await locks.acquire<{ secret: string }>(id);
    await holder.update({ secret: SECRET });
    const token = await ownerOf(id);
    const env = cleanEnv({ AWS_ENDPOINT_URL_DYNAMODB: backend.endpoint });
    const args = ["--table", table, "--id", id];
    const outputs = await Promise.all([
      cli(["status", ...args], { env }),
      cli(["status", "--json", ...args], { env }),
      cli(["run", ...args, "--", process.execPath, "-e", "0"], { env }),
    ]);
    assert.equal(outputs[2]?.code, 75, outputs[2]?.stderr);
    const forced = await cli(["release", "--force", ...args], { env });
    assert.equal(forced.code, 0, forced.stderr);
    await assert.rejects(holder.update({ secret: "x" }), LockLostError);
    return { outputs: [...outputs, forced], token };
  }
});
