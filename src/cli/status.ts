/** `dynamolock status`: is the lock held, by whom, how fresh is its heartbeat; text or JSON. */
import type { LockInfo } from "../client.js";
import type { LockData } from "../data.js";
import { LOCK_OPTIONS, parse } from "./args.js";
import { lockTarget } from "./connection.js";
import { formatDuration } from "./duration.js";
import { EXIT } from "./exit-codes.js";
import { HELP } from "./help.js";
import { toJson } from "./json.js";
import { style, useColor } from "./terminal.js";

/** The stable shape of `status --json`; absent values are null so every field is always there. */
export interface StatusJson {
  readonly table: string;
  readonly id: string;
  readonly exists: boolean;
  readonly held: boolean;
  readonly stale: boolean;
  readonly holder: string | null;
  readonly fence: number;
  readonly heartbeatAt: number | null;
  readonly heartbeatAgeMs: number | null;
  readonly leaseMs: number | null;
  readonly expiresInMs: number | null;
  readonly releasedAt: number | null;
  /**
   * The stored data's top-level keys and its size as JSON, never its values: status output lands
   * in logs and terminals, and data may be anything (`dynamolock data get` prints it).
   */
  readonly dataKeys: readonly string[] | null;
  readonly dataBytes: number | null;
  /** "mutex", "permits" (with `permits`) or "shared" (a reader–writer lock). */
  readonly kind: "mutex" | "permits" | "shared";
  readonly permits: number | null;
  /**
   * Every holder, one element each, for every kind of lock: the exclusive owner (the fields above)
   * and each permit or shared holder. `key` names one holder for `release --force --holder`.
   */
  readonly holders: readonly StatusHolderJson[];
  /** A reader–writer lock's waiting writer, which keeps new shared holders out. */
  readonly intent: {
    readonly holder: string | null;
    readonly heartbeatAgeMs: number | null;
    readonly stale: boolean;
  } | null;
}

export interface StatusHolderJson {
  readonly mode: "exclusive" | "permit" | "shared";
  readonly holder: string | null;
  readonly key: string;
  /** A permit or shared holder's is known from its first heartbeat or `extend()` on; null before that. */
  readonly fence: number | null;
  readonly heartbeatAt: number | null;
  readonly heartbeatAgeMs: number | null;
  readonly leaseMs: number | null;
  readonly stale: boolean;
}

export function statusJson(
  table: string,
  id: string,
  info: LockInfo<LockData> | undefined,
  now = Date.now(),
): StatusJson {
  const heartbeatAt = info?.heartbeatAt ?? null;
  const leaseMs = info?.leaseMs ?? null;
  return {
    table,
    id,
    exists: info !== undefined,
    held: info?.held ?? false,
    stale: info?.stale ?? false,
    holder: info?.holder ?? null,
    fence: info?.fence ?? 0,
    heartbeatAt,
    heartbeatAgeMs: heartbeatAt === null ? null : now - heartbeatAt,
    leaseMs,
    expiresInMs: heartbeatAt === null || leaseMs === null ? null : heartbeatAt + leaseMs - now,
    releasedAt: info?.releasedAt ?? null,
    dataKeys: info?.data === undefined ? null : Object.keys(info.data),
    dataBytes: info?.data === undefined ? null : Buffer.byteLength(toJson(info.data, false)),
    kind: info?.kind ?? "mutex",
    permits: info?.permits ?? null,
    holders: (info?.holders ?? []).map((h) => ({
      mode: h.mode,
      holder: h.holder ?? null,
      key: h.key,
      fence: h.fence ?? null,
      heartbeatAt: h.heartbeatAt ?? null,
      heartbeatAgeMs: h.heartbeatAt === undefined ? null : now - h.heartbeatAt,
      leaseMs: h.leaseMs ?? null,
      stale: h.stale,
    })),
    intent:
      info?.intent === undefined
        ? null
        : {
            holder: info.intent.holder ?? null,
            heartbeatAgeMs: info.intent.heartbeatAt === undefined ? null : now - info.intent.heartbeatAt,
            stale: info.intent.stale,
          },
  };
}

function formatData(s: StatusJson): string {
  if (s.dataKeys === null) return "(none)";
  const keys = s.dataKeys.length === 0 ? "no keys" : `keys ${s.dataKeys.join(", ")}`;
  return `${s.dataBytes} bytes as JSON, ${keys} (values: dynamolock data get)`;
}

