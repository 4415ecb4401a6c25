/**
 * The CLI's one-line errors when DynamoDB cannot be reached: they name the host, whether it came
 * from --endpoint or is AWS's own endpoint for the region.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { awsDynamoDBHost, explain } from "../src/cli/report.js";

/** The shape the SDK rejects with when the socket fails: Node's errno error, as the SDK passes it on. */
function networkError(code: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`connect ${code}`), { code, ...extra });
}

describe("cannot reach DynamoDB", () => {
  it("names the configured endpoint", () => {
    const { message, exitCode } = explain(networkError("ECONNREFUSED"), {
      endpoint: "http://127.0.0.1:8000",
      local: true,
    });
    assert.match(message, /^cannot reach DynamoDB at http:\/\/127\.0\.0\.1:8000: ECONNREFUSED/);
    assert.equal(exitCode, 69);
  });

  it("without an endpoint, names AWS's host for the region", () => {
    const { message } = explain(networkError("ETIMEDOUT"), { region: "eu-west-1" });
    assert.equal(
      message,
      "cannot reach DynamoDB at dynamodb.eu-west-1.amazonaws.com (AWS's endpoint for region eu-west-1): ETIMEDOUT",
    );
    assert.equal(awsDynamoDBHost("cn-north-1"), "dynamodb.cn-north-1.amazonaws.com.cn");
  });

  it("a DNS failure names the host that did not resolve, also when wrapped", () => {
    const dns = networkError("ENOTFOUND", { hostname: "dynamodb.xx-nowhere-1.amazonaws.com" });
    const { message } = explain(new Error("request failed", { cause: dns }), { region: "xx-nowhere-1" });
    assert.equal(message, "cannot reach DynamoDB at dynamodb.xx-nowhere-1.amazonaws.com: ENOTFOUND");
  });

  it("without an endpoint or a known region, still says it is AWS's endpoint", () => {
    const { message } = explain(networkError("ECONNRESET"), {});
    assert.match(message, /^cannot reach DynamoDB at AWS's endpoint for the configured region: ECONNRESET/);
  });
});
