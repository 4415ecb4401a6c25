/**
 * Argument checks shared by every entry point. They run before any request is sent and throw the
 * platform's TypeError / RangeError with one message style:
 * "Expected `leaseMs` to be a positive finite number, got `-1` (number)".
 */

export function describe(value: unknown): string {
  let shown: string;
  if (typeof value === "string")
    shown = JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  else if (typeof value === "bigint") shown = `${value}n`;
  else if (typeof value === "function") shown = "[function]";
  else if (typeof value === "symbol") shown = value.toString();
  else if (value === null || typeof value !== "object") shown = String(value);
  else if (Array.isArray(value)) shown = "[array]";
  else shown = Object.prototype.toString.call(value);
  return `\`${shown}\` (${value === null ? "null" : typeof value})`;
}

export function fail(name: string, expectation: string, value: unknown, ErrorType = TypeError): never {
  throw new ErrorType(`Expected \`${name}\` to be ${expectation}, got ${describe(value)}`);
}

/** A duration in ms: a finite number > 0. */
export function positiveDuration(name: string, value: unknown): number {
  if (typeof value !== "number") fail(name, "a positive finite number of milliseconds", value);
  if (!Number.isFinite(value) || value <= 0) {
    fail(name, "a positive finite number of milliseconds", value, RangeError);
  }
  return value;
}

/** A bound in ms that may be `Infinity` (meaning "no bound"), but not negative or NaN. */
export function nonNegativeOrInfinite(name: string, value: unknown): number {
  if (typeof value !== "number") fail(name, "a non-negative number of milliseconds or Infinity", value);
  if (Number.isNaN(value) || value < 0) {
    fail(name, "a non-negative number of milliseconds or Infinity", value, RangeError);
  }
  return value;
}

const utf8 = new TextEncoder();
export function utf8Length(value: string): number {
  return utf8.encode(value).length;
}

/** A non-empty string of at most `maxBytes` UTF-8 bytes (DynamoDB's key limits). */
export function keyString(name: string, value: unknown, maxBytes: number): string {
  if (typeof value !== "string") fail(name, "a non-empty string", value);
  if (value.length === 0) fail(name, "a non-empty string", value, RangeError);
  const bytes = utf8Length(value);
  if (bytes > maxBytes) {
    throw new RangeError(`Expected \`${name}\` to be at most ${maxBytes} bytes of UTF-8, got ${bytes} bytes`);
  }
  return value;
}

/** An attribute name: DynamoDB allows 1 to 255 bytes for key attributes. */
export function attributeName(name: string, value: unknown): string {
  return keyString(name, value, 255);
}

const TABLE_NAME = /^[a-zA-Z0-9_.-]{3,255}$/;
/** DynamoDB's table-name rule: 3 to 255 of `a-z A-Z 0-9 _ - .` */
export function tableName(name: string, value: unknown): string {
  if (typeof value !== "string") fail(name, "a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)", value);
  if (!TABLE_NAME.test(value)) {
    fail(name, "a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)", value, RangeError);
  }
  return value;
}

export function optionalString(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length === 0) fail(name, "a non-empty string", value);
  return value;
}

export function optionalSignal(name: string, value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) fail(name, "an AbortSignal", value);
  return value;
}

/**
 * An options object whose keys are all among `known`. A misspelt option (`leseMs`) would otherwise
 * be ignored in silence, and the default used instead of what the caller meant.
 */
export function optionsObject<T extends object>(
  name: string,
  value: unknown,
  known: readonly (keyof T & string)[],
): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object") fail(name, "an options object", value);
  for (const key of Object.keys(value)) {
    if (!(known as readonly string[]).includes(key)) unknownOption(name, key, known);
  }
  return value as Partial<T>;
}

export function unknownOption(name: string, key: string, known: readonly string[]): never {
  const closest = closestName(key, known);
  const hint = closest === undefined ? `known options: ${known.join(", ")}` : `did you mean \`${closest}\`?`;
  throw new TypeError(`Unknown option \`${key}\` in \`${name}\`: ${hint}`);
}

/**
 * The candidate nearest to `input` by edit distance (letter case ignored), if it is near enough to
 * be a plausible typo: at most a third of the longer name, and at least one letter. Also matches a
 * candidate the input is a prefix or suffix of (`wait` for `waitMs`).
 */
export function closestName(input: string, candidates: readonly string[]): string | undefined {
  const lower = input.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const c = candidate.toLowerCase();
    const affix = lower.length >= 3 && (c.startsWith(lower) || c.endsWith(lower));
    const distance = affix ? 0.5 : editDistance(lower, c);
    const allowed = Math.max(1, Math.floor(Math.max(lower.length, c.length) / 3));
    if (distance <= allowed && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance, with a swap of two neighbouring letters counted as one edit. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        (rows[0] as number[])[j] = j;
        continue;
      }
      const row = rows[i] as number[];
      const above = rows[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((above[j] as number) + 1, (row[j - 1] as number) + 1, (above[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      }
      row[j] = d;
    }
  }
  return (rows[a.length] as number[])[b.length] as number;
}
