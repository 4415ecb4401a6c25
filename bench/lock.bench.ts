/**
 * `npm run bench`: this library side by side with the raw SDK v3 floor and the npm peer
 * dynamodb-lock-client, against servers this script starts itself (dynalite always, DynamoDB Local
 * when Java is available), each in a process of its own. Sections: the uncontended cycle, client
 * settings, permits (semaphores and shared holds next to the mutex: bench/permits.ts), many locks
 * held at once, multi-process contention (bench/contention.ts), and the import time of the main
 * entry. Every comparison alternates its rounds, except contention's: it alternates which mode runs
 * first from one process count to the next. Numbers are for comparing on one machine in one run
 * (BENCHMARKS.md records one), not promises.
 *
 *   npm run bench                         # everything, ~6 minutes on 2 cores
 *   npm run bench -- --quick              # a ~2 minute smoke run
 *   npm run bench -- --servers dynalite   # one server only
 *   npm run bench -- --sections cycle,imports
 *   npm run bench -- --quick --sections permits --servers dynalite
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { Agent } from "node:http";
import { cpus, loadavg, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import { LockClient } from "../src/index.js";
import { localClient } from "../src/testing.js";
import {
  type Contender,
  cycleTable,
  floorContender,
  libraryContender,
  peerContenders,
  processCpuUs,
  runCycles,
  shapedFloorContender,
} from "./cycle.js";
import { importTable, measureImports } from "./imports.js";
import { permitCycles, permitCycleTable, permitThroughput, throughputTable } from "./permits.js";
import { fixed, jsonIn, rowsFromJson, table } from "./stats.js";

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = dirname(benchDir);
const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    servers: { type: "string" },
    sections: { type: "string", default: "cycle,permits,settings,many,contention,imports" },
  },
});
const quick = values.quick === true;
const sections = new Set(String(values.sections).split(","));
const started = performance.now();

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = "1";

const say = (text = "") => console.log(text);
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;

function javaAvailable(): boolean {
  const run = spawnSync(
    process.env.JAVA_HOME ? join(process.env.JAVA_HOME, "bin", "java") : "java",
    ["-version"],
    {
      encoding: "utf8",
    },
  );
  return run.status === 0;
}

function version(modulePath: string): string {
  try {
    return JSON.parse(readFileSync(join(modulePath, "package.json"), "utf8")).version;
  } catch {
    return "not installed";
  }
}

/** The peer lives in bench/node_modules only (bench/package.json), installed here on first use. */
function ensurePeers(): boolean {
  if (existsSync(join(benchDir, "node_modules", "dynamodb-lock-client", "package.json"))) return true;
  say("Installing the bench's own peers (npm ci --prefix bench) ...");
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const run = spawnSync(npm, ["ci", "--prefix", benchDir, "--no-audit", "--no-fund", "--ignore-scripts"], {
    stdio: "inherit",
  });
  return run.status === 0;
}

/** Starts a server in a child process: its CPU is then not counted as the clients'. */
async function startServer(engine: string): Promise<{ endpoint: string; pid: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(benchDir, "server.ts"), engine], {
    cwd: root,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const { endpoint, pid } = await new Promise<{ endpoint: string; pid: number }>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line !== undefined) resolve(JSON.parse(line));
    });
    child.once("exit", (code) => reject(new Error(`${engine} server exited (${code}) before answering`)));
  });
  return { endpoint, pid, child };
}

function stopServer(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.stdin?.end();
    setTimeout(() => child.kill("SIGKILL"), 15_000).unref();
  });
}

const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" / ");

