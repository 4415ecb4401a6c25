/**
 * Showing the demo as it happens: on a terminal, a live panel redrawn in place (lock item, one row
 * per worker with a strip of its history, the latest events); elsewhere, one plain line per event.
 */
import { formatDuration } from "../duration.js";
import { type Output, type Style, style, useColor } from "../terminal.js";
import { type DemoModel, type Span, seconds, type WorkerState } from "./model.js";

export interface DemoView {
  /** Called often; draws what changed. */
  update(): void;
  /** The last frame; leaves the cursor below it. */
  finish(): void;
}

export interface ViewSettings {
  readonly title: string;
  /** A guess of the demo's length, to pick a time scale that fits on one line. */
  readonly estimatedMs: number;
  readonly leaseMs: number;
}

const ESC = "\x1b[";
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escape sequences is the point
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;
const visibleLength = (text: string) => text.replace(ANSI, "").length;

/** Cuts a line with colour codes to `width` visible characters. */
function fit(text: string, width: number): string {
  if (visibleLength(text) <= width) return text;
  let out = "";
  let visible = 0;
  for (let i = 0; i < text.length && visible < width - 1; ) {
    ANSI.lastIndex = i;
    const match = ANSI.exec(text);
    if (match !== null && match.index === i) {
      out += match[0];
      i += match[0].length;
      continue;
    }
    out += text[i];
    visible++;
    i++;
  }
  return `${out}…${ESC}0m`;
}

export function plainView(model: DemoModel, out: Output, settings: ViewSettings): DemoView {
  let written = 0;
  out.write(`${settings.title}\n`);
  const flush = () => {
    for (; written < model.log.length; written++) {
      const line = model.log[written];
      if (line !== undefined)
        out.write(`  ${`+${seconds(line.at - model.startedAt)}`.padStart(8)}  ${line.text}\n`);
    }
  };
  return { update: flush, finish: flush };
}

export function liveView(model: DemoModel, out: Output, settings: ViewSettings): DemoView {
  const c = style(useColor(out));
  let drawn = 0;
  out.write(`${ESC}?25l`); // hide the cursor while redrawing
  const restoreCursor = () => out.write(`${ESC}?25h`);
  process.once("exit", restoreCursor);

  const draw = (final: boolean) => {
    const width = Math.max(60, (out.columns || 100) - 1);
    const lines = frame(model, c, width, settings, final).map((line) => fit(line, width));
    const up = drawn > 0 ? `${ESC}${drawn}A\r` : "";
    out.write(`${up}${ESC}0J${lines.join("\n")}\n`);
    drawn = lines.length;
  };
  return {
    update: () => draw(false),
    finish() {
      draw(true);
      restoreCursor();
      process.off("exit", restoreCursor);
    },
  };
}

const STATUS_MARK: Record<WorkerState["status"], string> = {
  starting: "…",
  waiting: "…",
  holding: "■",
  resting: "·",
  done: "✓",
  killed: "✕",
  failed: "!",
};

function frame(model: DemoModel, c: Style, width: number, settings: ViewSettings, final: boolean): string[] {
  const now = final ? (model.endedAt ?? Date.now()) : Date.now();
  const elapsed = now - model.startedAt;
  const lines: string[] = [];
  lines.push(`${c.bold(settings.title)}  ${c.dim(seconds(elapsed))}`);
  lines.push("");
  const lock = model.lock;
  let item = c.dim("(reading...)");
  if (lock !== undefined) {
    const counter = `counter ${c.bold(String(lock.counter ?? 0))}`;
    if (lock.held) {
      const age =
        lock.heartbeatAt === undefined
          ? ""
          : ` · heartbeat ${formatDuration(Math.max(0, now - lock.heartbeatAt))} ago`;
      const dead =
        model.kill !== undefined && model.takeover === undefined && lock.fence === model.kill.fence;
      const holder = dead ? c.red(`${lock.holder} (dead)`) : c.bold(lock.holder ?? "?");
      const left = lock.heartbeatAt === undefined ? 0 : lock.heartbeatAt + settings.leaseMs - now;
      const expiry = !dead
        ? ""
        : c.red(
            left > 0 ? ` · its lease runs out in ${formatDuration(left)}` : " · lease over: up for takeover",
          );
      item = `held by ${holder} · fence ${lock.fence}${age}${expiry} · ${counter}`;
    } else {
      item = `${c.green("free")} · fence ${lock.fence} · ${counter}`;
    }
  }
  lines.push(`  lock item   ${item}`);
  lines.push("");

  const label = 34;
  const stripWidth = Math.max(10, width - label - 4);
  const msPerColumn = Math.max(50, Math.ceil(settings.estimatedMs / stripWidth / 50) * 50);
  const windowStart = Math.max(model.startedAt, now - stripWidth * msPerColumn);
  for (const w of model.workers) {
    const name = c.palette(w.index, c.bold(w.name));
    const text = describeStatus(w, now);
    const done = `${w.completed} done`;
    const head = `  ${name}  ${STATUS_MARK[w.status]} ${text.padEnd(20)} ${done.padEnd(7)}`;
    const strip = renderStrip(model, w, c, windowStart, msPerColumn, stripWidth, now);
    lines.push(`${head} ${strip}`);
  }
  lines.push(
    `  ${c.dim(`${" ".repeat(label - 2)}█ holding  ░ waiting  ${"▒"} dead holder's lease  (1 column = ${formatDuration(msPerColumn)})`)}`,
  );
  lines.push("");
  const recent = model.log.slice(-6);
  for (const line of recent) {
    const at = `+${seconds(line.at - model.startedAt)}`.padStart(8);
    const text =
      line.tone === "bad"
        ? c.red(line.text)
        : line.tone === "good"
          ? c.green(line.text)
          : line.tone === "note"
            ? c.yellow(line.text)
            : line.text;
    lines.push(`  ${c.dim(at)}  ${text}`);
  }
  for (let i = recent.length; i < 6; i++) lines.push("");
  return lines;
}

function describeStatus(w: WorkerState, now: number): string {
  const since = formatDuration(Math.max(0, now - w.since));
  switch (w.status) {
    case "holding":
      return `holding fence ${w.fence}`;
    case "waiting":
      return `waiting ${since}`;
    case "killed":
      return `killed (fence ${w.fence})`;
    case "failed":
      return "failed";
    default:
      return w.status;
  }
}

const RANK: Record<Span["kind"], number> = { wait: 1, dead: 2, hold: 3 };

function renderStrip(
  model: DemoModel,
  w: WorkerState,
  c: Style,
  from: number,
  msPerColumn: number,
  columns: number,
  now: number,
): string {
  const spans = model.spans.filter((s) => s.worker === w.name && (s.end ?? now) > from);
  let strip = "";
  for (let col = 0; col < columns; col++) {
    const start = from + col * msPerColumn;
    if (start > now) break;
    const end = start + msPerColumn;
    let best: Span | undefined;
    for (const s of spans) {
      if (s.start < end && (s.end ?? now) > start && (best === undefined || RANK[s.kind] > RANK[best.kind]))
        best = s;
    }
    if (best === undefined) strip += " ";
    else if (best.kind === "hold") strip += c.palette(w.index, "█");
    else if (best.kind === "dead") strip += c.red(best.start >= start ? "✕" : "▒");
    else strip += c.dim("░");
  }
  return strip;
}
