/**
 * The demo's verdict, from what the workers reported and what the lock item holds at the end.
 * Each check is a property a lock must keep, phrased as the reader would check it by hand.
 */
import type { DemoModel } from "./model.js";
import { seconds } from "./model.js";

export interface Check {
  readonly ok: boolean;
  readonly text: string;
}

export interface Verification {
  readonly ok: boolean;
  readonly checks: readonly Check[];
  /** From the killed holder's last heartbeat to the takeover, in ms. */
  readonly takeoverMs: number | undefined;
}

export function verify(
  model: DemoModel,
  final: { counter: number | undefined; held: boolean },
  options: { leaseMs: number; expectKill: boolean; expectedWorkers: number },
): Verification {
  const checks: Check[] = [];
  const completed = model.completedSections;
  checks.push({
    ok: final.counter === completed,
    text: `counter in the lock's data is ${final.counter ?? "missing"}; completed critical sections: ${completed}`,
  });

  const byFence = [...model.acquisitions].sort((a, b) => a.fence - b.fence);
  const byTime = [...model.acquisitions].sort((a, b) => a.at - b.at);
  const increasing = byTime.every((a, i) => i === 0 || a.fence > (byTime[i - 1]?.fence ?? 0));
  checks.push({
    ok: increasing && byTime.length > 0,
    text: `fences increased with every acquisition: ${describeFences(byTime.map((a) => a.fence))}`,
  });

  // Each section must start from the count of all sections completed before it: a lost update
  // (two holders at once, or a stale read) would show as a repeated or skipped count.
  let expected = 0;
  const wrong: string[] = [];
  for (const a of byFence) {
    if (a.counter !== expected) wrong.push(`fence ${a.fence} read ${a.counter}, expected ${expected}`);
    if (a.releasedAt !== undefined) expected = a.counterWritten ?? expected;
  }
  checks.push({
    ok: wrong.length === 0,
    text:
      wrong.length === 0
        ? "every critical section read the count of all sections completed before it (no lost update)"
        : `lost or repeated updates: ${wrong.slice(0, 3).join("; ")}`,
  });

  // Times bracket the truth: a release is stamped before it is sent, an acquisition after it is
  // confirmed. So if the next holder's stamp is not before the release stamp, they never overlapped.
  const overlaps: string[] = [];
  for (let i = 1; i < byFence.length; i++) {
    const previous = byFence[i - 1];
    const next = byFence[i];
    if (previous?.releasedAt !== undefined && next !== undefined && next.at < previous.releasedAt) {
      overlaps.push(`fences ${previous.fence} and ${next.fence}`);
    }
  }
  checks.push({
    ok: overlaps.length === 0,
    text:
      overlaps.length === 0
        ? "no two workers were ever in the critical section at once"
        : `overlapping holders: ${overlaps.join(", ")}`,
  });

  let takeoverMs: number | undefined;
  if (options.expectKill) {
    const { kill, takeover } = model;
    const lastBeat = kill === undefined ? undefined : model.heartbeats.get(kill.fence);
    if (kill === undefined) {
      checks.push({ ok: false, text: "no worker was killed while holding the lock" });
    } else if (takeover === undefined) {
      checks.push({ ok: false, text: `nobody took over the lock ${kill.worker} held when it was killed` });
    } else {
      const since = lastBeat ?? kill.at;
      takeoverMs = takeover.at - since;
      const past = takeoverMs - options.leaseMs;
      checks.push({
        ok: takeoverMs >= options.leaseMs,
        text: `${takeover.worker} took over ${kill.worker}'s lock ${seconds(takeoverMs)} after its last heartbeat (lease ${seconds(options.leaseMs)}): ${past >= 0 ? `${seconds(past)} after the lease ran out, never before` : `${seconds(-past)} BEFORE the lease ran out`}`,
      });
    }
  }

  const finished = model.workers.filter((w) => w.status === "done").length;
  const expectedDone = options.expectedWorkers - (options.expectKill ? 1 : 0);
  checks.push({
    ok: finished === expectedDone && !final.held,
    text: `${finished} of ${expectedDone} surviving workers finished all their rounds; the lock is ${final.held ? "still held" : "free"}`,
  });
  return { ok: checks.every((c) => c.ok), checks, takeoverMs };
}

function describeFences(fences: number[]): string {
  if (fences.length <= 8) return fences.join(", ");
  return `${fences.slice(0, 4).join(", ")}, ..., ${fences.slice(-3).join(", ")}`;
}
