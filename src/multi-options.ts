/**
 * The acquire options that ask for a lock with several holders (`permits`, `mode`), checked before
 * any request: a typed error naming the argument.
 */
import type { HolderKind } from "./holders.js";
import { fail } from "./validate.js";

/**
 * The most permits a semaphore may have. Every holder's entry lives in the one item (400 KB), and
 * every heartbeat rewrites the whole item: a write costs one WCU per KB of the item, so N holders
 * heartbeating every `heartbeatMs` cost about N × (N × entry size / 1 KB) WCU per `heartbeatMs`,
 * quadratic in N, and one partition takes at most 1 000 WCU/s. At 100 holders with short names (an
 * item near 13 KB) and a heartbeat every 5 s that is about 1 300 WCU per 5 s (260 WCU/s): within a
 * partition's limit. With long names (an item near 120 KB) it is about 12 000 WCU per 5 s
 * (2 400 WCU/s), above it: long names need fewer holders or a longer `heartbeatMs`
 * (docs/protocol.md, "Cost").
 */
export const MAX_PERMITS = 100;

/** The most shared holders of a reader–writer lock at once, for the same reasons; more wait, as for a full semaphore. */
export const MAX_SHARED_HOLDERS = 100;

/**
 * The most one holder entry takes in the item: its key (an owner token, at most 64 bytes as the
 * runtime draws them), the attribute names and number values of the entry, and the holder name (at
 * most 1 024 bytes, checked with the client's options).
 */
export const MAX_ENTRY_BYTES = 64 + 96 + 1024;

/**
 * Room kept in the item for holder entries and a writer's intent, whoever writes them: what the
 * exclusive holder of a reader–writer id may not fill with data (src/client.ts), so readers can
 * always come in once it leaves.
 */
export const HOLDERS_ROOM_BYTES = (Math.max(MAX_PERMITS, MAX_SHARED_HOLDERS) + 1) * MAX_ENTRY_BYTES;

/** Undefined for the mutex (the default, and `mode: "exclusive"`). */
export function holderKindOf(o: {
  readonly permits?: unknown;
  readonly mode?: unknown;
}): HolderKind | undefined {
  const { permits, mode } = o;
  if (mode !== undefined && mode !== "shared" && mode !== "exclusive") {
    fail("mode", '"shared" or "exclusive"', mode);
  }
  if (permits !== undefined) {
    if (typeof permits !== "number") fail("permits", `a whole number from 1 to ${MAX_PERMITS}`, permits);
    if (!Number.isInteger(permits) || permits < 1 || permits > MAX_PERMITS) {
      fail("permits", `a whole number from 1 to ${MAX_PERMITS}`, permits, RangeError);
    }
    if (mode !== undefined) fail("mode", "left out with `permits` (a semaphore has no modes)", mode);
    return { permits };
  }
  return mode === "shared" ? { shared: true } : undefined;
}
