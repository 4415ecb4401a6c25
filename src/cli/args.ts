/**
 * Argument parsing on Node's `util.parseArgs`: the options every command shares, and the checks
 * that turn a bad argument into one line naming the option.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { closestName } from "../validate.js";
import { parseDuration } from "./duration.js";
import { usageError } from "./exit-codes.js";

type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

/** Where to find DynamoDB: every command that talks to it takes these. */
export const CONNECTION_OPTIONS = {
  endpoint: { type: "string" },
  region: { type: "string" },
  profile: { type: "string" },
  debug: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionSpec;

/** Which lock: the table, the id, and the table's key names. */
export const LOCK_OPTIONS = {
  ...CONNECTION_OPTIONS,
  table: { type: "string", short: "t" },
  id: { type: "string", short: "i" },
  "partition-key": { type: "string" },
  "sort-key": { type: "string" },
  "sort-key-value": { type: "string" },
  "single-writer-region": { type: "string" },
} as const satisfies OptionSpec;

export type Values = Record<string, string | boolean | undefined>;

export interface Parsed {
  readonly values: Values;
  readonly positionals: string[];
}

/** Parses `argv` strictly; unknown options and missing values become usage errors. */
export function parse(
  command: string,
  argv: readonly string[],
  options: OptionSpec,
  positionals = 0,
): Parsed {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: positionals > 0, strict: true });
  } catch (err) {
    throw usageError(`${command}: ${cleanParseError(err, options)} (see: dynamolock ${command} --help)`);
  }
  if (parsed.values.help !== true && parsed.positionals.length > positionals) {
    throw usageError(
      `${command}: unexpected argument "${parsed.positionals[positionals]}" (see: dynamolock ${command} --help)`,
    );
  }
  return { values: parsed.values as Values, positionals: parsed.positionals };
}

/** parseArgs' messages are long and mention `--` in ways that confuse; keep their first sentence. */
function cleanParseError(err: unknown, options: OptionSpec): string {
  const message = err instanceof Error ? err.message : String(err);
  const unknown = /Unknown option '([^']+)'/.exec(message);
  if (unknown !== null) {
    // A typo of a long option: suggest the closest one this command has.
    const typed = (unknown[1] ?? "").replace(/^-+/, "").split("=")[0] ?? "";
    const closest = closestName(typed, Object.keys(options));
    return `unknown option ${unknown[1]}${closest === undefined ? "" : ` (did you mean --${closest}?)`}`;
  }
  const missing = /Option '(?:-\w, )?(--[\w-]+)(?: <value>)?' argument missing/.exec(message);
  if (missing !== null) return `${missing[1]} needs a value`;
  const positional = /Unexpected argument '([^']+)'/.exec(message);
  if (positional !== null) return `unexpected argument "${positional[1]}"`;
  return message.split(". ")[0] ?? message;
}

export function requiredString(command: string, values: Values, name: string, what: string): string {
  const value = values[name];
  if (typeof value !== "string" || value === "") {
    throw usageError(`${command}: missing --${name} (${what}) (see: dynamolock ${command} --help)`);
  }
  return value;
}

export function optionalString(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

export function optionalDuration(
  values: Values,
  name: string,
  options?: { allowZero?: boolean },
): number | undefined {
  const value = values[name];
  return typeof value === "string" ? parseDuration(name, value, options) : undefined;
}

export function positiveInteger(values: Values, name: string, fallback: number, max: number): number {
  const value = values[name];
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== "string" || !/^\d+$/.test(value) || n < 1 || n > max) {
    throw usageError(`bad value for --${name}: "${String(value)}" (a whole number from 1 to ${max})`);
  }
  return n;
}

const TABLE_NAME = /^[a-zA-Z0-9_.-]{3,255}$/;
export function checkTableName(name: string, option?: string): string {
  if (!TABLE_NAME.test(name)) {
    throw usageError(
      `bad table name${option === undefined ? "" : ` for ${option}`}: "${name}" (DynamoDB allows 3 to 255 of a-z A-Z 0-9 _ - .)`,
    );
  }
  return name;
}