function header(servers: string[]): void {
  const sdk = version(join(root, "node_modules", "@aws-sdk", "client-dynamodb"));
  const cpuModel = cpus()[0]?.model ?? "unknown";
  say("# dynamolock benchmark");
  say();
  say(`- date: ${new Date().toISOString()}`);
  say(`- command: npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`);
  say(
    `- machine: ${cpus().length} CPUs (${cpuModel}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB memory, ${process.platform} ${process.arch}`,
  );
  say(`- Node ${process.version}; @aws-sdk/client-dynamodb ${sdk}`);
  say(
    `- peer: dynamodb-lock-client ${version(join(benchDir, "node_modules", "dynamodb-lock-client"))} on aws-sdk ${version(join(benchDir, "node_modules", "aws-sdk"))} (keep-alive agent)`,
  );
  say(
    `- servers: ${servers.map((s) => (s === "dynalite" ? `dynalite ${version(join(root, "node_modules", "dynalite"))}` : "DynamoDB Local 3.3.1")).join(", ")}, each in its own process on 127.0.0.1`,
  );
  say(`- mode: ${quick ? "--quick (smoke run: few samples, do not quote)" : "full"}`);
  say(
    `- load average at the start (1/5/15 min): ${loadAverage()}${(loadavg()[0] ?? 0) > cpus().length ? ": above the CPU count, so other work shared the machine" : ""}`,
  );
}

/** The library's cycle through user-brought clients with one setting changed each (docs/performance.md). */
function settingsContenders(): Contender[] {
  const base: DynamoDBClientConfig = {};
  const variants: [string, DynamoDBClientConfig][] = [
    ["client: new DynamoDBClient({}) (SDK defaults)", base],
    [
      "client: keep-alive off",
      { requestHandler: { httpAgent: new Agent({ keepAlive: false, maxSockets: 50 }) } },
    ],
    ['client: accountIdEndpointMode "disabled"', { accountIdEndpointMode: "disabled" }],
    ["client: maxAttempts 1 (no SDK retries)", { maxAttempts: 1 }],
  ];
  return variants.map(([name, config]) => libraryContender(name, "bench", new DynamoDBClient(config)));
}

interface ManyResult {
  locks: number;
  leaseMs: number;
  heartbeatMs: number;
  holdMs: number;
  heartbeats: number;
  heartbeatsPerSecond: number;
  cpuUsPerHeartbeat: number | null;
  cpuShare: number;
  bytesPerLock: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  lost: number;
  lostWhileAcquiring: number;
  stillHeld: number;
  acquireMs: number;
}

function runMany(args: string[]): ManyResult | string {
  const run = spawnSync(
    process.execPath,
    ["--expose-gc", "--import", "tsx", join(benchDir, "many.ts"), ...args],
    { cwd: root, encoding: "utf8", env: process.env, timeout: 120_000 },
  );
  const line = run.stdout?.split("\n").find((l) => l.startsWith("{"));
  if (run.status !== 0 || line === undefined)
    return `failed (${run.status ?? run.signal}): ${run.stderr?.slice(-400)}`;
  return JSON.parse(line) as ManyResult;
}

function manyTable(rows: (ManyResult | string)[], labels: string[]): string {
  return table([
    [
      "run",
      "heartbeats/s",
      "client CPU µs/heartbeat",
      "CPU share of a core",
      "heap bytes/held lock",
      "loop delay p99 ms",
      "loop delay max ms",
      "leases lost",
      "acquire all ms",
    ],
    ...rows.map((r, i) =>
      typeof r === "string"
        ? [labels[i] ?? "", r, "", "", "", "", "", "", ""]
        : [
            labels[i] ?? "",
            fixed(r.heartbeatsPerSecond, 0),
            fixed(r.cpuUsPerHeartbeat ?? Number.NaN, 0),
            fixed(r.cpuShare, 2),
            fixed(r.bytesPerLock, 0),
            fixed(r.loopDelayP99Ms, 1),
            fixed(r.loopDelayMaxMs, 1),
            `${r.lost}${r.lostWhileAcquiring > 0 ? ` (${r.lostWhileAcquiring} of them while the rest were acquired)` : ""}`,
            fixed(r.acquireMs, 0),
          ],
    ),
  ]);
}

/** The contention runs of one server stay within this (ms), so the whole bench keeps its time budget. */
const CONTENTION_BUDGET_MS = quick ? 60_000 : 200_000;
let contentionBudgetMs = CONTENTION_BUDGET_MS;

/**
 * Runs bench/contention.ts in a process group of its own, so that a run over budget is stopped with
 * every process it started (its contenders, its server), not just the first.
 */
