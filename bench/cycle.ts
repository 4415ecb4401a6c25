/**
 * The uncontended cycle, side by side: acquire + release of a free lock by this library, by the raw
 * SDK v3 floor (two conditional UpdateItems through a default-configured `new DynamoDBClient({})`),
 * and by the npm peer dynamodb-lock-client (SDK v2) in FailClosed and FailOpen modes. Rounds are
 * alternated so drift of the machine hits every contender alike. The server runs in another
 * process, so this process's CPU time is the clients' own.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { DynamoDBClient, type DynamoDBClientConfig, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { LockClient } from "../src/index.js";
import type { KeySchema } from "../src/item.js";
import { acquireRequest, releaseRequest } from "../src/requests.js";
import { requestCounter } from "./requests.js";
import { alternation, fixed, ratio, summarize, table } from "./stats.js";

export interface Contender {
  readonly name: string;
  readonly cycle: (id: string) => Promise<void>;
  readonly close: () => Promise<void> | void;
}

export interface CycleResult {
  readonly name: string;
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
  readonly cpuUsPerCycle: number;
  readonly readsPerCycle: number;
  readonly writesPerCycle: number;
  /** The server process's CPU time per cycle, when it could be read (Linux /proc). */
  readonly serverCpuUsPerCycle: number;
  readonly n: number;
}

