/** `dynamolock release --force`: takes a lock away from its holder. */

import { LockError } from "../errors.js";
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
    holder: { type: "string" },
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
  const one = values.holder;
  if (one === "")
    throw usageError("release: --holder needs a holder's key or name (as `dynamolock status` lists them)");
  const target = lockTarget("release", values);
  try {
    if (typeof one === "string") return await releaseOne(target, one, values.json === true);
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

/**
 * `release --force --holder KEY|NAME`: removes one holder (a permit or shared holder's entry, or
 * the exclusive owner). Several holders of that name: refused, listing their keys.
 */
async function releaseOne(
  target: ReturnType<typeof lockTarget>,
  one: string,
  json: boolean,
): Promise<number> {
  let removed: Awaited<ReturnType<typeof target.locks.forceRelease>>;
  try {
    removed = await target.locks.forceRelease(target.id, { holder: one });
  } catch (err) {
    if (err instanceof LockError && err.code === "EAMBIGUOUS") {
      throw usageError(
        `release: ${err.message.replace(/name one by its key$/, "pick one with --holder KEY")}`,
      );
    }
    throw err;
  }
  if (json) {
    const out = {
      table: target.table,
      id: target.id,
      released: removed !== undefined,
      mode: removed?.mode ?? null,
      holder: removed?.holder ?? null,
      key: removed?.key ?? null,
      fence: removed?.fence ?? null,
      heartbeatAt: removed?.heartbeatAt ?? null,
    };
    process.stdout.write(`${toJson(out, false)}\n`);
  } else if (removed === undefined) {
    process.stdout.write(`lock "${target.id}" has no holder "${one}" (by key or name); nothing to release\n`);
  } else {
    const beat =
      removed.heartbeatAt === undefined
        ? ""
        : `, last heartbeat ${formatDuration(Math.max(0, Date.now() - removed.heartbeatAt))} ago`;
    const fence = removed.fence === undefined ? "" : `, fence ${removed.fence}`;
    process.stdout.write(
      `released ${removed.mode} holder "${removed.holder ?? "(unnamed)"}" (key ${removed.key}${fence}${beat}) of lock "${target.id}"; it finds out at its next heartbeat\n`,
    );
  }
  return EXIT.ok;
}