async function runContention(
  engine: string,
  processes: number,
  latencyMs: number,
  naiveFirst: boolean,
): Promise<string> {
  if (contentionBudgetMs < 10_000) return "Skipped: the contention runs used up their time budget.";
  const script = join(benchDir, "contention.ts");
  const startedAt = performance.now();
  const child = spawn(
    process.execPath,
    // The waiting-cost table (about 25 s) once per server, with the first (smallest) run.
    [
      "--import",
      "tsx",
      script,
      "--processes",
      String(processes),
      "--server",
      engine,
      "--json",
      ...(processes === 2 && latencyMs === 0 ? [] : ["--no-waiting"]),
      ...(latencyMs > 0 ? ["--latency-ms", String(latencyMs)] : []),
      ...(naiveFirst ? ["--naive-first"] : []),
    ],
    { cwd: root, env: process.env, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2_000);
  });
  const killGroup = () => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  };
  const timer = setTimeout(killGroup, contentionBudgetMs);
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  clearTimeout(timer);
  killGroup(); // whatever it left behind
  contentionBudgetMs -= performance.now() - startedAt;
  const run = {
    status: code,
    signal: code === null ? "SIGKILL (over the time budget)" : null,
    stdout,
    stderr,
  };
  if (run.status !== 0)
    return `contention.ts failed (${run.status ?? run.signal}): ${run.stderr?.slice(-300)}`;
  const text = run.stdout.trim();
  const parsed = jsonIn(text);
  if (parsed === undefined) return `contention.ts printed no JSON: ${text.slice(-300)}`;
  const rows = rowsFromJson(parsed);
  const waiting = rowsFromJson((parsed as { waiting?: unknown }).waiting ?? []);
  const contention = rows.length > 0 ? table(rows) : `\`\`\`\n${JSON.stringify(parsed, null, 2)}\n\`\`\``;
  return waiting.length > 0
    ? `${contention}\n\nWaiting cost (one waiter while a live holder holds; docs/performance.md):\n\n${table(waiting)}`
    : contention;
}

// ---- main ----

const java = javaAvailable();
const servers = (values.servers ?? (java ? "dynalite,ddb-local" : "dynalite")).split(",").filter(Boolean);
const peers = sections.has("cycle") && ensurePeers();
header(servers);
if (!java && values.servers === undefined) say("- DynamoDB Local skipped: no Java found (it needs Java 17+)");
if (sections.has("cycle") && !peers) say("- the npm peer could not be installed: its rows are missing");

