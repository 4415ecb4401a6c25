// dynamolock's diagnostics channels as pino log lines (docs/observability.md).
// Run the demo: cd examples/observability && npm install && node pino.mjs
import { subscribe, tracingChannel } from "node:diagnostics_channel";
import pino from "pino";

export function logTo(log) {
  tracingChannel("dynamolock:acquire").subscribe({
    start(context) {
      context.startedAt = performance.now();
    },
    asyncEnd(context) {
      const waitedMs = Math.round(performance.now() - context.startedAt);
      const { table, lockId } = context;
      if (context.error === undefined)
        log.info({ table, lockId, fence: context.result.fence, waitedMs }, "lock acquired");
      else log.warn({ table, lockId, code: context.error.code, waitedMs }, "lock not acquired");
    },
    end() {},
    asyncStart() {},
    error() {},
  });
  tracingChannel("dynamolock:release").subscribe({
    asyncEnd({ table, lockId, fence, error }) {
      if (error === undefined) log.info({ table, lockId, fence }, "lock released");
      else log.warn({ table, lockId, fence, code: error.code }, "release failed");
    },
    start() {},
    end() {},
    asyncStart() {},
    error() {},
  });
  subscribe("dynamolock:lock:lost", ({ table, lockId, fence, reason }) =>
    log.error({ table, lockId, fence, reason }, "lock lost"),
  );
  subscribe("dynamolock:lock:takeover", (m) => log.warn(m, "took over a stale holder's lock"));
}

if (import.meta.main ?? process.argv[1] === new URL(import.meta.url).pathname) {
  logTo(pino({ name: "dynamolock" }));
  const { LockClient } = await import("dynamolock");
  const { startLocalDynamoDB } = await import("dynamolock/testing");
  const db = await startLocalDynamoDB();
  try {
    const locks = new LockClient({ table: "locks", client: db.client });
    await locks.createTable();
    const lock = await locks.acquire("nightly");
    await locks.tryAcquire("nightly"); // held: logged as "lock not acquired"
    await locks.forceRelease("nightly"); // the holder learns at its next heartbeat
    await new Promise((resolve) => lock.signal.addEventListener("abort", resolve, { once: true }));
    await locks.close();
  } finally {
    await db.close();
  }
}
