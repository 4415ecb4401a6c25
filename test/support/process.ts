/**
 * A simulated process for tests on a real server: its own injected clocks, and a fault-injecting
 * link to the server, with a LockClient on top. And the real server and table those processes share
 * in one test file.
 */
import { after, before } from "node:test";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LockClient, type LockClientOptions } from "../../src/index.js";
import { type Backend, startBackend, uniqueName } from "./backend.js";
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

/** The options of a test process on a shared table: everything but the table and the link. */
export type ProcessOptions<R extends FakeRuntime = FakeRuntime> = Omit<
  LockClientOptions,
  "client" | "runtime" | "table" | "holder"
> & { readonly runtime?: R };

export interface SharedTable {
  readonly backend: Backend;
  readonly table: string;
  /** A real-clock client on the table, for what the world outside the processes under test does. */
  readonly admin: LockClient;
  /** A test process on the table named `holder`: the file's defaults, then `options`. */
  process<R extends FakeRuntime = FakeRuntime>(holder: string, options?: ProcessOptions<R>): TestProcess<R>;
  /** Runs `cleanup` after the file's tests, before `admin` and the server close (e.g. ending child processes). */
  onClose(cleanup: () => void | Promise<void>): void;
}

/**
 * A real server (test/support/backend.ts) with one fresh lock table, shared by the tests of one
 * file: started in a `before` hook and closed in an `after` hook, so call it at a file's top level.
 * Its fields can be read from the tests and hooks on, not while the file is loading.
 */
export function sharedTable(defaults: Omit<ProcessOptions, "runtime"> = {}): SharedTable {
  let state: { backend: Backend; table: string; admin: LockClient } | undefined;
  const cleanups: (() => void | Promise<void>)[] = [];
  const started = () => {
    if (state === undefined) throw new Error("sharedTable() is read before its `before` hook ran");
    return state;
  };
  before(async () => {
    const backend = await startBackend();
    const table = uniqueName();
    const admin = new LockClient({ table, client: backend.client });
    state = { backend, table, admin };
    await admin.createTable();
  });
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
    if (state === undefined) return;
    await state.admin.close();
    await state.backend.close();
  });
  return {
    get backend() {
      return started().backend;
    },
    get table() {
      return started().table;
    },
    get admin() {
      return started().admin;
    },
    process: <R extends FakeRuntime = FakeRuntime>(holder: string, options: ProcessOptions<R> = {}) => {
      const { backend, table } = started();
      return testProcess<R>(backend.client, { table, ...defaults, holder, ...options });
    },
    onClose: (cleanup) => {
      cleanups.push(cleanup);
    },
  };
}

/**
 * A real client whose wall clock is ten minutes behind and whose other clocks stand still (no
 * heartbeat, no expiry timer fires): to clients on the real clock, a lock it takes has expired
 * already, so they can take it over at once. For what others (the CLI's views) show of a takeover.
 */
export function clientTenMinutesBehind(
  server: DynamoDBClient,
  options: Omit<LockClientOptions, "client" | "runtime">,
): LockClient {
  const runtime = new FakeRuntime();
  runtime.wallOffset = Date.now() - 600_000;
  return new LockClient({ ...options, client: server, runtime });
}
