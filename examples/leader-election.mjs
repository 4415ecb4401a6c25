// Leader election: each candidate waits for the lock, leads while it holds it, and keeps leadership
// until told to step down (or until it loses the lock, when it goes back to waiting).
import { LockClient } from "dynamolock";

/** Runs `lead(signal)` whenever this candidate is leader, until `stepDown` aborts. */
export async function campaign(locks, lead, stepDown) {
  while (!stepDown.aborted) {
    let lock;
    try {
      lock = await locks.acquire("leader", { waitMs: Infinity, signal: stepDown });
    } catch (err) {
      if (stepDown.aborted) return;
      throw err;
    }
    try {
      // Lead until told to stop or until the lock is lost (a partition, a long pause).
      await lead(AbortSignal.any([lock.signal, stepDown]));
    } finally {
      await lock.release().catch(() => undefined); // already lost: nothing to release
    }
  }
}

/** Leader work: here, a tick every 20 ms until the signal aborts. */
function leadAs(name, log) {
  return async (signal) => {
    log.push(`${name} leads`);
    while (!signal.aborted) await new Promise((resolve) => setTimeout(resolve, 20));
    log.push(`${name} steps down`);
  };
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const log = [];
  const a = new LockClient({ table: "locks", holder: "a", pollMaxMs: 50 });
  const b = new LockClient({ table: "locks", holder: "b", pollMaxMs: 50 });
  await a.createTable();
  const stopA = new AbortController();
  const stopB = new AbortController();
  const runningA = campaign(a, leadAs("a", log), stopA.signal);
  while (log.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
  const runningB = campaign(b, leadAs("b", log), stopB.signal);
  await new Promise((resolve) => setTimeout(resolve, 100)); // b waits: a keeps leading
  stopA.abort(); // a is told to step down; b takes over
  await runningA;
  while (log.length < 3) await new Promise((resolve) => setTimeout(resolve, 10));
  stopB.abort();
  await runningB;
  console.log(log.join("; "));
  await Promise.all([a.close(), b.close()]);
}
