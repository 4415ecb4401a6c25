/**
 * A demo worker: a separate process that, round after round, takes the lock, reads the counter
 * from the lock's data, works a little, and releases with the counter plus one. It reports each
 * step to the demo. One of them (see WorkerConfig.killAtFence) holds on until the demo kills it.
 */
import { setTimeout as delay } from "node:timers/promises";
import { LockClient } from "../../client.js";
import { LockLostError } from "../../errors.js";
import { localClient } from "../../testing.js";
import { CONFIG_ENV, type DemoData, type WorkerConfig, type WorkerEvent } from "./protocol.js";

/** However long a round waits, it is bounded, so a worker left behind still ends by itself. */
const MAX_WAIT_MS = 120_000;
/** The victim is killed within moments; if the demo is gone, it stops holding after this. */
const VICTIM_HOLD_MS = 60_000;

function send(event: WorkerEvent): void {
  process.send?.(event);
}

export async function workerCommand(): Promise<number> {
  const raw = process.env[CONFIG_ENV];
  if (raw === undefined || process.send === undefined) {
    process.stderr.write("dynamolock: demo-worker is started by `dynamolock demo`, not by hand\n");
    return 64;
  }
  const config = JSON.parse(raw) as WorkerConfig;
  // If the demo goes away, so do we: nobody would read our reports.
  process.on("disconnect", () => process.exit(0));
  const client = localClient(config.endpoint);
  const locks = new LockClient({
    table: config.table,
    client,
    leaseMs: config.leaseMs,
    heartbeatMs: config.heartbeatMs,
    holder: config.name,
    // Waiters back off to a poll a second by default; with sections this short that lets whoever
    // just rested win every time. A tighter cap makes turns rotate, as on a busier real system.
    pollMaxMs: 200,
  });
  const worker = config.name;
  send({ type: "started", worker, pid: process.pid, at: Date.now() });
  try {
    for (let round = 1; round <= config.rounds; round++) {
      const waitStart = Date.now();
      send({ type: "waiting", worker, round, at: waitStart });
      const lock = await locks.acquire<DemoData>(config.lockId, { waitMs: MAX_WAIT_MS });
      const acquiredAt = Date.now();
      const counter = lock.data?.counter ?? 0;
      const victim =
        config.killAtFence !== undefined &&
        lock.fence >= config.killAtFence &&
        lock.data?.doomed === undefined;
      send({
        type: "acquired",
        worker,
        round,
        at: acquiredAt,
        waitedMs: acquiredAt - waitStart,
        fence: lock.fence,
        counter,
        previousFence: lock.data?.fence ?? 0,
        victim,
      });
      try {
        if (victim) {
          await lock.update({
            counter,
            fence: lock.data?.fence ?? 0,
            writer: lock.data?.writer ?? "",
            doomed: worker,
          });
          await delay(VICTIM_HOLD_MS, undefined, { signal: lock.signal });
        }
        // The work: in a real job, pass lock.fence to what you write, and stop if the signal fires.
        await delay(config.workMs * (0.6 + Math.random() * 0.8), undefined, { signal: lock.signal });
        const releasingAt = Date.now();
        const doomed = lock.data?.doomed;
        await lock.release({
          counter: counter + 1,
          fence: lock.fence,
          writer: worker,
          ...(doomed === undefined ? {} : { doomed }),
        });
        send({ type: "released", worker, round, at: releasingAt, fence: lock.fence, counter: counter + 1 });
      } catch (err) {
        const lost = err instanceof LockLostError ? err : lock.signal.reason;
        if (!(lost instanceof LockLostError)) throw err;
        send({ type: "lost", worker, round, at: Date.now(), fence: lock.fence, reason: lost.message });
      }
      // Outside the critical section for a moment, so the others get their turn.
      await delay(config.workMs * (0.5 + Math.random()));
    }
    send({ type: "done", worker, at: Date.now() });
    return 0;
  } catch (err) {
    send({ type: "failed", worker, at: Date.now(), message: (err as Error)?.message ?? String(err) });
    return 1;
  } finally {
    await locks.close().catch(() => undefined);
    client.destroy();
    // Let the last report reach the demo before the channel closes.
    await new Promise<void>((resolve) => {
      if (process.connected) process.send?.({ type: "flush" }, () => resolve());
      else resolve();
    });
    process.disconnect?.();
  }
}
