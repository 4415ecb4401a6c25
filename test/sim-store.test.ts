/**
 * The simulation's store model, tested on its own: expressions, the lock's own requests, the SDK
 * error shapes, and — against dynalite in this process — the same request sequences giving the same
 * answers, so the simulation's verdicts rest on a store that behaves like a real one.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import {
  CreateTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import {
  evictOwnerRequest,
  intentRequest,
  removeEntryRequest,
  renewEntryRequest,
  takeRequest,
  withdrawIntentRequest,
} from "../src/holders.js";
import type { KeySchema } from "../src/item.js";
import {
  acquireRequest,
  forceReleaseRequest,
  pollRequest,
  readRequest,
  releaseRequest,
  renewRequest,
} from "../src/requests.js";
import { type LocalDynamoDB, startLocalDynamoDB } from "../src/testing.js";
import { Random } from "./sim/random.js";
import { type AppliedWrite, ServiceError, Store } from "./sim/store.js";

const S = (s: string): AttributeValue => ({ S: s });
const N = (n: number): AttributeValue => ({ N: String(n) });

function table(options?: ConstructorParameters<typeof Store>[0]) {
  const store = new Store(options);
  store.createTable("t", { partitionKey: "id" });
  return store;
}

function rejects(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ServiceError, `expected a ServiceError, got ${err}`);
    return err;
  }
  assert.fail("expected the call to throw");
}

describe("store model: expressions", () => {
  it("SET, REMOVE and ADD, creating the item with its key", () => {
    const store = table();
    const out = store.updateItem({
      TableName: "t",
      Key: { id: S("a") },
      UpdateExpression: "SET #o = :o, #v = :v ADD #f :one",
      ExpressionAttributeNames: { "#o": "owner", "#v": "version", "#f": "fence" },
      ExpressionAttributeValues: { ":o": S("me"), ":v": N(1), ":one": N(1) },
      ReturnValues: "ALL_NEW",
    });
    assert.deepEqual(out.Attributes, { id: S("a"), owner: S("me"), version: N(1), fence: N(1) });
    store.updateItem({
      TableName: "t",
      Key: { id: S("a") },
      UpdateExpression: "REMOVE #o, #v ADD #f :one",
      ExpressionAttributeNames: { "#o": "owner", "#v": "version", "#f": "fence" },
      ExpressionAttributeValues: { ":one": N(1) },
    });
    assert.deepEqual(store.peek("t", { id: S("a") }), { id: S("a"), fence: N(2) });
  });

  /** Whether `condition` holds on the stored item "a" (tested through a conditional write). */
  function holds(store: Store, condition: string, values: Record<string, AttributeValue> = {}): boolean {
    const used = Object.fromEntries(Object.entries(values).filter(([k]) => condition.includes(k)));
    try {
      store.updateItem({
        TableName: "t",
        Key: { id: S("a") },
        UpdateExpression: "SET #x = :x",
        ConditionExpression: condition,
        ExpressionAttributeNames: { "#x": "x" },
        ExpressionAttributeValues: { ":x": N(0), ...used },
      });
      return true;
    } catch (err) {
      if ((err as Error).name === "ConditionalCheckFailedException") return false;
      throw err;
    }
  }

  it("evaluates =, <>, <=, AND, OR, NOT, parentheses and the attribute functions", () => {
    const store = table();
    store.putItem({ TableName: "t", Item: { id: S("a"), owner: S("me"), version: N(3), name: S("abc") } });
    const v = { ":me": S("me"), ":two": N(2), ":three": N(3), ":ten": N(10), ":ab": S("ab") };
    const check = (condition: string) => holds(store, condition, v);
    assert.equal(check("owner = :me"), true);
    assert.equal(check("owner <> :me"), false);
    assert.equal(check("version <= :three"), true);
    assert.equal(check("version <= :two"), false);
    assert.equal(check("version < :ten AND version > :two"), true);
    assert.equal(check("attribute_not_exists(owner) OR (owner = :me AND version = :three)"), true);
    assert.equal(check("attribute_not_exists(owner) OR (owner = :me AND version = :two)"), false);
    assert.equal(check("NOT attribute_exists(missing)"), true);
    assert.equal(check("missing = :me"), false);
    assert.equal(check("missing <> :me"), true);
    assert.equal(check("missing <= :ten"), false);
    assert.equal(check("owner = :three"), false, "different types are never equal");
    assert.equal(check("begins_with(name, :ab) AND size(name) = :three"), true);
    assert.equal(check("version BETWEEN :two AND :ten"), true);
    assert.equal(check("version IN (:two, :ten)"), false);
  });

  it("numbers compare numerically and strings by their UTF-8 bytes", () => {
    const store = table();
    store.putItem({ TableName: "t", Item: { id: S("a"), n: N(9), s: S("\uffff") } });
    assert.equal(holds(store, "n < :ten", { ":ten": N(10) }), true, "9 < 10, though '9' > '10' as text");
    assert.equal(holds(store, "n = :nine", { ":nine": { N: "9.0" } }), true);
    // UTF-16 puts U+FFFF after the surrogate pair of U+1F600; UTF-8 (DynamoDB's order) puts it before.
    assert.equal(holds(store, "s < :emoji", { ":emoji": S("\u{1F600}") }), true);
  });

  it("refuses unused or undefined placeholders, key updates and overlapping paths, as DynamoDB does", () => {
    const store = table();
    const base = { TableName: "t", Key: { id: S("a") } };
    assert.match(
      rejects(() =>
        store.updateItem({
          ...base,
          UpdateExpression: "SET #a = :a",
          ExpressionAttributeNames: { "#a": "a", "#b": "b" },
          ExpressionAttributeValues: { ":a": N(1) },
        }),
      ).message,
      /ExpressionAttributeNames unused/,
    );
    assert.match(
      rejects(() =>
        store.updateItem({
          ...base,
          UpdateExpression: "SET a = :a",
          ExpressionAttributeValues: { ":a": N(1), ":b": N(2) },
        }),
      ).message,
      /ExpressionAttributeValues unused/,
    );
    assert.equal(
      rejects(() => store.updateItem({ ...base, UpdateExpression: "SET a = :missing" })).name,
      "ValidationException",
    );
    assert.match(
      rejects(() =>
        store.updateItem({
          ...base,
          UpdateExpression: "SET id = :a",
          ExpressionAttributeValues: { ":a": S("x") },
        }),
      ).message,
      /part of the key/,
    );
    assert.match(
      rejects(() =>
        store.updateItem({
          ...base,
          UpdateExpression: "SET a = :a REMOVE a",
          ExpressionAttributeValues: { ":a": S("x") },
        }),
      ).message,
      /overlap/,
    );
    assert.equal(
      rejects(() => store.getItem({ TableName: "t", Key: { other: S("a") } })).name,
      "ValidationException",
    );
    assert.equal(
      rejects(() => store.getItem({ TableName: "nope", Key: { id: S("a") } })).name,
      "ResourceNotFoundException",
    );
  });

  it("ProjectionExpression returns only the named attributes", () => {
    const store = table();
    store.putItem({ TableName: "t", Item: { id: S("a"), owner: S("me"), data: { M: { x: N(1) } } } });
    const out = store.getItem({
      TableName: "t",
      Key: { id: S("a") },
      ProjectionExpression: "#o, missing",
      ExpressionAttributeNames: { "#o": "owner" },
    });
    assert.deepEqual(out.Item, { owner: S("me") });
  });
});

