/**
 * Counts the requests every client in this process sends, whatever its SDK, from Node's own
 * `http.client.request.start` diagnostics channel: each DynamoDB request names its operation in the
 * `X-Amz-Target` header. Counting on the wire rather than in a client's middleware sees the library's
 * default client (which the caller cannot reach), the SDK v2 peer, and SDK retries alike.
 */
import dc from "node:diagnostics_channel";

const READS = new Set(["GetItem", "BatchGetItem", "Query", "Scan"]);

export interface RequestCounts {
  reads: number;
  writes: number;
  other: number;
  readonly byOperation: Map<string, number>;
}

const counts: RequestCounts = { reads: 0, writes: 0, other: 0, byOperation: new Map() };
let subscribed = false;

function onRequest(message: unknown): void {
  const request = (message as { request?: { getHeader(name: string): unknown } }).request;
  const target = String(request?.getHeader("x-amz-target") ?? "");
  const op = target.slice(target.indexOf(".") + 1);
  counts.byOperation.set(op, (counts.byOperation.get(op) ?? 0) + 1);
  if (READS.has(op)) counts.reads++;
  else if (/^(Put|Update|Delete)Item$|^TransactWriteItems$/.test(op)) counts.writes++;
  else counts.other++;
}

/** Starts counting (idempotent) and returns a snapshot function. */
export function requestCounter(): () => { reads: number; writes: number } {
  if (!subscribed) {
    dc.subscribe("http.client.request.start", onRequest);
    subscribed = true;
  }
  return () => ({ reads: counts.reads, writes: counts.writes });
}
