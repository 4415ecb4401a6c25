/**
 * `dynamolock create-table --table TABLE` (or `create-table TABLE`): the lock table, on-demand,
 * waited for until ACTIVE. `--table` as every other command takes it; the positional form is kept.
 */
import { LockClient } from "../client.js";
import { CONNECTION_OPTIONS, checkTableName, optionalDuration, optionalString, parse } from "./args.js";
import { connect, DEFAULT_SORT_KEY_VALUE } from "./connection.js";
import { EXIT, usageError } from "./exit-codes.js";
import { HELP } from "./help.js";
import { errorContext } from "./report.js";

export async function createTableCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parse(
    "create-table",
    argv,
    {
      ...CONNECTION_OPTIONS,
      table: { type: "string", short: "t" },
      "partition-key": { type: "string" },
      "sort-key": { type: "string" },
      "single-writer-region": { type: "string" },
      wait: { type: "string" },
    },
    1,
  );
  if (values.help === true) {
    process.stdout.write(HELP["create-table"]);
    return EXIT.ok;
  }
  const flag = optionalString(values, "table");
  const positional = positionals[0];
  if (flag !== undefined && positional !== undefined && flag !== positional) {
    throw usageError(`create-table: two table names, --table "${flag}" and "${positional}": give one`);
  }
  const name = flag ?? positional;
  if (name === undefined)
    throw usageError("create-table: missing the table name: dynamolock create-table --table TABLE");
  const table = checkTableName(name);
  const waitMs = optionalDuration(values, "wait", { allowZero: true });
  const partitionKey = optionalString(values, "partition-key") ?? "id";
  const sortKey = optionalString(values, "sort-key");
  const singleWriterRegion = optionalString(values, "single-writer-region");
  errorContext.current = { table };
  const connection = connect(values);
  try {
    const locks = new LockClient({
      table,
      client: connection.client,
      partitionKey,
      ...(sortKey === undefined ? {} : { sortKey: { name: sortKey, value: DEFAULT_SORT_KEY_VALUE } }),
      ...(singleWriterRegion === undefined ? {} : { singleWriterRegion }),
    });
    const created = await locks.createTable(waitMs === undefined ? {} : { waitMs });
    const keys = `partition key "${partitionKey}"${sortKey === undefined ? "" : `, sort key "${sortKey}"`}`;
    process.stdout.write(
      created
        ? `created table "${table}" (${keys}; on-demand billing)\n`
        : `table "${table}" already exists with the expected keys (${keys})\n`,
    );
    return EXIT.ok;
  } finally {
    connection.client.destroy();
  }
}
