/**
 * `dynamolock demo`: an embedded server, a table, and worker processes contending for one lock,
 * with one of them killed while it holds the lock. Shows it live, verifies the outcome, and draws
 * the timeline. Everything it starts, it stops: workers by pid, the server, every timer.
 */
import { type ChildProcess, fork } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { LockClient } from "../../client.js";
import { optionalDuration, optionalString, parse, positiveInteger } from "../args.js";
import { formatDuration } from "../duration.js";
import { CliError, EXIT, usageError } from "../exit-codes.js";
import { HELP } from "../help.js";
import { startServer } from "../serve.js";
import { isInteractive, style, useColor } from "../terminal.js";
import { DemoModel } from "./model.js";
import { CONFIG_ENV, type DemoData, type WorkerConfig, type WorkerEvent } from "./protocol.js";
import { renderTimeline } from "./timeline.js";
import { verify } from "./verify.js";
import { type DemoView, liveView, plainView } from "./view.js";

const TABLE = "dynamolock-demo";
const LOCK_ID = "demo";
/** How often the demo reads the lock item for the live view and the heartbeat record. */
const POLL_MS = 100;
const REDRAW_MS = 100;

interface Settings {
  readonly workers: number;
  readonly rounds: number;
  readonly leaseMs: number;
  readonly heartbeatMs: number;
  readonly workMs: number;
  readonly out: string;
  readonly kill: boolean;
  readonly plain: boolean;
}

