/**
 * The dashboard's memory of each lock: the table keeps only the present, so the history is what
 * this process saw by polling, a bounded number of observations per lock, turned into the demo's
 * model so the demo's timeline code draws it.
 */
import { DemoModel } from "./demo/model.js";
import { renderTimeline } from "./demo/timeline.js";
import type { LockRow } from "./listing.js";

/** Per lock: older observations are dropped first. */
export const HISTORY_PER_LOCK = 200;
/** Locks remembered at once; the ones not seen for longest are forgotten first. */
const LOCKS_REMEMBERED = 2_000;
/** Lanes in the picture: holders beyond the latest ones are left out. */
const MAX_LANES = 8;

interface Observation {
  readonly at: number;
  readonly held: boolean;
  readonly holder: string | null;
  readonly fence: number;
  readonly heartbeatAt: number | null;
  readonly leaseMs: number | null;
  readonly releasedAt: number | null;
}

export class History {
  readonly #locks = new Map<string, Observation[]>();

  /** Records a listing; only observations that differ from the last one of their lock are kept. */
  record(rows: readonly LockRow[], at: number): void {
    for (const row of rows) {
      let list = this.#locks.get(row.id);
      if (list === undefined) list = [];
      // Re-inserted so that the map's order is least recently seen first.
      this.#locks.delete(row.id);
      this.#locks.set(row.id, list);
      const last = list[list.length - 1];
      const same =
        last !== undefined &&
        last.held === row.held &&
        last.fence === row.fence &&
        last.holder === row.holder &&
        last.heartbeatAt === row.heartbeatAt &&
        last.releasedAt === row.releasedAt;
      if (same) continue;
      list.push({
        at,
        held: row.held,
        holder: row.holder,
        fence: row.fence,
        heartbeatAt: row.heartbeatAt,
        leaseMs: row.leaseMs,
        releasedAt: row.releasedAt,
      });
      if (list.length > HISTORY_PER_LOCK) list.splice(0, list.length - HISTORY_PER_LOCK);
    }
    while (this.#locks.size > LOCKS_REMEMBERED) {
      const oldest = this.#locks.keys().next().value as string;
      this.#locks.delete(oldest);
    }
  }

  has(id: string): boolean {
    return this.#locks.has(id);
  }

  /** The lock's history as the demo's timeline, or undefined if this process never saw the lock. */
  timeline(id: string, now: number): string | undefined {
    const seen = this.#locks.get(id);
    if (seen === undefined || seen.length === 0) return undefined;
    const holderOf = (o: Observation) => o.holder ?? "(unnamed)";
    const holders: string[] = [];
    for (const o of [...seen].reverse()) {
      if (o.held && !holders.includes(holderOf(o)) && holders.length < MAX_LANES) holders.push(holderOf(o));
    }
    holders.reverse();
    const first = seen[0] as Observation;
    const model = new DemoModel(holders.length === 0 ? ["(nobody)"] : holders, first.at);
    let current: Observation | undefined;
    let leaseMs: number | undefined;
    const drawn = (o: Observation | undefined): boolean => o?.held === true && holders.includes(holderOf(o));
    for (const o of seen) {
      const changedHands = current?.held === true && (!o.held || o.fence !== current.fence);
      if (changedHands && drawn(current)) {
        const was = current as Observation;
        // A release recorded after the holder's last heartbeat: it let go. Otherwise it lost the
        // lock (taken over, or force-released), noticed here only now.
        const released = o.releasedAt !== null && o.releasedAt !== was.releasedAt;
        if (released) {
          model.apply({
            type: "released",
            worker: holderOf(was),
            round: 0,
            at: Math.min(o.releasedAt as number, o.at),
            fence: was.fence,
            counter: 0,
          });
        } else {
          model.apply({
            type: "lost",
            worker: holderOf(was),
            round: 0,
            at: o.at,
            fence: was.fence,
            reason: "taken over",
          });
        }
      }
      if (o.held && (current?.held !== true || o.fence !== current.fence) && drawn(o)) {
        model.apply({
          type: "acquired",
          worker: holderOf(o),
          round: 0,
          at: o.at,
          waitedMs: 0,
          fence: o.fence,
          counter: 0,
          previousFence: current?.fence ?? 0,
          victim: false,
        });
      }
      if (o.held) {
        model.observed({
          held: true,
          holder: o.holder ?? undefined,
          fence: o.fence,
          heartbeatAt: o.heartbeatAt ?? undefined,
          counter: undefined,
          readAt: o.at,
        });
        leaseMs = o.leaseMs ?? leaseMs;
      }
      current = o;
    }
    model.end(now);
    return renderTimeline(model, {
      lockId: id,
      leaseMs: leaseMs ?? 0,
      heartbeatMs: 0,
      laneNotes: false,
      caption: {
        title: `Who held lock “${id}” when`,
        subtitle: `as this dashboard saw it by polling since ${new Date(first.at).toLocaleTimeString()} (kept in its memory; the table records no history) · ${seen.length} changes seen`,
        axis: "time since this dashboard first saw the lock →",
      },
    });
  }
}
