/**
 * Headless Chromium driven by the Chrome DevTools Protocol over a pipe (`--remote-debugging-pipe`:
 * JSON messages ended by NUL on file descriptors 3 and 4), so no WebSocket client is needed. The
 * browser is the system's (Debian's `chromium`); tests skip with a reason when there is none.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/** The browser to use, or undefined: CHROMIUM names one, else the usual places. */
export function findChromium(): string | undefined {
  const named = process.env.CHROMIUM;
  if (named !== undefined && named !== "") return existsSync(named) ? named : undefined;
  return CANDIDATES.find((path) => existsSync(path));
}

export interface CdpEvent {
  readonly method: string;
  readonly params: Record<string, unknown>;
  readonly sessionId?: string;
}

export interface Browser {
  readonly pid: number;
  send(
    method: string,
    params?: Record<string, unknown>,
    sessionId?: string,
  ): Promise<Record<string, unknown>>;
  readonly events: CdpEvent[];
  /** Kills the browser by its pid and removes its profile. */
  close(): Promise<void>;
}

export async function startBrowser(executable: string): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), "dynamolock-chromium-"));
  const child: ChildProcess = spawn(
    executable,
    [
      "--headless=new",
      // Root in a container has no user namespace sandbox to offer.
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-extensions",
      "--disable-background-networking",
      "--remote-debugging-pipe",
      `--user-data-dir=${profile}`,
      "--window-size=1280,900",
      "about:blank",
    ],
    // Its own process group: Chromium starts helper processes (renderer, utility) that inherit the
    // pipes, and close() must end them all, by the group of the pid we started.
    { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"], detached: true },
  );
  if (child.pid === undefined) throw new Error(`could not start ${executable}`);
  const pid = child.pid;
  const toBrowser = child.stdio[3] as Writable;
  const fromBrowser = child.stdio[4] as Readable;
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4_000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const pending = new Map<
    number,
    { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }
  >();
  const events: CdpEvent[] = [];
  let buffer = Buffer.alloc(0);
  fromBrowser.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (let end = buffer.indexOf(0); end >= 0; end = buffer.indexOf(0)) {
      const message = JSON.parse(buffer.subarray(0, end).toString("utf8")) as {
        id?: number;
        result?: Record<string, unknown>;
        error?: { message: string };
        method?: string;
        params?: Record<string, unknown>;
        sessionId?: string;
      };
      buffer = buffer.subarray(end + 1);
      if (message.id !== undefined) {
        const waiter = pending.get(message.id);
        pending.delete(message.id);
        if (message.error !== undefined) waiter?.reject(new Error(message.error.message));
        else waiter?.resolve(message.result ?? {});
      } else if (message.method !== undefined) {
        events.push({
          method: message.method,
          params: message.params ?? {},
          ...(message.sessionId === undefined ? {} : { sessionId: message.sessionId }),
        });
      }
    }
  });
  void exited.then(() => {
    for (const waiter of pending.values()) waiter.reject(new Error(`the browser exited: ${stderr}`));
    pending.clear();
  });
  let next = 0;
  const send: Browser["send"] = (method, params = {}, sessionId) => {
    const id = ++next;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      toBrowser.write(
        `${JSON.stringify({ id, method, params, ...(sessionId === undefined ? {} : { sessionId }) })}\0`,
      );
    });
  };
  return {
    pid,
    events,
    send,
    async close() {
      const running = () => child.exitCode === null && child.signalCode === null;
      if (running()) {
        // Ask first, so that it ends its helpers itself; then make sure, for the whole group.
        const asked = send("Browser.close").catch(() => undefined);
        await Promise.race([asked, exited, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
      }
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // The group is gone already.
      }
      await exited;
      for (const stream of [toBrowser, fromBrowser, child.stderr]) stream?.destroy();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Opens `url` in a new tab and returns its session, with console, log and page events on. */
export async function openPage(browser: Browser, url: string): Promise<string> {
  const { targetId } = (await browser.send("Target.createTarget", { url: "about:blank" })) as {
    targetId: string;
  };
  const { sessionId } = (await browser.send("Target.attachToTarget", { targetId, flatten: true })) as {
    sessionId: string;
  };
  await browser.send("Runtime.enable", {}, sessionId);
  await browser.send("Log.enable", {}, sessionId);
  await browser.send("Page.enable", {}, sessionId);
  await browser.send("Page.navigate", { url }, sessionId);
  return sessionId;
}

/** Evaluates `expression` in the page and returns its value. */
export async function evaluate<T>(browser: Browser, sessionId: string, expression: string): Promise<T> {
  const out = (await browser.send("Runtime.evaluate", { expression, returnByValue: true }, sessionId)) as {
    result: { value: T };
    exceptionDetails?: unknown;
  };
  if (out.exceptionDetails !== undefined)
    throw new Error(`evaluate failed: ${JSON.stringify(out.exceptionDetails)}`);
  return out.result.value;
}

/** Errors the page reported: uncaught exceptions, console.error, and error log entries. */
export function pageErrors(browser: Browser, sessionId: string): string[] {
  return browser.events
    .filter((e) => e.sessionId === sessionId)
    .flatMap((e) => {
      if (e.method === "Runtime.exceptionThrown") return [JSON.stringify(e.params)];
      if (e.method === "Runtime.consoleAPICalled" && e.params.type === "error")
        return [JSON.stringify(e.params)];
      if (e.method === "Log.entryAdded" && (e.params.entry as { level?: string }).level === "error")
        return [JSON.stringify(e.params)];
      return [];
    });
}
