/**
 * The demo's picture: a self-contained SVG timeline of who held the lock when, one lane per
 * worker, with waits, heartbeats, the kill, the dead holder's lease running out and the takeover,
 * and the verification underneath. No scripts, no external fonts or files: it opens anywhere.
 */
import type { DemoModel, Span } from "./model.js";
import { seconds } from "./model.js";
import type { Verification } from "./verify.js";

export interface TimelineSettings {
  readonly lockId: string;
  readonly leaseMs: number;
  readonly heartbeatMs: number;
  /** The demo's verdict: a badge and the checks under the picture. Absent: neither is drawn. */
  readonly verification?: Verification;
  /**
   * Title, subtitle and time-axis label, for pictures that are not of a demo run (the dashboard
   * draws a lock's observed history with this same code).
   */
  readonly caption?: { readonly title: string; readonly subtitle: string; readonly axis: string };
  /**
   * Each lane's note ("3 done", "killed"): what a demo worker achieved. Off where lanes are holders
   * seen from outside, which do not report their work (the dashboard).
   * @default true
   */
  readonly laneNotes?: boolean;
}

/** Okabe–Ito colours: distinct for colour-blind readers too. */
const COLORS = ["#E69F00", "#0072B2", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D31", "#6A51A3"];
const INK = "#1f2328";
const MUTED = "#656d76";
const GRID = "#d8dee4";
const DANGER = "#cf222e";
const GOOD = "#1a7f37";

const WIDTH = 1200;
const LEFT = 150;
const RIGHT = 36;
const LANE = 38;
const LANE_GAP = 12;
const BAR = 24;
const BAND = 52;

function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function niceStep(totalMs: number): number {
  const steps = [250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000];
  return steps.find((s) => totalMs / s <= 14) ?? 600_000;
}

export function renderTimeline(model: DemoModel, settings: TimelineSettings): string {
  // Times are labelled from the demo's start, like its log lines, but the picture leaves out the
  // empty stretch while the worker processes start.
  const t0 = model.startedAt;
  const t1 = Math.max(model.endedAt ?? Date.now(), t0 + 1);
  const firstSpan = Math.min(t1 - 1, ...model.spans.map((s) => s.start));
  const from = Math.max(t0, firstSpan - (t1 - firstSpan) * 0.03);
  const plotWidth = WIDTH - LEFT - RIGHT;
  const x = (t: number) => LEFT + ((t - from) / (t1 - from)) * plotWidth;
  const colorOf = (worker: string) => COLORS[model.worker(worker).index % COLORS.length] as string;
  const { verification } = settings;
  const out: string[] = [];

  // ---- header ----
  const completed = model.completedSections;
  const top = 30;
  out.push(
    `<text x="${LEFT - 120}" y="${top + 8}" class="title">${esc(settings.caption?.title ?? `Who held lock “${settings.lockId}” when`)}</text>`,
  );
  out.push(
    `<text x="${LEFT - 120}" y="${top + 32}" class="sub">${esc(settings.caption?.subtitle ?? `dynamolock demo · ${model.workers.length} worker processes on one lock · lease ${seconds(settings.leaseMs)} · heartbeat every ${seconds(settings.heartbeatMs)} · ${completed} critical sections in ${seconds(t1 - t0)}`)}</text>`,
  );
  if (verification !== undefined) {
    const badge = verification.ok ? "verification passed" : "verification FAILED";
    out.push(
      `<g transform="translate(${WIDTH - RIGHT - 190},${top - 10})"><rect width="190" height="28" rx="14" fill="${verification.ok ? GOOD : DANGER}"/><text x="95" y="19" class="badge">${verification.ok ? "✓" : "✗"} ${badge}</text></g>`,
    );
  }

  // ---- lanes ----
  const lanesTop = top + 70;
  const lockLaneY = lanesTop;
  // Below the killed worker's lane, a band for the lease bracket and the takeover label.
  const victimIndex = model.kill === undefined ? -1 : model.worker(model.kill.worker).index;
  const workerY = (index: number) =>
    lanesTop + (LANE + LANE_GAP) * (index + 1) + 14 + (victimIndex >= 0 && index > victimIndex ? BAND : 0);
  const lanesBottom = workerY(model.workers.length - 1) + LANE;

  // grid and axis
  const step = niceStep(t1 - from);
  for (let t = Math.ceil((from - t0) / step) * step; t <= t1 - t0 + 1; t += step) {
    const gx = x(t0 + t).toFixed(1);
    out.push(`<line x1="${gx}" y1="${lanesTop - 8}" x2="${gx}" y2="${lanesBottom + 6}" class="grid"/>`);
    out.push(
      `<text x="${gx}" y="${lanesBottom + 24}" class="tick">${(t / 1_000).toFixed(step < 1_000 ? 2 : 0)} s</text>`,
    );
  }
  out.push(
    `<text x="${WIDTH - RIGHT}" y="${lanesBottom + 42}" class="axis-label">${esc(settings.caption?.axis ?? "time since the demo started →")}</text>`,
  );

  // lane labels and backgrounds
  out.push(
    `<rect x="${LEFT}" y="${lockLaneY}" width="${plotWidth}" height="${LANE}" class="lane lock-lane"/>`,
  );
  out.push(`<text x="${LEFT - 14}" y="${lockLaneY + LANE / 2 + 5}" class="lane-name">lock item</text>`);
  out.push(`<text x="${LEFT - 14}" y="${lockLaneY + LANE / 2 + 19}" class="lane-note">holder, fence</text>`);
  for (const w of model.workers) {
    const y = workerY(w.index);
    out.push(`<rect x="${LEFT}" y="${y}" width="${plotWidth}" height="${LANE}" class="lane"/>`);
    out.push(`<circle cx="${LEFT - 128}" cy="${y + LANE / 2}" r="6" fill="${colorOf(w.name)}"/>`);
    out.push(`<text x="${LEFT - 116}" y="${y + LANE / 2 + 5}" class="lane-name start">${esc(w.name)}</text>`);
    if (settings.laneNotes !== false) {
      const note = w.status === "killed" ? "killed" : `${w.completed} done`;
      out.push(
        `<text x="${LEFT - 14}" y="${y + LANE / 2 + 5}" class="lane-note${w.status === "killed" ? " danger" : ""}">${note}</text>`,
      );
    }
  }

  // ---- worker spans ----
  const bar = (y: number) => y + (LANE - BAR) / 2;
  for (const span of model.spans) {
    const w = model.worker(span.worker);
    const y = workerY(w.index);
    const sx = x(span.start);
    const width = Math.max(1.5, x(span.end ?? t1) - sx);
    out.push(spanShape(span, sx, width, y, bar(y), colorOf(span.worker)));
  }

  // heartbeats: small ticks above each hold bar, where the item showed a new heartbeat
  for (const [fence, beats] of model.heartbeatHistory) {
    const acquisition = model.acquisitions.find((a) => a.fence === fence);
    if (acquisition === undefined) continue;
    const y = bar(workerY(model.worker(acquisition.worker).index));
    for (const beat of beats) {
      if (beat <= acquisition.at + 5) continue; // the acquisition itself, not a heartbeat
      const bx = x(beat).toFixed(1);
      out.push(`<line x1="${bx}" y1="${y - 5}" x2="${bx}" y2="${y + 3}" class="beat"/>`);
    }
  }

  // ---- the lock item lane: whose name the item carried ----
  const ordered = [...model.acquisitions].sort((a, b) => a.fence - b.fence);
  /** Right edge of the last fence label drawn above the lane, so labels above never overlap. */
  let aboveUntil = -Infinity;
  for (const a of ordered) {
    let end = a.releasedAt;
    const killedHere = model.kill !== undefined && model.kill.fence === a.fence;
    if (end === undefined) end = killedHere ? (model.takeover?.at ?? t1) : t1;
    const sx = x(a.at);
    const width = Math.max(1.5, x(end) - sx);
    const y = bar(lockLaneY);
    // A tooltip on every bar (the HTML view and browsers show it on hover), so even a hold too
    // narrow for any label still tells its fence and holder.
    const tip = `<title>${esc(`fence ${a.fence}: ${a.worker}, ${seconds(end - a.at)}`)}</title>`;
    if (killedHere && model.kill !== undefined) {
      const alive = Math.max(1.5, x(model.kill.at) - sx);
      out.push(
        `<rect x="${sx.toFixed(1)}" y="${y}" width="${alive.toFixed(1)}" height="${BAR}" rx="3" fill="${colorOf(a.worker)}">${tip}</rect>`,
      );
      out.push(
        `<rect x="${(sx + alive).toFixed(1)}" y="${y}" width="${Math.max(0, width - alive).toFixed(1)}" height="${BAR}" fill="url(#dead)" stroke="${DANGER}" stroke-width="1">${tip}</rect>`,
      );
    } else {
      out.push(
        `<rect x="${sx.toFixed(1)}" y="${y}" width="${width.toFixed(1)}" height="${BAR}" rx="3" fill="${colorOf(a.worker)}">${tip}</rect>`,
      );
    }
    const labelled = killedHere && model.kill !== undefined ? x(model.kill.at) - sx : width;
    const labelWidth = fenceLabelWidth(a.fence);
    if (labelled >= labelWidth) {
      out.push(
        `<text x="${(sx + labelled / 2).toFixed(1)}" y="${y + BAR / 2 + 4.5}" class="fence">${a.fence}</text>`,
      );
    } else if (sx + labelled / 2 - labelWidth / 2 >= aboveUntil) {
      // Too narrow for the number inside: write it just above the bar, in ink, unless that would
      // overlap the previous one (a run of narrow holds keeps every other label and all tooltips).
      const cx = sx + labelled / 2;
      out.push(`<text x="${cx.toFixed(1)}" y="${y - 3}" class="fence-above">${a.fence}</text>`);
      aboveUntil = cx + labelWidth / 2 + 2;
    }
  }

  // ---- the kill and the takeover ----
  const { kill, takeover } = model;
  if (kill !== undefined) {
    const w = model.worker(kill.worker);
    const y = workerY(w.index);
    const kx = x(kill.at);
    const cy = y + LANE / 2;
    out.push(
      `<g class="kill"><line x1="${kx - 7}" y1="${cy - 7}" x2="${kx + 7}" y2="${cy + 7}"/><line x1="${kx - 7}" y1="${cy + 7}" x2="${kx + 7}" y2="${cy - 7}"/></g>`,
    );
    out.push(`<text x="${kx}" y="${y - 4}" class="kill-label">SIGKILL</text>`);
    const lastBeat = model.heartbeats.get(kill.fence);
    const bandY = y + LANE + 4;
    if (lastBeat !== undefined) {
      // The lease the dead holder promised, from its last heartbeat: nobody may take over before its end.
      // Its label ends where the lease does, so the takeover arrow just after never crosses it.
      const bx0 = x(lastBeat);
      const bx1 = x(lastBeat + settings.leaseMs);
      const by = bandY + 8;
      out.push(
        `<g class="bracket"><line x1="${bx0}" y1="${by - 5}" x2="${bx0}" y2="${by + 5}"/><line x1="${bx0}" y1="${by}" x2="${bx1}" y2="${by}"/><line x1="${bx1}" y1="${by - 5}" x2="${bx1}" y2="${by + 5}"/></g>`,
      );
      out.push(
        `<text x="${(bx1 - 2).toFixed(1)}" y="${by + 17}" class="bracket-label">lease ${seconds(settings.leaseMs)} from its last heartbeat: no takeover before it ends</text>`,
      );
    }
    if (takeover !== undefined) {
      const taker = model.worker(takeover.worker);
      const tx = x(takeover.at);
      const ty = workerY(taker.index);
      const below = taker.index > w.index;
      // From the dead holder's bar to the taker's, whichever way that is.
      const fromY = below ? bar(y) + BAR : bar(y);
      const toY = below ? bar(ty) - 1 : bar(ty) + BAR + 1;
      out.push(
        `<line x1="${tx}" y1="${fromY}" x2="${tx}" y2="${toY}" class="takeover" marker-end="url(#arrow)"/>`,
      );
      const label =
        verification?.takeoverMs === undefined
          ? `${takeover.worker} takes over`
          : `${takeover.worker} takes over ${seconds(verification.takeoverMs)} after the last heartbeat`;
      // In the band under the dead holder's lane, below the bracket's label, on the side with room.
      const anchorRight = tx > LEFT + plotWidth - 340;
      out.push(
        `<text x="${anchorRight ? tx - 8 : tx + 8}" y="${bandY + 42}" class="takeover-label${anchorRight ? " end" : ""}">${esc(label)}</text>`,
      );
    }
  }

  // ---- legend ----
  const legendY = lanesBottom + 62;
  const legend: string[] = [];
  let lx = LEFT;
  const item = (shape: string, text: string, widthGuess: number) => {
    legend.push(
      `<g transform="translate(${lx},${legendY})">${shape}<text x="34" y="12" class="legend">${esc(text)}</text></g>`,
    );
    lx += widthGuess;
  };
  item(
    `<rect width="26" height="16" rx="3" fill="${COLORS[0]}"/><text x="13" y="12.5" class="fence">7</text>`,
    "holding the lock (fence)",
    210,
  );
  item(`<rect y="5" width="26" height="6" rx="3" class="wait"/>`, "waiting for it", 150);
  item(
    `<line x1="13" y1="0" x2="13" y2="8" class="beat"/><rect y="8" width="26" height="8" rx="2" fill="${COLORS[1]}"/>`,
    "heartbeat",
    130,
  );
  if (model.kill !== undefined) {
    item(
      `<rect width="26" height="16" fill="url(#dead)" stroke="${DANGER}"/>`,
      "killed holder's lease running out",
      270,
    );
    item(
      `<line x1="6" y1="2" x2="20" y2="14" stroke="${DANGER}" stroke-width="3"/><line x1="6" y1="14" x2="20" y2="2" stroke="${DANGER}" stroke-width="3"/>`,
      "SIGKILL",
      120,
    );
  }

  // ---- verification ----
  const checksY = legendY + 48;
  const checks = (verification?.checks ?? []).map(
    (check, i) =>
      `<text x="${LEFT - 120}" y="${checksY + 26 + i * 22}" class="check"><tspan class="${check.ok ? "ok" : "bad"}">${check.ok ? "✓" : "✗"}</tspan>  ${esc(check.text)}</text>`,
  );
  const height =
    verification === undefined ? legendY + 36 : checksY + 26 + verification.checks.length * 22 + 20;

  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="Timeline of who held lock ${esc(settings.lockId)} when">
<title>dynamolock: who held lock “${esc(settings.lockId)}” when</title>
<defs>
  <pattern id="dead" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
    <rect width="8" height="8" fill="#ffebe9"/><line x1="0" y1="0" x2="0" y2="8" stroke="${DANGER}" stroke-width="3" opacity="0.55"/>
  </pattern>
  <marker id="arrow" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
    <path d="M0,0 L10,5 L0,10 z" fill="${GOOD}"/>
  </marker>
  <style>
    text { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; fill: ${INK}; }
    .title { font-size: 22px; font-weight: 700; }
    .sub { font-size: 13px; fill: ${MUTED}; }
    .badge { font-size: 13px; font-weight: 700; fill: #fff; text-anchor: middle; }
    .lane { fill: #f6f8fa; }
    .lock-lane { fill: #eef1f4; }
    .lane-name { font-size: 14px; font-weight: 700; text-anchor: end; }
    .lane-name.start { text-anchor: start; }
    .lane-note { font-size: 11px; fill: ${MUTED}; text-anchor: end; }
    .lane-note.danger { fill: ${DANGER}; font-weight: 700; }
    .grid { stroke: ${GRID}; stroke-width: 1; }
    .tick { font-size: 11px; fill: ${MUTED}; text-anchor: middle; }
    .axis-label { font-size: 11px; fill: ${MUTED}; text-anchor: end; }
    .fence { font-size: 11px; font-weight: 700; fill: #fff; text-anchor: middle; }
    .fence-above { font-size: 10px; font-weight: 700; fill: ${INK}; text-anchor: middle; }
    .wait { fill: #c5ccd6; }
    .beat { stroke: ${INK}; stroke-width: 1.2; opacity: 0.6; }
    .kill line { stroke: ${DANGER}; stroke-width: 3.5; stroke-linecap: round; }
    .kill-label { font-size: 11px; font-weight: 700; fill: ${DANGER}; text-anchor: middle; }
    .bracket line { stroke: ${DANGER}; stroke-width: 1.5; }
    .bracket-label { font-size: 11px; fill: ${DANGER}; text-anchor: end; }
    .takeover { stroke: ${GOOD}; stroke-width: 2; }
    .takeover-label { font-size: 12px; font-weight: 700; fill: ${GOOD}; }
    .takeover-label.end { text-anchor: end; }
    .legend { font-size: 12px; fill: ${INK}; }
    .check { font-size: 13px; }
    .ok { fill: ${GOOD}; font-weight: 700; }
    .bad { fill: ${DANGER}; font-weight: 700; }
  </style>
</defs>
<rect width="100%" height="100%" fill="#ffffff"/>
${out.join("\n")}
${legend.join("\n")}
${verification === undefined ? "" : `<text x="${LEFT - 120}" y="${checksY}" class="check" font-weight="700">Verification</text>`}
${checks.join("\n")}
</svg>
`;
}

/** The narrowest bar a fence number fits in. */
function fenceLabelWidth(fence: number): number {
  return String(fence).length * 7 + 5;
}

function spanShape(
  span: Span,
  sx: number,
  width: number,
  laneY: number,
  barY: number,
  color: string,
): string {
  const w = width.toFixed(1);
  const sxs = sx.toFixed(1);
  const tip = `<title>${esc(`${span.worker} ${span.kind === "hold" ? `held fence ${span.fence}` : span.kind === "wait" ? "waited" : `dead, still named in the lock (fence ${span.fence})`}: ${seconds((span.end ?? span.start) - span.start)}`)}</title>`;
  if (span.kind === "wait") {
    return `<rect x="${sxs}" y="${laneY + LANE / 2 - 3}" width="${w}" height="6" rx="3" class="wait">${tip}</rect>`;
  }
  if (span.kind === "dead") {
    return `<rect x="${sxs}" y="${barY}" width="${w}" height="${BAR}" fill="url(#dead)" stroke="${DANGER}" stroke-width="1">${tip}</rect>`;
  }
  const label =
    span.fence !== undefined && width >= fenceLabelWidth(span.fence)
      ? `<text x="${(sx + width / 2).toFixed(1)}" y="${barY + BAR / 2 + 4.5}" class="fence">${span.fence}</text>`
      : "";
  return `<g><rect x="${sxs}" y="${barY}" width="${w}" height="${BAR}" rx="3" fill="${color}">${tip}</rect>${label}</g>`;
}
