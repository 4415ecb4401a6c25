/**
 * The command `run` supervises: started with the lock's fence in its environment, sent the signals
 * dynamolock receives, and stopped (SIGTERM, then SIGKILL after a grace period) if the lock is lost.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import { CliError, EXIT } from "./exit-codes.js";

export interface ChildExit {
  /** The exit code, or null if a signal ended it. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** The shell's convention: a process ended by signal N exits with 128 + N. */
export function exitCodeOf(exit: ChildExit): number {
  if (exit.code !== null) return exit.code;
  const number = exit.signal === null ? undefined : constants.signals[exit.signal];
  return 128 + (number ?? 0);
}

export interface SupervisorOptions {
  /**
   * Start the command in its own process group (and session) and signal that whole group. Right
   * when no terminal sends signals to the group we are in (cron, CI, scripts): every signal then
   * reaches the command exactly once, through us, a shell pipeline is stopped as a whole, and what
   * the command leaves running in the background is still found (and waited for, or stopped)
   * after the command itself exited. On a terminal the command stays in our foreground group so it
   * can read the terminal; then only the command itself is ours to signal.
   */
  readonly ownGroup: boolean;
}

/** How often we look whether the command's process group still has members: no event says so. */
const GROUP_POLL_MS = 50;

/** Whether any process of group `pgid` is alive, zombies (dead, not yet reaped) not counted. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    // EPERM: a member we may not signal (it changed user); it is alive all the same.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  // kill() also finds zombies: members whose parent died and that init has yet to reap (some
  // container inits reap late, or never). They cannot run any more; on Linux, look past them.
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return true; // no /proc: trust kill()
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may contain anything, so split after its last ")".
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z" && state !== "X") return true;
  }
  return false;
}

export class Supervisor {
  readonly #options: SupervisorOptions;
  #child: ChildProcess | undefined;
  /** The command itself exited (and was reaped). */
  #exited = false;
  /** Nothing of the command is left: it exited and, in its own group, so did every member. */
  #gone = false;
  #killTimer: NodeJS.Timeout | undefined;
  #emptied: Promise<void> | undefined;

  constructor(options: SupervisorOptions) {
    this.#options = options;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Whether `run` was called: from then on, signals are for the command. */
  get started(): boolean {
    return this.#child !== undefined;
  }

  /** Starts the command; resolves when it exits. "Not found" and "not executable" reject. */
  run(command: readonly string[], env: NodeJS.ProcessEnv): Promise<ChildExit> {
    const [file, ...args] = command;
    if (file === undefined || file === "")
      return Promise.reject(new CliError("run: empty command", EXIT.usage));
    return new Promise<ChildExit>((resolve, reject) => {
      const child = spawn(file, args, {
        stdio: "inherit",
        env,
        detached: this.#options.ownGroup,
      });
      this.#child = child;
      if (child.pid !== undefined) process.on("exit", this.#onExit);
      child.on("error", (err: NodeJS.ErrnoException) => {
        // With a pid the command did start; its exit event settles the promise.
        if (child.pid !== undefined) return;
        this.#exited = true;
        this.#finish();
        if (err.code === "ENOENT") reject(new CliError(`run: command not found: ${file}`, EXIT.notFound));
        else if (err.code === "EACCES")
          reject(new CliError(`run: permission denied: ${file}`, EXIT.cannotExecute));
        else
          reject(
            new CliError(`run: cannot start ${file}: ${err.message}`, EXIT.cannotExecute, { cause: err }),
          );
      });
      child.once("exit", (code, signal) => {
        this.#exited = true;
        // Not yet #finish(): members of its group may live on, and a pending SIGKILL is for them.
        if (!this.#options.ownGroup) this.#finish();
        resolve({ code, signal });
      });
    });
  }

  /**
   * Whether anything the command started in its process group still runs after the command itself
   * exited. Always false when the command is not in its own group: we cannot tell its leftovers
   * from our own group's members.
   */
  get lingering(): boolean {
    if (!this.#exited || this.#gone || !this.#options.ownGroup) return false;
    const pid = this.#child?.pid;
    if (pid === undefined || !groupAlive(pid)) {
      this.#finish();
      return false;
    }
    return true;
  }

  /**
   * Resolves once nothing of the command is left: it exited, and, in its own group, so did every
   * process in that group (a background job it left, a daemon it forked). Call after `run` settled.
   */
  gone(): Promise<void> {
    this.#emptied ??= new Promise<void>((resolve) => {
      const look = () => {
        if (!this.lingering) resolve();
        else setTimeout(look, GROUP_POLL_MS);
      };
      look();
    });
    return this.#emptied;
  }

  /** Passes on a signal dynamolock received: to the command's group, or to the command itself. */
  forward(signal: NodeJS.Signals): void {
    this.#send(signal);
  }

  /**
   * SIGTERM now, SIGKILL after `graceMs` to whatever is then left (at once if `graceMs` is 0). In
   * its own group, the SIGKILL goes to the group even if the command itself already exited: a
   * member that ignores SIGTERM must not outlive the grace period.
   */
  stop(graceMs: number): void {
    if (graceMs <= 0) {
      this.#send("SIGKILL");
      return;
    }
    this.#send("SIGTERM");
    this.#killTimer ??= setTimeout(() => this.#send("SIGKILL"), graceMs);
  }

  #send(signal: NodeJS.Signals): void {
    const pid = this.#child?.pid;
    if (pid === undefined || this.#gone) return;
    try {
      // While a member of the group lives, its id cannot name another group (the kernel does not
      // reuse it); #gone is set once we saw the group empty, so we never signal a stranger.
      if (this.#options.ownGroup) process.kill(-pid, signal);
      else if (!this.#exited) process.kill(pid, signal);
    } catch {
      // Already gone (ESRCH): its exit event is on its way, or the group is empty.
    }
  }

  /**
   * dynamolock ending with the command still running (a crash, an unhandled rejection's exit 70,
   * or any other exit path we did not think of): nobody would heartbeat or stop the command, so
   * kill it, synchronously, as the last thing this process does.
   */
  readonly #onExit = () => this.#send("SIGKILL");

  #finish(): void {
    this.#gone = true;
    process.off("exit", this.#onExit);
    if (this.#killTimer !== undefined) clearTimeout(this.#killTimer);
  }
}
