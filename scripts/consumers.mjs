// Installs the packed tarball (with @aws-sdk/client-dynamodb, dynalite and typescript from the npm
// registry) into fresh projects under the system's temp folder — ES module, CommonJS, TypeScript with
// `node16` and with `bundler` resolution — and runs the README's snippets verbatim against a local
// server started through the installed `dynamolock/testing`. Usage:
//   node scripts/consumers.mjs                      # latest client in the peer range
//   node scripts/consumers.mjs --client lowest      # the lowest version the peer range allows
//   node scripts/consumers.mjs --client 3.700.0     # any given version
// Needs the registry (or npm's cache); that is why `npm test` does not run it and .ci/run does.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { client: { type: "string" }, keep: { type: "boolean" } } });
/** The SDK's Node version warning is not what this test reads. */
const quiet = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" };
const repo = resolve(import.meta.dirname, "..");
const work = mkdtempSync(join(tmpdir(), "dynamolock-consumers-"));
const started = performance.now();
const step = (what) => console.log(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${what}`);

function sh(cmd, args, cwd, env = {}) {
  const result = spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} in ${cwd} failed (${result.status}):\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result.stdout;
}

try {
  step("packing dist/ as built by `npm run build`");
  const [pack] = JSON.parse(
    sh("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], repo),
  );
  const tarball = join(work, pack.filename);
  // "lowest" is the floor of the peer range (`^3.600.0` gives 3.600.0): what users may pair us with.
  const version = values.client === "lowest" ? readPeerRange().replace(/^[\^~>=]+/, "") : values.client;
  const client = `@aws-sdk/client-dynamodb@${version ?? readPeerRange()}`;
  const { devDependencies } = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));
  const typescript = `typescript@${devDependencies.typescript}`;
  const nodeTypes = `@types/node@${devDependencies["@types/node"]}`;

  // One install for every project: each lives in a folder below it and resolves from its node_modules.
  writeFileSync(join(work, "package.json"), '{ "private": true }\n');
  step(`installing the tarball, ${client}, dynalite, ${typescript}, ${nodeTypes}`);
  sh(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--prefer-offline",
      "--ignore-scripts",
      tarball,
      client,
      "dynalite@^4",
      typescript,
      nodeTypes,
    ],
    work,
  );

  const snippets = readmeSnippets(readFileSync(join(repo, "README.md"), "utf8"));
  step(`${snippets.length} README snippets`);

  // TypeScript, node16 resolution, ES module output: type-check, compile, and run every snippet.
  const node16 = project("ts-node16", { type: "module" }, { module: "node16", moduleResolution: "node16" });
  // TypeScript, bundler resolution: type-check only (a bundler would build it).
  const bundler = project(
    "ts-bundler",
    { type: "module" },
    { module: "esnext", moduleResolution: "bundler" },
  );
  snippets.forEach((snippet, i) => {
    const file = `snippet${i}.${snippet.lang === "js" ? "mjs" : "ts"}`;
    const text = `${preamble(snippet.code)}${snippet.code}\nexport {};\n`;
    writeFileSync(join(node16, file), text);
    writeFileSync(join(bundler, file), text);
  });
  step("type-checking (node16, bundler)");
  sh(process.execPath, [join(work, "node_modules/typescript/bin/tsc"), "-p", "."], node16);
  sh(process.execPath, [join(work, "node_modules/typescript/bin/tsc"), "-p", ".", "--noEmit"], bundler);

  // ES module and CommonJS JavaScript: one implementation, whichever way it is loaded.
  const esm = project("esm", { type: "module" });
  writeFileSync(
    join(esm, "main.js"),
    `import { LockError } from "dynamolock";
import { createRequire } from "node:module";
const required = createRequire(import.meta.url)("dynamolock");
if (required.LockError !== LockError) throw new Error("require and import gave two LockError classes");
console.log("esm ok");
`,
  );
  const cjs = project("cjs", { type: "commonjs" });
  writeFileSync(
    join(cjs, "main.js"),
    `const { LockClient, LockHeldError } = require("dynamolock");
const { startLocalDynamoDB } = require("dynamolock/testing");
(async () => {
  const db = await startLocalDynamoDB();
  const locks = new LockClient({ table: "cjs-locks", client: db.client });
  await locks.createTable();
  const other = new LockClient({ table: "cjs-locks", client: db.client });
  const held = await locks.acquire("job");
  const err = await other.acquire("job").catch((e) => e);
  const imported = await import("dynamolock");
  if (!(err instanceof imported.LockHeldError) || !(err instanceof LockHeldError) || err.code !== "ELOCKHELD") throw err;
  await held.release();
  await other.close();
  await locks.close();
  await db.close();
  console.log("cjs ok");
})();
`,
  );
  step("running the ES module and CommonJS projects");
  sh(process.execPath, ["main.js"], esm, quiet);
  sh(process.execPath, ["main.js"], cjs, quiet);

  step("running the README snippets (compiled by the node16 project)");
  const server = await startServer();
  try {
    const env = {
      ...quiet,
      AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "dynamolocal",
      AWS_SECRET_ACCESS_KEY: "dynamolocal",
    };
    snippets.forEach((_, i) => {
      sh(
        process.execPath,
        [join(node16, "out", `snippet${i}.${snippets[i].lang === "js" ? "mjs" : "js"}`)],
        node16,
        env,
      );
    });
  } finally {
    await server.stop();
  }
  step(`all passed (${client})`);
} finally {
  if (values.keep) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

function readPeerRange() {
  return JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).peerDependencies[
    "@aws-sdk/client-dynamodb"
  ];
}

function project(name, pkg, compilerOptions) {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ private: true, ...pkg }));
  if (compilerOptions !== undefined) {
    const options = {
      ...compilerOptions,
      target: "es2022",
      lib: ["es2022", "esnext.disposable", "dom"],
      strict: true,
      allowJs: true,
      checkJs: true,
      outDir: "out",
      types: ["node"],
      skipLibCheck: false,
    };
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({ compilerOptions: options, include: ["*.ts", "*.mjs"] }),
    );
  }
  return dir;
}

/** The ```ts and ```js blocks of the README, in order. */
function readmeSnippets(markdown) {
  return [...markdown.matchAll(/^```(ts|js)\n([\s\S]*?)^```$/gm)].map(([, lang, code]) => ({ lang, code }));
}

/**
 * What a snippet uses but leaves to the reader (names an earlier snippet or the surrounding text
 * defines), declared before it without touching its text.
 */
function preamble(code) {
  const lines = [];
  const declares = (name) =>
    new RegExp(`\\b(const|let|using)\\s+${name}\\b|\\bimport\\s*\\{[^}]*\\b${name}\\b`).test(code);
  if (/\bLockClient\b/.test(code) && !declares("LockClient"))
    lines.push('import { LockClient } from "dynamolock";');
  if (/\blocks\b/.test(code) && !declares("locks")) {
    lines.push('import { DynamoDBClient as SnippetClient } from "@aws-sdk/client-dynamodb";');
    lines.push('import { LockClient as SnippetLockClient } from "dynamolock";');
    lines.push('const locks = new SnippetLockClient({ table: "locks", client: new SnippetClient({}) });');
    lines.push("await locks.createTable();");
  }
  if (/\brunExport\b/.test(code)) {
    lines.push("const runExport = async (_: AbortSignal) => {};");
  }
  if (/\bbuildReport\b/.test(code)) {
    lines.push("const buildReport = async (_: { signal: AbortSignal; fence: number }) => ({ rows: 0 });");
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n// ---- the snippet, verbatim ----\n`;
}

/** A dynalite server through the installed `dynamolock/testing`, in a child process. */
async function startServer() {
  const dir = join(work, "esm");
  writeFileSync(
    join(dir, "server.js"),
    `import { startLocalDynamoDB } from "dynamolock/testing";
const db = await startLocalDynamoDB();
console.log(db.endpoint);
process.stdin.on("end", () => db.close().then(() => process.exit(0)));
process.stdin.resume();
`,
  );
  const server = spawn(process.execPath, ["server.js"], {
    cwd: dir,
    env: { ...process.env, ...quiet },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const [line] = await once(createInterface({ input: server.stdout }), "line");
  // Stopped by its own pid, and waited for: the script must not leave a server behind.
  const exited = once(server, "exit");
  return {
    endpoint: line,
    stop: async () => {
      if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
      await exited;
    },
  };
}
