/**
 * Defects the deterministic simulation found (test/sim.test.ts puts each back with a regression
 * switch the search must find), each pinned down here on a real server with injected clocks and faults.
 */
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import {
  type DynamoDBClient,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from "@aws-sdk/client-dynamodb";
import type { DynamoDBSender } from "../src/aws.js";
import { LockClient, LockLostError } from "../src/index.js";
import { FakeRuntime } from "./support/fake-runtime.js";
import { kindOf, type RequestKind } from "./support/faults.js";
import { sharedTable } from "./support/process.js";

const LEASE = 10_000;
const HEARTBEAT = 1_000;

const server = sharedTable({ leaseMs: LEASE, heartbeatMs: HEARTBEAT });

/**
 * A process that stalls (a GC pause) right after its next read of the wall clock: from then on its
 * clocks read `ms` later, as they would after the pause, while the rest of the world did not move.
 */
class StallAfterWallRead extends FakeRuntime {
  #shift = 0;
  #armed = 0;
  stallAfterNextWallRead(ms: number): void {
    this.#armed = ms;
  }
  override wallNow(): number {
    const value = super.wallNow() + this.#shift;
    this.#shift += this.#armed;
    this.#armed = 0;
    return value;
  }
  override monotonicNow(): number {
    return super.monotonicNow() + this.#shift;
  }
}

/** A test process whose clocks can stall. */
const process_ = (name: string, options: { maxClockSkewMs?: number } = {}) =>
  server.process(name, { runtime: new StallAfterWallRead(), ...options });

let id: string;
let n = 0;
beforeEach(() => {
  id = `regression-${++n}`;
});

describe("found by the simulation", () => {
  it("a release applied but unanswered, retried after someone else took the free lock, succeeds", async () => {
    // sim: mixed seed 40. The retry fails its condition (the lock is someone else's now), but our
    // token in `releasedBy` proves an attempt of ours went through: it used to be reported lost.
    const p = process_("p");
    const held = await p.locks.acquire<{ n: number }>(id);
    p.link.loseReplies("release");
    // Sequenced on the server's answer, not on timing: the next acquire is sent only once the
    // release has been applied (a server may apply concurrent requests in any order).
    const reply = p.link.holdReply("release");
    const releasing = held.release({ n: 1 });
    await reply.reached;
    const next = await server.admin.acquire<{ n: number }>(id);
    reply.deliver();
    await p.advance(2_000);
    await releasing;
    assert.equal(held.signal.aborted, false);
    assert.deepEqual(next.data, { n: 1 }, "the release's data was written");
    await next.release();
  });

  it("when the lock has changed hands since, the release says it may or may not have been applied", async () => {
    // sim: tight seed 2. Someone acquired and released after our unanswered release: nothing left
    // in the item says whether ours went through, so neither the rejection nor the signal may claim
    // that nothing was written or that someone else released the lock.
    const p = process_("p");
    const held = await p.locks.acquire<{ n: number }>(id);
    p.link.loseReplies("release");
    const reply = p.link.holdReply("release");
    const releasing = held.release({ n: 1 }).catch((e: unknown) => e);
    await reply.reached; // applied: only now does someone else acquire and release
    await (await server.admin.acquire(id)).release();
    reply.deliver();
    await p.advance(2_000);
    const err = await releasing;
    assert.ok(err instanceof LockLostError);
    assert.equal(err.writeUncertain, true);
    assert.match(err.message, /may or may not have been/);
    assert.equal((held.signal.reason as LockLostError).writeUncertain, true);
  });

  it("an update applied but unanswered until the lease runs out is not reported as unwritten", async () => {
    // sim: tight seed 93. The lease ran out during a retry's back-off; the rejection was the bare
    // "lease ran out" although an attempt had been applied.
    const p = process_("p");
    const held = await p.locks.acquire<{ n: number }>(id);
    p.link.loseReplies("renew", 1_000);
    const updating = held.update({ n: 7 }).catch((e: unknown) => e);
    await p.advance(LEASE * 2);
    const err = await updating;
    assert.ok(err instanceof LockLostError);
    assert.equal(err.writeUncertain, true);
    assert.match(err.message, /may or may not have been written/);
    assert.deepEqual((await server.admin.read(id))?.data, { n: 7 }, "and indeed it was written");
  });

  it("a stall between stamping a heartbeat's wall time and sending it never outlasts the shortcut", async () => {
    // sim: tight seed 1605. The heartbeat read the wall clock (recorded as heartbeatAt), stalled, then
    // took its send time — and counted its lease from that later instant. A waiter using the
    // wall-clock shortcut counts from heartbeatAt, so it took over while the holder was still valid.
    const p = process_("p", { maxClockSkewMs: 0 });
    const held = await p.locks.acquire(id);
    await p.advance(HEARTBEAT - 1);
    p.runtime.stallAfterNextWallRead(LEASE / 2);
    await p.advance(1);
    await p.advance(1);
    const info = await server.admin.read(id);
    assert.equal(held.signal.aborted, false);
    assert.ok(info?.heartbeatAt !== undefined);
    // With zero skew, a waiter whose wall clock passes heartbeatAt + lease takes over: the holder's own
    // validity, on the same wall clock, must end by then.
    const holderEnds = p.runtime.wallNow() + held.remainingMs;
    assert.ok(
      holderEnds <= info.heartbeatAt + LEASE,
      `the holder counts itself valid until ${holderEnds}, ${holderEnds - info.heartbeatAt - LEASE} ms past heartbeatAt + leaseMs`,
    );
    await held.release();
  });

  it("late duplicates of an old acquire and an old update cannot roll back data released since", async () => {
    // sim: stormy seed 656. A retried acquire was applied again long after its holder had released
    // the lock ("ghost"), putting the old token back; then a late duplicate of that holder's update
    // passed `owner = me AND version <= v` and overwrote the data its release had written.
    const wire = recording(server.backend.client);
    const locks = new LockClient({
      table: server.table,
      client: wire.sender,
      leaseMs: LEASE,
      heartbeatMs: HEARTBEAT,
    });
    const held = await locks.acquire<{ n: number }>(id);
    await held.update({ n: 1 });
    await held.release({ n: 2 });
    await wire.replay("acquire");
    await wire
      .replay("renew")
      .catch((err: unknown) => assert.equal((err as Error).name, "ConditionalCheckFailedException"));
    assert.deepEqual((await server.admin.read(id))?.data, { n: 2 }, "the released data stands");
    await locks.close();
  });

  it("a late duplicate of a forceRelease cannot remove a later holder", async () => {
    // sim: stormy seed 1201. The force-release was conditioned on "someone holds it", so a duplicate
    // arriving after a new holder had acquired removed that holder, which nobody told.
    const wire = recording(server.backend.client);
    const operator = new LockClient({ table: server.table, client: wire.sender });
    const first = await server.admin.acquire(id);
    await operator.forceRelease(id);
    await first.release().catch(() => undefined);
    const next = await server.admin.acquire(id);
    await wire
      .replay("release")
      .catch((err: unknown) => assert.equal((err as Error).name, "ConditionalCheckFailedException"));
    assert.equal((await server.admin.read(id))?.held, true, "the later holder keeps the lock");
    await next.release();
    await operator.close();
  });

  it("an acquire retried after an unanswered write uses a new token, and adopts the old one if it went through", async () => {
    // A token must name one ownership: a retry that wrote the same token again after someone else had
    // held the lock would let a waiter that watched the first ownership judge the second by its clock.
    const p = process_("p");
    p.link.loseReplies("acquire");
    const acquiring = p.locks.acquire(id, { waitMs: 5_000 });
    await p.advance(1_000);
    const held = await acquiring;
    const info = await server.admin.read(id);
    assert.equal(
      held.fence,
      1,
      "the first, unanswered write is the acquisition: the retry did not apply again",
    );
    assert.equal(info?.fence, held.fence);
    assert.equal(held.signal.aborted, false);
    await held.release();
    assert.equal(
      (await server.admin.read(id))?.held,
      false,
      "released with the token the first write installed",
    );
  });

  it("an update the SDK retried across a forceRelease does not claim it was not written", async () => {
    // sim: stormy seed 1872. The SDK's first try was applied and its reply lost; an administrator
    // force-released the lock; the SDK's own retry failed its condition. The lock saw only that
    // failure and rejected the update as unwritten, though its data was in the item.
    const retryingSdk = {
      async send(
        command: { constructor: { name: string }; input: UpdateItemCommandInput },
        options?: unknown,
      ) {
        const send = server.backend.client.send.bind(server.backend.client) as (
          c: unknown,
          o?: unknown,
        ) => Promise<unknown>;
        if (kindOf(command as unknown as Parameters<typeof kindOf>[0]) !== "renew")
          return send(command, options);
        await send(command, options); // applied; the reply is lost inside the SDK
        await server.admin.forceRelease(id);
        try {
          return await send(command, options); // the SDK's retry
        } catch (err) {
          // As the SDK does: the error says how many attempts the call made.
          Object.assign((err as { $metadata: object }).$metadata, { attempts: 2 });
          throw err;
        }
      },
    } as unknown as DynamoDBSender;
    const locks = new LockClient({
      table: server.table,
      client: retryingSdk,
      leaseMs: LEASE,
      heartbeatMs: HEARTBEAT,
    });
    const held = await locks.acquire<{ n: number }>(id);
    const err = await held.update({ n: 5 }).catch((e: unknown) => e);
    assert.ok(err instanceof LockLostError);
    assert.equal(err.writeUncertain, true);
    assert.match(err.message, /may or may not have been written/);
    assert.deepEqual((await server.admin.read(id))?.data, { n: 5 });
    await locks.close();
  });
});

/** A client that remembers every UpdateItem it sent, so a test can deliver a late duplicate of one. */
function recording(inner: DynamoDBClient) {
  const sent: { kind: RequestKind; input: UpdateItemCommandInput }[] = [];
  const sender = {
    send(command: { constructor: { name: string }; input: UpdateItemCommandInput }, options?: unknown) {
      if (command instanceof UpdateItemCommand)
        sent.push({
          kind: kindOf(command as unknown as Parameters<typeof kindOf>[0]),
          input: structuredClone(command.input),
        });
      return (inner.send as (c: unknown, o?: unknown) => Promise<unknown>)(command, options);
    },
  } as unknown as DynamoDBSender;
  return {
    sender,
    /** Sends again the first request of `kind` this client sent. */
    async replay(kind: RequestKind): Promise<void> {
      const first = sent.find((s) => s.kind === kind);
      assert.ok(first, `no ${kind} request was sent`);
      await inner.send(new UpdateItemCommand(first.input));
    },
  };
}
