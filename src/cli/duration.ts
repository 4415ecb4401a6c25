/**
 * Durations on the command line always carry a unit (`1500ms`, `30s`, `5m`, `1h`, `1m30s`): a bare `30`
 * could mean seconds to one reader and milliseconds to another.
 */
import { usageError } from "./exit-codes.js";

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
/** Units from the largest down, the order a compound duration (`1h30m`, `1m30s`) writes them in. */
const UNIT_ORDER = ["h", "m", "s", "ms"];
const PART = /(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)/gy;
const EXAMPLES = "e.g. 1500ms, 30s, 1m30s, 1h";

/**
 * Parses `value` of option `--name` into ms: one or more number-and-unit parts, largest unit first,
 * each unit at most once (`1m30s`, `2s500ms`). `0` alone is accepted where zero makes sense.
 */
export function parseDuration(name: string, value: string, { allowZero = false } = {}): number {
  const text = value.trim();
  const bound = allowZero ? "0 or more" : "more than 0";
  if (text.startsWith("-")) throw usageError(`bad duration for --${name}: "${value}" (must be ${bound})`);
  if (allowZero && /^0+(\.0+)?$/.test(text)) return 0;
  let ms = 0;
  let lastUnit = -1;
  let end = 0;
  PART.lastIndex = 0;
  for (let match = PART.exec(text); match !== null; match = PART.exec(text)) {
    const unit = UNIT_ORDER.indexOf(match[2] as string);
    if (unit <= lastUnit) {
      throw usageError(
        `bad duration for --${name}: "${value}" (units from the largest down, each once: ${EXAMPLES})`,
      );
    }
    lastUnit = unit;
    ms += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
    end = PART.lastIndex;
  }
  if (text === "" || end !== text.length) {
    const hint = /^\d+(\.\d+)?$/.test(text) ? ` (add a unit: ${text}s or ${text}ms?)` : ` (${EXAMPLES})`;
    throw usageError(`bad duration for --${name}: "${value}"${hint}`);
  }
  if (ms === 0 && !allowZero) throw usageError(`bad duration for --${name}: "${value}" (must be ${bound})`);
  if (!Number.isFinite(ms) || ms > 2 ** 31 - 1) {
    throw usageError(`bad duration for --${name}: "${value}" (at most about 24 days)`);
  }
  return Math.round(ms);
}

/** A short human form: `850ms`, `2.4s`, `3m 05s`, `1h 02m`. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  const sign = ms < 0 ? "-" : "";
  if (abs < 1_000) return `${sign}${Math.round(abs)}ms`;
  if (abs < 10_000) return `${sign}${(abs / 1_000).toFixed(1)}s`;
  if (abs < 60_000) return `${sign}${Math.round(abs / 1_000)}s`;
  if (abs < 3_600_000) {
    const s = Math.round(abs / 1_000);
    return `${sign}${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  }
  const m = Math.round(abs / 60_000);
  return `${sign}${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}
