#!/usr/bin/env node
/** The `dynamolock` executable. Everything happens in cli.ts; this file only starts it. */
import { main } from "./cli.js";
import { EXIT } from "./exit-codes.js";

// A last line of defence: a stray rejection is a bug, reported as one line and exit 70, not a crash dump.
process.on("unhandledRejection", (reason) => {
  process.stderr.write(
    `dynamolock: internal error: ${(reason as Error)?.message ?? String(reason)} (please report it)\n`,
  );
  process.exit(EXIT.internal);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // If a forgotten handle kept the process alive, cron would wait forever; nothing should, but
    // make sure. Unref'd: it never delays a normal exit.
    setTimeout(() => process.exit(code), 2_000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`dynamolock: internal error: ${(err as Error)?.message ?? String(err)}\n`);
    process.exitCode = EXIT.internal;
  },
);
