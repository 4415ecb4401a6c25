/**
 * A lock's data as JSON. DynamoDB stores more than JSON can say (sets, binary, numbers beyond
 * 2^53), so the JSON view marks those plainly instead of silently turning them into `{}`.
 */
import type { LockData } from "../data.js";
import { usageError } from "./exit-codes.js";

export function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Set) return [...value];
  if (value instanceof Uint8Array) return { $base64: Buffer.from(value).toString("base64") };
  if (typeof value === "bigint") return value.toString();
  return value;
}

export function toJson(value: unknown, pretty: boolean): string {
  return JSON.stringify(value, jsonReplacer, pretty ? 2 : undefined) ?? "null";
}

/** Parses data given on the command line or written by a command: a JSON object. */
export function parseDataJson(text: string, source: string): LockData {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw usageError(`${source} is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw usageError(
      `${source} must be a JSON object (like {"key": "value"}), got ${Array.isArray(value) ? "an array" : JSON.stringify(value)}`,
    );
  }
  return value as LockData;
}
