/**
 * One process holding 1,000 locks on a real server (dynalite by default), with an injected clock:
 * every lock heartbeats on time through a few intervals, none is lost, and the process keeps a
 * constant number of timers per lock (nothing accumulates per heartbeat). No wall-clock windows:
 * time moves only when the test says so. The timed side of this (CPU per heartbeat, memory per
 * lock, event-loop delay) is `npm run bench` (bench/many.ts).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Lock } from "../src/index.js";
import { sharedTable } from "./support/process.js";

const LOCKS = 1_000;
const LEASE = 6_000;
const HEARTBEAT = 1_000;
const ROUNDS = 3;

const server = sharedTable({ leaseMs: LEASE, heartbeatMs: HEARTBEAT });

describe("many locks in one process", () => {
  it(`${LOCKS} held locks heartbeat on time for ${ROUNDS} intervals, lose nothing, and keep two timers each`, async () => {
    const p = server.process("many");
    const held: Lock[] = [];
    for (let batch = 0; batch < LOCKS; batch += 50) {
      const ids = Array.from({ length: Math.min(50, LOCKS - batch) }, (_, i) => `many-${batch + i}`);
      held.push(...(await Promise.all(ids.map((id) => p.locks.acquire(id)))));
    }
    let lost = 0;
    for (const lock of held) lock.signal.addEventListener("abort", () => lost++, { once: true });
    // Each held lock keeps its heartbeat timer and its expiry timer, and nothing else.
    assert.equal(p.runtime.pendingTimers, 2 * LOCKS);

    await p.advance(HEARTBEAT * ROUNDS + 1);

    assert.equal(lost, 0);
    assert.equal(held.filter((lock) => lock.held).length, LOCKS);
    const renews = p.link.sent.filter((kind) => kind === "renew").length;
    assert.equal(renews, LOCKS * ROUNDS, "every lock heartbeats once per interval, no more and no less");
    // Still two timers per lock: no per-heartbeat timer, abort listener or retry was left behind.
    assert.equal(p.runtime.pendingTimers, 2 * LOCKS);
    // The server agrees: every item carries its holder's last heartbeat.
    const lastBeat = p.runtime.wallOffset + HEARTBEAT * ROUNDS;
    let seen = 0;
    for await (const info of server.admin.list({ prefix: "many-" })) {
      seen++;
      assert.equal(info.held, true, info.lockId);
      assert.equal(info.heartbeatAt, lastBeat, info.lockId);
    }
    assert.equal(seen, LOCKS);

    await Promise.all(held.map((lock) => lock.release()));
    assert.equal(p.runtime.pendingTimers, 0);
    await p.locks.close();
  });
});