function settingsFrom(argv: readonly string[]): Settings | undefined {
  const { values } = parse("demo", argv, {
    workers: { type: "string" },
    rounds: { type: "string" },
    lease: { type: "string" },
    heartbeat: { type: "string" },
    work: { type: "string" },
    out: { type: "string", short: "o" },
    "no-kill": { type: "boolean" },
    plain: { type: "boolean" },
    debug: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) return undefined;
  const workers = positiveInteger(values, "workers", 4, 8);
  const rounds = positiveInteger(values, "rounds", 5, 100);
  const leaseMs = optionalDuration(values, "lease") ?? 3_000;
  const heartbeatMs = optionalDuration(values, "heartbeat") ?? Math.max(1, Math.round(leaseMs / 6));
  if (heartbeatMs > leaseMs / 3) {
    throw usageError(
      `--heartbeat ${formatDuration(heartbeatMs)} must be at most a third of --lease ${formatDuration(leaseMs)}`,
    );
  }
  const kill = values["no-kill"] !== true;
  if (kill && workers < 2)
    throw usageError("demo: killing a holder needs at least 2 workers (or pass --no-kill)");
  return {
    workers,
    rounds,
    leaseMs,
    heartbeatMs,
    workMs: optionalDuration(values, "work", { allowZero: true }) ?? 300,
    out: resolve(optionalString(values, "out") ?? "dynamolock-demo.svg"),
    kill,
    plain: values.plain === true,
  };
}

export async function demoCommand(argv: readonly string[]): Promise<number> {
  const settings = settingsFrom(argv);
  if (settings === undefined) {
    process.stdout.write(HELP.demo);
    return EXIT.ok;
  }
  const out = process.stdout;
  const c = style(useColor(out));
  const names = Array.from({ length: settings.workers }, (_, i) => `w${i + 1}`);
  // Halfway through what the other workers can do between them: someone is left to take over.
  const killAtFence = settings.kill
    ? Math.floor(((settings.workers - 1) * settings.rounds) / 2) + 1
    : undefined;
  const sections = settings.workers * settings.rounds;
  const estimatedMs =
    2_000 + sections * (settings.workMs + 250) + (settings.kill ? settings.leaseMs + 1_000 : 0);

  const server = await startServer({ port: 0 });
  const locks = new LockClient({ table: TABLE, client: server.client, leaseMs: settings.leaseMs });
  const children = new Map<string, ChildProcess>();
  /** The demo's own read of the lock item in flight, if any. */
  let reading: Promise<void> | undefined;
  let stopping = false;
  const timers: NodeJS.Timeout[] = [];
  let interrupted: NodeJS.Signals | undefined;
  let wake: () => void = () => undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    wake();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    await locks.createTable();
    const title = `dynamolock demo: ${settings.workers} worker processes, one lock ("${LOCK_ID}"), lease ${formatDuration(settings.leaseMs)}, heartbeat ${formatDuration(settings.heartbeatMs)}`;
    if (!isInteractive(out) || settings.plain) {
      out.write(`${c.dim(`local server ${server.endpoint} (in this process), table "${TABLE}"`)}\n`);
    }
    const model = new DemoModel(names);
    const view: DemoView =
      isInteractive(out) && !settings.plain
        ? liveView(model, out, { title, estimatedMs, leaseMs: settings.leaseMs })
        : plainView(model, out, { title, estimatedMs, leaseMs: settings.leaseMs });

    // ---- workers ----
    const exited = new Set<string>();
    const stderrTail = new Map<string, string>();
    const program = process.argv[1];
    if (program === undefined)
      throw new CliError("demo: cannot find the dynamolock program to start workers with", EXIT.internal);
    for (const name of names) {
      const config: WorkerConfig = {
        name,
        endpoint: server.endpoint,
        table: TABLE,
        lockId: LOCK_ID,
        leaseMs: settings.leaseMs,
        heartbeatMs: settings.heartbeatMs,
        rounds: settings.rounds,
        workMs: settings.workMs,
        killAtFence,
      };
      // The worker is this same program (built or run through tsx: execArgv carries the loader).
      const child = fork(program, ["demo-worker"], {
        env: { ...process.env, [CONFIG_ENV]: JSON.stringify(config) },
        stdio: ["ignore", "ignore", "pipe", "ipc"],
      });
      children.set(name, child);
      child.stderr?.on("data", (chunk: Buffer) => {
        stderrTail.set(name, ((stderrTail.get(name) ?? "") + chunk.toString("utf8")).slice(-2_000));
      });
      child.on("error", () => undefined); // a failed kill() of a worker already gone
      child.on("message", (message: WorkerEvent | { type: "flush" }) => {
        if (message.type === "flush") return;
        model.apply(message);
        if (message.type === "acquired" && message.victim && child.pid !== undefined) {
          // Hold long enough for a couple of heartbeats to show, then die without a word.
          timers.push(
            setTimeout(() => {
              if (child.exitCode !== null || child.pid === undefined) return;
              child.kill("SIGKILL");
              model.killed(name, child.pid, message.fence);
              view.update();
            }, settings.heartbeatMs * 2.5),
          );
        }
        view.update();
      });
      child.on("exit", (code, signal) => {
        exited.add(name);
        if (stopping) return; // killed by our own clean-up: nothing to report
        const w = model.worker(name);
        if (w.status !== "done" && w.status !== "killed" && w.status !== "failed") {
          const tail = (stderrTail.get(name) ?? "").trim().split("\n").pop() ?? "";
          model.apply({
            type: "failed",
            worker: name,
            at: Date.now(),
            message: `exited ${code ?? signal}${tail === "" ? "" : `: ${tail}`}`,
          });
        }
        view.update();
        if (exited.size === names.length) wake();
      });
    }

    // ---- watching the lock item ----
    const poll = setInterval(() => {
      if (reading !== undefined) return;
      reading = locks
        .read<DemoData>(LOCK_ID)
        .then((info) => {
          if (info !== undefined) {
            model.observed({
              held: info.held,
              holder: info.holder,
              fence: info.fence,
              heartbeatAt: info.heartbeatAt,
              counter: info.data?.counter,
              readAt: Date.now(),
            });
          }
        })
        .catch(() => undefined) // the next read will tell
        .finally(() => {
          reading = undefined;
        });
    }, POLL_MS);
    timers.push(poll);
    if (isInteractive(out) && !settings.plain) timers.push(setInterval(() => view.update(), REDRAW_MS));

    // ---- until every worker is done, or time is up ----
    const limitMs = Math.max(60_000, estimatedMs * 4);
    const timedOut = await new Promise<boolean>((done) => {
      const limit = setTimeout(() => done(true), limitMs);
      wake = () => {
        clearTimeout(limit);
        done(false);
      };
      if (exited.size === names.length) wake();
    });
    for (const timer of timers) clearInterval(timer);
    if (interrupted !== undefined) {
      stopping = true;
      model.end();
      view.finish();
      process.stderr.write(`dynamolock: demo interrupted by ${interrupted}\n`);
      return 128 + (interrupted === "SIGINT" ? 2 : 15);
    }
    if (timedOut)
      model.log.push({
        at: Date.now(),
        text: `the demo did not finish within ${formatDuration(limitMs)}`,
        tone: "bad",
      });

    const final = await locks.read<DemoData>(LOCK_ID);
    model.end();
    view.finish();
    const verification = verify(
      model,
      { counter: final?.data?.counter, held: final?.held ?? false },
      { leaseMs: settings.leaseMs, expectKill: settings.kill, expectedWorkers: settings.workers },
    );
    out.write(
      `\n${c.bold(verification.ok ? c.green("Verification passed") : c.red("Verification FAILED"))}\n`,
    );
    for (const check of verification.checks) {
      out.write(`  ${check.ok ? c.green("✓") : c.red("✗")} ${check.text}\n`);
    }
    for (const w of model.workers) {
      if (w.failure !== undefined) out.write(`  ${c.red("!")} ${w.name}: ${w.failure}\n`);
    }
    const svg = renderTimeline(model, {
      lockId: LOCK_ID,
      leaseMs: settings.leaseMs,
      heartbeatMs: settings.heartbeatMs,
      verification,
    });
    try {
      await writeFile(settings.out, svg);
      out.write(`\nTimeline of who held the lock when: ${settings.out} (open it in a browser)\n`);
    } catch (err) {
      process.stderr.write(
        `dynamolock: could not write the timeline to ${settings.out}: ${(err as Error).message}\n`,
      );
    }
    return verification.ok ? EXIT.ok : EXIT.failed;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    stopping = true;
    for (const timer of timers) clearInterval(timer);
    const running = [...children.values()].filter((c) => c.exitCode === null && c.signalCode === null);
    for (const child of running) child.kill("SIGKILL");
    await Promise.all(running.map((child) => new Promise((resolve) => child.once("exit", resolve))));
    await reading;
    // dynalite answers requests that dead workers sent just before they died after they are gone;
    // closing its store under such a request makes it throw. Let them finish first.
    await delay(50);
    await locks.close().catch(() => undefined);
    await server.close();
  }
}
