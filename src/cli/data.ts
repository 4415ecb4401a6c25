/** `dynamolock data get|set`: the data stored with a lock, as JSON. */
import { readFile } from "node:fs/promises";
import { LockHeldError } from "../errors.js";
import { LOCK_OPTIONS, optionalDuration, optionalString, parse } from "./args.js";
import { lockTarget } from "./connection.js";
import { EXIT, usageError } from "./exit-codes.js";
import { HELP } from "./help.js";
import { parseDataJson, toJson } from "./json.js";
import { heldError } from "./report.js";
import { DEFAULT_LEASE_MS } from "./run.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function dataCommand(argv: readonly string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === "--help" || action === "-h") {
    process.stdout.write(HELP.data);
    return action === undefined ? EXIT.usage : EXIT.ok;
  }
  if (action !== "get" && action !== "set") {
    throw usageError(
      `data: unknown action "${action}": use \`data get\` or \`data set\` (see: dynamolock data --help)`,
    );
  }
  const { values, positionals } = parse(
    `data ${action}`,
    rest,
    { ...LOCK_OPTIONS, file: { type: "string" }, wait: { type: "string" }, lease: { type: "string" } },
    action === "set" ? 1 : 0,
  );
  if (values.help === true) {
    process.stdout.write(HELP.data);
    return EXIT.ok;
  }
  if (action === "get") {
    const target = lockTarget("data get", values);
    try {
      const info = await target.locks.read(target.id);
      process.stdout.write(`${toJson(info?.data ?? null, true)}\n`);
      return EXIT.ok;
    } finally {
      await target.close();
    }
  }

  const file = optionalString(values, "file");
  const inline = positionals[0];
  if ((file === undefined) === (inline === undefined)) {
    throw usageError(
      "data set: give the data either as a JSON argument or with --file PATH (- for stdin), not both",
    );
  }
  const text =
    inline ??
    (file === "-"
      ? await readStdin()
      : await readFile(file as string, "utf8").catch((err) => {
          throw usageError(`data set: cannot read --file ${file}: ${(err as Error).message}`);
        }));
  const data = parseDataJson(text, inline === undefined ? `--file ${file}` : "the data argument");
  const waitMs = optionalDuration(values, "wait", { allowZero: true }) ?? 0;
  const leaseMs = optionalDuration(values, "lease") ?? DEFAULT_LEASE_MS;
  const target = lockTarget("data set", values, { leaseMs });
  try {
    let lock: Awaited<ReturnType<typeof target.locks.acquire>>;
    try {
      lock = await target.locks.acquire(target.id, { waitMs });
    } catch (err) {
      if (err instanceof LockHeldError) throw heldError(err, waitMs);
      throw err;
    }
    await lock.release(data);
    process.stderr.write(`dynamolock: stored the data of lock "${target.id}" (fence ${lock.fence})\n`);
    return EXIT.ok;
  } finally {
    await target.close();
  }
}
