/**
 * createTable: the lock table, created on demand with the key schema the client expects.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  type KeySchemaElement,
  type TableDescription,
} from "@aws-sdk/client-dynamodb";
import { type DynamoDBSender, KEY_SCHEMA_MISMATCH } from "./aws.js";
import { backoffDelay } from "./backoff.js";
import { LockError } from "./errors.js";
import type { KeySchema } from "./item.js";
import { type Runtime, sleep } from "./runtime.js";
import { enableTimeToLive } from "./ttl.js";
import { fail, nonNegativeOrInfinite, optionalSignal, optionsObject } from "./validate.js";

export interface CreateTableOptions {
  /**
   * How long to wait for the table to become ACTIVE, in ms (`Infinity`: as long as it takes).
   * @default 300_000
   */
  readonly waitMs?: number;
  /** Aborting it stops the wait (the table may still be created); rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /**
   * Also turn on DynamoDB's Time to Live for the table, on the client's `ttlAttribute`, so released
   * lock items can expire (see `releasedTtlMs` and docs/ttl.md). On a server without TTL (dynalite)
   * this is skipped with a process warning (code DYNAMOLOCK_TTL_UNSUPPORTED): locks work as before.
   * @default true if the client has `releasedTtlMs` set, else false
   */
  readonly ttl?: boolean;
}

const DEFAULT_CREATE_WAIT_MS = 300_000;
const DESCRIBE_BACKOFF = { minMs: 200, maxMs: 5_000 };

function expectedKeySchema(schema: KeySchema): KeySchemaElement[] {
  const keys: KeySchemaElement[] = [{ AttributeName: schema.partitionKey, KeyType: "HASH" }];
  if (schema.sortKey !== undefined) keys.push({ AttributeName: schema.sortKey.name, KeyType: "RANGE" });
  return keys;
}

function sameKeySchema(table: TableDescription, schema: KeySchema): boolean {
  const expected = expectedKeySchema(schema);
  const actual = table.KeySchema ?? [];
  const typeOf = (name: string | undefined) =>
    table.AttributeDefinitions?.find((d) => d.AttributeName === name)?.AttributeType;
  return (
    actual.length === expected.length &&
    expected.every((e) =>
      actual.some(
        (a) =>
          a.AttributeName === e.AttributeName && a.KeyType === e.KeyType && typeOf(a.AttributeName) === "S",
      ),
    )
  );
}

function describeKeys(schema: KeySchema): string {
  return expectedKeySchema(schema)
    .map((k) => `${k.AttributeName} (S, ${k.KeyType})`)
    .join(", ");
}

/** The table's keys as DescribeTable gives them, in the same form as describeKeys. */
function describeTableKeys(table: TableDescription): string {
  const typeOf = (name: string | undefined) =>
    table.AttributeDefinitions?.find((d) => d.AttributeName === name)?.AttributeType ?? "?";
  return (
    [...(table.KeySchema ?? [])]
      // HASH before RANGE, whatever order the server lists them in.
      .sort((a, b) => (a.KeyType === b.KeyType ? 0 : a.KeyType === "HASH" ? -1 : 1))
      .map((k) => `${k.AttributeName} (${typeOf(k.AttributeName)}, ${k.KeyType})`)
      .join(", ")
  );
}

const nameOf = (err: unknown) => (err as { name?: string } | null)?.name;

/**
 * Turns a missing table, or a request refused because the table has other keys than the client
 * expects, into a LockError that says so and what to do; undefined for any other error.
 *
 * Our requests are fixed shapes with checked values, so a ValidationException is most likely a key
 * schema mismatch, but servers word it differently (and may word it differently tomorrow): the
 * table is asked (one DescribeTable, only when a request has already failed, which fails the call),
 * and the answer names the keys the table really has. Should DescribeTable itself fail (a policy
 * that does not allow it), the server's wording is the fallback.
 */
const KEY_ADVICE =
  "Pass the table's key names as `partitionKey` / `sortKey`, or use a table created by `createTable()`";

/** A LockError naming both sides when the described table's keys are not the ones expected. */
export function keySchemaMismatch(
  table: TableDescription,
  schema: KeySchema,
  cause?: unknown,
): LockError | undefined {
  if (sameKeySchema(table, schema)) return undefined;
  return new LockError(
    `Table "${schema.table}" does not have the key schema this LockClient expects: it has ${describeTableKeys(table)}; this LockClient expects ${describeKeys(schema)}. ${KEY_ADVICE}`,
    { code: "EKEYSCHEMA", ...(cause === undefined ? {} : { cause }) },
  );
}

/**
 * `keysMatch`: the client has already seen the table's description and its keys are the expected
 * ones, so a ValidationException is something else and no DescribeTable is sent again.
 */