export async function statusCommand(argv: readonly string[]): Promise<number> {
  const { values } = parse("status", argv, { ...LOCK_OPTIONS, json: { type: "boolean" } });
  if (values.help === true) {
    process.stdout.write(HELP.status);
    return EXIT.ok;
  }
  const target = lockTarget("status", values);
  try {
    const info = await target.locks.read(target.id);
    const status = statusJson(target.table, target.id, info);
    if (values.json === true) {
      process.stdout.write(`${toJson(status, false)}\n`);
      return EXIT.ok;
    }
    process.stdout.write(renderStatus(status, useColor(process.stdout)));
    return EXIT.ok;
  } finally {
    await target.close();
  }
}

/** One holder in one line: mode, name, key (for `release --force --holder`), fence, heartbeat age. */
function holderLine(h: StatusHolderJson, c: ReturnType<typeof style>): string {
  const beat =
    h.heartbeatAgeMs === null ? "" : `, heartbeat ${formatDuration(Math.max(0, h.heartbeatAgeMs))} ago`;
  const fence = h.fence === null ? "" : `, fence ${h.fence}`;
  const dead = h.stale ? ` ${c.red("presumed dead")}` : "";
  return `${h.mode.padEnd(9)} ${h.holder ?? "(unnamed)"} [key ${h.key}${fence}${beat}]${dead}`;
}

export function renderStatus(s: StatusJson, color: boolean): string {
  const c = style(color);
  const head = `lock "${s.id}" in table "${s.table}": `;
  const rows: [string, string][] = [];
  let state: string;
  if (!s.exists) {
    state = `${c.green("free")} (never taken)`;
  } else if (s.held && s.holders.some((h) => h.mode !== "exclusive")) {
    // Permit or shared holders: one line each (the mutex fields above are the exclusive owner's).
    const count = s.holders.length;
    state = c.yellow(
      s.kind === "permits"
        ? `${count} of ${s.permits ?? "?"} permits held`
        : `held shared by ${count} holder${count === 1 ? "" : "s"}`,
    );
    rows.push(["fence", `${s.fence} (acquisitions so far)`]);
    s.holders.forEach((h, i) => {
      rows.push([i === 0 ? "holders" : "", holderLine(h, c)]);
    });
    if (s.intent !== null) {
      const age =
        s.intent.heartbeatAgeMs === null
          ? ""
          : `, heartbeat ${formatDuration(Math.max(0, s.intent.heartbeatAgeMs))} ago`;
      rows.push([
        "writer",
        `${s.intent.holder ?? "(unnamed)"} waits${age}${s.intent.stale ? " (presumed dead)" : ""}`,
      ]);
    }
  } else if (s.held) {
    state = s.stale ? c.red("held by a presumed-dead holder") : c.yellow("held");
    rows.push(["holder", s.holder ?? "(unnamed)"]);
    if (s.holders[0] !== undefined) rows.push(["key", `${s.holders[0].key} (release --force --holder)`]);
    rows.push(["fence", String(s.fence)]);
    if (s.heartbeatAgeMs !== null) {
      let beat = `${formatDuration(Math.max(0, s.heartbeatAgeMs))} ago`;
      if (s.leaseMs !== null && s.expiresInMs !== null) {
        beat +=
          s.expiresInMs > 0
            ? ` (lease ${formatDuration(s.leaseMs)}: presumed dead if silent for ${formatDuration(s.expiresInMs)} more)`
            : ` (lease ${formatDuration(s.leaseMs)} ran out: presumed dead; an acquire takes it over at once if it trusts wall clocks, the default, else after watching it for one lease)`;
      }
      rows.push(["heartbeat", beat]);
    }
  } else {
    state = c.green("free");
    rows.push(["fence", `${s.fence} (acquisitions so far)`]);
    if (s.releasedAt !== null)
      rows.push(["released", `${formatDuration(Math.max(0, Date.now() - s.releasedAt))} ago`]);
  }
  if (s.exists) rows.push(["data", formatData(s)]);
  return `${head}${state}\n${rows.map(([k, v]) => `  ${c.dim(k.padEnd(10))} ${v}\n`).join("")}`;
}
