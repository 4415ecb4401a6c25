/**
 * What a waiting `run` shows: who holds the lock, how old its heartbeat is, how long we have
 * waited. It reads nothing itself: it watches the answers to the acquire loop's own polls, so
 * showing progress costs no extra DynamoDB requests.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type LockRecord, parseRecord } from "../item.js";
import { formatDuration } from "./duration.js";
import { isInteractive, type Output, StatusLine } from "./terminal.js";

/** How often the terminal line is redrawn. */
const REDRAW_MS = 250;
/** How often a plain log says it is still waiting, when nothing else changed. */
const STILL_WAITING_LOG_MS = 60_000;

let watchers = 0;

export interface WaitWatcher {
  /** Stops watching and clears the status line. */
  stop(): void;
}

export function watchWaiting(client: DynamoDBClient, lockId: string, stream: Output): WaitWatcher {
  const name = `dynamolockCliWaitWatcher${++watchers}`;
  const started = performance.now();
  const interactive = isInteractive(stream);
  const line = new StatusLine(stream);
  let seen: LockRecord | undefined;
  let logged: { owner: string | undefined; at: number } | undefined;

  const render = () => {
    const record = seen;
    if (record?.owner === undefined) return;
    const waited = formatDuration(performance.now() - started);
    const holder = record.holder === undefined ? "another holder" : `"${record.holder}"`;
    const age = record.heartbeatAt === undefined ? undefined : Date.now() - record.heartbeatAt;
    const lease = record.leaseMs;
    let beat = age === undefined ? "" : `, heartbeat ${formatDuration(Math.max(0, age))} ago`;
    if (age !== undefined && lease !== undefined && age > lease) beat += " (lease over: taking over soon)";
    if (interactive) {
      line.show(
        `dynamolock: waiting for lock "${lockId}": held by ${holder} (fence ${record.fence})${beat}; waited ${waited}`,
      );
      return;
    }
    const now = performance.now();
    if (logged === undefined || logged.owner !== record.owner || now - logged.at >= STILL_WAITING_LOG_MS) {
      const still = logged !== undefined && logged.owner === record.owner ? "still " : "";
      stream.write(
        `dynamolock: ${still}waiting for lock "${lockId}": held by ${holder} (fence ${record.fence})${beat}; waited ${waited}\n`,
      );
      logged = { owner: record.owner, at: now };
    }
  };

  const observe = (item: unknown) => {
    const record = parseRecord(item as Parameters<typeof parseRecord>[0]);
    if (record === undefined) return;
    seen = record;
    if (!interactive) render();
  };

  client.middlewareStack.add(
    (next, context) => async (args) => {
      try {
        const result = await next(args);
        if (context.commandName === "GetItemCommand") observe((result.output as { Item?: unknown }).Item);
        return result;
      } catch (err) {
        // A failed take returns the current item on DynamoDB (ReturnValuesOnConditionCheckFailure).
        observe((err as { Item?: unknown } | undefined)?.Item);
        throw err;
      }
    },
    { step: "initialize", name },
  );
  const timer = setInterval(render, interactive ? REDRAW_MS : 5_000);
  timer.unref();

  return {
    stop() {
      clearInterval(timer);
      client.middlewareStack.remove(name);
      line.clear();
    },
  };
}