for (const engine of servers) {
  const server = await startServer(engine);
  // Every "default" client below configures itself from the environment, as a user's would.
  process.env.AWS_ENDPOINT_URL_DYNAMODB = server.endpoint;
  process.env.AWS_REGION = "us-east-1";
  process.env.AWS_ACCESS_KEY_ID = "dynamolocal";
  process.env.AWS_SECRET_ACCESS_KEY = "dynamolocal";
  delete process.env.AWS_PROFILE;
  const admin = localClient(server.endpoint);
  await new LockClient({ table: "bench", client: admin }).createTable();
  const title = engine === "dynalite" ? "dynalite" : "DynamoDB Local";
  const serverCpu = () => processCpuUs(server.pid);
  try {
    if (sections.has("cycle")) {
      const [rounds, perRound] = quick ? [4, 15] : [12, 50];
      const contenders: Contender[] = [
        floorContender("floor: 2 conditional UpdateItems, new DynamoDBClient({})", {}, "bench"),
        shapedFloorContender("dynamolock's two requests, bare, new DynamoDBClient({})", "bench"),
        libraryContender("dynamolock, its default client", "bench"),
        ...(peers ? peerContenders(benchDir, server.endpoint, "bench") : []),
      ];
      const results = await runCycles(contenders, rounds, perRound, "cycle", serverCpu);
      for (const c of contenders) await c.close();
      say();
      say(
        `## Uncontended acquire + release, ${title} (${rounds} alternated rounds × ${perRound} cycles each) [${elapsed()}]`,
      );
      say();
      say(cycleTable(results));
    }
    if (sections.has("permits")) {
      // Bounded: about 12 s per server in the full run, 3 s with --quick.
      const [rounds, perRound] = quick ? [3, 10] : [8, 30];
      const cycles = await permitCycles("bench", rounds, perRound, serverCpu);
      say();
      say(
        `## A permit and a shared hold next to the mutex, uncontended, ${title} (${rounds} alternated rounds × ${perRound} cycles each) [${elapsed()}]`,
      );
      say();
      say(permitCycleTable(cycles));
      const options = {
        permits: [1, 4],
        acquirers: 8,
        rounds: quick ? 1 : 2,
        roundMs: quick ? 800 : 2_000,
        holdMs: 2,
      };
      const throughput = await permitThroughput("bench", options);
      say();
      say(
        `## N permits under contention: ${options.acquirers} concurrent acquirers in one process, ${title} (${options.rounds} alternated rounds × ${options.roundMs / 1000} s per N) [${elapsed()}]`,
      );
      say();
      say(throughputTable(throughput, options.holdMs));
    }
    if (sections.has("settings")) {
      const [rounds, perRound] = quick ? [3, 15] : [8, 40];
      const contenders = [
        floorContender("floor: 2 conditional UpdateItems, new DynamoDBClient({})", {}, "bench"),
        ...settingsContenders(),
      ];
      const results = await runCycles(contenders, rounds, perRound, "settings", serverCpu);
      for (const c of contenders) await c.close();
      say();
      say(
        `## dynamolock's cycle through a user-brought client, one setting at a time, ${title} [${elapsed()}]`,
      );
      say();
      say(cycleTable(results));
    }
    if (sections.has("many")) {
      const runs: [string, string[]][] = quick
        ? [
            [
              "1,000 locks, default heartbeat 5 s (lease 30 s), held 6 s",
              ["--locks", "1000", "--hold-ms", "6000"],
            ],
          ]
        : [
            [
              "100 locks, heartbeat 1 s (lease 6 s), held 6 s",
              ["--locks", "100", "--lease-ms", "6000", "--heartbeat-ms", "1000", "--hold-ms", "6000"],
            ],
            [
              "1,000 locks, heartbeat 1 s (lease 6 s), held 6 s",
              ["--locks", "1000", "--lease-ms", "6000", "--heartbeat-ms", "1000", "--hold-ms", "6000"],
            ],
            [
              "1,000 locks, default heartbeat 5 s (lease 30 s), held 11 s",
              ["--locks", "1000", "--hold-ms", "11000"],
            ],
          ];
      const results = runs.map(([, args]) => runMany(args));
      say();
      say(`## Many locks held by one process, ${title} [${elapsed()}]`);
      say();
      say(
        manyTable(
          results,
          runs.map(([label]) => label),
        ),
      );
    }
  } finally {
    admin.destroy();
    await stopServer(server.child);
  }
  if (sections.has("contention")) {
    say();
    say(`## Contention across processes, ${title} (bench/contention.ts) [${elapsed()}]`);
    say();
    // 4 processes twice: on loopback (bound by the local server's CPU) and with 5 ms added to
    // every request (bound by round trips, as against DynamoDB): docs/performance.md.
    contentionBudgetMs = CONTENTION_BUDGET_MS; // each server's runs get the whole budget
    const runs: [number, number][] = quick
      ? [
          [2, 0],
          [4, 5],
        ]
      : [
          [2, 0],
          [4, 0],
          [4, 5],
          [8, 0],
          [32, 0],
        ];
    // Which mode runs first alternates from one run to the next (drift then hits both alike).
    for (const [i, [n, latencyMs]] of runs.entries()) {
      say(`### ${n} processes${latencyMs > 0 ? `, ${latencyMs} ms added to every request` : ""}`);
      say();
      say(await runContention(engine, n, latencyMs, i % 2 === 1));
      say();
    }
  }
}

if (sections.has("imports")) {
  if (!existsSync(join(root, "dist", "esm", "index.js"))) {
    spawnSync(process.platform === "win32" ? "npm.cmd" : "npm", ["run", "build"], {
      cwd: root,
      stdio: "ignore",
    });
  }
  const results = measureImports(root, quick ? 3 : 7);
  say();
  say(`## Import time of the main entry (fresh process each run, alternated) [${elapsed()}]`);
  say();
  say(importTable(results));
}
say();
say(`Total: ${elapsed()}; load average at the end: ${loadAverage()}`);
