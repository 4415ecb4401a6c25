/**
 * A local server for the benchmark in a process of its own, so that the benchmark process's CPU
 * time is the clients' alone: prints `{"endpoint": ...}` once it answers, and stops when its
 * standard input closes (the benchmark ending in any way closes it) or on SIGTERM.
 *
 *   node --import tsx bench/server.ts dynalite
 */
import { startLocalDynamoDB } from "../src/testing.js";

const engine = process.argv[2] === "ddb-local" ? "ddb-local" : "dynalite";
const db = await startLocalDynamoDB({ engine });
console.log(JSON.stringify({ endpoint: db.endpoint, pid: db.pid ?? process.pid }));
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void db.close().finally(() => process.exit(0));
};
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
