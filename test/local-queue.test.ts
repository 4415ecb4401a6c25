/** Waiting acquires of one id in one LockClient share one poller (src/local-queue.ts). */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LockClient, LockHeldError } from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";
import { eventually } from "./support/wait.js";

let backend: Backend;
let table: string;
let other: LockClient;
let mine: LockClient;
let reads = 0;

before(async () => {
  backend = await startBackend();
  table = uniqueName();
  other = new LockClient({ table, client: backend.client, holder: "other" });
  await other.createTable();
  const client = backend.newClient();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === "GetItemCommand") reads++;
      return next(args);
    },
    { step: "initialize", name: "countReads" },
  );
  mine = new LockClient({ table, client, holder: "mine", pollMinMs: 5, pollMaxMs: 20 });
});
after(async () => {
  await mine.close();
  await other.close();
  await backend.close();
});

describe("one poller per id per client", () => {
  it("only the first waiter looks; the others are served in order as each is done", async () => {
    const held = await other.acquire("q");
    const looks = [0, 0, 0];
    const order: number[] = [];
    const waits = [0, 1, 2].map((i) =>
      mine
        .acquire("q", {
          waitMs: 60_000,
          onWait: () => {
            looks[i] = (looks[i] ?? 0) + 1;
          },
        })
        .then((lock) => {
          order.push(i);
          return lock;
        }),
    );
    for (const w of waits) w.catch(() => undefined);
    await eventually(() => (looks[0] ?? 0) >= 3, "the first waiter looks");
    // The others report once that they wait in the queue, and make no look of their own.
    assert.deepEqual(looks.slice(1), [1, 1], "the others do not look while the first waits");
    await held.release();
    const first = await waits[0];
    assert.deepEqual(order, [0]);
    await first?.release();
    const second = await waits[1];
    assert.deepEqual(order, [0, 1]);
    await second?.release();
    const third = await waits[2];
    assert.deepEqual(order, [0, 1, 2]);
    await third?.release();
  });

  it("a follower whose wait runs out while queued fails without a request; one aborted lets the next move up", async () => {
    const head = await mine.acquire("r");
    const readsBefore = reads;
    const err = await mine.acquire("r", { waitMs: 30 }).catch((e: unknown) => e);
    assert.ok(err instanceof LockHeldError);
    assert.equal(err.holder, "mine");
    assert.equal(err.fence, head.fence);
    assert.match(err.message, /not re-entrant/);
    assert.equal(reads, readsBefore, "no read while queued behind our own lock");

    const stop = new AbortController();
    const aborted = mine.acquire("r", { waitMs: 60_000, signal: stop.signal });
    const next = mine.acquire("r", { waitMs: 60_000 });
    stop.abort(new Error("stop"));
    await assert.rejects(aborted, /stop/);
    await head.release();
    const lock = await next;
    assert.equal(lock.fence, head.fence + 1);
    await lock.release();
  });

  it("tryAcquire does not wait in the queue: it makes its one try at once", async () => {
    const head = await mine.acquire("s");
    assert.equal(await mine.tryAcquire("s"), undefined);
    await head.release();
    const lock = await mine.tryAcquire("s");
    assert.ok(lock);
    await lock.release();
  });
});
