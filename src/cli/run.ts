/**
 * `dynamolock run`: flock(1) for a fleet. Takes the lock (waiting as asked), runs the command with
 * the fence in its environment while the lock heartbeats, releases when the command (and, in its
 * own process group, everything it left running there) has exited, and exits with the command's
 * code. Nothing of the command may run unguarded: it starts only while the lock is valid, and a
 * lost lock stops all of it before `run` exits.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import type { LockData } from "../data.js";
import { LockHeldError, LockLostError } from "../errors.js";
import type { Lock } from "../lock.js";
import { MAX_PERMITS } from "../multi-options.js";
import { LOCK_OPTIONS, optionalDuration, optionalString, parse, positiveInteger } from "./args.js";
import { lockTarget } from "./connection.js";
import { formatDuration } from "./duration.js";
import { EXIT, usageError } from "./exit-codes.js";
import { HELP } from "./help.js";
import { jsonReplacer, parseDataJson } from "./json.js";
import { explain, heldError } from "./report.js";
import { type ChildExit, exitCodeOf, Supervisor } from "./supervisor.js";
import { isInteractive } from "./terminal.js";
import { watchWaiting } from "./waiting.js";

const RUN_OPTIONS = {
  ...LOCK_OPTIONS,
  lease: { type: "string" },
  heartbeat: { type: "string" },
  wait: { type: "string", short: "w" },
  holder: { type: "string" },
  grace: { type: "string" },
  "record-exit": { type: "boolean" },
  permits: { type: "string" },
  shared: { type: "boolean" },
  verbose: { type: "boolean", short: "v" },
} as const;

/**
 * Signals passed on to the command: every one that would otherwise end `run` (Node's default
 * action) and that Node lets us catch. Ending `run` alone would leave the command running with
 * nobody to heartbeat or to stop it when the lock is lost.
 */
const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR2"] as const;
export const DEFAULT_LEASE_MS = 30_000;
export const DEFAULT_GRACE_MS = 10_000;

/** Why `run` stopped waiting: a signal it received. */
export class Interrupted extends Error {
  readonly signal: NodeJS.Signals;
  constructor(signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
    this.signal = signal;
  }
}

const log = (line: string) => process.stderr.write(`dynamolock: ${line}\n`);

/** The data the command left in its data file, if it changed it; a broken file is reported, not stored. */
async function dataWrittenBy(file: string, initial: string): Promise<LockData | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined; // removed: nothing to store
  }
  if (text === initial) return undefined;
  try {
    return parseDataJson(text, "DYNAMOLOCK_DATA_FILE");
  } catch (err) {
    log(`${(err as Error).message}; keeping the lock's stored data`);
    return undefined;
  }
}

/** The part of a lock `run` uses: a fake of it is enough to test what `run` does with a lock. */
export type HeldLock = Pick<Lock, "fence" | "holder" | "data" | "signal" | "held" | "release">;

/** What {@link supervise} needs besides the lock. */
export interface Supervised {
  readonly id: string;
  readonly table: string;
  readonly command: readonly string[];
  readonly child: Supervisor;
  /** After SIGTERM on a lost lock, how long before SIGKILL. */
  readonly graceMs: number;
  readonly recordExit: boolean;
  /**
   * A permit or shared holder (--permits, --shared): the lock's data is read-only (several holders
   * writing one value would overwrite each other), so what the command writes is not stored.
   */
  readonly readOnlyData?: boolean;
  readonly verbose: boolean;
  /** Aborts, with an {@link Interrupted} reason, when `run` receives a signal before the command starts. */
  readonly interrupted: AbortSignal;
  /** A failed release, in one line. */
  readonly explain: (err: unknown) => string;
}

/**
 * Runs the command under a lock just taken, and releases it: the exit code `run` ends with.
 */
