/**
 * The command `run` supervises: started with the lock's fence in its environment, sent the signals
 * dynamolock receives, and stopped (SIGTERM, then SIGKILL after a grace period) if the lock is lost.
 */
import { type ChildProcess, spawn } from "node:child_process";
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
   * reaches the command exactly once, through us, and a shell pipeline is stopped as a whole. On a
   * terminal the command stays in our foreground group so it can read the terminal; Ctrl-C then
   * reaches it from the terminal directly, so we do not send a second SIGINT.
   */
  readonly ownGroup: boolean;
}

export class Supervisor {
  readonly #options: SupervisorOptions;
  #child: ChildProcess | undefined;
  #exited = false;
  #killTimer: NodeJS.Timeout | undefined;

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
      child.on("error", (err: NodeJS.ErrnoException) => {
        // With a pid the command did start; its exit event settles the promise.
        if (child.pid !== undefined) return;
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
        this.#finish();
        resolve({ code, signal });
      });
    });
  }

  /** Passes on a signal dynamolock received. See {@link SupervisorOptions.ownGroup}. */
  forward(signal: NodeJS.Signals): void {
    if (!this.#options.ownGroup && (signal === "SIGINT" || signal === "SIGHUP")) return;
    this.#send(signal);
  }

  /** SIGTERM now, SIGKILL after `graceMs` if it is still running (at once if `graceMs` is 0). */
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
    if (pid === undefined || this.#exited) return;
    try {
      process.kill(this.#options.ownGroup ? -pid : pid, signal);
    } catch {
      // Already gone (ESRCH): its exit event is on its way.
    }
  }

  #finish(): void {
    this.#exited = true;
    if (this.#killTimer !== undefined) clearTimeout(this.#killTimer);
  }
}
