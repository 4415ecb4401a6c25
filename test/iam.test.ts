/**
 * docs/iam.md's policies are enough, and no more than needed: every request of a whole lifecycle is
 * recorded by client middleware and judged against the policies as written in the document.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LockClient } from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";
import { eventually } from "./support/wait.js";

interface Statement {
  Effect: string;
  Action: string[];
  Resource: string;
  Condition?: { "ForAllValues:StringLike"?: { "dynamodb:LeadingKeys": string[] } };
}
interface Policy {
  Statement: Statement[];
}
/** What IAM authorises: one action on one table, for one item's partition key when there is one. */
interface Access {
  action: string;
  table: string;
  leadingKey?: string;
}

const doc = readFileSync(new URL("../docs/iam.md", import.meta.url), "utf8");
const policies = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map(
  (m) => JSON.parse(m[1] as string) as Policy,
);
const [usage, singleTable, setup] = policies as [Policy, Policy, Policy];

const like = (pattern: string, value: string) =>
  new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`, "s").test(value);

/** The policy allows the access (a tiny IAM: Allow statements, ARN and LeadingKeys wildcards). */
function allows(policy: Policy, access: Access, tableInDoc: string): boolean {
  return policy.Statement.some((s) => {
    if (s.Effect !== "Allow" || !s.Action.includes(`dynamodb:${access.action}`)) return false;
    const resource = s.Resource.replace(`table/${tableInDoc}`, `table/${access.table}`);
    if (!like(resource, `arn:aws:dynamodb:us-east-1:123456789012:table/${access.table}`)) return false;
    const leading = s.Condition?.["ForAllValues:StringLike"]?.["dynamodb:LeadingKeys"];
    // ForAllValues over no key (DescribeTable) holds, as in IAM.
    if (leading === undefined || access.leadingKey === undefined) return true;
    return leading.some((p) => like(p, access.leadingKey as string));
  });
}

type Key = Record<string, { S?: string }>;
/** The accesses one command asks IAM for (a transaction: one per item). */
function accessesOf(command: string, input: Record<string, unknown>, partitionKey: string): Access[] {
  const keyOf = (key: unknown) => (key as Key | undefined)?.[partitionKey]?.S;
  const one = (action: string, body: Record<string, unknown>): Access => {
    const leadingKey = keyOf(body.Key);
    return { action, table: String(body.TableName), ...(leadingKey === undefined ? {} : { leadingKey }) };
  };
  if (command === "TransactWriteItems") {
    const kinds: Record<string, string> = {
      ConditionCheck: "ConditionCheckItem",
      Update: "UpdateItem",
      Put: "PutItem",
      Delete: "DeleteItem",
    };
    return (input.TransactItems as Record<string, Record<string, unknown>>[]).map((item) => {
      const [kind, body] = Object.entries(item)[0] as [string, Record<string, unknown>];
      const access = one(kinds[kind] as string, body);
      if (access.leadingKey === undefined) {
        const put = keyOf((body as { Item?: unknown }).Item);
        if (put !== undefined) return { ...access, leadingKey: put };
      }
      return access;
    });
  }
  return [one(command, input)];
}

function record(client: DynamoDBClient, partitionKey: string): Access[] {
  const seen: Access[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String(context.commandName).replace(/Command$/, "");
      seen.push(...accessesOf(command, args.input as Record<string, unknown>, partitionKey));
      return next(args);
    },
    { step: "initialize", name: "iamRecorder" },
  );
  return seen;
}

let backend: Backend;
before(async () => {
  backend = await startBackend();
});
after(async () => {
  await backend.close();
});

describe("docs/iam.md", () => {
  it("has the three policies the tests use", () => {
    assert.equal(policies.length, 3);
  });

  it("a whole lifecycle sends only what the usage policies allow, on the lock table and its lock# items", async () => {
    const table = uniqueName("app");
    const appTable = uniqueName("orders");
    const setupClient = backend.newClient();
    const setupSeen = record(setupClient, "pk");
    const client = backend.newClient();
    const seen = record(client, "pk");
    const options = { table, partitionKey: "pk", sortKey: { name: "sk", value: "lock" } };
    const admin = new LockClient({ ...options, client: setupClient });
    await admin.createTable({ ttl: true });
    // The caller's own table for the guarded write: its items are the caller's business.
    const ordersAdmin = new LockClient({ table: appTable, client: setupClient });
    await ordersAdmin.createTable();

    const locks = new LockClient({ ...options, client, leaseMs: 600, holder: "iam" });
    const other = new LockClient({ ...options, client, leaseMs: 600, holder: "iam-2" });
    const lock = await locks.acquire<{ step: number }>("lock#job", { waitMs: 5_000 });
    const renews = () => seen.filter((a) => a.action === "UpdateItem").length;
    const before = renews();
    await eventually(() => renews() > before, "a heartbeat");
    await lock.update({ step: 1 });
    // Contended: the waiter's failed write and its polls.
    await assert.rejects(other.acquire("lock#job", { waitMs: 150 }), { name: "LockHeldError" });
    const guarded = lock.transact([
      {
        Put: { TableName: appTable, Item: { id: { S: "order-1" } } },
      },
    ]);
    if (backend.capabilities.transactions) await guarded;
    else await assert.rejects(guarded); // sent all the same: judged below like on a server with transactions
    await lock.release({ step: 2 });
    assert.deepEqual((await locks.read("lock#job"))?.data, { step: 2 });
    await other.acquire("lock#held-at-close");
    const forced = await locks.acquire("lock#forced");
    await locks.forceRelease("lock#forced");
    await assert.rejects(forced.update({}), { name: "LockLostError" });
    await other.close(); // releases lock#held-at-close
    await locks.close();
    // A client whose key schema does not fit: its failed request is followed by the optional
    // DescribeTable that names the table's real keys.
    const wrong = new LockClient({ table, client, partitionKey: "other" });
    await assert.rejects(wrong.acquire("lock#wrong"), /key/i);
    await wrong.close();

    const onLockTable = seen.filter((a) => a.table === table);
    const actions = new Set(onLockTable.map((a) => a.action));
    assert.deepEqual([...actions].sort(), ["ConditionCheckItem", "DescribeTable", "GetItem", "UpdateItem"]);
    for (const access of onLockTable) {
      assert.ok(allows(usage, access, "locks"), `usage policy allows ${JSON.stringify(access)}`);
      // The single-table policy leaves the optional DescribeTable out (docs/iam.md).
      if (access.action !== "DescribeTable")
        assert.ok(allows(singleTable, access, "app"), `single-table policy allows ${JSON.stringify(access)}`);
    }
    // Everything else the client sent was the caller's own item, in the caller's own transaction.
    assert.deepEqual(
      seen.filter((a) => a.table !== table).map(({ action, table }) => ({ action, table })),
      [{ action: "PutItem", table: appTable }],
    );
    // Setup: allowed by the setup policy, refused by the usage policies.
    for (const access of setupSeen) {
      assert.ok(allows(setup, access, "locks"), `setup policy allows ${JSON.stringify(access)}`);
    }
    const setupActions = new Set(setupSeen.map((a) => a.action));
    assert.ok(setupActions.has("CreateTable") && setupActions.has("DescribeTable"));
    if (backend.capabilities.ttl) assert.ok(setupActions.has("UpdateTimeToLive"));
    assert.ok(setupActions.has("DescribeTimeToLive"));
    assert.equal(allows(usage, { action: "CreateTable", table }, "locks"), false);
    await admin.close();
    await ordersAdmin.close();
    client.destroy();
    setupClient.destroy();
  });

  it("the judge can refuse: another table, another prefix, or an action the lock does not need", () => {
    assert.equal(allows(usage, { action: "UpdateItem", table: "locks" }, "locks"), true);
    assert.equal(allows(usage, { action: "PutItem", table: "locks" }, "locks"), false);
    assert.equal(allows(usage, { action: "DeleteItem", table: "locks" }, "locks"), false);
    assert.equal(allows(usage, { action: "Scan", table: "locks" }, "locks"), false);
    assert.equal(
      allows(singleTable, { action: "GetItem", table: "app", leadingKey: "user#1" }, "app"),
      false,
    );
    assert.equal(allows(singleTable, { action: "GetItem", table: "app", leadingKey: "lock#1" }, "app"), true);
    const pinned: Policy = {
      Statement: [
        { Effect: "Allow", Action: ["dynamodb:GetItem"], Resource: "arn:aws:dynamodb:*:*:table/locks" },
      ],
    };
    assert.equal(allows(pinned, { action: "GetItem", table: "elsewhere" }, "locks-other"), false);
  });
});
