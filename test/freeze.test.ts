/**
 * Real processes frozen past their lease: a child holds a lock against a server this test runs, the
 * test stops it with SIGSTOP (by its pid), another client takes the lock over once the lease has
 * passed, and the test continues the child with SIGCONT. The child must learn that it lost the lock
 * before acting: `signal` aborted and `held` false at the first look, no write to the resource it
 * protects, and its update and extend rejected with LockLostError.
 *
 * Sequenced on events (the child's messages, the takeover), never on the timing of a window: waiting
 * until the lease has passed is only the precondition of the takeover, and the child's own clock
 * says how long it was frozen.
 */
import assert from "node:assert/strict";
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { LockClient } from "../src/index.js";
import { sharedTable } from "./support/process.js";

const LEASE_MS = 1_500;

const server = sharedTable();

interface Report {
  event: "report";
  signalAborted: boolean;
  held: boolean;
  reason: string | undefined;
  frozenMs: number;
  wrote: boolean;
  update: string;
  extend: string;
}

type Message = { event: "acquired"; fence: number } | Report;

/** Runs one freeze: the child's report, or undefined if the stop came too late to catch its step. */
async function freezeOnce(
  id: string,
  env: Record<string, string>,
): Promise<{ report: Report; fence: number; next: number } | undefined> {
  const child: ChildProcess = fork(fileURLToPath(new URL("fixtures/freeze-worker.ts", import.meta.url)), {
    execArgv: ["--import", "tsx"],
    env: {
      ...process.env,
      ENDPOINT: server.backend.endpoint,
      TABLE: server.table,
      LOCK_ID: id,
      LEASE_MS: String(LEASE_MS),
      ...env,
    },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const pid = child.pid as number;
  const messages: Message[] = [];
  const arrived = new Set<(m: Message) => void>();
  child.on("message", (m: Message) => {
    messages.push(m);
    for (const f of arrived) f(m);
  });
  const next = (event: Message["event"]) =>
    new Promise<Message>((resolve, reject) => {
      const seen = messages.find((m) => m.event === event);
      if (seen !== undefined) return resolve(seen);
      const onExit = (code: number | null) =>
        reject(new Error(`the child exited (${code}) before "${event}"`));
      child.once("exit", onExit);
      arrived.add(function wait(m) {
        if (m.event !== event) return;
        arrived.delete(wait);
        child.off("exit", onExit);
        resolve(m);
      });
    });
  const taker = new LockClient({
    table: server.table,
    client: server.backend.client,
    holder: "next",
    maxClockSkewMs: 0,
  });
  try {
    const { fence } = (await next("acquired")) as { fence: number };
    // The child is gone already only if its step ran before the stop (see below): nothing to say.
    if (child.exitCode !== null) return undefined;
    process.kill(pid, "SIGSTOP");
    // Precondition, not an assertion: the other client waits until the frozen holder's lease has
    // passed (by the wall-clock shortcut with a zero skew bound: both clocks are this machine's).
    const lock = await taker.acquire(id, { waitMs: 20 * LEASE_MS });
    // The stop came after the child's step ran (a very slow machine): the run says nothing.
    if (messages.some((m) => m.event === "report")) return undefined;
    if (env.ACT_ON === "message") child.send({ event: "act" });
    process.kill(pid, "SIGCONT");
    const report = (await next("report")) as Report;
    await once(child, "exit");
    const info = await server.admin.read(id);
    assert.equal(info?.holder, "next", "the lock stays with the process that took it over");
    assert.deepEqual(info?.data, undefined, "the frozen holder's update wrote nothing");
    await lock.release();
    return { report, fence, next: lock.fence };
  } finally {
    // Whatever happened: the child must not outlive the test, stopped or not.
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(pid, "SIGKILL");
      await once(child, "exit").catch(() => undefined);
    }
    await taker.close();
  }
}

async function freeze(name: string, env: Record<string, string>) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const outcome = await freezeOnce(`${name}-${attempt}`, env);
    if (outcome !== undefined) return { ...outcome, id: `${name}-${attempt}` };
  }
  throw new Error("the stop never caught the child before its step (machine too slow?)");
}

async function resource(id: string): Promise<unknown> {
  const { GetItemCommand } = await import("@aws-sdk/client-dynamodb");
  const out = await server.backend.client.send(
    new GetItemCommand({
      TableName: server.table,
      Key: { id: { S: `resource/${id}` } },
      ConsistentRead: true,
    }),
  );
  return out.Item;
}

describe("a holder frozen (SIGSTOP) past its lease and thawed (SIGCONT) after a takeover", () => {
  for (const heartbeat of ["false", "true"]) {
    for (const actOn of ["timer", "message"]) {
      it(`learns of the loss before acting (heartbeat: ${heartbeat}, next step on a ${actOn})`, {
        timeout: 60_000,
      }, async () => {
        const { report, fence, next, id } = await freeze(`frozen-${heartbeat}-${actOn}`, {
          HEARTBEAT: heartbeat,
          ACT_ON: actOn,
          STEP_MS: "300",
        });
        assert.ok(report.frozenMs >= LEASE_MS, `the freeze outlasted the lease (${report.frozenMs} ms)`);
        assert.ok(next > fence, "taken over with a newer fence");
        assert.deepEqual(
          {
            signalAborted: report.signalAborted,
            held: report.held,
            reason: report.reason,
            wrote: report.wrote,
            update: report.update,
            extend: report.extend,
          },
          {
            signalAborted: true,
            held: false,
            reason: "expired",
            wrote: false,
            update: "LockLostError:expired",
            extend: "LockLostError:expired",
          },
        );
        assert.equal(await resource(id), undefined, "the guarded write never happened");
      });
    }
  }

  it("catches the deliberate break: held and signal that trust only the timers", {
    timeout: 60_000,
  }, async () => {
    const { report, id } = await freeze("frozen-break", {
      HEARTBEAT: "false",
      ACT_ON: "timer",
      STEP_MS: "300",
      BREAK: "heldIgnoresClock",
    });
    // The step's timer runs before the expiry timer: the broken holder believes it still holds the
    // lock and writes; its update is still refused (the server's condition), but too late.
    assert.equal(report.held, true);
    assert.equal(report.wrote, true);
    assert.equal(report.update, "LockLostError:expired");
    assert.ok((await resource(id)) !== undefined);
  });
});