/** The floor: what any lock needs at least, two conditional writes, with nothing else around them. */
export function floorContender(name: string, config: DynamoDBClientConfig, tableName: string): Contender {
  const client = new DynamoDBClient(config);
  let n = 0;
  return {
    name,
    async cycle(id) {
      const token = `t${++n}`;
      const key = { id: { S: id } };
      const names = { "#owner": "owner" };
      const values = { ":owner": { S: token } };
      await client.send(
        new UpdateItemCommand({
          TableName: tableName,
          Key: key,
          UpdateExpression: "SET #owner = :owner",
          ConditionExpression: "attribute_not_exists(#owner)",
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
      await client.send(
        new UpdateItemCommand({
          TableName: tableName,
          Key: key,
          UpdateExpression: "REMOVE #owner",
          ConditionExpression: "#owner = :owner",
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
    },
    close: () => client.destroy(),
  };
}

/**
 * The two requests dynamolock sends for a cycle (same expressions, same ReturnValues), built by its
 * own request builders but sent bare through a default client: no abort signal, no lease bookkeeping.
 * Its distance to the floor is the cost of the requests' shape (their size, and the whole new item
 * the acquire returns), on the client and on the server; the library's distance to it is its own code.
 */
export function shapedFloorContender(name: string, tableName: string): Contender {
  const client = new DynamoDBClient({});
  const schema: KeySchema = { table: tableName, partitionKey: "id", sortKey: undefined };
  let n = 0;
  return {
    name,
    async cycle(id) {
      const owner = `shaped-${++n}`;
      const out = await client.send(
        new UpdateItemCommand(
          acquireRequest(schema, id, { owner, holder: "bench", leaseMs: 30_000, wallNow: Date.now() }),
        ),
      );
      const fence = Number(out.Attributes?.fence?.N);
      await client.send(
        new UpdateItemCommand(releaseRequest(schema, id, { owner, fence, wallNow: Date.now() })),
      );
    },
    close: () => client.destroy(),
  };
}

/** This library with the client it creates itself (configured from the environment). */
export function libraryContender(name: string, tableName: string, client?: DynamoDBClient): Contender {
  const locks = new LockClient({ table: tableName, ...(client === undefined ? {} : { client }) });
  return {
    name,
    async cycle(id) {
      const lock = await locks.acquire(id);
      await lock.release();
    },
    async close() {
      await locks.close();
      client?.destroy();
    },
  };
}

/** The npm peer dynamodb-lock-client 0.7.3 on aws-sdk v2, loaded from bench/node_modules. */
export function peerContenders(benchDir: string, endpoint: string, tableName: string): Contender[] {
  process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = "1";
  const require = createRequire(`${benchDir}/package.json`);
  const AWS = require("aws-sdk");
  const DynamoDBLockClient = require("dynamodb-lock-client");
  const http = require("node:http");
  // Keep-alive, as AWS recommends for SDK v2 (it is off by default there): without it every request
  // of the peer would open a new connection, and the comparison would measure that instead.
  const agent = new http.Agent({ keepAlive: true });
  const documents = new AWS.DynamoDB.DocumentClient({
    service: new AWS.DynamoDB({ endpoint, region: "us-east-1", httpOptions: { agent } }),
  });
  const promisify =
    (client: { acquireLock(id: string, cb: (err: unknown, lock: unknown) => void): void }) => (id: string) =>
      new Promise<{ release(cb: (err: unknown) => void): void }>((resolve, reject) =>
        client.acquireLock(id, (err, lock) => (err ? reject(err) : resolve(lock as never))),
      );
  const release = (lock: { release(cb: (err: unknown) => void): void }) =>
    new Promise<void>((resolve, reject) => lock.release((err) => (err ? reject(err) : resolve())));
  const closed = promisify(
    new DynamoDBLockClient.FailClosed({
      dynamodb: documents,
      lockTable: tableName,
      partitionKey: "id",
      acquirePeriodMs: 100,
      retryCount: 0,
    }),
  );
  const open = promisify(
    new DynamoDBLockClient.FailOpen({
      dynamodb: documents,
      lockTable: tableName,
      partitionKey: "id",
      leaseDurationMs: 3_000,
      heartbeatPeriodMs: 1_000,
      trustLocalTime: true,
      retryCount: 0,
    }),
  );
  return [
    {
      name: "npm dynamodb-lock-client FailClosed",
      cycle: async (id) => release(await closed(id)),
      close: () => agent.destroy(),
    },
    {
      name: "npm dynamodb-lock-client FailOpen",
      cycle: async (id) => release(await open(id)),
      close: () => undefined,
    },
  ];
}

/**
 * Runs `rounds` alternated rounds of `perRound` cycles of every contender (after a warm-up of each),
 * each contender on its own ten ids (named after `prefix`, which each call must make its own).
 */
export async function runCycles(
  contenders: readonly Contender[],
  rounds: number,
  perRound: number,
  prefix: string,
  serverCpuUs: () => number = () => Number.NaN,
): Promise<CycleResult[]> {
  const serverCpu = new Map<string, number>();
  const counter = requestCounter();
  const samples = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  const requests = new Map<string, { reads: number; writes: number }>();
  const idOf = (c: number, i: number) => `${prefix}-${c}-${i % 10}`;
  for (const [c, contender] of contenders.entries()) {
    for (let i = 0; i < 30; i++) await contender.cycle(idOf(c, i));
  }
  let i = 0;
  for (const round of alternation([...contenders.keys()], rounds)) {
    for (const c of round) {
      const contender = contenders[c] as Contender;
      const list = samples.get(contender.name) ?? [];
      const before = counter();
      const cpuBefore = process.cpuUsage();
      const serverBefore = serverCpuUs();
      for (let k = 0; k < perRound; k++) {
        const started = performance.now();
        await contender.cycle(idOf(c, i++));
        list.push(performance.now() - started);
      }
      const used = process.cpuUsage(cpuBefore);
      serverCpu.set(contender.name, (serverCpu.get(contender.name) ?? 0) + serverCpuUs() - serverBefore);
      const after = counter();
      samples.set(contender.name, list);
      // Per round, and the median taken: a burst of other work on the machine spoils a round or two,
      // not the result.
      cpu.set(contender.name, [...(cpu.get(contender.name) ?? []), (used.user + used.system) / perRound]);
      const r = requests.get(contender.name) ?? { reads: 0, writes: 0 };
      requests.set(contender.name, {
        reads: r.reads + after.reads - before.reads,
        writes: r.writes + after.writes - before.writes,
      });
    }
  }
  return contenders.map((contender) => {
    const list = samples.get(contender.name) ?? [];
    const s = summarize(list);
    const r = requests.get(contender.name) ?? { reads: 0, writes: 0 };
    return {
      name: contender.name,
      n: s.n,
      p50: s.p50,
      p99: s.p99,
      mean: s.mean,
      cpuUsPerCycle: summarize(cpu.get(contender.name) ?? []).p50,
      readsPerCycle: r.reads / s.n,
      writesPerCycle: r.writes / s.n,
      serverCpuUsPerCycle: (serverCpu.get(contender.name) ?? Number.NaN) / s.n,
    };
  });
}

/**
 * CPU time (user + system, µs) of process `pid` so far, from /proc (Linux; NaN elsewhere). Its
 * resolution is the kernel's clock tick (10 ms), so it is summed over whole batches only.
 */
export function processCpuUs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after "pid (comm) ".
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
  } catch {
    return Number.NaN;
  }
}

/** The cycle table, with ratios to the floor (the row whose name starts with "floor"). */
export function cycleTable(results: readonly CycleResult[]): string {
  const floor = results.find((r) => r.name.startsWith("floor"));
  return table([
    [
      "contender",
      "p50 ms",
      "p50 / floor",
      "mean ms",
      "mean / floor",
      "p99 ms",
      "client CPU µs/cycle",
      "CPU / floor",
      "server CPU µs/cycle",
      "requests/cycle (R+W)",
    ],
    ...results.map((r) => [
      r.name,
      fixed(r.p50),
      ratio(r.p50, floor?.p50 ?? Number.NaN),
      fixed(r.mean),
      ratio(r.mean, floor?.mean ?? Number.NaN),
      fixed(r.p99),
      fixed(r.cpuUsPerCycle, 0),
      ratio(r.cpuUsPerCycle, floor?.cpuUsPerCycle ?? Number.NaN),
      fixed(r.serverCpuUsPerCycle, 0),
      `${fixed(r.readsPerCycle + r.writesPerCycle, 1)} (${fixed(r.readsPerCycle, 1)}+${fixed(r.writesPerCycle, 1)})`,
    ]),
  ]);
}
