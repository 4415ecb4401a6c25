/**
 * What `list`, `top` and `dashboard` share: the options that pick a table and filter its locks, one
 * row per lock (the stable JSON shape), the table drawn to a terminal's width, and what changed
 * between two listings (takeovers, losses, releases).
 */
import type { LockClient, LockInfo } from "../client.js";
import type { LockData } from "../data.js";
import type { ListOptions } from "../list.js";
import {
  CONNECTION_OPTIONS,
  checkTableName,
  optionalString,
  positiveInteger,
  requiredString,
  type Values,
} from "./args.js";
import { type Connection, connect, keyOptions } from "./connection.js";
import { formatDuration } from "./duration.js";
import { errorContext } from "./report.js";
import type { Style } from "./terminal.js";

/** The options of every listing command. */
export const LISTING_OPTIONS = {
  ...CONNECTION_OPTIONS,
  table: { type: "string", short: "t" },
  "partition-key": { type: "string" },
  "sort-key": { type: "string" },
  "sort-key-value": { type: "string" },
  held: { type: "boolean" },
  prefix: { type: "string" },
  "page-size": { type: "string" },
} as const;

export interface Listing {
  readonly table: string;
  readonly locks: LockClient;
  readonly connection: Connection;
  /** The listing options the command's flags asked for. */
  readonly filters: ListOptions;
  /** How many Scan requests (pages) the SDK client has sent so far: the cost of a refresh. */
  scans(): number;
  close(): Promise<void>;
}

/** The table and a LockClient for a listing command; every argument is checked before any request. */
export async function openListing(command: string, values: Values): Promise<Listing> {
  const table = checkTableName(
    requiredString(command, values, "table", "the DynamoDB table holding the locks"),
    "--table",
  );
  const prefix = optionalString(values, "prefix");
  const pageSize = positiveInteger(values, "page-size", 100, 10_000);
  const keys = keyOptions(values);
  const connection = connect(values);
  errorContext.current = { ...errorContext.current, table };
  let scans = 0;
  // Counted where every attempt passes, so SDK retries show in the cost too.
  connection.client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === "ScanCommand") scans++;
      return next(args);
    },
    { step: "finalizeRequest", name: "dynamolockScanCounter" },
  );
  const { LockClient } = await import("../client.js");
  const locks = new LockClient({ ...keys, table, client: connection.client });
  return {
    table,
    locks,
    connection,
    filters: {
      held: values.held === true,
      pageSize,
      ...(prefix === undefined || prefix === "" ? {} : { prefix }),
    },
    scans: () => scans,
    async close() {
      try {
        await locks.close();
      } finally {
        connection.client.destroy();
      }
    },
  };
}

/** One lock in `list --json` (one object per line) and the dashboard; absent values are null. */
export interface LockRow {
  readonly id: string;
  readonly held: boolean;
  readonly stale: boolean;
  readonly holder: string | null;
  readonly fence: number;
  readonly heartbeatAt: number | null;
  readonly heartbeatAgeMs: number | null;
  readonly leaseMs: number | null;
  /** Until the holder is presumed dead by this machine's clock (negative: past it). */
  readonly leaseLeftMs: number | null;
  readonly releasedAt: number | null;
  /** Nothing records waiters in the lock item, so this is always null ("-"): unknown, not zero. */
  readonly waiters: number | null;
  /** Bytes of the lock's data as JSON, null when it has none. */
  readonly dataBytes: number | null;
  /**
   * How many hold it: the exclusive holder (the fields above are its) plus permit or shared holders
   * (`dynamolock status` lists each).
   */
  readonly holders: number;
}

export function lockRow(info: LockInfo<LockData>, now: number): LockRow {
  const heartbeatAt = info.heartbeatAt ?? null;
  const leaseMs = info.leaseMs ?? null;
  return {
    id: info.lockId,
    held: info.held,
    stale: info.stale,
    holder: info.holder ?? null,
    fence: info.fence,
    heartbeatAt,
    heartbeatAgeMs: heartbeatAt === null ? null : now - heartbeatAt,
    leaseMs,
    leaseLeftMs: heartbeatAt === null || leaseMs === null ? null : heartbeatAt + leaseMs - now,
    releasedAt: info.releasedAt ?? null,
    waiters: null,
    dataBytes: info.data === undefined ? null : Buffer.byteLength(JSON.stringify(info.data) ?? "", "utf8"),
    holders: info.holders.length,
  };
}

