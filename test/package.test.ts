/**
 * The built package: both module formats load one implementation, export the contract's names, and
 * never load dynalite; the tarball ships what users need and nothing internal.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
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
  it("require('dynamolock') loads the CommonJS entry, without loading dynalite", async () => {
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

  it("import and require give the very same classes, so instanceof holds across both", async () => {
    const { stdout } = await run(
      process.execPath,
      [
        "--input-type=commonjs",
        "-e",
        `const required = require("dynamolock");
         const requiredTesting = require("dynamolock/testing");
         Promise.all([import("dynamolock"), import("dynamolock/testing")]).then(([imported, importedTesting]) => {
           const names = ["Lock", "LockClient", "LockError", "LockHeldError", "LockLostError", "TransactionCanceledError", "lock", "read"];
           const differ = names.filter((n) => required[n] !== imported[n]);
           const err = new required.LockHeldError("x", { holder: "h", fence: 1, heartbeatAt: 1, leaseMs: 1 }, 0);
           console.log(JSON.stringify({ differ, crossInstanceof: err instanceof imported.LockError,
             testing: requiredTesting.startLocalDynamoDB === importedTesting.startLocalDynamoDB }));
         });`,
      ],
      { cwd: root },
    );
    assert.deepEqual(JSON.parse(stdout), { differ: [], crossInstanceof: true, testing: true });
  });

  it("the tarball has the licence and changelog, no source maps, no CLI or internal declarations", async () => {
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root });
    const [pack] = JSON.parse(stdout) as [{ files: { path: string }[] }];
    const files = pack.files.map((f) => f.path);
    for (const name of ["LICENSE", "CHANGELOG.md", "README.md", "dist/cjs/index.js", "dist/esm/index.d.ts"]) {
      assert.ok(files.includes(name), `ships ${name}`);
    }
    assert.deepEqual(
      files.filter((f) => f.endsWith(".map")),
      [],
      "maps would point at src/, which is not shipped",
    );
    assert.deepEqual(
      files.filter((f) => f.startsWith("dist/esm/cli/") && f.endsWith(".d.ts")),
      [],
    );
    const declarations = await Promise.all(
      files
        .filter((f) => f.endsWith(".d.ts"))
        .map(async (f) => [f, await readFile(new URL(f, root), "utf8")] as const),
    );
    for (const [file, text] of declarations) {
      for (const internal of ["releaseIfHeld", "ProtocolKnobs", "PROTOCOL_KNOBS", "LockContext", "adopt("]) {
        assert.ok(!text.includes(internal), `${file} mentions ${internal}`);
      }
      if (file.endsWith("lock.d.ts")) assert.match(text, /private constructor\(\);/);
    }
  });

  it("the main entry's import graph reaches neither dynamolock/testing, DynamoDB Local nor dynalite", async () => {
    // Walks the built ES modules' static and dynamic relative imports from dist/esm/index.js: a
    // module the graph does not reach cannot be loaded by `import "dynamolock"`.
    const seen = new Set<string>();
    const visit = async (url: URL) => {
      if (seen.has(url.href)) return;
      seen.add(url.href);
      const source = await readFile(url, "utf8");
      for (const [, spec] of source.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
        if (spec === undefined) continue;
        assert.ok(!/dynalite/.test(spec), `${url.pathname} imports ${spec}`);
        if (spec.startsWith(".")) await visit(new URL(spec, url));
      }
    };
    await visit(new URL("dist/esm/index.js", root));
    const reached = [...seen].map((href) => href.slice(new URL("dist/esm/", root).href.length));
    assert.ok(reached.includes("client.js"), `the walk follows imports: ${reached.join(", ")}`);
    for (const forbidden of ["testing.js", "ddb-local.js"]) {
      assert.ok(!reached.includes(forbidden), `dynamolock reaches ${forbidden}`);
    }
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
