/**
 * Checks the records of critical sections (section.ts) against what a lock promises, after the fact:
 *
 * - sections of one id never overlap in time (a section ends when its holder began its release or
 *   learnt of its loss; a killed holder's, when it was killed);
 * - a holder that learnt of its loss (even while releasing) learnt it before any later section began;
 * - fences strictly increase in the order sections began;
 * - the counter follows a chain: each section saw what the last applied write left, where an
 *   acknowledged write must have been applied and a refused one must not (so no acknowledged
 *   increment is lost, no refused one appears, none counts twice), and the stored value ends on it;
 * - the second counter (guarded writes) holds at least every acknowledged increment and at most
 *   those plus the ones whose outcome is unknown.
 */
import type { EndRecord, Outcome, StartRecord, StopRecord } from "./section.js";

export interface Kill {
  readonly worker: string;
  readonly at: bigint;
}

export interface FinalState {
  readonly counter: number;
  readonly tag: string | null;
  /** The second counter, if kept. */
  readonly n?: number;
}

export interface CheckInput {
  readonly starts: readonly StartRecord[];
  readonly ends: readonly EndRecord[];
  /** When holders stopped acting as owners; only needed for those killed before their end record. */
  readonly stops?: readonly StopRecord[];
  readonly kills: readonly Kill[];
  readonly finals: ReadonlyMap<string, FinalState>;
}

export interface CheckResult {
  readonly violations: string[];
  readonly acquisitions: number;
  readonly takeovers: number;
  readonly lossesSignalled: number;
  /** Of those, the ones learnt inside the section (before the release began). */
  readonly lostInSection: number;
  /** Releases that were applied but, their answer lost and the lock taken again, were reported lost. */
  readonly appliedReleasesReportedLost: number;
  readonly acked: number;
  readonly uncertain: number;
  readonly rejected: number;
  readonly killedInSection: number;
  readonly txAcked: number;
  readonly txUncertain: number;
}

interface Section {
  readonly worker: string;
  readonly id: string;
  readonly fence: number;
  readonly start: bigint;
  readonly end: bigint;
  readonly lossAt: bigint | undefined;
  readonly outcome: Outcome;
  readonly killed: boolean;
  readonly seen: { counter: number; tag: string | null };
  readonly wrote: { counter: number; tag: string };
}

const same = (a: { counter: number; tag: string | null }, b: { counter: number; tag: string | null }) =>
  a.counter === b.counter && a.tag === b.tag;
const show = (s: { counter: number; tag: string | null }) => `${s.counter}@${s.tag ?? "initial"}`;

