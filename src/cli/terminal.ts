/**
 * Writing for people: colours only on a terminal (and never with NO_COLOR), one updating status
 * line on a terminal, and plain lines otherwise (logs, cron mail, CI).
 */
import type { WriteStream } from "node:tty";

export type Output = NodeJS.WritableStream & Partial<Pick<WriteStream, "isTTY" | "columns">>;

export function isInteractive(stream: { readonly isTTY?: boolean | undefined }): boolean {
  return stream.isTTY === true && process.env.TERM !== "dumb";
}

export function useColor(stream: Output): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "") return false;
  if (process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== "0") return true;
  return isInteractive(stream);
}

export interface Style {
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
  /** One of a few distinct colours, by index (workers in the demo). */
  palette(index: number, text: string): string;
}

const sgr = (open: number, close: number) => (text: string) => `\x1b[${open}m${text}\x1b[${close}m`;
const PALETTE = [214, 39, 35, 170, 227, 203, 81, 141];

export function style(enabled: boolean): Style {
  const plain = (text: string) => text;
  if (!enabled) {
    return {
      bold: plain,
      dim: plain,
      red: plain,
      green: plain,
      yellow: plain,
      cyan: plain,
      palette: (_, t) => t,
    };
  }
  return {
    bold: sgr(1, 22),
    dim: sgr(2, 22),
    red: sgr(31, 39),
    green: sgr(32, 39),
    yellow: sgr(33, 39),
    cyan: sgr(36, 39),
    palette: (index, text) => `\x1b[38;5;${PALETTE[index % PALETTE.length]}m${text}\x1b[39m`,
  };
}

/** One line that rewrites itself on a terminal. */
export class StatusLine {
  readonly #stream: Output;
  #shown = false;

  constructor(stream: Output) {
    this.#stream = stream;
  }

  show(text: string): void {
    const width = Math.max(20, (this.#stream.columns || 100) - 1);
    const line = text.length > width ? `${text.slice(0, width - 1)}…` : text;
    this.#stream.write(`\r\x1b[2K${line}`);
    this.#shown = true;
  }

  clear(): void {
    if (!this.#shown) return;
    this.#stream.write("\r\x1b[2K");
    this.#shown = false;
  }
}
