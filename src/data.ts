/**
 * The caller's data, stored as one map attribute of the lock item. Checked before marshalling so
 * that nothing is silently dropped or changed on the way to DynamoDB, and so that an oversized item
 * is refused before any request is sent.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { describe, utf8Length } from "./validate.js";

/**
 * The data a lock carries when you name no type: a plain object of values DynamoDB stores and gives
 * back unchanged. Your own type may be an interface or a type alias (`acquire<MyData>()`): type
 * parameters only ask for an `object`, because an interface has no index signature and so is not a
 * `Record<string, unknown>`. What the value holds is checked when it is written.
 */
export type LockData = Record<string, unknown>;

/** DynamoDB's item size limit. */
export const MAX_ITEM_BYTES = 400 * 1024;
/**
 * DynamoDB's nesting limit, as the server counts it: an attribute may hold 31 levels of maps and
 * lists, the data map itself being the first (DynamoDB documents "32 levels", counting the item).
 */
const MAX_LEVELS = 31;
/** DynamoDB refuses a map key of 64 KB or more ("must be less than 65536 bytes"). */
const MAX_KEY_BYTES = 65_535;
/** Numbers: at most 38 significant digits, magnitudes from 1E-130 to 9.99...E+125 (and 0). */
const MAX_DIGITS = 38;
const MIN_EXPONENT = -130;
const MAX_EXPONENT = 125;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Sets `key` as an own property, even "__proto__" (which `JSON.parse` makes an own key, and a plain
 * assignment would turn into a change of prototype instead).
 */
function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  if (key === "__proto__") {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else target[key] = value;
}

/** A decimal number as DynamoDB sees it: sign, significant digits, and the exponent of the first. */
interface Decimal {
  readonly negative: boolean;
  /** No leading or trailing zeros; empty for zero. */
  readonly digits: string;
  /** The value is 0.`digits` × 10^`point`. */
  readonly point: number;
}

const NUMBER_TEXT = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

function parseDecimal(text: string): Decimal | undefined {
  const match = NUMBER_TEXT.exec(text);
  if (match === null) return undefined;
  const [, sign = "", whole = "", fraction = "", exponent = "0"] = match;
  let digits = whole + fraction;
  let point = whole.length + Number(exponent);
  const leading = digits.length - digits.replace(/^0+/, "").length;
  digits = digits.slice(leading).replace(/0+$/, "");
  point -= leading;
  return { negative: sign === "-" && digits !== "", digits, point: digits === "" ? 0 : point };
}

/** The same text for numbers DynamoDB considers equal (1, 1n, 1.0, 1e0; 0 and -0), for sets. */
function numberIdentity(d: Decimal): string {
  return `${d.negative ? "-" : ""}0.${d.digits}e${d.point}`;
}

/** Checks a number's rendering against DynamoDB's precision and range; returns its identity. */
function checkNumberText(path: string, value: number | bigint, text: string): string {
  const d = parseDecimal(text) as Decimal;
  if (d.digits.length > MAX_DIGITS) {
    throw new RangeError(
      `\`${path}\` is ${describe(value)}, with ${d.digits.length} significant digits; DynamoDB stores at most ${MAX_DIGITS}`,
    );
  }
  if (d.digits !== "" && (d.point - 1 < MIN_EXPONENT || d.point - 1 > MAX_EXPONENT)) {
    throw new RangeError(
      `\`${path}\` is ${describe(value)}, outside DynamoDB's range: magnitudes from 1E-130 to 9.99...E+125, or 0`,
    );
  }
  return numberIdentity(d);
}

/** Checks a number or bigint and renders it as DynamoDB's N. */
function encodeNumber(path: string, value: number | bigint): { text: string; identity: string } {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new RangeError(`\`${path}\` is ${describe(value)}, which DynamoDB cannot store`);
    }
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
      throw new RangeError(`\`${path}\` is ${describe(value)}, beyond Number.MAX_SAFE_INTEGER: use a bigint`);
    }
  }
  // String() of a number is the shortest text that reads back as the same number (-0 gives "0").
  const text = String(value);
  return { text, identity: checkNumberText(path, value, text) };
}

/** A lone surrogate (half of a UTF-16 pair) has no UTF-8 form, and DynamoDB stores UTF-8. */
const LONE_SURROGATE = /\p{Cs}/u;