/** Every row, sorted by id (a listing comes in the table's hash order, useless to a reader). */
export async function readRows(listing: Listing, now: () => number = Date.now): Promise<LockRow[]> {
  const rows: LockRow[] = [];
  for await (const info of listing.locks.list({ ...listing.filters })) rows.push(lockRow(info, now()));
  return rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** What happened to a lock between two listings. */
export interface Change {
  readonly id: string;
  readonly kind: "acquired" | "released" | "taken over" | "lost";
  readonly text: string;
}

/**
 * Compares two listings. A new fence whose previous holder never released is a takeover (the old
 * holder lost the lock); a holder gone with a release recorded since is a release. A lock whose
 * item vanished (TTL cleanup, or filtered out now) is not reported.
 */
export function changesBetween(before: readonly LockRow[], after: readonly LockRow[]): Change[] {
  const previous = new Map(before.map((row) => [row.id, row]));
  const changes: Change[] = [];
  for (const now of after) {
    const was = previous.get(now.id);
    if (was === undefined) {
      if (now.held)
        changes.push({ id: now.id, kind: "acquired", text: `acquired by ${who(now)} (fence ${now.fence})` });
      continue;
    }
    if (now.fence === was.fence) {
      if (was.held && !now.held)
        changes.push({ id: now.id, kind: "released", text: `released by ${who(was)}` });
      continue;
    }
    // The fence moved: someone acquired it since. Did the one we saw holding it let go first?
    const releasedSince =
      now.releasedAt !== null && (was.releasedAt === null || now.releasedAt > was.releasedAt);
    if (was.held && !releasedSince) {
      const text = now.held
        ? `taken over by ${who(now)} from ${who(was)} (fence ${was.fence} → ${now.fence})`
        : `${who(was)} lost it (fence ${was.fence}; now free at fence ${now.fence})`;
      changes.push({ id: now.id, kind: now.held ? "taken over" : "lost", text });
    } else if (now.held) {
      changes.push({ id: now.id, kind: "acquired", text: `acquired by ${who(now)} (fence ${now.fence})` });
    } else {
      changes.push({ id: now.id, kind: "released", text: `acquired and released (fence ${now.fence})` });
    }
  }
  return changes;
}

function who(row: LockRow): string {
  return row.holder === null ? "(unnamed)" : `"${row.holder}"`;
}

const COLUMNS = ["ID", "HOLDER", "FENCE", "HEARTBEAT", "LEASE LEFT", "STALE", "WAITERS", "DATA"] as const;

function ago(ms: number | null): string {
  return ms === null ? "-" : `${formatDuration(Math.max(0, ms))} ago`;
}

function cells(row: LockRow): string[] {
  return [
    row.id,
    // Permit or shared holders have no one name: their count (status lists each).
    row.held ? (row.holder ?? (row.heartbeatAt === null ? `${row.holders} holders` : "(unnamed)")) : "(free)",
    String(row.fence),
    row.held ? ago(row.heartbeatAgeMs) : "-",
    row.leaseLeftMs === null ? "-" : row.leaseLeftMs > 0 ? formatDuration(row.leaseLeftMs) : "expired",
    row.stale ? "STALE" : row.held ? "no" : "-",
    row.waiters === null ? "-" : String(row.waiters),
    row.dataBytes === null ? "-" : `${row.dataBytes} B`,
  ];
}

function clip(text: string, width: number): string {
  if (text.length <= width) return text.padEnd(width);
  return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

/**
 * The table, fitted to `width` columns: the id and holder columns give up room first (cut with
 * "…"), then whole columns from the right. `mark` picks a row's highlight, if any.
 */
export function renderTable(
  rows: readonly LockRow[],
  width: number,
  c: Style,
  mark: (row: LockRow) => "taken over" | "lost" | undefined = () => undefined,
): string[] {
  const body = rows.map(cells);
  const widths = COLUMNS.map((title, i) =>
    Math.max(title.length, ...body.map((r) => (r[i] as string).length)),
  );
  const total = () => widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1);
  // Shrink the id and holder columns towards 12 characters, then drop columns from the right.
  for (const i of [0, 1]) {
    const over = total() - width;
    if (over > 0) widths[i] = Math.max(12, (widths[i] as number) - over);
  }
  let shown = widths.length;
  while (shown > 1 && widths.slice(0, shown).reduce((a, b) => a + b, 0) + 2 * (shown - 1) > width) shown--;
  const line = (values: readonly string[]) =>
    values
      .slice(0, shown)
      .map((v, i) => clip(v, widths[i] as number))
      .join("  ")
      .trimEnd();
  const out = [c.bold(line(COLUMNS))];
  rows.forEach((row, index) => {
    const text = line(body[index] as string[]);
    const highlight = mark(row);
    if (highlight !== undefined) out.push(c.red(c.bold(`${text}  ← ${highlight}`.slice(0, width))));
    else if (row.stale) out.push(c.yellow(text));
    else if (!row.held) out.push(c.dim(text));
    else out.push(text);
  });
  return out;
}
