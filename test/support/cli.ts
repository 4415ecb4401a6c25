/**
 * Running the `dynamolock` CLI as a separate process, the way users do: through tsx from source (so
 * tests never run a stale build), with a clean AWS environment pointing at the test server. Every
 * process started here is tracked and killed by pid in `killAll()`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const REPO = fileURLToPath(new URL("../..", import.meta.url));
const TSX = import.meta.resolve("tsx");
/** No run of the CLI in these tests needs longer; past it the process is killed and the test fails. */
const DEFAULT_LIMIT_MS = 60_000;

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly done: Promise<CliResult>;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout or stderr contains `text`; rejects if the process ends first. */
  waitFor(text: string | RegExp, stream?: "stdout" | "stderr"): Promise<void>;
}

const running = new Set<ChildProcess>();

/** The environment without the caller's AWS settings, so no test can reach a real account. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("AWS_") && !key.startsWith("DYNAMOLOCK_")) env[key] = value;
  }
  return { ...env, NO_COLOR: "1", AWS_EC2_METADATA_DISABLED: "true", ...extra };
}

export function startCli(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; limitMs?: number; input?: string } = {},
): CliProcess {
  const child = spawn(process.execPath, ["--import", TSX, CLI, ...args], {
    cwd: REPO,
    env: options.env ?? cleanEnv(),
    stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
  if (child.pid === undefined) throw new Error("could not start the CLI");
  running.add(child);
  let out = "";
  let err = "";
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const waiter of waiters) waiter();
  };
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    notify();
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    err += chunk;
    notify();
  });
  if (options.input !== undefined) child.stdin?.end(options.input);
  const limit = setTimeout(() => child.kill("SIGKILL"), options.limitMs ?? DEFAULT_LIMIT_MS);
  const done = new Promise<CliResult>((resolve) => {
    child.on("close", (code, signal) => {
      clearTimeout(limit);
      running.delete(child);
      notify();
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
  let ended = false;
  void done.then(() => {
    ended = true;
    notify();
  });
  return {
    child,
    pid: child.pid,
    done,
    stdout: () => out,
    stderr: () => err,
    waitFor(text, stream) {
      const found = () => {
        const haystack = stream === "stdout" ? out : stream === "stderr" ? err : out + err;
        return typeof text === "string" ? haystack.includes(text) : text.test(haystack);
      };
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (found()) {
            waiters.delete(check);
            resolve();
          } else if (ended) {
            waiters.delete(check);
            reject(
              new Error(`the CLI ended before printing ${String(text)}; stdout: ${out}; stderr: ${err}`),
            );
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Runs the CLI to completion. */
export function cli(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; limitMs?: number; input?: string } = {},
): Promise<CliResult> {
  return startCli(args, options).done;
}

/** Kills every CLI process a test left running (by pid) and waits for them to go. */
export async function killAll(): Promise<void> {
  const left = [...running];
  for (const child of left) child.kill("SIGKILL");
  await Promise.all(
    left.map((child) =>
      child.exitCode !== null || child.signalCode !== null
        ? undefined
        : new Promise((r) => child.once("close", r)),
    ),
  );
}

/** Whether a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Whether a process with this pid still runs: unlike {@link alive}, a zombie (dead, waiting to be
 * reaped by its parent or init) does not count. It can no longer do anything.
 */
export function stillRunning(pid: number): boolean {
  if (!alive(pid)) return false;
  try {
    // /proc/PID/stat: "pid (comm) state ...", comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no /proc (not Linux): trust kill(pid, 0)
  }
}
