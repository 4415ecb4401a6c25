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

export function optionsObject<T extends object>(name: string, value: unknown): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object") fail(name, "an options object", value);
  return value as Partial<T>;
}