function checkString(path: string, value: string, what = "is"): string {
  if (LONE_SURROGATE.test(value)) {
    throw new RangeError(
      `\`${path}\` ${what} ${describe(value)}, which holds a lone surrogate: it has no UTF-8 form, which is how DynamoDB stores strings`,
    );
  }
  return value;
}

function encodeSet(path: string, set: Set<unknown>): AttributeValue {
  if (set.size === 0) throw new RangeError(`\`${path}\` is an empty Set, which DynamoDB cannot store`);
  let kind: "string" | "number" | "binary" | undefined;
  // DynamoDB refuses a set with two members it considers equal: 1 and 1n, or two equal byte arrays.
  const seen = new Map<string, unknown>();
  const members: (string | Uint8Array)[] = [];
  for (const element of set) {
    const elementKind =
      typeof element === "string"
        ? "string"
        : typeof element === "number" || typeof element === "bigint"
          ? "number"
          : element instanceof Uint8Array
            ? "binary"
            : undefined;
    if (elementKind === undefined) {
      throw new TypeError(
        `\`${path}\` holds ${describe(element)}; a Set may hold only strings, numbers or Uint8Arrays`,
      );
    }
    if (kind !== undefined && kind !== elementKind) {
      throw new TypeError(
        `\`${path}\` mixes ${kind} and ${elementKind} elements; DynamoDB sets hold one type`,
      );
    }
    kind = elementKind;
    let identity: string;
    if (typeof element === "string") {
      identity = checkString(path, element, "holds");
      members.push(element);
    } else if (element instanceof Uint8Array) {
      identity = Buffer.from(element.buffer, element.byteOffset, element.byteLength).toString("hex");
      members.push(element);
    } else {
      const number = encodeNumber(path, element as number | bigint);
      identity = number.identity;
      members.push(number.text);
    }
    if (seen.has(identity)) {
      throw new RangeError(
        `\`${path}\` holds ${describe(seen.get(identity))} and ${describe(element)}, which DynamoDB stores as the same member; a set cannot hold it twice`,
      );
    }
    seen.set(identity, element);
  }
  if (kind === "string") return { SS: members as string[] };
  if (kind === "number") return { NS: members as string[] };
  return { BS: members as Uint8Array[] };
}

function encodeMap(path: string, value: Record<string, unknown>, level: number): AttributeValue {
  const map: Record<string, AttributeValue> = {};
  for (const [key, child] of Object.entries(value)) {
    const childPath = `${path}.${key.length > 40 ? `${key.slice(0, 37)}...` : key}`;
    if (key === "") throw new RangeError(`\`${path}\` has an empty key, which DynamoDB refuses`);
    checkString(childPath, key, "has a key that");
    const bytes = utf8Length(key);
    if (bytes > MAX_KEY_BYTES) {
      throw new RangeError(
        `\`${childPath}\` has a key of ${bytes} bytes of UTF-8; DynamoDB takes at most ${MAX_KEY_BYTES}`,
      );
    }
    // Left out, like JSON: reading the property back gives undefined again.
    if (child !== undefined) setOwn(map, key, encodeValue(childPath, child, level));
  }
  return { M: map };
}

/**
 * Checks one value and builds its DynamoDB form in the same walk, so that what passes the checks is
 * exactly what is sent. Throws a TypeError / RangeError naming the offending path for anything
 * DynamoDB refuses (numbers out of range or precision, duplicate set members, empty or oversized
 * keys, too deep a nesting), anything it cannot hold unchanged (functions, symbols, Dates, Maps,
 * class instances, lone surrogates, integers beyond Number.MAX_SAFE_INTEGER as numbers), and
 * `undefined` inside a list or set. `level` is how many maps and lists hold the value.
 */
