/**
 * `npm run bench`: speed and request cost against dynalite in this process (127.0.0.1), bounded in
 * count. Numbers are for comparing changes on one machine, not promises.
 */
import { performance } from "node:perf_hooks";
import { LockClient } from "../src/index.js";
import { startLocalDynamoDB } from "../src/testing.js";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}
function summary(name: string, samples: number[], extra = ""): void {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  console.log(
    `${name.padEnd(44)} n=${String(samples.length).padStart(4)}  mean ${mean.toFixed(2).padStart(7)} ms  p50 ${percentile(sorted, 50).toFixed(2).padStart(7)} ms  p99 ${percentile(sorted, 99).toFixed(2).padStart(7)} ms ${extra}`,
  );
}

const db = await startLocalDynamoDB();
const counts: Record<string, number> = {};
db.client.middlewareStack.add(
  (next, context) => async (args) => {
    const op = String(context.commandName).replace(/Command$/, "");
    counts[op] = (counts[op] ?? 0) + 1;
    return next(args);
  },
  { step: "finalizeRequest", name: "benchCounter" },
);
const requests = () => Object.values(counts).reduce((a, b) => a + b, 0);
const locks = new LockClient({ table: "bench", client: db.client });
await locks.createTable();

// 1. Uncontended acquire + release.
{
  const samples: number[] = [];
  for (let i = 0; i < 50; i++) await (await locks.acquire("warm")).release();
  const before = requests();
  const started = performance.now();
  const n = 500;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const lock = await locks.acquire(`u-${i % 10}`);
    await lock.release({ i });
    samples.push(performance.now() - t);
  }
  const seconds = (performance.now() - started) / 1000;
  summary(
    "uncontended acquire+release",
    samples,
    `  ${(n / seconds).toFixed(0)} cycles/s, ${((requests() - before) / n).toFixed(2)} requests/cycle`,
  );
}

// 2. Failed tryAcquire of a held lock.
{
  const held = await locks.acquire("held");
  const samples: number[] = [];
  const before = requests();
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await locks.tryAcquire("held");
    samples.push(performance.now() - t);
  }
  summary(
    "tryAcquire of a held lock (dynalite: +GetItem)",
    samples,
    `  ${((requests() - before) / 200).toFixed(2)} requests/try`,
  );
  await held.release();
}

// 3. Hand-off: how long after a release does a waiter (default backoff) get the lock?
{
  const samples: number[] = [];
  const before = requests();
  for (let i = 0; i < 40; i++) {
    const held = await locks.acquire("handoff");
    const waiting = locks.acquire("handoff", { waitMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 20 + (i % 10) * 30));
    const releasedAt = performance.now();
    await held.release();
    const next = await waiting;
    samples.push(performance.now() - releasedAt);
    await next.release();
  }
  summary(
    "hand-off latency after release (poll 50ms..1s)",
    samples,
    `  ${((requests() - before) / 40).toFixed(1)} requests/hand-off`,
  );
}

// 4. Contention: 8 clients, 200 critical sections in all.
{
  const clients = Array.from(
    { length: 8 },
    (_, i) => new LockClient({ table: "bench", client: db.client, holder: `c${i}` }),
  );
  const before = requests();
  const started = performance.now();
  let sections = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (sections < 200) {
        const lock = await c.acquire<{ n: number }>("contended", { waitMs: 60_000 });
        sections++;
        await lock.release({ n: (lock.data?.n ?? 0) + 1 });
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `${"8 clients contending, 200+ sections".padEnd(44)} ${(sections / seconds).toFixed(0)} sections/s, ${((requests() - before) / sections).toFixed(1)} requests/section`,
  );
  await Promise.all(clients.map((c) => c.close()));
}

await locks.close();
await db.close();
