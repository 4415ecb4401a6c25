/**
 * What a waiting `run` shows: who holds the lock, how old its heartbeat is, how long we have
 * waited. It reads nothing itself: the acquire loop reports every look it takes (`onWait`), so
 * showing progress costs no extra DynamoDB requests.
 */
import type { WaitProgress } from "../client.js";
import { formatDuration } from "./duration.js";
import { isInteractive, type Output, StatusLine } from "./terminal.js";

/** How often the terminal line is redrawn. */
const REDRAW_MS = 250;
/** How often a plain log says it is still waiting, when nothing else changed. */
const STILL_WAITING_LOG_MS = 60_000;

export interface WaitWatcher {
  /** Pass as `onWait` to `acquire`. */
  readonly onWait: (progress: WaitProgress) => void;
  /** Stops watching and clears the status line. */
  stop(): void;
}

export function watchWaiting(lockId: string, stream: Output): WaitWatcher {
  const started = performance.now();
  const interactive = isInteractive(stream);
  const line = new StatusLine(stream);
  let seen: WaitProgress | undefined;
  let logged: { holder: string | undefined; fence: number; at: number } | undefined;

  const render = () => {
    const progress = seen;
    if (progress === undefined) return;
    const waited = formatDuration(performance.now() - started);
    const holder = progress.holder === undefined ? "another holder" : `"${progress.holder}"`;
    const age = progress.heartbeatAt === undefined ? undefined : Date.now() - progress.heartbeatAt;
    const lease = progress.leaseMs;
    let beat = age === undefined ? "" : `, heartbeat ${formatDuration(Math.max(0, age))} ago`;
    if (age !== undefined && lease !== undefined && age > lease) beat += " (lease over: taking over soon)";
    const text = `waiting for lock "${lockId}": held by ${holder} (fence ${progress.fence})${beat}; waited ${waited}`;
    if (interactive) {
      line.show(`dynamolock: ${text}`);
      return;
    }
    const now = performance.now();
    const sameHolder =
      logged !== undefined && logged.fence === progress.fence && logged.holder === progress.holder;
    if (!sameHolder || now - (logged?.at ?? 0) >= STILL_WAITING_LOG_MS) {
      stream.write(`dynamolock: ${sameHolder ? "still " : ""}${text}\n`);
      logged = { holder: progress.holder, fence: progress.fence, at: now };
    }
  };

  const timer = setInterval(render, interactive ? REDRAW_MS : 5_000);
  timer.unref();
  return {
    onWait(progress) {
      seen = progress;
      if (!interactive) render();
    },
    stop() {
      clearInterval(timer);
      line.clear();
    },
  };
}
