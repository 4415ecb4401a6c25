/**
 * Turns and the waiting schedule under the faults review 2 found (docs/protocol.md, "Turns"), on a
 * real server with injected clocks: a leftover claim does not keep a free lock from anyone for
 * long, a late duplicate claim cannot land after its claimant's acquisition, one long hold does not
 * make the claimant late, and a local-queue follower reports its whole wait.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { LockHeldError } from "../src/index.js";
import { claimRequest } from "../src/requests.js";
import { claimLeaseMs } from "../src/turn.js";
import { recordedHoldMs } from "../src/waiting.js";
import type { FakeRuntime } from "./support/fake-runtime.js";
import { sharedTable, type TestProcess } from "./support/process.js";
import { eventually } from "./support/wait.js";

let n = 0;
const nextId = () => `turnfix-${++n}`;

const server = sharedTable();

const schema = () => ({ table: server.table, partitionKey: "id" }) as never;

/** The claim a waiter that then died leaves in the item, written at `at` on its wall clock. */
async function deadClaim(id: string, at: number, fence: number, ms = 3_100): Promise<void> {
  const input = claimRequest(schema(), id, { waiter: "dead-waiter", since: at - 500, ms, at, fence });
  await server.backend.client.send(new UpdateItemCommand(input));
}

/**
 * `a` holds `id`, whose item records holds of `holdMs` (as after such holds), and `b` waits for it
 * (60 s), counting its looks.
 */
async function heldWithRecordedHolds(
  id: string,
  holdMs: number,
  a: TestProcess<FakeRuntime>,
  b: TestProcess<FakeRuntime>,
) {
  const first = await a.locks.acquire(id);
  await first.release();
  await server.backend.client.send(
    new UpdateItemCommand({
      TableName: server.table,
      Key: { id: { S: id } },
      UpdateExpression: "SET holdMs = :h",
      ExpressionAttributeValues: { ":h": { N: String(holdMs) } },
    }),
  );
  const held = await a.locks.acquire(id);
  let looks = 0;
  const waiting = b.locks.acquire(id, { waitMs: 60_000, onWait: () => void looks++ });
  return { held, waiting, looks: () => looks };
}

describe("a leftover claim on a free lock", () => {
  it("lapses by the wall clock shortcut: tryAcquire gets the lock, and a refusal says the turn is claimed", async () => {
    const id = nextId();
    const p = server.process("p");
    const first = await p.locks.acquire(id);
    await first.release();
    await deadClaim(id, p.runtime.wallNow(), first.fence);
    assert.equal(await p.locks.tryAcquire(id), undefined, "a fresh claim counts");
    await assert.rejects(p.locks.acquire(id, { waitMs: 0 }), (err: unknown) => {
      assert.ok(err instanceof LockHeldError);
      assert.match(err.message, /is free, but its next turn is claimed/);
      return true;
    });
    // Past nextAt + nextMs + maxClockSkewMs on this process's wall clock: nobody watched it lapse.
    await p.advance(3_100 + 1_000 + 1);
    const got = await p.locks.tryAcquire(id);
    assert.ok(got !== undefined, "a dead claimant no longer blocks a free lock");
    await got.release();
    await p.locks.close();
  });

  it("with the shortcut off (maxClockSkewMs: Infinity) it lapses only by being watched for nextMs", async () => {
    const id = nextId();
    const p = server.process("p", { maxClockSkewMs: Number.POSITIVE_INFINITY });
    const first = await p.locks.acquire(id);
    await first.release();
    await deadClaim(id, p.runtime.wallNow() - 1_000_000, first.fence);
    assert.equal(await p.locks.tryAcquire(id), undefined);
    const waiting = p.locks.acquire(id, { waitMs: 10_000 });
    await p.advance(3_200);
    const got = await waiting;
    await got.release();
    await p.locks.close();
  });

  it("a late duplicate of a claim cannot land after its claimant acquired", async () => {
    const id = nextId();
    const p = server.process("p");
    const held = await p.locks.acquire(id);
    const at = p.runtime.wallNow();
    const claim = claimRequest(schema(), id, { waiter: "w", since: at, ms: 3_100, at, fence: held.fence });
    await server.backend.client.send(new UpdateItemCommand(claim)); // the claim, as the waiter sent it
    await held.release();
    // The lock is acquired (here after the claim lapsed; the claimant's own acquire does the same):
    // the acquire removes the claim and moves the fence on ...
    await p.advance(3_100 + 1_000 + 1);
    const taken = await p.locks.acquire(id);
    await taken.release();
    // ... and a duplicate of the claim arrives late: refused, the item carries no claim.
    await assert.rejects(server.backend.client.send(new UpdateItemCommand(claim)), {
      name: "ConditionalCheckFailedException",
    });
    const again = await p.locks.tryAcquire(id);
    assert.ok(again !== undefined);
    await again.release();
    await p.locks.close();
  });
});