describe("store model: SDK-shaped failures", () => {
  it("a failed condition is a ConditionalCheckFailedException with $metadata and, if asked, the old item", () => {
    const store = table();
    store.putItem({ TableName: "t", Item: { id: S("a"), owner: S("other") } });
    const request = {
      TableName: "t",
      Key: { id: S("a") },
      UpdateExpression: "SET #o = :me",
      ConditionExpression: "attribute_not_exists(#o)",
      ExpressionAttributeNames: { "#o": "owner" },
      ExpressionAttributeValues: { ":me": S("me") },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
    };
    const err = rejects(() => store.updateItem(request));
    assert.equal(err.name, "ConditionalCheckFailedException");
    assert.equal(err.$metadata.httpStatusCode, 400);
    assert.deepEqual(err.Item, { id: S("a"), owner: S("other") });
    const like = table({ returnsOldItemOnConditionFailure: false });
    like.putItem({ TableName: "t", Item: { id: S("a"), owner: S("other") } });
    assert.equal(rejects(() => like.updateItem(request)).Item, undefined, "dynalite ignores the parameter");
  });

  it("TransactWriteItems applies all or nothing, with reasons in item order", () => {
    const store = table();
    store.putItem({ TableName: "t", Item: { id: S("lock"), owner: S("me") } });
    const items = (owner: string) => [
      { Put: { TableName: "t", Item: { id: S("row"), v: N(1) } } },
      {
        ConditionCheck: {
          TableName: "t",
          Key: { id: S("lock") },
          ConditionExpression: "#o = :o",
          ExpressionAttributeNames: { "#o": "owner" },
          ExpressionAttributeValues: { ":o": S(owner) },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
        },
      },
    ];
    const err = rejects(() => store.transactWriteItems({ TransactItems: items("someone else") }));
    assert.equal(err.name, "TransactionCanceledException");
    assert.deepEqual(
      err.CancellationReasons?.map((r) => r.Code),
      ["None", "ConditionalCheckFailed"],
    );
    assert.deepEqual(err.CancellationReasons?.[1]?.Item, { id: S("lock"), owner: S("me") });
    assert.equal(store.peek("t", { id: S("row") }), undefined);
    store.transactWriteItems({ TransactItems: items("me") });
    assert.deepEqual(store.peek("t", { id: S("row") }), { id: S("row"), v: N(1) });
  });

  it("reports every applied write, in order, and nothing for failed ones", () => {
    const writes: AppliedWrite[] = [];
    const store = table({ onWrite: (w) => writes.push(w) });
    const schema: KeySchema = { table: "t", partitionKey: "id", sortKey: undefined };
    store.updateItem(acquireRequest(schema, "a", { owner: "x", holder: "h", leaseMs: 1000, wallNow: 1 }));
    rejects(() =>
      store.updateItem(acquireRequest(schema, "a", { owner: "y", holder: "h", leaseMs: 1000, wallNow: 2 })),
    );
    store.updateItem(releaseRequest(schema, "a", { owner: "x", wallNow: 3 }));
    assert.deepEqual(
      writes.map((w) => [w.before?.owner?.S, w.after?.owner?.S, w.after?.releasedBy?.S]),
      [
        [undefined, "x", undefined],
        ["x", undefined, "x"],
      ],
    );
  });
});

