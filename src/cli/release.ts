/** `dynamolock release --force`: takes a lock away from its holder. */
import { LOCK_OPTIONS, parse } from "./args.js";
import { lockTarget } from "./connection.js";
import { formatDuration } from "./duration.js";
import { EXIT, usageError } from "./exit-codes.js";
import { HELP } from "./help.js";
import { toJson } from "./json.js";

export async function releaseCommand(argv: readonly string[]): Promise<number> {
  const { values } = parse("release", argv, {
    ...LOCK_OPTIONS,
    force: { type: "boolean", short: "f" },
    json: { type: "boolean" },
  });
  if (values.help === true) {
    process.stdout.write(HELP.release);
    return EXIT.ok;
  }
  if (values.force !== true) {
    throw usageError(
      "release: add --force: it takes the lock away from whoever holds it (a `dynamolock run` holding it stops its command); a holder releases its own lock by finishing",
    );
  }
  const target = lockTarget("release", values);
  try {
    const removed = await target.locks.forceRelease(target.id);
    if (values.json === true) {
      const out = {
        table: target.table,
        id: target.id,
        released: removed !== undefined,
        holder: removed?.holder ?? null,
        fence: removed?.fence ?? null,
        heartbeatAt: removed?.heartbeatAt ?? null,
      };
      process.stdout.write(`${toJson(out, false)}\n`);
    } else if (removed === undefined) {
      process.stdout.write(`lock "${target.id}" was not held; nothing to release\n`);
    } else {
      const beat =
        removed.heartbeatAt === undefined
          ? ""
          : `, last heartbeat ${formatDuration(Math.max(0, Date.now() - removed.heartbeatAt))} ago`;
      process.stdout.write(
        `released lock "${target.id}" held by "${removed.holder ?? "(unnamed)"}" (fence ${removed.fence}${beat}); the holder finds out at its next heartbeat\n`,
      );
    }
    return EXIT.ok;
  } finally {
    await target.close();
  }
}
