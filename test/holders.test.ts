/** Request shapes of locks with several holders (src/holders.ts), without a server. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import {
  evictOwnerRequest,
  guardEntryCheck,
  intentRequest,
  removeEntryRequest,
  renewEntryRequest,
  takeRequest,
  withdrawIntentRequest,
} from "../src/holders.js";
import type { KeySchema } from "../src/item.js";
import { holderKindOf } from "../src/multi-options.js";

const schema: KeySchema = { table: "locks", partitionKey: "pk", sortKey: undefined };
const base = { token: "t1", holder: "h", leaseMs: 30_000, wallNow: 5 };

/** Every #name and :value an expression uses is bound, and every binding is used (DynamoDB refuses either). */
function assertBindings(input: {
  UpdateExpression?: string | undefined;
  ConditionExpression?: string | undefined;
  ExpressionAttributeNames?: Record<string, string> | undefined;
  ExpressionAttributeValues?: Record<string, AttributeValue> | undefined;
}) {
  const text = [input.UpdateExpression, input.ConditionExpression].join(" ");
  assert.deepEqual(new Set(Object.keys(input.ExpressionAttributeNames ?? {})), new Set(text.match(/#\w+/g)));
  assert.deepEqual(new Set(Object.keys(input.ExpressionAttributeValues ?? {})), new Set(text.match(/:\w+/g)));
}

describe("multi-holder request shapes", () => {
  it("take a permit: one UpdateItem, the count in the condition, the fence bumped, the new item returned", () => {
    const input = takeRequest(schema, "sem", { ...base, kind: { permits: 3 }, create: false });
    assert.equal(
      input.ConditionExpression,
      "attribute_not_exists(#owner) AND attribute_not_exists(#holders.#me) AND (size(#holders) = :zero OR (#kind = :kind AND size(#holders) < :permits))",
    );
    assert.match(
      input.UpdateExpression ?? "",
      /^SET #holders\.#me = :entry, #kind = :kind REMOVE #expiresAt ADD #fence :one$/,
    );
    assert.deepEqual(input.ExpressionAttributeValues?.[":kind"], { S: "permits:3" });
    assert.equal(input.ReturnValues, "ALL_NEW");
    assert.equal(input.ReturnValuesOnConditionCheckFailure, "ALL_OLD");
    assertBindings(input);
  });

  it("the first acquisition of an item without a map creates the whole map (a nested SET needs its parent)", () => {
    const input = takeRequest(schema, "sem", { ...base, kind: { permits: 3 }, create: true });
    assert.equal(
      input.ConditionExpression,
      "attribute_not_exists(#owner) AND attribute_not_exists(#holders)",
    );
    assert.match(input.UpdateExpression ?? "", /^SET #holders = :map,/);
    assert.ok(input.ExpressionAttributeValues?.[":map"]?.M?.t1?.M !== undefined);
    assertBindings(input);
  });

  it("reclaim and take in one write, conditioned on the exact stale entry and the count", () => {
    const input = takeRequest(schema, "sem", {
      ...base,
      kind: { permits: 2 },
      create: false,
      stale: { token: "old", version: 7 },
    });
    assert.match(input.ConditionExpression ?? "", /#holders\.#stale\.#version = :staleVersion/);
    assert.match(input.ConditionExpression ?? "", /size\(#holders\) <= :permits/);
    assert.match(input.UpdateExpression ?? "", /REMOVE #expiresAt, #holders\.#stale/);
    assert.equal(input.ExpressionAttributeNames?.["#stale"], "old");
    assert.deepEqual(input.ExpressionAttributeValues?.[":staleVersion"], { N: "7" });
    assertBindings(input);
  });

  it("shared: refused while a writer's intent is in; a stale intent is removed in the same write", () => {
    const plain = takeRequest(schema, "rw", { ...base, kind: { shared: true }, create: false });
    assert.match(plain.ConditionExpression ?? "", /attribute_not_exists\(#intent\)/);
    assert.match(plain.ConditionExpression ?? "", /\(size\(#holders\) = :zero OR #kind = :kind\)/);
    assertBindings(plain);
    const over = takeRequest(schema, "rw", {
      ...base,
      kind: { shared: true },
      create: true,
      staleIntent: { token: "w", version: 2 },
    });
    assert.match(
      over.ConditionExpression ?? "",
      /\(#intent\.#token = :staleIntent AND #intent\.#version = :staleIntentVersion\)/,
    );
    assert.match(over.UpdateExpression ?? "", /REMOVE #expiresAt, #intent/);
    assertBindings(over);
  });

  it("the deliberate breaks (simulation only) still build valid requests", () => {
    const knobs = { evictIgnoresVersion: true, permitsUncounted: true, sharedIgnoresIntent: true };
    for (const input of [
      takeRequest(schema, "s", {
        ...base,
        kind: { permits: 2 },
        create: false,
        stale: { token: "o", version: 1 },
        knobs,
      }),
      takeRequest(schema, "s", { ...base, kind: { permits: 2 }, create: false, knobs }),
      takeRequest(schema, "s", { ...base, kind: { shared: true }, create: false, knobs }),
    ]) {
      assertBindings(input);
      assert.doesNotMatch(input.ConditionExpression ?? "", /:staleVersion|:permits|#intent/);
    }
  });

  it("heartbeat, release, reclaim and guard of one entry touch only that entry", () => {
    const renew = renewEntryRequest(schema, "s", { token: "t1", version: 4, wallNow: 9 });
    assert.equal(renew.ConditionExpression, "#holders.#me.#version <= :version");
    assert.equal(
      renew.UpdateExpression,
      "SET #holders.#me.#version = :version, #holders.#me.#heartbeatAt = :now",
    );
    assertBindings(renew);
    const release = removeEntryRequest(schema, "s", "t1");
    assert.equal(release.ConditionExpression, "attribute_exists(#holders.#me)");
    assertBindings(release);
    const reclaim = removeEntryRequest(schema, "s", "t1", 3);
    assert.equal(reclaim.ConditionExpression, "#holders.#me.#version = :version");
    assertBindings(reclaim);
    const guard = guardEntryCheck(schema, "s", "t1").ConditionCheck;
    assert.equal(guard?.ConditionExpression, "attribute_exists(#holders.#me)");
  });

  it("a writer's intent: ours or none, or the exact stale one; withdrawn only if ours", () => {
    const mine = intentRequest(schema, "rw", { ...base, version: 1 });
    assert.equal(mine.ConditionExpression, "(attribute_not_exists(#intent) OR #intent.#token = :me)");
    assertBindings(mine);
    const over = intentRequest(schema, "rw", { ...base, version: 1, stale: { token: "w", version: 3 } });
    assert.equal(
      over.ConditionExpression,
      "(#intent.#token = :staleIntent AND #intent.#version = :staleIntentVersion)",
    );
    assertBindings(over);
    assertBindings(withdrawIntentRequest(schema, "rw", "t1"));
    const evict = evictOwnerRequest(schema, "rw", { owner: "o", version: 2 });
    assert.equal(evict.ConditionExpression, "#owner = :staleOwner AND #version = :staleVersion");
    assertBindings(evict);
  });

  it("options: permits and mode", () => {
    assert.equal(holderKindOf({}), undefined);
    assert.equal(holderKindOf({ mode: "exclusive" }), undefined);
    assert.deepEqual(holderKindOf({ mode: "shared" }), { shared: true });
    assert.deepEqual(holderKindOf({ permits: 1 }), { permits: 1 });
    assert.throws(() => holderKindOf({ permits: 0 }), RangeError);
    assert.throws(() => holderKindOf({ permits: 2, mode: "exclusive" }), TypeError);
  });
});
