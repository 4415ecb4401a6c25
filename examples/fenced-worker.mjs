// A worker that writes results to a second table while holding a lock, two ways:
// 1. a guarded write (lock.transact): DynamoDB commits it only while the lock is still ours, even if
//    this process was paused past its lease (needs transactions: DynamoDB or DynamoDB Local);
// 2. a conditional write on the fence, the way any store outside DynamoDB can protect itself:
//    refuse a write whose fence is lower than the last one it accepted.
import { ConditionalCheckFailedException, DynamoDBClient, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { LockClient } from "dynamolock";

const client = new DynamoDBClient({});
const locks = new LockClient({ table: "locks", client });
const results = "worker-results";

async function createResultsTable() {
  const { CreateTableCommand } = await import("@aws-sdk/client-dynamodb");
  await client
    .send(
      new CreateTableCommand({
        TableName: results,
        BillingMode: "PAY_PER_REQUEST",
        KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
        AttributeDefinitions: [{ AttributeName: "id", AttributeType: "S" }],
      }),
    )
    .catch((err) => {
      if (err.name !== "ResourceInUseException") throw err;
    });
}

/** The fence check a store outside DynamoDB would make; here as a DynamoDB condition. */
async function writeFenced(id, value, fence) {
  try {
    await client.send(
      new PutItemCommand({
        TableName: results,
        Item: { id: { S: id }, value: { S: value }, fence: { N: String(fence) } },
        ConditionExpression: "attribute_not_exists(fence) OR fence < :fence",
        ExpressionAttributeValues: { ":fence": { N: String(fence) } },
      }),
    );
    return true;
  } catch (err) {
    if (err instanceof ConditionalCheckFailedException) return false; // a newer holder wrote first
    throw err;
  }
}

await locks.createTable();
await createResultsTable();

const first = await locks.acquire("report");
const firstFence = first.fence;
await first.release();
const second = await locks.acquire("report");
console.log(`newer holder writes: ${await writeFenced("report", "from the newer holder", second.fence)}`);
// The older holder, paused past its lease, wakes up and tries to write: refused by its fence.
console.log(`stale holder writes: ${await writeFenced("report", "from a paused holder", firstFence)}`);

try {
  await second.transact([
    {
      Put: {
        TableName: results,
        Item: { id: { S: "report-guarded" }, value: { S: "committed only while the lock is held" } },
      },
    },
  ]);
  console.log("guarded write: committed");
} catch (err) {
  if (err.code !== "EUNSUPPORTED") throw err;
  console.log("guarded write: this server has no transactions (dynalite); DynamoDB and DynamoDB Local do");
}
await second.release();
await locks.close();
client.destroy();
