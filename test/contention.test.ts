/** Several processes contend for one lock on a real server; one holder is killed with SIGKILL. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, it } from "node:test";
import { LockClient } from "../src/index.js";
import { FakeRuntime } from "./support/fake-runtime.js";
import { FaultyClient } from "./support/faults.js";
import { sharedTable } from "./support/process.js";
import { workerStarter } from "./support/workers.js";

const server = sharedTable();
const startWorker = workerStarter(server);

describe("processes contending for one lock", () => {
  it("every critical section sees the previous one's counter, in fence order", async () => {
    const workers = 4;
    const iterations = 8;
    const started = Array.from({ length: workers }, (_, i) =>
      startWorker("counter-worker.ts", {
        LOCK_ID: "counter",
        ITERATIONS: String(iterations),
        WORKER: `w${i}`,
      }),
    );
    const codes = await Promise.all(started.map(async ({ child }) => (await once(child, "close"))[0]));
    assert.deepEqual(codes, Array(workers).fill(0));
    const sections = started
      .flatMap(({ lines }) =>
        lines.map((l) => JSON.parse(l) as { worker: string; fence: number; seen: number }),
      )
      .sort((a, b) => a.fence - b.fence);
    assert.equal(sections.length, workers * iterations);
    // Mutual exclusion: the k-th acquisition (by fence) saw exactly k-1 completed increments.
    assert.deepEqual(
      sections.map((s) => s.seen),
      sections.map((_, k) => k),
    );
    // Fences strictly increase (no two acquisitions share one).
    assert.equal(new Set(sections.map((s) => s.fence)).size, sections.length);
    const info = await server.admin.read<{ counter: number }>("counter");
    assert.deepEqual(info?.data, { counter: workers * iterations });
    assert.equal(info?.held, false);
    assert.ok(new Set(sections.map((s) => s.worker)).size > 1, "more than one worker got the lock");
  });

  it("a process that ends while holding a lock exits (timers are unref'd) and leaves it to expire", {
    timeout: 60_000,
  }, async () => {
    const { child, lines } = startWorker("exit-holding.ts", { LOCK_ID: "left" });
    const [code] = await once(child, "close");
    assert.equal(code, 0);
    const { fence } = JSON.parse(lines[0] ?? "null") as { fence: number };
    const info = await server.admin.read("left");
    assert.equal(info?.held, true, "like a crash: the lease runs out for waiters");
    assert.equal(info?.holder, "leaver");
    assert.equal(info?.fence, fence);
  });

  it("a holder killed with SIGKILL is taken over after its lease, not before", async () => {
    const leaseMs = 3_000;
    const { child, lines } = startWorker("hold-worker.ts", { LOCK_ID: "killed", LEASE_MS: String(leaseMs) });
    for (let i = 0; i < 2_000 && lines.length === 0 && child.exitCode === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const { fence } = JSON.parse(lines[0] ?? "null") as { fence: number };
    child.kill("SIGKILL");
    await once(child, "close");

    // The waiter's clock is injected: only the observed-lease rule can free the lock (no shortcut),
    // and the dead holder can no longer write, so the boundary is exact whatever the machine's speed.
    const runtime = new FakeRuntime();
    const link = new FaultyClient(server.backend.client);
    const waiter = new LockClient({
      table: server.table,
      client: link.asSender,
      runtime,
      maxClockSkewMs: Number.POSITIVE_INFINITY,
    });
    let acquiredAt: number | undefined;
    const acquiring = waiter.acquire("killed", { waitMs: leaseMs * 3 }).then((lock) => {
      acquiredAt = runtime.monotonicNow();
      return lock;
    });
    await runtime.advance(leaseMs - 1, () => link.settle());
    assert.equal(acquiredAt, undefined, "not taken over before the lease ran out");
    await runtime.advance(leaseMs, () => link.settle());
    const lock = await acquiring;
    assert.equal(acquiredAt, leaseMs, "taken over as soon as the observed lease ran out");
    assert.equal(lock.fence, fence + 1);
    await lock.release();
    await waiter.close();
  });
});
