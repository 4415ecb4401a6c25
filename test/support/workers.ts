/**
 * Worker processes for the multi-process tests: a fixture script (test/fixtures/) run with tsx in a
 * child process against a file's shared table, whose stdout the test reads line by line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { SharedTable } from "./process.js";

export interface Worker {
  readonly child: ChildProcess;
  /** The non-empty lines the worker has written to stdout so far. */
  readonly lines: string[];
}

export interface WorkerOptions {
  /** "pipe" for a worker the test talks to (e.g. a start signal); by default it reads nothing. */
  readonly stdin?: "pipe" | "ignore";
  /** Called with each non-empty line as it arrives. */
  readonly onLine?: (line: string) => void;
}

/**
 * Starts workers on `server`'s table: each gets the endpoint and the table in ENDPOINT and TABLE,
 * next to `env`. Any still running when the file's tests are over is killed with SIGKILL (by its
 * own pid, before the server closes), so a failed test leaves no process behind.
 */
export function workerStarter(
  server: SharedTable,
): (script: string, env: Record<string, string>, options?: WorkerOptions) => Worker {
  const children = new Set<ChildProcess>();
  server.onClose(() => {
    for (const child of children) child.kill("SIGKILL");
  });
  return (script, env, options = {}) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", fileURLToPath(new URL(`../fixtures/${script}`, import.meta.url))],
      {
        env: { ...process.env, ENDPOINT: server.backend.endpoint, TABLE: server.table, ...env },
        stdio: [options.stdin ?? "ignore", "pipe", "inherit"],
      },
    );
    children.add(child);
    child.on("exit", () => children.delete(child));
    return { child, lines: linesOf(child, options.onLine) };
  };
}

/**
 * The non-empty lines `child` writes to stdout, collected as they arrive (a line split across
 * chunks is joined), each also passed to `onLine`. Shared with bench/contention.ts.
 */
export function linesOf(child: ChildProcess, onLine?: (line: string) => void): string[] {
  const lines: string[] = [];
  let buffered = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    for (const line of parts) {
      if (line.length === 0) continue;
      lines.push(line);
      onLine?.(line);
    }
  });
  return lines;
}
