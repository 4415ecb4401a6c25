/**
 * The diagnostics channels: each operation is traced with its lock, a takeover and a loss are
 * published with their details, and nothing is published to nobody.
 */
import assert from "node:assert/strict";
import { subscribe, tracingChannel, unsubscribe } from "node:diagnostics_channel";
import { after, before, describe, it } from "node:test";
import { trace } from "../src/diagnostics.js";
import { LockClient, type LostMessage, type TakeoverMessage } from "../src/index.js";
import { systemRuntime } from "../src/runtime.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";
import { eventually } from "./support/wait.js";

let backend: Backend;
before(async () => {
  backend = await startBackend();
});
after(() => backend.close());

const OPERATIONS = ["acquire", "heartbeat", "update", "release", "transact"] as const;

/** Records `name:event lockId` for every traced operation, until `stop()`. */
function record() {
  const seen: string[] = [];
  const stops: (() => void)[] = [];
  for (const operation of OPERATIONS) {
    const handlers = {
      start: (m: unknown) => seen.push(`${operation}:start ${(m as { lockId: string }).lockId}`),
      end: () => undefined,
      asyncStart: () => undefined,
      asyncEnd: (m: unknown) => seen.push(`${operation}:asyncEnd ${(m as { lockId: string }).lockId}`),
      error: (m: unknown) => seen.push(`${operation}:error ${(m as { error: Error }).error.name}`),
    };
    const traced = tracingChannel(`dynamolock:${operation}`);
    traced.subscribe(handlers);
    stops.push(() => traced.unsubscribe(handlers));
  }
  return {
    seen,
    stop: () => {
      for (const stop of stops) stop();
    },
  };
}

describe("diagnostics channels", () => {
  it("traces acquire, update, release and a failed acquire, with the lock id", async () => {
    const table = uniqueName();
    const locks = new LockClient({ table, client: backend.client });
    await locks.createTable();
    const events = record();
    try {
      const lock = await locks.acquire("a");
      await lock.update({ n: 1 });
      await lock.release();
      const other = await locks.acquire("b");
      await locks.acquire("b").catch(() => undefined);
      await other.release();
    } finally {
      events.stop();
    }
    assert.deepEqual(events.seen, [
      "acquire:start a",
      "acquire:asyncEnd a",
      "update:start a",
      "update:asyncEnd a",
      "release:start a",
      "release:asyncEnd a",
      "acquire:start b",
      "acquire:asyncEnd b",
      "acquire:start b",
      "acquire:error LockHeldError",
      "acquire:asyncEnd b",
      "release:start b",
      "release:asyncEnd b",
    ]);
    await locks.close();
  });

  it("publishes a takeover of a stale holder, and that holder's loss with its reason", async () => {
    const table = uniqueName();
    const leaseMs = 3_000;
    const first = new LockClient({ table, client: backend.client, leaseMs, heartbeatMs: 200 });
    await first.createTable();
    const takeovers: TakeoverMessage[] = [];
    const losses: LostMessage[] = [];
    const onTakeover = (m: unknown) => takeovers.push(m as TakeoverMessage);
    const onLost = (m: unknown) => losses.push(m as LostMessage);
    subscribe("dynamolock:lock:takeover", onTakeover);
    subscribe("dynamolock:lock:lost", onLost);
    try {
      const held = await first.acquire("job");
      // A newcomer whose wall clock is far past the holder's last heartbeat judges it dead at once.
      const later = { ...systemRuntime, wallNow: () => Date.now() + 10 * leaseMs };
      const second = new LockClient({ table, client: backend.client, leaseMs, runtime: later });
      const taken = await second.acquire("job");
      assert.deepEqual(takeovers, [
        { table, lockId: "job", fence: taken.fence, previousHolder: held.holder, previousFence: held.fence },
      ]);
      // The old holder learns at its next heartbeat. Its timers do not keep the process alive (a
      // process that exits while holding a lock behaves as a crash): wait with a timer that does,
      // or against a server in another process the event loop would empty first.
      await eventually(() => held.signal.aborted, "the old holder's heartbeat to find the takeover");
      assert.equal(losses.length, 1);
      assert.deepEqual(
        { ...losses[0], error: undefined },
        { table, lockId: "job", fence: held.fence, reason: "taken", error: undefined },
      );
      assert.equal(losses[0]?.error, held.signal.reason);
      await taken.release();
      await second.close();
    } finally {
      unsubscribe("dynamolock:lock:takeover", onTakeover);
      unsubscribe("dynamolock:lock:lost", onLost);
      await first.close();
    }
  });

  it("with nobody subscribed, no context is even built", async () => {
    const unheard = tracingChannel<unknown, { lockId: string }>("dynamolock:test-unheard");
    const result = await trace(
      unheard,
      () => assert.fail("the context was built for nobody"),
      async () => "done",
    );
    assert.equal(result, "done");
  });
});
