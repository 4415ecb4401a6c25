/**
 * `dynamolock dashboard`: one poller lists the table every interval and pushes each listing to
 * every open page by server-sent events; the page and everything it shows are served from here
 * (nothing from the internet). Bound to 127.0.0.1 only. Read-only unless `--allow-release`.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { optionalDuration, parse, positiveInteger } from "./args.js";
import { History } from "./dashboard-history.js";
import { dashboardPage } from "./dashboard-page.js";
import { CliError, EXIT } from "./exit-codes.js";
import { HELP } from "./help.js";
import {
  type Change,
  changesBetween,
  LISTING_OPTIONS,
  type LockRow,
  openListing,
  readRows,
} from "./listing.js";
import { explain } from "./report.js";

/** Changes shown on the page, newest last. */
const RECENT_CHANGES = 50;
/** Refreshes a takeover or loss stays highlighted. */
const HIGHLIGHT_REFRESHES = 5;

export interface Snapshot {
  readonly table: string;
  readonly at: number;
  readonly intervalMs: number;
  readonly scansPerRefresh: number;
  readonly locks: readonly LockRow[];
  readonly changes: readonly (Change & { readonly at: number })[];
  readonly highlighted: Record<string, "taken over" | "lost">;
  readonly error: string | null;
}

export async function dashboardCommand(argv: readonly string[]): Promise<number> {
  const { values } = parse("dashboard", argv, {
    ...LISTING_OPTIONS,
    port: { type: "string", short: "p" },
    interval: { type: "string", short: "n" },
    "allow-release": { type: "boolean" },
  });
  if (values.help === true) {
    process.stdout.write(HELP.dashboard);
    return EXIT.ok;
  }
  const port = values.port === "0" ? 0 : positiveInteger(values, "port", 0, 65_535);
  const intervalMs = optionalDuration(values, "interval") ?? 1_000;
  const allowRelease = values["allow-release"] === true;
  const listing = await openListing("dashboard", values);
  // Asked before serving: a wrong table name or missing credentials end the command at once.
  let rows = await readRows(listing);
  const history = new History();
  history.record(rows, Date.now());
  const changes: (Change & { at: number })[] = [];
  const highlighted = new Map<string, { kind: "taken over" | "lost"; until: number }>();
  let refreshes = 0;
  let error: string | null = null;
  let scansPerRefresh = listing.scans();
  /** Proves a release request comes from our own page, not from another site the browser has open. */
  const token = randomBytes(16).toString("hex");
  const subscribers = new Set<ServerResponse>();

  const snapshot = (): Snapshot => ({
    table: listing.table,
    at: Date.now(),
    intervalMs,
    scansPerRefresh,
    locks: rows,
    changes,
    highlighted: Object.fromEntries([...highlighted].map(([id, h]) => [id, h.kind])),
    error,
  });
  const broadcast = () => {
    const data = `data: ${JSON.stringify(snapshot())}\n\n`;
    for (const res of subscribers) res.write(data);
  };

  let timer: NodeJS.Timeout | undefined;
  let stopping = false;
  const poll = async () => {
    const before = listing.scans();
    try {
      const next = await readRows(listing);
      refreshes++;
      const at = Date.now();
      for (const change of changesBetween(rows, next)) {
        changes.push({ ...change, at });
        if (change.kind === "taken over" || change.kind === "lost") {
          highlighted.set(change.id, { kind: change.kind, until: refreshes + HIGHLIGHT_REFRESHES });
        }
      }
      changes.splice(0, Math.max(0, changes.length - RECENT_CHANGES));
      for (const [id, h] of highlighted) if (h.until <= refreshes) highlighted.delete(id);
      rows = next;
      history.record(rows, at);
      error = null;
    } catch (err) {
      // Keep serving the last listing, and say why it is old.
      error = explain(err).message;
    }
    scansPerRefresh = listing.scans() - before;
    broadcast();
    if (!stopping) timer = setTimeout(poll, intervalMs);
  };

  const server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end(explain(err).message);
    });
  });
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const address = server.address();
    const ownPort = typeof address === "object" && address !== null ? address.port : -1;
    // Another site resolving its name to 127.0.0.1 (DNS rebinding) must not read the locks.
    if (req.headers.host !== `127.0.0.1:${ownPort}` && req.headers.host !== `localhost:${ownPort}`) {
      res.writeHead(403).end("forbidden host");
      return;
    }
    const url = new URL(req.url ?? "/", `http://${req.headers.host}`);
    const security = {
      "content-security-policy":
        "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'",
      "x-content-type-options": "nosniff",
      "cache-control": "no-store",
    };
    if (req.method === "GET" && url.pathname === "/") {
      res.writeHead(200, { ...security, "content-type": "text/html; charset=utf-8" });
      res.end(dashboardPage({ table: listing.table, allowRelease, token }));
      return;
    }
    if (req.method === "GET" && url.pathname === "/events") {
      res.writeHead(200, { ...security, "content-type": "text/event-stream", connection: "keep-alive" });
      res.write(`retry: ${Math.max(1_000, intervalMs)}\ndata: ${JSON.stringify(snapshot())}\n\n`);
      subscribers.add(res);
      req.on("close", () => subscribers.delete(res));
      return;
    }
    if (req.method === "GET" && url.pathname === "/timeline") {
      const svg = history.timeline(url.searchParams.get("id") ?? "", Date.now());
      if (svg === undefined) {
        res.writeHead(404, { ...security, "content-type": "text/plain; charset=utf-8" }).end("not seen");
        return;
      }
      res.writeHead(200, { ...security, "content-type": "image/svg+xml; charset=utf-8" });
      res.end(svg);
      return;
    }
    if (req.method === "POST" && url.pathname === "/release") {
      if (!allowRelease) {
        res.writeHead(403, security).end("read-only: start the dashboard with --allow-release");
        return;
      }
      if (req.headers["x-dynamolock-token"] !== token) {
        res.writeHead(403, security).end("bad token");
        return;
      }
      const id = url.searchParams.get("id");
      if (id === null || id === "") {
        res.writeHead(400, security).end("missing id");
        return;
      }
      const removed = await listing.locks.forceRelease(id);
      process.stdout.write(
        `force-released "${id}"${removed === undefined ? " (it was not held)" : ` from "${removed.holder ?? "(unnamed)"}" (fence ${removed.fence})`}\n`,
      );
      res.writeHead(200, { ...security, "content-type": "application/json" });
      res.end(JSON.stringify({ released: removed !== undefined }));
      return;
    }
    res.writeHead(404, security).end("not found");
  };

  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "EADDRINUSE"
          ? new CliError(
              `port ${port} on 127.0.0.1 is in use: pass another --port (0 picks a free one)`,
              EXIT.unavailable,
            )
          : err,
      ),
    );
    server.listen(port, "127.0.0.1", resolve);
  });
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : port}/`;
  process.stdout.write(
    `dashboard for table "${listing.table}" on ${url} (${allowRelease ? "force-release allowed" : "read-only"}; Ctrl-C to stop)\n`,
  );
  timer = setTimeout(poll, intervalMs);

  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  stopping = true;
  clearTimeout(timer);
  for (const res of subscribers) res.end();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await listing.close();
  return EXIT.ok;
}