/**
 * Random sequences of the lock's real requests, sent to the model and to dynalite: every outcome
 * (applied or condition failed) and every item read back must agree. The model runs in dynalite's
 * mode (no old item on a failed condition), which is the one difference between them.
 */
describe("store model against dynalite", () => {
  let server: LocalDynamoDB;
  let client: DynamoDBClient;
  before(async () => {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
    server = await startLocalDynamoDB();
    client = server.client;
    await client.send(
      new CreateTableCommand({
        TableName: "locks",
        KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
        AttributeDefinitions: [{ AttributeName: "id", AttributeType: "S" }],
        BillingMode: "PAY_PER_REQUEST",
      }),
    );
  });
  after(() => server.close());

  type Request =
    | { readonly get: false; readonly input: Parameters<Store["updateItem"]>[0] }
    | { readonly get: true; readonly input: Parameters<Store["getItem"]>[0] };

  /**
   * Sends `steps` requests, each made by `request` for its step, to a fresh model and to dynalite
   * (the table "locks", keyed by `id`, in both), and asserts that the two answer each one alike:
   * the same output, or an error of the same name.
   */
  async function agreeWithDynalite(steps: number, request: (schema: KeySchema, step: number) => Request) {
    const schema: KeySchema = { table: "locks", partitionKey: "id", sortKey: undefined };
    const model = new Store({ returnsOldItemOnConditionFailure: false });
    model.createTable("locks", { partitionKey: "id" });
    for (let step = 0; step < steps; step++) {
      const { get, input } = request(schema, step);
      const fromModel = (() => {
        try {
          return { ok: get ? model.getItem(input) : model.updateItem(input) };
        } catch (err) {
          return { error: (err as Error).name };
        }
      })();
      const fromDynalite = await (async () => {
        try {
          const out = get
            ? await client.send(new GetItemCommand(input))
            : await client.send(new UpdateItemCommand(input));
          const { $metadata: _, ...rest } = out;
          return { ok: rest };
        } catch (err) {
          return { error: (err as Error).name };
        }
      })();
      assert.deepEqual(fromModel, fromDynalite, `step ${step}: ${JSON.stringify(input)}`);
    }
  }

  it("agrees with dynalite on 300 random lock requests", async () => {
    const r = new Random(7, "differential");
    const owners = ["a", "b", "c"];
    await agreeWithDynalite(300, (schema, step): Request => {
      const id = r.pick(["one", "two"]);
      const owner = r.pick(owners);
      const version = r.int(1, 4);
      const data = r.chance(0.5) ? { M: { n: N(step), s: S(`w${step}`) } } : undefined;
      switch (r.int(0, 6)) {
        case 0:
          return {
            get: false,
            input: acquireRequest(schema, id, { owner, holder: owner, leaseMs: 1000, wallNow: step }),
          };
        case 1:
          return {
            get: false,
            input: acquireRequest(schema, id, {
              owner,
              holder: owner,
              leaseMs: 1000,
              wallNow: step,
              stale: { owner: r.pick(owners), version },
            }),
          };
        case 2:
          return {
            get: false,
            input: renewRequest(schema, id, { owner, fence: r.int(1, 6), version, wallNow: step, data }),
          };
        case 3:
          return {
            get: false,
            input: releaseRequest(schema, id, {
              owner,
              wallNow: step,
              data,
              fence: r.chance(0.5) ? r.int(1, 6) : undefined,
            }),
          };
        case 4:
          return { get: false, input: forceReleaseRequest(schema, id, step) };
        case 5:
          return { get: true, input: pollRequest(schema, id) };
        default:
          return { get: true, input: readRequest(schema, id) };
      }
    });
  });

  it("agrees with dynalite on 400 random requests of locks with several holders (nested map paths)", async () => {
    const r = new Random(11, "differential-multi");
    const tokens = ["a", "b", "c", "d"];
    await agreeWithDynalite(400, (schema, step): Request => {
      const id = r.pick(["m1", "m2"]);
      const token = r.pick(tokens);
      const version = r.int(1, 3);
      const kind = r.pick([{ permits: 1 }, { permits: 2 }, { shared: true as const }]);
      const p = { token, holder: token, leaseMs: 1000, wallNow: step };
      const stale = r.chance(0.5) ? { token: r.pick(tokens), version } : undefined;
      switch (r.int(0, 10)) {
        case 0:
        case 1:
          return {
            get: false,
            input: takeRequest(schema, id, {
              ...p,
              kind,
              create: r.chance(0.3),
              stale,
              staleIntent: r.chance(0.3) ? stale : undefined,
            }),
          };
        case 2:
          return { get: false, input: renewEntryRequest(schema, id, { token, version, wallNow: step }) };
        case 3:
          return {
            get: false,
            input: removeEntryRequest(schema, id, token, r.chance(0.5) ? version : undefined),
          };
        case 4:
          return {
            get: false,
            input: intentRequest(schema, id, { ...p, version, stale: r.chance(0.3) ? stale : undefined }),
          };
        case 5:
          return { get: false, input: withdrawIntentRequest(schema, id, token) };
        case 6:
          return { get: false, input: evictOwnerRequest(schema, id, { owner: token, version }) };
        case 7:
          return {
            get: false,
            input: acquireRequest(schema, id, { owner: token, holder: token, leaseMs: 1000, wallNow: step }),
          };
        case 8:
          return { get: false, input: releaseRequest(schema, id, { owner: token, wallNow: step }) };
        case 9:
          return { get: true, input: pollRequest(schema, id) };
        default:
          return { get: true, input: readRequest(schema, id) };
      }
    });
  });
});
