/** The built package: both module formats load, export the contract's names, and never load dynalite. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = new URL("..", import.meta.url);
const built =
  existsSync(new URL("dist/esm/index.js", root)) && existsSync(new URL("dist/cjs/index.js", root));
const skip = built ? false : "dist/ is not built (npm test builds it first; run `npm run build`)";
/** The names api.md fixes; the package may export more. */
const CONTRACT = ["Lock", "LockClient", "LockError", "LockHeldError", "LockLostError", "lock", "read"];
const assertContract = (keys: string[]) => {
  for (const name of CONTRACT) assert.ok(keys.includes(name), `exports ${name}`);
};

describe("package entry points", { skip }, () => {
  it("require('dynamolock') gives the CommonJS build, without loading dynalite", async () => {
    const { stdout } = await run(
      process.execPath,
      [
        "-e",
        `const m = require("dynamolock");
         const loaded = Object.keys(require.cache);
         console.log(JSON.stringify({ keys: Object.keys(m).sort(), dynalite: loaded.some((p) => p.includes("dynalite")),
           cjs: loaded.some((p) => p.includes("dist/cjs/index.js")) }));`,
      ],
      { cwd: root },
    );
    const result = JSON.parse(stdout) as { keys: string[]; dynalite: boolean; cjs: boolean };
    assertContract(result.keys);
    assert.equal(result.dynalite, false);
    assert.equal(result.cjs, true);
  });

  it("import('dynamolock') gives the ES module build, without loading dynalite", async () => {
    const { stdout } = await run(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import * as m from "dynamolock";
         import { createRequire } from "node:module";
         const cache = Object.keys(createRequire(import.meta.url).cache);
         console.log(JSON.stringify({ keys: Object.keys(m).sort(), dynalite: cache.some((p) => p.includes("dynalite")),
           sameError: new m.LockHeldError("x", { holder: "h", fence: 1, heartbeatAt: 1, leaseMs: 1 }, 0) instanceof m.LockError }));`,
      ],
      { cwd: root },
    );
    const result = JSON.parse(stdout) as { keys: string[]; dynalite: boolean; sameError: boolean };
    assertContract(result.keys);
    assert.equal(result.dynalite, false);
    assert.equal(result.sameError, true);
  });

  it("dynamolock/testing starts and stops a local server from either format", async () => {
    for (const [flag, code] of [
      ["--input-type=commonjs", `const t = require("dynamolock/testing");`],
      ["--input-type=module", `import * as t from "dynamolock/testing";`],
    ] as const) {
      const { stdout } = await run(
        process.execPath,
        [
          flag,
          "-e",
          `${code} t.startLocalDynamoDB().then(async (db) => { console.log(db.endpoint); await db.close(); });`,
        ],
        { cwd: root, env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" } },
      );
      assert.match(stdout.trim(), /^http:\/\/127\.0\.0\.1:\d+$/);
    }
  });
});
