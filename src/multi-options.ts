/**
 * The acquire options that ask for a lock with several holders (`permits`, `mode`), checked before
 * any request: a typed error naming the argument.
 */
import type { HolderKind } from "./holders.js";
import { fail } from "./validate.js";

/** The most permits a semaphore may have: every holder's entry lives in the one item (400 KB). */
export const MAX_PERMITS = 1000;

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