export async function supervise(lock: HeldLock, run: Supervised): Promise<number> {
  const { id, child, graceMs } = run;
  // Listen for the loss before anything else, synchronously: a signal that aborts while we await
  // below would otherwise never call a listener added later, and the command would run unguarded.
  let lost: LockLostError | undefined;
  const onLost = () => {
    lost = lock.signal.reason as LockLostError;
    if (!child.started) return; // the check before spawning sees `lost`: the command never starts
    const kill = graceMs === 0 ? "SIGKILL now" : `SIGTERM now, SIGKILL in ${formatDuration(graceMs)}`;
    log(`${lost.message}; stopping the command (${kill})`);
    child.stop(graceMs);
  };
  if (lock.signal.aborted) onLost();
  else lock.signal.addEventListener("abort", onLost, { once: true });
  let dataDir: string | undefined;
  try {
    // The lock's data, as JSON, in a private file: the command may rewrite it, and what it leaves
    // there is stored with the release (atomically with unlocking, like `unlock(data)`).
    dataDir = await mkdtemp(join(tmpdir(), "dynamolock-"));
    const dataFile = join(dataDir, "data.json");
    const initialData = `${JSON.stringify(lock.data ?? {}, jsonReplacer, 2)}\n`;
    await writeFile(dataFile, initialData, { mode: 0o600 });

    const startedAt = Date.now();
    const env = {
      ...process.env,
      DYNAMOLOCK_FENCE: String(lock.fence),
      DYNAMOLOCK_ID: id,
      DYNAMOLOCK_TABLE: run.table,
      DYNAMOLOCK_HOLDER: lock.holder,
      DYNAMOLOCK_DATA_FILE: dataFile,
    };
    if (run.interrupted.aborted) {
      // A signal arrived between taking the lock and starting the command.
      await lock.release().catch(() => undefined);
      const signal = (run.interrupted.reason as Interrupted).signal;
      return 128 + (constants.signals[signal] ?? 0);
    }
    // The last look before spawning, in the same synchronous run as the spawn: nothing can change
    // between them. `held` also catches a lease that ran out by our clock before its abort fired.
    if (lost !== undefined || lock.signal.aborted || !lock.held) {
      const why = lost?.message ?? `Lock "${id}" (fence ${lock.fence}) is no longer held`;
      log(`${why}; not starting the command; exiting ${EXIT.lost}`);
      return EXIT.lost;
    }
    let exit: ChildExit;
    try {
      exit = await child.run(run.command, env);
    } catch (err) {
      await lock.release().catch(() => undefined);
      throw err;
    }
    if (lost === undefined && child.lingering) {
      // Like flock(1), whose lock lives as long as any process holding its descriptor: what the
      // command left running in its group works under the lock too, so the lock stays held (and
      // heartbeats) until the last of them exits. Losing it meanwhile stops them (onLost).
      log(
        `the command exited ${exitCodeOf(exit)}; keeping the lock until the processes it left in its process group (${child.pid}) exit`,
      );
    }
    // After a loss this waits out the SIGTERM and, past --grace, the SIGKILL of the whole group.
    await child.gone();
    lock.signal.removeEventListener("abort", onLost);
    const code = exitCodeOf(exit);
    if (lost !== undefined) {
      log(`the command was stopped (exit ${code}) because the lock was lost; exiting ${EXIT.lost}`);
      return EXIT.lost;
    }

    let data = run.readOnlyData === true ? undefined : await dataWrittenBy(dataFile, initialData);
    if (run.recordExit && run.readOnlyData !== true) {
      data = {
        ...(data ?? lock.data ?? {}),
        lastRun: {
          exitCode: exit.code,
          signal: exit.signal,
          holder: lock.holder,
          fence: lock.fence,
          startedAt: new Date(startedAt).toISOString(),
          endedAt: new Date().toISOString(),
          durationMs: Date.now() - startedAt,
        },
      };
    }
    try {
      await lock.release(data);
      if (run.verbose) log(`released lock "${id}" (fence ${lock.fence}); the command exited ${code}`);
    } catch (err) {
      if (err instanceof LockLostError) {
        log(`${err.message}; the command's work may have overlapped another holder's; exiting ${EXIT.lost}`);
        return EXIT.lost;
      }
      if (err instanceof TypeError || err instanceof RangeError) {
        log(`could not store the data the command wrote: ${err.message}`);
        await lock.release().catch(() => undefined);
        return code === 0 ? EXIT.usage : code;
      }
      // The lock stays ours until its lease runs out; the command's result is still the answer.
      log(`releasing lock "${id}" failed (${run.explain(err)}); it frees itself after its lease`);
    }
    return code;
  } finally {
    lock.signal.removeEventListener("abort", onLost);
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * --permits N (a semaphore: at most N runs at once) or --shared (a reader–writer lock's shared
 * side), passed through to acquire; the two ask for different kinds of lock, so not both.
 */
export function multiHolderOption(
  values: Record<string, string | boolean | undefined>,
): { permits: number } | { mode: "shared" } | Record<string, never> {
  const shared = values.shared === true;
  if (values.permits !== undefined && shared) {
    throw usageError(
      "run: --permits and --shared ask for different kinds of lock (a semaphore, a reader–writer lock's shared side); give one",
    );
  }
  if ((values.permits !== undefined || shared) && values["record-exit"] === true) {
    throw usageError(
      `run: --record-exit stores data, and with ${shared ? "--shared" : "--permits"} the lock's data is read-only (several holders would overwrite each other)`,
    );
  }
  if (values.permits !== undefined) return { permits: positiveInteger(values, "permits", 1, MAX_PERMITS) };
  return shared ? { mode: "shared" } : {};
}

export async function runCommand(argv: readonly string[]): Promise<number> {
  const separator = argv.indexOf("--");
  const own = separator === -1 ? argv : argv.slice(0, separator);
  const command = separator === -1 ? [] : argv.slice(separator + 1);
  const { values, positionals } = parse("run", own, RUN_OPTIONS, Number.POSITIVE_INFINITY);
  if (values.help === true) {
    process.stdout.write(HELP.run);
    return EXIT.ok;
  }
  if (positionals.length > 0) {
    // Without "--" we cannot tell the command's options from ours; say where it goes.
    throw usageError(
      `run: put the command after "--": dynamolock run --table T --id ID -- ${[...positionals, ...command].join(" ")}`,
    );
  }
  if (command.length === 0) {
    throw usageError(
      'run: missing the command, after "--": dynamolock run --table T --id ID -- CMD [ARGS...]',
    );
  }
  const leaseMs = optionalDuration(values, "lease") ?? DEFAULT_LEASE_MS;
  const heartbeatMs = optionalDuration(values, "heartbeat") ?? Math.max(1, Math.round(leaseMs / 6));
  if (heartbeatMs > leaseMs / 3) {
    throw usageError(
      `--heartbeat ${formatDuration(heartbeatMs)} must be at most a third of --lease ${formatDuration(leaseMs)}, so a failed heartbeat can be retried in time`,
    );
  }
  const waitMs = optionalDuration(values, "wait", { allowZero: true }) ?? 0;
  const graceMs = optionalDuration(values, "grace", { allowZero: true }) ?? DEFAULT_GRACE_MS;
  const holder = optionalString(values, "holder");
  const verbose = values.verbose === true;
  const multi = multiHolderOption(values);

  const target = lockTarget("run", values, {
    leaseMs,
    heartbeatMs,
    ...(holder === undefined ? {} : { holder }),
  });
  const { id, locks } = target;
  const interactive = isInteractive(process.stdin);
  const child = new Supervisor({ ownGroup: !interactive });
  const waiting = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (child.started) child.forward(signal);
    else waiting.abort(new Interrupted(signal));
  };
  for (const signal of FORWARDED) process.on(signal, onSignal);

  let lock: Lock;
  try {
    // With no wait there is nothing to show: the answer (taken, or exit 75) comes at once.
    const watcher = waitMs > 0 ? watchWaiting(id, process.stderr) : undefined;
    try {
      lock = await locks.acquire(id, {
        waitMs,
        signal: waiting.signal,
        ...multi,
        ...(watcher === undefined ? {} : { onWait: watcher.onWait }),
      });
    } catch (err) {
      if (err instanceof Interrupted) {
        // The status line is still drawn (after the terminal's "^C"): erase it first, or the
        // message would be appended to it and the prompt would come back mid-line.
        watcher?.stop();
        log(`interrupted by ${err.signal} while waiting for lock "${id}"`);
        return 128 + (constants.signals[err.signal] ?? 0);
      }
      if (err instanceof LockHeldError) throw heldError(err, waitMs);
      throw err;
    } finally {
      watcher?.stop();
    }
    if (verbose) log(`acquired lock "${id}" (fence ${lock.fence}) as "${lock.holder}"`);
    return await supervise(lock, {
      id,
      table: target.table,
      command,
      child,
      graceMs,
      recordExit: values["record-exit"] === true,
      readOnlyData: Object.keys(multi).length > 0,
      verbose,
      interrupted: waiting.signal,
      explain: (err) => explain(err, target).message,
    });
  } finally {
    for (const signal of FORWARDED) process.off(signal, onSignal);
    await target.close().catch(() => undefined);
  }
}
