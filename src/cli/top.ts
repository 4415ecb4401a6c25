/**
 * `dynamolock top`: `list`, refreshed in place on the terminal's alternate screen, with takeovers
 * and losses since the last refresh highlighted. Whatever ends it (q, Ctrl-C, SIGTERM, a failure),
 * the terminal is handed back as it was: main screen, cursor visible, input mode restored.
 */
import { optionalDuration, parse } from "./args.js";
import { formatDuration } from "./duration.js";
import { EXIT, usageError } from "./exit-codes.js";
import { HELP } from "./help.js";
import {
  type Change,
  changesBetween,
  LISTING_OPTIONS,
  type LockRow,
  openListing,
  readRows,
  renderTable,
} from "./listing.js";
import { explain } from "./report.js";
import { isInteractive, style, useColor } from "./terminal.js";

/** How many refreshes a takeover or loss stays highlighted, so a fast refresh cannot hide it. */
const HIGHLIGHT_REFRESHES = 5;
/** How many recent changes are listed under the table. */
const RECENT_CHANGES = 5;

const ALT_SCREEN_ON = "\x1b[?1049h";
const ALT_SCREEN_OFF = "\x1b[?1049l";
const CURSOR_HIDE = "\x1b[?25l";
const CURSOR_SHOW = "\x1b[?25h";

export async function topCommand(argv: readonly string[]): Promise<number> {
  const { values } = parse("top", argv, { ...LISTING_OPTIONS, interval: { type: "string", short: "n" } });
  if (values.help === true) {
    process.stdout.write(HELP.top);
    return EXIT.ok;
  }
  const intervalMs = optionalDuration(values, "interval") ?? 1_000;
  if (!isInteractive(process.stdout)) {
    throw usageError(
      "top: needs a terminal; for a script use `dynamolock list --json` (see: dynamolock top --help)",
    );
  }
  const listing = await openListing("top", values);
  const out = process.stdout;
  const c = style(useColor(out));
  const stdin = process.stdin;
  const rawBefore = stdin.isTTY === true ? stdin.isRaw : undefined;

  let quitting = false;
  /** Ends the current wait between refreshes at once. */
  let wake: () => void = () => undefined;
  const stop = () => {
    quitting = true;
    wake();
  };
  const onKey = (key: Buffer) => {
    // q, Q, Ctrl-C (raw mode delivers it as a byte instead of a signal), Ctrl-D
    if ([0x71, 0x51, 0x03, 0x04].includes(key[0] as number)) stop();
  };
  const onSignal = () => stop();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);
  if (stdin.isTTY === true) {
    stdin.setRawMode(true);
    stdin.on("data", onKey);
    stdin.resume();
  }
  out.write(ALT_SCREEN_ON + CURSOR_HIDE);

  let previous: LockRow[] | undefined;
  let refreshes = 0;
  const highlighted = new Map<string, { kind: "taken over" | "lost"; until: number }>();
  const recent: { at: number; change: Change }[] = [];
  let failure: string | undefined;
  try {
    while (!quitting) {
      const scansBefore = listing.scans();
      try {
        const rows = await readRows(listing);
        refreshes++;
        if (previous !== undefined) {
          for (const change of changesBetween(previous, rows)) {
            recent.push({ at: Date.now(), change });
            if (change.kind === "taken over" || change.kind === "lost") {
              highlighted.set(change.id, { kind: change.kind, until: refreshes + HIGHLIGHT_REFRESHES });
            }
          }
          recent.splice(0, Math.max(0, recent.length - RECENT_CHANGES));
        }
        previous = rows;
        failure = undefined;
      } catch (err) {
        // The first listing must work (a wrong table name is not worth watching); later ones may
        // fail for a moment (throttling, a network blip): say so and keep the last picture.
        if (previous === undefined) throw err;
        failure = explain(err).message;
      }
      for (const [id, h] of highlighted) if (h.until <= refreshes) highlighted.delete(id);
      draw(previous ?? [], listing.scans() - scansBefore);
      if (quitting) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return EXIT.ok;
  } finally {
    out.write(CURSOR_SHOW + ALT_SCREEN_OFF);
    if (stdin.isTTY === true) {
      stdin.off("data", onKey);
      stdin.setRawMode(rawBefore ?? false);
      stdin.pause();
    }
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("SIGHUP", onSignal);
    await listing.close();
  }

  function draw(rows: readonly LockRow[], scans: number): void {
    const width = Math.max(40, out.columns ?? 100);
    const height = Math.max(10, out.rows ?? 24);
    const held = rows.filter((r) => r.held).length;
    const header = [
      c.bold(`dynamolock top: table "${listing.table}"`) +
        `  ${rows.length} locks, ${held} held  every ${formatDuration(intervalMs)}  cost: ${scans} Scan request${scans === 1 ? "" : "s"} per refresh  ${new Date().toLocaleTimeString()}`,
      failure === undefined
        ? c.dim("q or Ctrl-C to quit; waiters are not recorded in the table (-)")
        : c.red(`last refresh failed: ${failure}`),
      "",
    ];
    const footer =
      recent.length === 0
        ? []
        : [
            "",
            c.bold("Recent changes"),
            ...recent.map(({ at, change }) => {
              const text = `${new Date(at).toLocaleTimeString()}  ${change.id}: ${change.text}`;
              return change.kind === "taken over" || change.kind === "lost" ? c.red(text) : text;
            }),
          ];
    const room = Math.max(2, height - header.length - footer.length - 1);
    const table = renderTable(rows, width, c, (row) => highlighted.get(row.id)?.kind);
    const shown =
      table.length > room
        ? [
            ...table.slice(0, room - 1),
            c.dim(`… and ${table.length - room + 1} more (narrow it with --prefix or --held)`),
          ]
        : table;
    const lines = [...header, ...shown, ...footer].map((line) => `${line}\x1b[K`);
    out.write(`\x1b[H${lines.join("\r\n")}\x1b[J`);
  }
}