function encodeValue(path: string, value: unknown, level: number): AttributeValue {
  switch (typeof value) {
    case "string":
      return { S: checkString(path, value) };
    case "boolean":
      return { BOOL: value };
    case "number":
    case "bigint":
      return { N: encodeNumber(path, value).text };
    case "undefined":
      throw new TypeError(
        `\`${path}\` is undefined inside a list or set, which would shift or drop elements`,
      );
    case "function":
    case "symbol":
      throw new TypeError(
        `\`${path}\` is ${describe(value)}, which DynamoDB cannot store (it would be dropped)`,
      );
  }
  if (value === null) return { NULL: true };
  if (value instanceof Uint8Array) return { B: value };
  if (value instanceof Set) return encodeSet(path, value);
  const isList = Array.isArray(value);
  if (!isList && !isPlainObject(value)) {
    throw new TypeError(
      `\`${path}\` is ${describe(value)}; only plain objects, arrays, strings, numbers, bigints, booleans, null, Uint8Arrays and Sets are stored unchanged`,
    );
  }
  if (level >= MAX_LEVELS) {
    throw new RangeError(
      `\`${path}\` is nested deeper than DynamoDB allows (${MAX_LEVELS} levels of maps and lists, counting the data itself), or is circular`,
    );
  }
  if (isList) return { L: value.map((item, i) => encodeValue(`${path}[${i}]`, item, level + 1)) };
  return encodeMap(path, value as Record<string, unknown>, level + 1);
}

/** Approximate stored size of an attribute value, by DynamoDB's published sizing rules (rounded up). */
export function attributeValueBytes(value: AttributeValue): number {
  if (value.S !== undefined) return utf8Length(value.S);
  if (value.N !== undefined) return Math.min(21, Math.ceil(value.N.length / 2) + 1);
  if (value.B !== undefined) return value.B.length;
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (value.SS !== undefined) return value.SS.reduce((sum, s) => sum + utf8Length(s), 0);
  if (value.NS !== undefined)
    return value.NS.reduce((sum, n) => sum + Math.min(21, Math.ceil(n.length / 2) + 1), 0);
  if (value.BS !== undefined) return value.BS.reduce((sum, b) => sum + b.length, 0);
  if (value.L !== undefined) return value.L.reduce((sum, v) => sum + 1 + attributeValueBytes(v), 3);
  if (value.M !== undefined) {
    return Object.entries(value.M).reduce(
      (sum, [k, v]) => sum + 1 + utf8Length(k) + attributeValueBytes(v),
      3,
    );
  }
  return 0;
}

/**
 * Checks and encodes the caller's data into one map attribute. `budgetBytes` is what the item may
 * still hold after the key and the lock's own fields.
 */
export function encodeData(name: string, data: unknown, budgetBytes: number): AttributeValue {
  if (!isPlainObject(data)) {
    throw new TypeError(`Expected \`${name}\` to be a plain object, got ${describe(data)}`);
  }
  const encoded = encodeMap(name, data, 1);
  const bytes = attributeValueBytes(encoded);
  if (bytes > budgetBytes) {
    throw new RangeError(
      `\`${name}\` takes about ${bytes} bytes; with the lock's own fields the item would exceed DynamoDB's 400 KB limit (at most ${budgetBytes} bytes of data fit)`,
    );
  }
  return encoded;
}

/**
 * A stored number as JavaScript gives it back: a number when it is a safe integer or has a fraction,
 * a bigint when it is an integer beyond Number.MAX_SAFE_INTEGER (as dynamolock stores only exact
 * values, such an integer was a bigint). So a bigint within the safe range reads back as a number.
 * A fraction with more precision than a double holds (only another writer can store one) is rounded
 * to the nearest double.
 */
function decodeNumber(text: string): number | bigint {
  const d = parseDecimal(text);
  if (d === undefined || d.point < d.digits.length) return Number(text);
  const n = Number(text);
  if (Number.isSafeInteger(n)) return n;
  return BigInt(`${d.negative ? "-" : ""}${d.digits}${"0".repeat(d.point - d.digits.length)}`);
}

function decodeValue(value: AttributeValue): unknown {
  if (value.S !== undefined) return value.S;
  if (value.N !== undefined) return decodeNumber(value.N);
  if (value.BOOL !== undefined) return value.BOOL;
  if (value.NULL !== undefined) return null;
  if (value.B !== undefined) return value.B;
  if (value.L !== undefined) return value.L.map(decodeValue);
  if (value.M !== undefined) return decodeMap(value.M);
  if (value.SS !== undefined) return new Set(value.SS);
  if (value.NS !== undefined) return new Set(value.NS.map(decodeNumber));
  if (value.BS !== undefined) return new Set(value.BS);
  return undefined;
}

function decodeMap(map: Record<string, AttributeValue>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(map)) setOwn(out, key, decodeValue(child));
  return out;
}

export function decodeData<Data>(value: AttributeValue | undefined): Data | undefined {
  if (value?.M === undefined) return undefined;
  return decodeMap(value.M) as Data;
}
