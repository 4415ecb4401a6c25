/**
 * Every error a user can branch on carries a stable `code` and a literal `name`, and names its lock
 * as `lockId` (absent from errors about no one lock). Also compile-time checks of the public types:
 * this file is type-checked by `npm test`, so a regression fails the typecheck.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  Lock,
  LockClient,
  LockError,
  type LockErrorCode,
  LockHeldError,
  type LockInfo,
  LockLostError,
  TransactionCanceledError,
} from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";

// ---- compile-time: interfaces are lock data, codes and names are literal types ----

interface Cursor {
  cursor: string;
  pages?: number;
}
/** Only type-checked: an interface (no index signature) is accepted everywhere a data type goes. */
async function typesOnly(locks: LockClient): Promise<void> {
  const lock: Lock<Cursor> = await locks.acquire<Cursor>("x");
  const cursor: string | undefined = lock.data?.cursor;
  await lock.update({ cursor: "y" }, { signal: AbortSignal.timeout(1) });
  await lock.release({ cursor: "z" }, { signal: AbortSignal.timeout(1) });
  const info: LockInfo<Cursor> | undefined = await locks.read<Cursor>("x", {
    signal: AbortSignal.timeout(1),
  });
  await locks.withLock<void, Cursor>("x", (l) => void l.data?.pages);
  await locks.forceRelease("x", { signal: AbortSignal.timeout(1) });
  void [cursor, info];
  const held = new LockHeldError("x", { holder: undefined, fence: 1, heartbeatAt: undefined, leaseMs: 1 }, 0);
  const code: "ELOCKHELD" = held.code;
  const name: "LockHeldError" = held.name;
  const lockId: string = held.lockId;
  void [code, name, lockId];
  // @ts-expect-error Locks are made by LockClient.acquire only.
  new Lock();
  // @ts-expect-error Not a code: codes are a closed union.
  const wrong: LockErrorCode = "EWHATEVER";
  void wrong;
}
void typesOnly;

// ---- runtime ----

let backend: Backend;
before(async () => {
  backend = await startBackend();
});
after(() => backend.close());

async function rejection(promise: Promise<unknown>): Promise<LockError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof LockError, `a LockError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a rejection");
}

describe("error codes", () => {
  it("each class sets its literal name and code", () => {
    const held = new LockHeldError("a", { holder: "h", fence: 1, heartbeatAt: 1, leaseMs: 1 }, 0);
    const lost = new LockLostError("a", "taken", 1, "detail");
    const canceled = new TransactionCanceledError("a", []);
    assert.deepEqual(
      [held, lost, canceled].map((e) => [e.name, e.code, e.lockId]),
      [
        ["LockHeldError", "ELOCKHELD", "a"],
        ["LockLostError", "ELOCKLOST", "a"],
        ["TransactionCanceledError", "ETRANSACTIONCANCELED", "a"],
      ],
    );
  });

  it("ELOCKHELD, ERELEASED and ECLOSED from the calls that raise them, with lockId only when about a lock", async () => {
    const table = uniqueName();
    const locks = new LockClient({ table, client: backend.client });
    await locks.createTable();
    const other = new LockClient({ table, client: backend.client });
    const lock = await locks.acquire("a");
    const held = await rejection(other.acquire("a"));
    assert.equal(held.code, "ELOCKHELD");
    assert.equal(held.lockId, "a");
    await lock.release();
    const released = await rejection(lock.update({ x: 1 }));
    assert.equal(released.code, "ERELEASED");
    assert.equal(released.name, "LockError");
    await other.close();
    const closed = await rejection(other.createTable());
    assert.equal(closed.code, "ECLOSED");
    assert.equal("lockId" in closed, false, "an error about no one lock has no lockId key at all");
    const closedAcquire = await rejection(other.acquire("b"));
    assert.equal(closedAcquire.code, "ECLOSED");
    await locks.close();
  });

  it("ENOTABLE for a missing table", async () => {
    const locks = new LockClient({ table: uniqueName("missing"), client: backend.client });
    const err = await rejection(locks.read("a"));
    assert.equal(err.code, "ENOTABLE");
    await locks.close();
  });

  it("info objects name the lock as lockId, like errors do", async () => {
    const table = uniqueName();
    const locks = new LockClient({ table, client: backend.client });
    await locks.createTable();
    await (await locks.acquire("a")).release();
    const info = await locks.read("a");
    assert.equal(info?.lockId, "a");
    assert.equal("id" in (info ?? {}), false);
    await locks.close();
  });
});
