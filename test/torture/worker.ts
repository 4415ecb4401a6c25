/**
 * A torture worker process: takes locks on a few ids, one critical section after another, through
 * its own fault proxy, until its stdin closes (or it is killed). Prints one JSON record per line on
 * stdout (section.ts); the orchestrator (main.ts) checks them.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LockClient } from "../../src/index.js";
import { PROTOCOL_KNOBS } from "../../src/options.js";
import { LOCAL_CREDENTIALS } from "../../src/testing.js";
import { Random } from "../support/random.js";
import { runSection, type SectionRecord } from "./section.js";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const env = process.env;
const { ENDPOINT, TABLE, IDS, WORKER, LEASE_MS, SEED, COUNTER_ATTRIBUTE } = env;
if (!ENDPOINT || !TABLE || !IDS || !WORKER || !LEASE_MS || !SEED) throw new Error("missing environment");
const leaseMs = Number(LEASE_MS);
const ids = IDS.split(",");
const random = new Random(Number(SEED));

const print = (record: SectionRecord | Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify(record)}\n`);
process.on("unhandledRejection", (reason) => {
  print({ t: "unhandled", worker: WORKER, message: String(reason) });
  process.exit(3);
});

// The settings the README recommends: the SDK's request time-out made to end the attempt.
const client = new DynamoDBClient({
  endpoint: ENDPOINT,
  region: "us-east-1",
  credentials: LOCAL_CREDENTIALS,
  requestHandler: { requestTimeout: Math.round(leaseMs / 2), throwOnRequestTimeout: true },
});
const locks = new LockClient({
  table: TABLE,
  client,
  leaseMs,
  heartbeatMs: Math.round(leaseMs / 6),
  holder: WORKER,
  pollMinMs: 20,
  pollMaxMs: 150,
  // Only for showing that the checks catch a broken lock (--broken): waiters take over at once.
  ...(env.BROKEN === "1" ? { [PROTOCOL_KNOBS]: { takeoverEarlyMs: leaseMs * 10 } } : {}),
});

let stopping = false;
process.stdin.on("end", () => {
  stopping = true;
});
process.stdin.resume();

for (let seq = 0; !stopping; seq++) {
  const id = random.pick(ids);
  try {
    await runSection(
      locks,
      client,
      id,
      `${WORKER}:${seq}`,
      WORKER,
      {
        waitMs: leaseMs * 4,
        workMs: leaseMs / 5,
        longWorkMs: leaseMs * 1.5,
        random: () => random.next(),
        ...(COUNTER_ATTRIBUTE
          ? { transact: { table: TABLE, key: `counter2#${id}`, attribute: COUNTER_ATTRIBUTE } }
          : {}),
      },
      print,
    );
  } catch (err) {
    // An acquire that failed outright (a fault outlasting its retries) is not a violation; a moved
    // second counter is, and the orchestrator counts it.
    print({ t: "error", worker: WORKER, id, name: (err as Error).name, message: (err as Error).message });
  }
}
await locks.close();
client.destroy();
process.stdin.pause();
print({ t: "done", worker: WORKER });