export async function tableError(
  client: DynamoDBSender,
  schema: KeySchema,
  err: unknown,
  abortSignal?: AbortSignal,
  keysMatch = false,
): Promise<LockError | undefined> {
  const expected = `partition key "${schema.partitionKey}" (S)${schema.sortKey === undefined ? "" : ` and sort key "${schema.sortKey.name}" (S)`}`;
  if (nameOf(err) === "ResourceNotFoundException") {
    return new LockError(
      `Table "${schema.table}" does not exist (or is not ACTIVE yet). Create it with ${expected}: call \`createTable()\`, or run \`dynamolock create-table ${schema.table}\``,
      { code: "ENOTABLE", cause: err },
    );
  }
  if (nameOf(err) !== "ValidationException" || keysMatch) return undefined;
  let table: TableDescription | undefined;
  try {
    const describe = new DescribeTableCommand({ TableName: schema.table });
    table = (await client.send(describe, abortSignal === undefined ? {} : { abortSignal })).Table;
  } catch (describeError) {
    if (!KEY_SCHEMA_MISMATCH.test((err as Error)?.message ?? "")) return undefined;
    return new LockError(
      `Table "${schema.table}" does not seem to have the key schema this LockClient expects (${describeKeys(schema)}): ${(err as Error).message} (DescribeTable, which would tell, failed: ${(describeError as Error)?.message}). ${KEY_ADVICE}`,
      { code: "EKEYSCHEMA", cause: err },
    );
  }
  return table === undefined ? undefined : keySchemaMismatch(table, schema, err);
}

export async function createLockTable(
  client: DynamoDBSender,
  schema: KeySchema,
  runtime: Runtime,
  options?: CreateTableOptions,
): Promise<boolean> {
  const o = optionsObject<CreateTableOptions>("options", options, ["waitMs", "signal", "ttl"]);
  const waitMs = o.waitMs === undefined ? DEFAULT_CREATE_WAIT_MS : nonNegativeOrInfinite("waitMs", o.waitMs);
  const signal = optionalSignal("signal", o.signal);
  if (o.ttl !== undefined && typeof o.ttl !== "boolean") fail("ttl", "a boolean", o.ttl);
  const ttl = o.ttl ?? schema.expiry?.retainMs !== undefined;
  signal?.throwIfAborted();
  const abort = signal === undefined ? {} : { abortSignal: signal };
  let created = true;
  try {
    await client.send(
      new CreateTableCommand({
        TableName: schema.table,
        BillingMode: "PAY_PER_REQUEST",
        KeySchema: expectedKeySchema(schema),
        AttributeDefinitions: expectedKeySchema(schema).map((k) => ({
          AttributeName: k.AttributeName,
          AttributeType: "S",
        })),
      }),
      abort,
    );
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    if ((err as { name?: string })?.name !== "ResourceInUseException") {
      throw new LockError(`Creating table "${schema.table}" failed: ${(err as Error)?.message}`, {
        code: "ETABLE",
        cause: err,
      });
    }
    created = false;
  }

  const started = runtime.monotonicNow();
  for (let attempt = 0; ; attempt++) {
    let table: TableDescription | undefined;
    try {
      table = (await client.send(new DescribeTableCommand({ TableName: schema.table }), abort)).Table;
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      // Just created tables can be briefly invisible to DescribeTable.
      if ((err as { name?: string })?.name !== "ResourceNotFoundException") {
        throw new LockError(`Describing table "${schema.table}" failed: ${(err as Error)?.message}`, {
          code: "ETABLE",
          cause: err,
        });
      }
    }
    if (table !== undefined && !sameKeySchema(table, schema)) {
      throw new LockError(
        `Table "${schema.table}" exists with another key schema: it has ${describeTableKeys(table)}; this LockClient expects ${describeKeys(schema)}. Use another table, or set \`partitionKey\` / \`sortKey\` to match it`,
        { code: "EKEYSCHEMA" },
      );
    }
    if (table?.TableStatus === "ACTIVE") {
      if (ttl) await enableTimeToLive(client, schema, signal);
      return created;
    }
    const elapsed = runtime.monotonicNow() - started;
    if (elapsed >= waitMs) {
      throw new LockError(
        `Table "${schema.table}" is not ACTIVE after ${Math.round(elapsed)} ms (status ${table?.TableStatus ?? "unknown"})`,
        { code: "ETABLE" },
      );
    }
    await sleep(
      runtime,
      Math.min(backoffDelay(attempt, DESCRIBE_BACKOFF, runtime.random()), waitMs - elapsed),
      signal,
    );
  }
}
