/**
 * The caller's data, stored as one map attribute of the lock item. Checked before marshalling so
 * that nothing is silently dropped or changed on the way to DynamoDB, and so that an oversized item
 * is refused before any request is sent.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { describe, utf8Length } from "./validate.js";

/** What a lock can carry: a plain object of values DynamoDB stores and gives back unchanged. */
export type LockData = Record<string, unknown>;

/** DynamoDB's item size limit. */
export const MAX_ITEM_BYTES = 400 * 1024;
/** DynamoDB's limit on nested maps and lists. */
const MAX_DEPTH = 32;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function checkSet(path: string, set: Set<unknown>): void {
  if (set.size === 0) throw new RangeError(`\`${path}\` is an empty Set, which DynamoDB cannot store`);
  let kind: string | undefined;
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
    if (typeof element === "number" && !Number.isFinite(element)) {
      throw new RangeError(`\`${path}\` holds ${describe(element)}, which DynamoDB cannot store`);
    }
    if (kind !== undefined && kind !== elementKind) {
      throw new TypeError(
        `\`${path}\` mixes ${kind} and ${elementKind} elements; DynamoDB sets hold one type`,
      );
    }
    kind = elementKind;
  }
}

/**
 * Throws a TypeError / RangeError naming the offending path for any value that `marshall` would
 * refuse, drop without a word (functions, symbols), or turn into something else (Date, Map, class
 * instances become maps or vanish). `undefined` object properties are allowed: they are left out,
 * and reading the property back gives `undefined` again.
 */
function checkValue(path: string, value: unknown, depth: number): void {
  switch (typeof value) {
    case "string":
    case "boolean":
    case "bigint":
      return;
    case "number":
      if (!Number.isFinite(value)) {
        throw new RangeError(`\`${path}\` is ${describe(value)}, which DynamoDB cannot store`);
      }
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
        throw new RangeError(
          `\`${path}\` is ${describe(value)}, beyond Number.MAX_SAFE_INTEGER: use a bigint`,
        );
      }
      return;
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
  if (value === null || value instanceof Uint8Array) return;
  if (depth >= MAX_DEPTH) {
    throw new RangeError(`\`${path}\` is nested more than ${MAX_DEPTH} levels deep (or is circular)`);
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkValue(`${path}[${i}]`, value[i], depth + 1);
    return;
  }
  if (value instanceof Set) {
    checkSet(path, value);
    return;
  }
  if (!isPlainObject(value)) {
    throw new TypeError(
      `\`${path}\` is ${describe(value)}; only plain objects, arrays, strings, numbers, bigints, booleans, null, Uint8Arrays and Sets are stored unchanged`,
    );
  }
  for (const [key, child] of Object.entries(value)) {
    if (child !== undefined) checkValue(`${path}.${key}`, child, depth + 1);
  }
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
 * Checks and marshals the caller's data into one map attribute. `budgetBytes` is what the item
 * may still hold after the key and the lock's own fields.
 */
export function encodeData(name: string, data: unknown, budgetBytes: number): AttributeValue {
  if (!isPlainObject(data)) {
    throw new TypeError(`Expected \`${name}\` to be a plain object, got ${describe(data)}`);
  }
  for (const [key, child] of Object.entries(data)) {
    if (child !== undefined) checkValue(`${name}.${key}`, child, 1);
  }
  let encoded: AttributeValue;
  try {
    encoded = { M: marshall(data, { removeUndefinedValues: true }) };
  } catch (cause) {
    throw new TypeError(`\`${name}\` cannot be stored in DynamoDB: ${(cause as Error).message}`, { cause });
  }
  const bytes = attributeValueBytes(encoded);
  if (bytes > budgetBytes) {
    throw new RangeError(
      `\`${name}\` takes about ${bytes} bytes; with the lock's own fields the item would exceed DynamoDB's 400 KB limit (at most ${budgetBytes} bytes of data fit)`,
    );
  }
  return encoded;
}

/** Numbers come back as numbers when exact, as bigints when they are integers too large to be. */
function decodeNumber(text: string): number | bigint {
  const n = Number(text);
  if (Number.isInteger(n) && !Number.isSafeInteger(n) && /^-?\d+$/.test(text)) return BigInt(text);
  return n;
}

export function decodeData<Data>(value: AttributeValue | undefined): Data | undefined {
  if (value?.M === undefined) return undefined;
  return unmarshall(value.M, { wrapNumbers: decodeNumber }) as Data;
}
