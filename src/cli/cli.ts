/**
 * The command dispatcher: picks the command, runs it, and turns whatever it throws into one line on
 * stderr and an exit code (see exit-codes.ts). Commands are loaded on demand, so `--help` is quick
 * and only `serve` and `demo` ever load the local server.
 */
import { readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { closestName } from "../validate.js";
import { EXIT } from "./exit-codes.js";
import { HELP } from "./help.js";
import { debugDetails, errorContext, explain } from "./report.js";

type Command = (argv: readonly string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  run: async () => (await import("./run.js")).runCommand,
  status: async () => (await import("./status.js")).statusCommand,
  list: async () => (await import("./list.js")).listCommand,
  top: async () => (await import("./top.js")).topCommand,
  dashboard: async () => (await import("./dashboard.js")).dashboardCommand,
  release: async () => (await import("./release.js")).releaseCommand,
  "create-table": async () => (await import("./create-table.js")).createTableCommand,
  data: async () => (await import("./data.js")).dataCommand,
  serve: async () => (await import("./serve.js")).serveCommand,
  demo: async () => (await import("./demo/demo.js")).demoCommand,
  // The demo's worker processes are this same program; not a command for people.
  "demo-worker": async () => (await import("./demo/worker.js")).workerCommand,
};

/** The package's version, found by walking up from this program's own file. */
function version(): string {
  let dir = dirname(realpathSync(process.argv[1] ?? "."));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === "dynamolock") return pkg.version ?? "unknown";
    } catch {
      // not here: keep walking up
    }
    dir = dirname(dir);
  }
  return "unknown";
}

export async function main(argv: readonly string[]): Promise<number> {
  // The SDK's multi-line notice about future Node versions would land in every cron mail. Users who
  // want it can set the variable to "false".
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(HELP.main);
    return EXIT.usage;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    const topic = rest[0];
    if (topic !== undefined && topic in HELP && topic !== "main") {
      process.stdout.write(HELP[topic as keyof typeof HELP]);
    } else {
      process.stdout.write(HELP.main);
    }
    return EXIT.ok;
  }
  if (name === "--version" || name === "-V") {
    process.stdout.write(`${version()}\n`);
    return EXIT.ok;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (load === undefined) {
    const known = Object.keys(COMMANDS).filter((c) => c !== "demo-worker");
    const closest = closestName(name, known);
    const hint = name.startsWith("-")
      ? `options go after the command, e.g. dynamolock status ${name}`
      : closest !== undefined
        ? `did you mean "${closest}"?`
        : `commands: ${known.join(", ")}`;
    process.stderr.write(`dynamolock: unknown command "${name}" (${hint}; see dynamolock --help)\n`);
    return EXIT.usage;
  }
  const debug = rest.includes("--debug");
  try {
    const command = await load();
    return await command(rest);
  } catch (err) {
    const { message, exitCode } = explain(err, errorContext.current);
    process.stderr.write(`dynamolock: ${message}\n`);
    if (debug) process.stderr.write(`${debugDetails(err)}\n`);
    return exitCode;
  }
}
