/**
 * Durations on the command line always carry a unit (`1500ms`, `30s`, `5m`, `1h`): a bare `30`
 * could mean seconds to one reader and milliseconds to another.
 */
import { usageError } from "./exit-codes.js";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const DURATION = /^(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)$/;
const EXAMPLES = "e.g. 1500ms, 30s, 5m, 1h";

/** Parses `value` of option `--name` into ms. `0` alone is accepted where zero makes sense. */
export function parseDuration(name: string, value: string, { allowZero = false } = {}): number {
  const text = value.trim();
  if (allowZero && /^0+(\.0+)?(ms|s|m|h)?$/.test(text)) return 0;
  const match = DURATION.exec(text);
  if (match === null) {
    const hint = /^\d+(\.\d+)?$/.test(text) ? ` (add a unit: ${text}s or ${text}ms?)` : ` (${EXAMPLES})`;
    throw usageError(`bad duration for --${name}: "${value}"${hint}`);
  }
  const ms = Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  if (ms === 0 && !allowZero) throw usageError(`bad duration for --${name}: "${value}" (must be above 0)`);
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