export function check(input: CheckInput): CheckResult {
  const violations: string[] = [];
  const endOf = new Map(input.ends.map((e) => [`${e.worker}/${e.id}/${e.fence}`, e]));
  const sections: Section[] = [];
  let killedInSection = 0;
  for (const s of input.starts) {
    const start = BigInt(s.start);
    const end = endOf.get(`${s.worker}/${s.id}/${s.fence}`);
    if (end !== undefined) {
      sections.push({
        worker: s.worker,
        id: s.id,
        fence: s.fence,
        start,
        end: BigInt(end.end),
        lossAt: end.lossAt === undefined ? undefined : BigInt(end.lossAt),
        outcome: end.outcome,
        killed: false,
        seen: s.seen,
        wrote: end.wrote,
      });
      continue;
    }
    const kill = input.kills.find((k) => k.worker === s.worker && k.at >= start);
    if (kill === undefined) {
      violations.push(`${s.worker} began a section of "${s.id}" (fence ${s.fence}) that never ended`);
      continue;
    }
    killedInSection++;
    // Killed inside: it may have sent its release (with its increment) before it died, and it
    // stopped acting as the owner at the kill, or earlier if it had begun its release or learnt
    // of its loss.
    const stop = (input.stops ?? []).find(
      (r) => r.worker === s.worker && r.id === s.id && r.fence === s.fence,
    );
    const stoppedAt = stop !== undefined && BigInt(stop.at) < kill.at ? BigInt(stop.at) : kill.at;
    sections.push({
      worker: s.worker,
      id: s.id,
      fence: s.fence,
      start,
      end: stoppedAt,
      lossAt: undefined,
      outcome: "uncertain",
      killed: true,
      seen: s.seen,
      wrote: { counter: s.seen.counter + 1, tag: s.tag },
    });
  }

  let takeovers = 0;
  let reportedLost = 0;
  const ids = [...new Set(sections.map((s) => s.id))].sort();
  for (const id of ids) {
    const mine = sections.filter((s) => s.id === id);
    // Releases the chain shows applied: the next acquisition (by fence) saw what they wrote.
    const appliedReleases = new Set<Section>();
    const inFenceOrder = [...mine].sort((a, b) => a.fence - b.fence);
    for (const [i, s] of inFenceOrder.entries()) {
      const next = inFenceOrder[i + 1];
      if (next !== undefined && same(next.seen, s.wrote)) appliedReleases.add(s);
    }
    reportedLost += [...appliedReleases].filter((s) => s.lossAt !== undefined && s.lossAt > s.end).length;
    // Time: no overlap, fences increase in the order sections began.
    const byStart = [...mine].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    let latest: Section | undefined;
    for (const s of byStart) {
      if (latest !== undefined) {
        if (s.start <= latest.end) {
          const how = latest.killed
            ? " (killed)"
            : latest.lossAt !== undefined && latest.lossAt <= latest.end
              ? " (its loss was signalled, too late)"
              : ` (its loss was not signalled first; its release: ${latest.outcome})`;
          violations.push(
            `"${id}": ${s.worker} (fence ${s.fence}) began ${Number(latest.end - s.start) / 1e6} ms before ${latest.worker} (fence ${latest.fence}) stopped${how}`,
          );
        }
        // The holder learns first: a loss learnt of (even while releasing) came before any later
        // section began.
        for (const p of byStart) {
          if (p.start >= s.start || p.lossAt === undefined || p.lossAt <= s.start) continue;
          // A release that was applied, but whose answer was lost and whose retry then found the
          // lock taken again, is reported as a loss (writeUncertain): there was no loss to learn.
          if (p.lossAt > p.end && appliedReleases.has(p)) continue;
          violations.push(
            `"${id}": ${p.worker} (fence ${p.fence}) learnt of its loss ${Number(p.lossAt - s.start) / 1e6} ms after ${s.worker} (fence ${s.fence}) began`,
          );
        }
        if (s.fence <= latest.fence) {
          violations.push(`"${id}": fence ${s.fence} of ${s.worker} began after fence ${latest.fence}`);
        }
      }
      if (latest === undefined || s.end > latest.end) latest = s;
    }
    // Data: the chain of applied writes, in fence (store) order.
    const byFence = [...mine].sort((a, b) => a.fence - b.fence);
    let possible: { counter: number; tag: string | null }[] = [{ counter: 0, tag: null }];
    let previous: Section | undefined;
    for (const s of byFence) {
      if (
        previous !== undefined &&
        (previous.killed || previous.lossAt !== undefined || previous.outcome !== "acked")
      )
        takeovers++;
      if (!possible.some((p) => same(p, s.seen))) {
        violations.push(
          `"${id}": ${s.worker} (fence ${s.fence}) saw ${show(s.seen)}, expected ${possible.map(show).join(" or ")}`,
        );
      }
      possible = s.outcome === "acked" ? [s.wrote] : s.outcome === "rejected" ? [s.seen] : [s.seen, s.wrote];
      previous = s;
    }
    const final = input.finals.get(id);
    if (final === undefined) violations.push(`"${id}": no final state read`);
    else if (!possible.some((p) => same(p, final))) {
      violations.push(`"${id}": stored ${show(final)}, expected ${possible.map(show).join(" or ")}`);
    }
  }

  // The second counter: only guarded writes touch it.
  let txAcked = 0;
  let txUncertain = 0;
  for (const id of new Set([...input.finals.keys()])) {
    const final = input.finals.get(id);
    if (final?.n === undefined) continue;
    const ends = input.ends.filter((e) => e.id === id && e.tx !== undefined);
    for (const e of ends.filter((e) => e.tx?.outcome === "moved")) {
      violations.push(
        `"${id}": the second counter moved under ${e.worker} (fence ${e.fence}), past ${e.tx?.seen}`,
      );
    }
    const acked = ends.filter((e) => e.tx?.outcome === "acked").length;
    // A holder killed inside may have committed its guarded write before dying.
    const unknown =
      ends.filter((e) => e.tx?.outcome === "uncertain").length +
      sections.filter((s) => s.id === id && s.killed).length;
    txAcked += acked;
    txUncertain += unknown;
    if (final.n < acked || final.n > acked + unknown) {
      violations.push(
        `"${id}": second counter is ${final.n}, expected ${acked} acknowledged + at most ${unknown} unknown`,
      );
    }
  }

  const count = (o: Outcome) => sections.filter((s) => !s.killed && s.outcome === o).length;
  return {
    violations,
    acquisitions: sections.length,
    takeovers,
    lossesSignalled: sections.filter((s) => s.lossAt !== undefined).length,
    lostInSection: sections.filter((s) => s.lossAt !== undefined && s.lossAt <= s.end).length,
    appliedReleasesReportedLost: reportedLost,
    acked: count("acked"),
    uncertain: count("uncertain"),
    rejected: count("rejected"),
    killedInSection,
    txAcked,
    txUncertain,
  };
}
