/**
 * Pure helpers of the benchmark: percentiles, ratios, the order of alternated rounds, and plain-text
 * tables. No I/O here, so test/bench-helpers.test.ts can check them without running a bench.
 */

/** The p-th percentile (nearest rank) of samples sorted ascending; NaN for no samples. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  if (p <= 0) return sorted[0] as number;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, rank) - 1] as number;
}

export interface Summary {
  readonly n: number;
  readonly mean: number;
  readonly p50: number;
  readonly p99: number;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.length === 0 ? Number.NaN : sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { n: sorted.length, mean, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

/** `value / floor` as "0.93×"; "–" when either is missing or the floor is not positive. */
export function ratio(value: number, floor: number): string {
  if (!Number.isFinite(value) || !Number.isFinite(floor) || floor <= 0) return "–";
  return `${(value / floor).toFixed(2)}×`;
}

/**
 * The order of contenders in each of `rounds` rounds: every round runs each contender once, and the
 * starting contender rotates (ABC, BCA, CAB, ...), so slow drift of the machine (other work, a
 * warming JIT, a server filling up) hits every contender alike and none always runs first or last.
 */
export function alternation<T>(contenders: readonly T[], rounds: number): T[][] {
  const out: T[][] = [];
  for (let r = 0; r < rounds; r++) {
    const n = contenders.length;
    out.push(Array.from({ length: n }, (_, i) => contenders[(i + r) % n] as T));
  }
  return out;
}

/** A number with a fixed count of decimals, or "–" when it is not finite. */
export function fixed(value: number | undefined, digits = 2): string {
  return value === undefined || !Number.isFinite(value) ? "–" : value.toFixed(digits);
}

/** A Markdown table (readable as plain text too): the first row is the header. */
export function table(rows: readonly (readonly string[])[]): string {
  const [header, ...body] = rows;
  if (header === undefined) return "";
  const widths = header.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  const line = (r: readonly string[]) =>
    `| ${widths.map((w, c) => (c === 0 ? (r[c] ?? "").padEnd(w) : (r[c] ?? "").padStart(w))).join(" | ")} |`;
  const rule = `|${widths.map((w, c) => (c === 0 ? `${"-".repeat(w + 1)}-` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(header), rule, ...body.map(line)].join("\n");
}

/**
 * Rows for a table from JSON another script printed (an array of flat objects, or an object holding
 * one): the union of keys becomes the header. Anything else yields no rows.
 */
export function rowsFromJson(value: unknown): string[][] {
  const list = Array.isArray(value)
    ? value
    : typeof value === "object" && value !== null
      ? (Object.values(value).find(Array.isArray) ?? [value])
      : [];
  const objects = (list as unknown[]).filter(
    (v): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v),
  );
  if (objects.length === 0) return [];
  const keys = [...new Set(objects.flatMap((o) => Object.keys(o)))];
  const cell = (v: unknown) =>
    typeof v === "number"
      ? Number.isInteger(v)
        ? String(v)
        : v.toFixed(2)
      : v === undefined
        ? ""
        : typeof v === "string"
          ? v
          : JSON.stringify(v);
  return [keys, ...objects.map((o) => keys.map((k) => cell(o[k])))];
}

/**
 * The JSON document another script printed, with or without log lines before it: the whole text
 * if it parses, else the longest tail starting at a line that opens an object or an array, else
 * any single such line (the last first). Undefined if there is none.
 */
export function jsonIn(text: string): unknown {
  const parse = (candidate: string): { ok: boolean; value?: unknown } => {
    try {
      return { ok: true, value: JSON.parse(candidate) };
    } catch {
      return { ok: false };
    }
  };
  const whole = parse(text);
  if (whole.ok) return whole.value;
  const lines = text.split("\n");
  const opens = (line: string) => /^\s*[[{]/.test(line);
  for (let i = 0; i < lines.length; i++) {
    if (!opens(lines[i] as string)) continue;
    const tail = parse(lines.slice(i).join("\n"));
    if (tail.ok) return tail.value;
  }
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!opens(lines[i] as string)) continue;
    const line = parse(lines[i] as string);
    if (line.ok) return line.value;
  }
  return undefined;
}
