/** `dynamolock list`: every lock in a table, as a table for people or one JSON object per line. */
import { parse } from "./args.js";
import { EXIT } from "./exit-codes.js";
import { HELP } from "./help.js";
import { toJson } from "./json.js";
import { LISTING_OPTIONS, lockRow, openListing, readRows, renderTable } from "./listing.js";
import { style, useColor } from "./terminal.js";

export async function listCommand(argv: readonly string[]): Promise<number> {
  const { values } = parse("list", argv, { ...LISTING_OPTIONS, json: { type: "boolean" } });
  if (values.help === true) {
    process.stdout.write(HELP.list);
    return EXIT.ok;
  }
  const listing = await openListing("list", values);
  try {
    if (values.json === true) {
      // Streamed as the pages come, unsorted: memory stays bounded however many locks there are.
      for await (const info of listing.locks.list({ ...listing.filters })) {
        process.stdout.write(`${toJson(lockRow(info, Date.now()), false)}\n`);
      }
      return EXIT.ok;
    }
    const rows = await readRows(listing);
    const c = style(useColor(process.stdout));
    if (rows.length === 0) {
      process.stdout.write(`no locks in table "${listing.table}"${filtersText(values)}\n`);
      return EXIT.ok;
    }
    // Not a terminal (a pipe, a file): full width, nothing cut.
    const width = process.stdout.isTTY === true ? (process.stdout.columns ?? 100) : Number.MAX_SAFE_INTEGER;
    process.stdout.write(`${renderTable(rows, width, c).join("\n")}\n`);
    const held = rows.filter((r) => r.held).length;
    process.stdout.write(
      c.dim(
        `${rows.length} lock${rows.length === 1 ? "" : "s"}, ${held} held; ${listing.scans()} Scan page${listing.scans() === 1 ? "" : "s"} read; waiters are not recorded in the table (-)\n`,
      ),
    );
    return EXIT.ok;
  } finally {
    await listing.close();
  }
}

function filtersText(values: Record<string, unknown>): string {
  const parts: string[] = [];
  if (values.held === true) parts.push("held");
  if (typeof values.prefix === "string") parts.push(`with ids starting "${values.prefix}"`);
  return parts.length === 0 ? "" : ` (${parts.join(", ")})`;
}
