// Runs the observability examples of docs/observability.md (examples/observability/otel.mjs and
// pino.mjs) the way a user would: in a fresh project under the system's temp folder, with the packed
// tarball and the dependencies examples/observability/package.json names (OpenTelemetry, pino, the
// AWS SDK, dynalite) installed from the npm registry. OpenTelemetry and pino never become
// dependencies of dynamolock itself, and nothing is installed into this repository.
// Checks what each demo prints: the spans and metrics, the log lines.
// Needs the registry (or npm's cache): `npm test` does not run it; .ci/run does.
//   node scripts/observability-examples.mjs [--keep]
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { keep: { type: "boolean" } } });
const repo = resolve(import.meta.dirname, "..");
const examples = join(repo, "examples", "observability");
const work = mkdtempSync(join(tmpdir(), "dynamolock-observability-"));
/** An install from the registry on a slow link takes a minute or two; past this it is stuck. */
const INSTALL_TIMEOUT_MS = 5 * 60_000;
/** Each demo ends in about a second; past this one hangs. */
const RUN_TIMEOUT_MS = 60_000;
const started = performance.now();
const step = (what) => console.log(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${what}`);

function sh(cmd, args, cwd, timeout) {
  const result = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
    encoding: "utf8",
    timeout,
    // Killed on timeout by spawnSync, by its pid.
    killSignal: "SIGKILL",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) {
    const why = result.error === undefined ? `exit ${result.status}` : result.error.message;
    throw new Error(
      `${cmd} ${args.join(" ")} in ${cwd} failed (${why}):\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result.stdout;
}

function expect(output, what, patterns) {
  const missing = patterns.filter((p) => !p.test(output));
  if (missing.length > 0) {
    throw new Error(`${what} did not print ${missing.join(", ")}. Its output:\n${output}`);
  }
  step(`${what}: ${patterns.length} expected outputs seen`);
}

let failed = false;
try {
  step("packing dist/ as built by `npm run build`");
  const [pack] = JSON.parse(
    sh("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], repo),
  );
  // The examples' own package.json, with dynamolock from the tarball instead of the repository.
  const manifest = JSON.parse(readFileSync(join(examples, "package.json"), "utf8"));
  manifest.dependencies.dynamolock = `file:./${pack.filename}`;
  writeFileSync(join(work, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  for (const file of ["otel.mjs", "pino.mjs"]) copyFileSync(join(examples, file), join(work, file));
  step(`installing ${Object.keys(manifest.dependencies).join(", ")}`);
  sh(
    "npm",
    ["install", "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts"],
    work,
    INSTALL_TIMEOUT_MS,
  );

  const otel = sh(process.execPath, ["otel.mjs"], work, RUN_TIMEOUT_MS);
  expect(otel, "otel.mjs", [
    /name: 'dynamolock\.acquire'/,
    /name: 'dynamolock\.update'/,
    /name: 'dynamolock\.release'/,
    /'dynamolock\.lock_id': 'report'/,
    /name: 'dynamolock\.lock\.wait'/,
    /name: 'dynamolock\.lock\.hold'/,
  ]);

  const pino = sh(process.execPath, ["pino.mjs"], work, RUN_TIMEOUT_MS);
  const lines = pino
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
  const messages = lines.map((l) => l.msg);
  for (const msg of ["lock acquired", "lock not acquired", "lock lost"]) {
    if (!messages.includes(msg)) throw new Error(`pino.mjs logged no "${msg}": ${pino}`);
  }
  const lost = lines.find((l) => l.msg === "lock lost");
  if (lost.lockId !== "nightly" || lost.reason !== "released") {
    throw new Error(`pino.mjs's "lock lost" line has the wrong fields: ${JSON.stringify(lost)}`);
  }
  step(`pino.mjs: ${lines.length} JSON log lines, acquired / not acquired / lost among them`);
} catch (err) {
  failed = true;
  console.error(err instanceof Error ? err.message : err);
} finally {
  if (values.keep) step(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
