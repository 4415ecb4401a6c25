/**
 * Semaphores across processes on a real server: permit holders in separate processes, some killed
 * with SIGKILL while they hold a permit. The holders inside the critical section are counted through
 * a shared directory (one O_EXCL file per holder inside), which must never show more than N.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { sharedTable } from "./support/process.js";
import { workerStarter } from "./support/workers.js";

const server = sharedTable();
const start = workerStarter(server);
const marks = mkdtempSync(join(tmpdir(), "dynamolock-permits-"));
after(() => rmSync(marks, { recursive: true, force: true }));

interface Section {
  readonly pid: number;
  readonly fence: number;
  readonly inside: number;
  readonly held: boolean;
}

function startWorker(env: Record<string, string>): {
  child: ChildProcess;
  sections: Section[];
  closed: Promise<unknown[]>;
} {
  const sections: Section[] = [];
  const { child } = start(
    "permit-worker.ts",
    { MARKS: marks, ...env },
    {
      onLine: (line) => {
        sections.push(JSON.parse(line) as Section);
        if (process.env.DEBUG_PERMITS) process.stderr.write(`${line}\n`);
      },
    },
  );
  // Listened to from the start: a worker may finish before the test awaits it.
  const closed = once(child, "close");
  return { child, sections, closed };
}

describe("semaphore across processes", () => {
  it("never more than N inside, with holders SIGKILLed while they hold a permit", {
    timeout: 120_000,
  }, async (t) => {
    const permits = 2;
    const iterations = 5;
    const env = {
      LOCK_ID: "exports",
      PERMITS: String(permits),
      ITERATIONS: String(iterations),
      HOLD_MS: "40",
    };
    const doomed = [startWorker(env), startWorker(env)];
    const survivors = [startWorker(env), startWorker(env), startWorker(env)];
    // Kill each doomed worker by its pid once it is inside, holding a permit; its mark goes with it.
    await Promise.all(
      doomed.map(async ({ child, sections, closed }) => {
        for (let i = 0; i < 6_000 && sections.length === 0 && child.exitCode === null; i++) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        assert.ok(sections.length > 0, "the worker got a permit");
        process.kill(child.pid as number, "SIGKILL");
        await closed;
        for (const name of readdirSync(marks)) {
          if (name.startsWith(`${child.pid}-`)) rmSync(join(marks, name), { force: true });
        }
      }),
    );
    const codes = await Promise.all(survivors.map(async ({ closed }) => (await closed)[0]));
    assert.deepEqual(codes, [0, 0, 0], "every survivor finished: the killed holders' permits were reclaimed");
    const all = [...doomed, ...survivors].flatMap((w) => w.sections);
    assert.equal(survivors.flatMap((w) => w.sections).length, 3 * iterations);
    const most = Math.max(...all.map((s) => s.inside));
    assert.ok(most <= permits, `at most ${permits} inside at once, saw ${most}`);
    t.diagnostic(`${all.length} critical sections, at most ${most} inside at once`);
    assert.ok(all.every((s) => s.held));
    assert.equal(new Set(all.map((s) => s.fence)).size, all.length, "every acquisition has its own fence");
    const item = await server.admin.read("exports");
    assert.ok(item !== undefined);
  });
});
