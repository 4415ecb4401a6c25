/**
 * A simulated process for tests on a real server: its own injected clocks, and a fault-injecting
 * link to the server, with a LockClient on top.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LockClient, type LockClientOptions } from "../../src/index.js";
import { FakeRuntime } from "./fake-runtime.js";
import { FaultyClient } from "./faults.js";

export interface TestProcess<R extends FakeRuntime> {
  readonly link: FaultyClient;
  readonly locks: LockClient;
  readonly runtime: R;
  /** Moves this process's clocks, letting every request it starts complete at the instant it starts. */
  advance(ms: number): Promise<void>;
}

export function testProcess<R extends FakeRuntime = FakeRuntime>(
  server: DynamoDBClient,
  options: Omit<LockClientOptions, "client" | "runtime"> & { readonly runtime?: R },
): TestProcess<R> {
  const { runtime = new FakeRuntime() as R, ...rest } = options;
  const link = new FaultyClient(server);
  // These processes test the protocol under faults, request by request: the one look at the table
  // a client takes at its first use (docs/global-tables.md) is tested on its own, and left out here
  // unless a test asks for it.
  const locks = new LockClient({ checkTable: false, ...rest, client: link.asSender, runtime });
  return { link, locks, runtime, advance: (ms) => runtime.advance(ms, () => link.settle()) };
}
