/**
 * `dynamolock serve`: dynalite, or AWS's DynamoDB Local (`--engine ddb-local`), on 127.0.0.1 for
 * development. Loaded only here, on demand: dynalite is an optional dependency and DynamoDB Local a
 * Java process, and nothing else in dynamolock may pull either in.
 */
import { stat } from "node:fs/promises";
import type { LocalDynamoDB, LocalEngine } from "../testing.js";
import { CONNECTION_OPTIONS, optionalString, parse } from "./args.js";
import { CliError, EXIT, usageError } from "./exit-codes.js";
import { HELP } from "./help.js";
import { isInteractive } from "./terminal.js";

/** Starts the local server, or explains in one line why it cannot. */
export async function startServer(options: {
  port: number;
  path?: string | undefined;
  engine?: LocalEngine | undefined;
}): Promise<LocalDynamoDB> {
  let testing: typeof import("../testing.js");
  try {
    testing = await import("../testing.js");
  } catch (err) {
    throw new CliError(`cannot load dynamolock's local server: ${(err as Error).message}`, EXIT.internal, {
      cause: err,
    });
  }
  try {
    if (options.engine === "ddb-local") {
      return await testing.startLocalDynamoDB({
        engine: "ddb-local",
        port: options.port,
        ...(options.path === undefined ? {} : { path: options.path }),
      });
    }
    return await testing.startLocalDynamoDB({
      port: options.port,
      createTableMs: 0,
      ...(options.path === undefined ? {} : { path: options.path }),
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (err instanceof testing.LocalServerError) {
      // DynamoDB Local tells of a taken port only in its output.
      if (err.code === "ESTART" && /address already in use|BindException/i.test(err.output)) {
        throw new CliError(
          `port ${options.port} on 127.0.0.1 is in use: pass another --port (0 picks a free one)`,
          EXIT.unavailable,
        );
      }
      const exit = err.code === "ENOJAVA" || err.code === "ENOMAVEN" ? EXIT.config : EXIT.unavailable;
      throw new CliError(`cannot start DynamoDB Local: ${err.message}`, exit, { cause: err });
    }
    if (code === "EADDRINUSE") {
      throw new CliError(
        `port ${options.port} on 127.0.0.1 is in use: pass another --port (0 picks a free one)`,
        EXIT.unavailable,
      );
    }
    if (/needs the `dynalite` package/.test((err as Error).message)) {
      throw new CliError(
        "the local server needs the optional package dynalite: npm install --save-dev dynalite",
        EXIT.config,
        { cause: err },
      );
    }
    throw err;
  }
}

export async function serveCommand(argv: readonly string[]): Promise<number> {
  const { values } = parse("serve", argv, {
    help: CONNECTION_OPTIONS.help,
    debug: CONNECTION_OPTIONS.debug,
    port: { type: "string", short: "p" },
    path: { type: "string" },
    engine: { type: "string" },
  });
  if (values.help === true) {
    process.stdout.write(HELP.serve);
    return EXIT.ok;
  }
  const portText = optionalString(values, "port") ?? "8000";
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65_535) {
    throw usageError(`bad --port: "${portText}" (a port number from 0 to 65535)`);
  }
  const path = optionalString(values, "path");
  if (path !== undefined) {
    const info = await stat(path).catch(() => undefined);
    if (info !== undefined && !info.isDirectory()) throw usageError(`bad --path: ${path} is not a directory`);
  }

  const engine = optionalString(values, "engine") ?? "dynalite";
  if (engine !== "dynalite" && engine !== "ddb-local") {
    throw usageError(`bad --engine: "${engine}" (dynalite or ddb-local)`);
  }
  if (engine === "ddb-local") {
    process.stderr.write("dynamolock: starting DynamoDB Local (Java; fetched with Maven on first use) ...\n");
  }

  const server = await startServer({ port, path, engine });
  const name = engine === "ddb-local" ? `DynamoDB Local, pid ${server.pid}` : "dynalite";
  const where = path === undefined ? "in memory: data is gone when it stops" : `data kept in ${path}`;
  // The assignment on stdout alone, so scripts can `eval` or grep it; the rest is for people.
  process.stdout.write(`AWS_ENDPOINT_URL_DYNAMODB=${server.endpoint}\n`);
  process.stderr.write(
    `dynamolock: local DynamoDB (${name}) listening on ${server.endpoint} (${where}); Ctrl-C stops it\n` +
      `dynamolock: try: export AWS_ENDPOINT_URL_DYNAMODB=${server.endpoint}; dynamolock create-table locks\n` +
      "dynamolock: (other AWS SDK programs also need AWS_REGION and any AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)\n",
  );

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const stop = (received: NodeJS.Signals) => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      process.off("SIGHUP", stop);
      resolve(received);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    process.on("SIGHUP", stop);
  });
  const newline = isInteractive(process.stderr) ? "\n" : ""; // after the terminal's "^C"
  process.stderr.write(`${newline}dynamolock: ${signal}: stopping the local server\n`);
  // A second Ctrl-C while closing should not be needed, but must work.
  const force = () => process.exit(EXIT.ok);
  process.once("SIGINT", force);
  await server.close();
  process.off("SIGINT", force);
  return EXIT.ok;
}