describe("one long hold", () => {
  it("moves the recorded average by a bounded factor", () => {
    assert.ok(recordedHoldMs(50, 3_600_000) <= 50 + 0.25 * (4 * 50 + 1_000));
    assert.equal(recordedHoldMs(undefined, 70), 70);
    assert.equal(recordedHoldMs(100, 100), 100);
  });

  it("does not make the claimant late: it looks at least every 2 × pollMaxMs", async () => {
    const id = nextId();
    const a = server.process("a");
    const b = server.process("b");
    // Recorded holds say ten minutes (as after one long hold): the claimant must not stride 4 s
    // (LONG_HOLD_STRIDE × pollMaxMs), only 2 s (CLAIMANT_STRIDE × pollMaxMs).
    const { held, waiting, looks } = await heldWithRecordedHolds(id, 600_000, a, b);
    await eventually(() => looks() >= 1, "b looks");
    await a.advance(50);
    await held.release();
    await b.advance(2_000 + 150);
    let got: unknown;
    void waiting.then((l) => {
      got = l;
    });
    await eventually(() => got !== undefined, "the claimant takes the freed lock within 2 × pollMaxMs");
    await (await waiting).release();
    await a.locks.close();
    await b.locks.close();
  });
});

describe("a look by writing", () => {
  it("that fails without an answer is followed by a read, not by another write", async (t) => {
    if (!server.backend.capabilities.returnsOldItemOnConditionFailure) {
      t.skip(`${server.backend.name} returns no item with a failed condition: every look is a read`);
      return;
    }
    const id = nextId();
    const a = server.process("a");
    const b = server.process("b");
    // Holds of this lock last about a second: the claimant's look at the expected release is a
    // write (waiting.ts looksByWriting).
    const { held, waiting, looks } = await heldWithRecordedHolds(id, 1_000, a, b);
    await eventually(() => looks() >= 1, "b waits, its claim made");
    const before = b.link.sent.length;
    // The write-look is lost on its way (a network error).
    b.link.dropNext("acquire");
    await b.advance(1_000 + 10);
    await eventually(() => b.link.dropped.length === 1, "b looks by writing");
    // Nothing reached the server between the claim and the dropped write-look.
    assert.equal(b.link.sent.length, before);
    await b.advance(200); // its backoff
    await eventually(() => b.link.sent.length > before, "b looks again");
    // A write retried under throttling or lost answers would not count among the owner's few
    // write-looks: the next look is a read.
    assert.equal(b.link.sent[before], "read", JSON.stringify(b.link.sent));
    await held.release();
    let got: unknown;
    void waiting.then((l) => {
      got = l;
    });
    for (let i = 0; i < 40 && got === undefined; i++) {
      await b.advance(100);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await eventually(() => got !== undefined, "b takes the freed lock");
    await (await waiting).release();
    await a.locks.close();
    await b.locks.close();
  });
});

describe("claim length", () => {
  it("is three of the claimant's longest gaps plus slack, never more than a lease", () => {
    assert.equal(claimLeaseMs(1_000, 30_000), 3_100);
    assert.equal(claimLeaseMs(5_000, 30_000), 15_100);
    assert.equal(claimLeaseMs(20_000, 30_000), 30_000);
    assert.equal(claimLeaseMs(5, 200), 200);
  });
});

describe("a local-queue follower", () => {
  it("reports its whole wait, from its call, and a finite next look", async () => {
    const id = nextId();
    const o = server.process("o");
    const m = server.process("m");
    const held = await o.locks.acquire(id);
    const head = m.locks.acquire(id, { waitMs: 2_000 });
    head.catch(() => undefined);
    let followerLook: number | undefined;
    const follower = m.locks.acquire(id, {
      waitMs: 5_000,
      onWait: (p) => {
        followerLook ??= p.nextLookInMs;
      },
    });
    follower.catch(() => undefined);
    await m.advance(6_000);
    await assert.rejects(head, LockHeldError);
    await assert.rejects(follower, (err: unknown) => {
      assert.ok(err instanceof LockHeldError);
      assert.ok(err.waitedMs >= 4_900, `waitedMs ${err.waitedMs}`);
      return true;
    });
    assert.ok(followerLook !== undefined && Number.isFinite(followerLook), `nextLookInMs ${followerLook}`);
    await held.release();
    await o.locks.close();
    await m.locks.close();
  });

  it("waiting without end, reports a finite next look on entering the queue", async () => {
    const id = nextId();
    const m = server.process("m");
    const held = await m.locks.acquire(id);
    const stop = new AbortController();
    let reported: number | undefined;
    const follower = m.locks.acquire(id, {
      waitMs: Number.POSITIVE_INFINITY,
      signal: stop.signal,
      onWait: (p) => {
        reported ??= p.nextLookInMs;
      },
    });
    follower.catch(() => undefined);
    await eventually(() => reported !== undefined, "the follower reports");
    assert.ok(Number.isFinite(reported), `nextLookInMs ${reported}`);
    stop.abort(new Error("done"));
    await assert.rejects(follower, /done/);
    await held.release();
    await m.locks.close();
  });
});
