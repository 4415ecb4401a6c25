/** Request shapes: what each lock operation sends, without a server. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import type { KeySchema } from "../src/item.js";
import {
  acquireRequest,
  FIRST_VERSION,
  forceReleaseRequest,
  pollRequest,
  readRequest,
  releaseRequest,
  renewRequest,
} from "../src/requests.js";

const schema: KeySchema = { table: "locks", partitionKey: "pk", sortKey: { name: "sk", value: "LOCK" } };

/** Every #name and :value an expression uses is bound, and every binding is used. */
function assertBindings(input: {
  UpdateExpression?: string | undefined;
  ConditionExpression?: string | undefined;
  ProjectionExpression?: string | undefined;
  ExpressionAttributeNames?: Record<string, string> | undefined;
  ExpressionAttributeValues?: Record<string, AttributeValue> | undefined;
}) {
  const text = [input.UpdateExpression, input.ConditionExpression, input.ProjectionExpression].join(" ");
  const usedNames = new Set(text.match(/#\w+/g));
  const usedValues = new Set(text.match(/:\w+/g));
  assert.deepEqual(new Set(Object.keys(input.ExpressionAttributeNames ?? {})), usedNames);
  assert.deepEqual(new Set(Object.keys(input.ExpressionAttributeValues ?? {})), usedValues);
  // No attribute name or literal is spelled out in an expression.
  assert.doesNotMatch(text.replace(/[#:]\w+/g, ""), /\b(owner|version|fence|data)\b/);
}

describe("request shapes", () => {
  it("acquire: one conditional UpdateItem that returns the new item and, on failure, the old one", () => {
    const input = acquireRequest(schema, "job-1", { owner: "me", holder: "h", leaseMs: 30_000, wallNow: 5 });
    assert.deepEqual(input.Key, { pk: { S: "job-1" }, sk: { S: "LOCK" } });
    assert.equal(input.ReturnValues, "ALL_NEW");
    assert.equal(input.ReturnValuesOnConditionCheckFailure, "ALL_OLD");
    assert.match(
      input.ConditionExpression ?? "",
      // No clause lets a retry re-apply an earlier acquire: a late duplicate could then re-install a
      // released token. A retry recognises its own earlier write by the token the failure returns.
      // The holders part: a mutex (the exclusive mode) never comes in while permit or shared holders are in.
      /^attribute_not_exists\(#owner\) AND \(attribute_not_exists\(#holders\) OR size\(#holders\) = :zero\)$/,
    );
    assert.match(input.UpdateExpression ?? "", /ADD #fence :one$/);
    assert.deepEqual(input.ExpressionAttributeValues?.[":firstVersion"], { N: String(FIRST_VERSION) });
    assertBindings(input);
  });

  it("takeover: conditioned on the exact owner and version judged stale", () => {
    const input = acquireRequest(schema, "job-1", {
      owner: "me",
      holder: "h",
      leaseMs: 30_000,
      wallNow: 5,
      stale: { owner: "old", version: 7 },
    });
    assert.match(
      input.ConditionExpression ?? "",
      /^\(#owner = :staleOwner AND #version = :staleVersion\) AND \(attribute_not_exists\(#holders\) OR size\(#holders\) = :zero\)$/,
    );
    assert.deepEqual(input.ExpressionAttributeValues?.[":staleOwner"], { S: "old" });
    assert.deepEqual(input.ExpressionAttributeValues?.[":staleVersion"], { N: "7" });
    assertBindings(input);
  });

  it("heartbeat: ownership of this very acquisition and not-superseded, never the exact previous version", () => {
    const input = renewRequest(schema, "job-1", { owner: "me", fence: 3, version: 4, wallNow: 9 });
    assert.equal(input.ConditionExpression, "#owner = :owner AND #fence = :fence AND #version <= :version");
    assert.deepEqual(input.ExpressionAttributeValues?.[":fence"], { N: "3" });
    assert.doesNotMatch(input.UpdateExpression ?? "", /#data/);
    assertBindings(input);
  });

  it("update: the heartbeat plus the data", () => {
    const input = renewRequest(schema, "job-1", {
      owner: "me",
      fence: 3,
      version: 4,
      wallNow: 9,
      data: { M: {} },
    });
    assert.match(input.UpdateExpression ?? "", /#data = :data/);
    assertBindings(input);
  });

  it("release: removes the owner fields, keeps fence, records releasedBy; data only when given", () => {
    const keep = releaseRequest(schema, "job-1", { owner: "me", wallNow: 9 });
    assert.equal(keep.ConditionExpression, "#owner = :owner");
    assert.match(
      keep.UpdateExpression ?? "",
      /^REMOVE #owner, #version, #leaseMs, #heartbeatAt, #holder SET #releasedBy = :owner/,
    );
    assert.doesNotMatch(keep.UpdateExpression ?? "", /#fence|#data/);
    assertBindings(keep);
    const write = releaseRequest(schema, "job-1", {
      owner: "me",
      fence: 3,
      wallNow: 9,
      data: { M: { a: { N: "1" } } },
    });
    assert.match(write.UpdateExpression ?? "", /#data = :data/);
    assert.equal(write.ConditionExpression, "#owner = :owner AND #fence = :fence");
    assertBindings(write);
  });

  it("forceRelease: only when held, returns who was removed", () => {
    const input = forceReleaseRequest(schema, "job-1", 9);
    assert.equal(input.ConditionExpression, "attribute_exists(#owner)");
    assert.equal(input.ReturnValues, "ALL_OLD");
    assertBindings(input);
  });

  it("read is strongly consistent; a waiter's poll leaves the data out", () => {
    assert.equal(readRequest(schema, "job-1").ConsistentRead, true);
    const poll = pollRequest(schema, "job-1");
    assert.equal(poll.ConsistentRead, true);
    assert.doesNotMatch(poll.ProjectionExpression ?? "", /#data/);
    assertBindings(poll);
  });
});
