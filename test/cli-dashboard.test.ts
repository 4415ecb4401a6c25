/**
 * `dynamolock dashboard` in headless Chromium: the live table, a takeover made by another process
 * (a `dynamolock run`) showing within a few refreshes, the history picture, no release button
 * unless asked for, and a console without errors. Skipped, with the reason, where no Chromium is
 * installed (Debian: apt-get install chromium). Screenshots are written to the temporary folder
 * printed in the test's diagnostics.
 */
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LockClient } from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";
import {
  type Browser,
  evaluate,
  findChromium,
  openPage,
  pageErrors,
  startBrowser,
} from "./support/browser.js";
import { alive, cleanEnv, killAll, startCli } from "./support/cli.js";
import { clientTenMinutesBehind } from "./support/process.js";
import { eventually } from "./support/wait.js";

const chromium = findChromium();
const skip =
  chromium === undefined ? "no Chromium found (apt-get install chromium, or set CHROMIUM=/path)" : false;
if (skip !== false) process.stdout.write(`# skipping the dashboard browser test: ${skip}\n`);

let backend: Backend;
let table: string;
let env: NodeJS.ProcessEnv;
let browser: Browser;
let shots: string;
const clients: LockClient[] = [];
const grandchildren: number[] = [];

describe("dynamolock dashboard in a browser", { skip }, () => {
  before(async () => {
    backend = await startBackend();
    table = uniqueName("dash");
    env = cleanEnv({ AWS_ENDPOINT_URL_DYNAMODB: backend.endpoint });
    const setup = new LockClient({ table, client: backend.client, holder: "setup" });
    clients.push(setup);
    await setup.createTable();
    await (await setup.acquire("reports/daily")).release();
    browser = await startBrowser(chromium as string);
    shots = await mkdtemp(join(tmpdir(), "dynamolock-dashboard-shots-"));
  });
  after(async () => {
    // The commands `run` started first: they hold its output pipes, which killAll waits to close.
    for (const pid of grandchildren) if (alive(pid)) process.kill(pid, "SIGKILL");
    await killAll();
    await browser?.close();
    for (const c of clients) await c.close().catch(() => undefined);
    await backend?.close();
  });

  /** Starts the dashboard and returns its address. */
  async function dashboard(...extra: string[]): Promise<string> {
    const cli = startCli(["dashboard", "--table", table, "--interval", "200ms", ...extra], { env });
    await cli.waitFor(/on http:\/\/127\.0\.0\.1:\d+\//, "stdout");
    return (/on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(cli.stdout()) as RegExpExecArray)[1] as string;
  }

  /** Counts the listings the dashboard pushes, as a page would receive them. */
  function countRefreshes(url: string): { count(): number; stop(): void } {
    let count = 0;
    const req = request(`${url}events`, (res) => {
      res.setEncoding("utf8").on("data", (chunk: string) => {
        count += chunk.split("\n\n").filter((m) => m.startsWith("data:") || m.includes("\ndata:")).length;
      });
    });
    req.on("error", () => undefined);
    req.end();
    return { count: () => count, stop: () => req.destroy() };
  }

  async function screenshot(sessionId: string, name: string): Promise<string> {
    const { data } = (await browser.send("Page.captureScreenshot", { format: "png" }, sessionId)) as {
      data: string;
    };
    const path = join(shots, name);
    await writeFile(path, Buffer.from(data, "base64"));
    return path;
  }

  it("shows a takeover by another process within a few refreshes, read-only, without console errors", async (t) => {
    // "alpha" holds the lock with a clock ten minutes behind: to everyone else its lease has run out.
    const alpha = clientTenMinutesBehind(backend.newClient(), { table, holder: "alpha", leaseMs: 10_000 });
    clients.push(alpha);
    await alpha.acquire("orders/1");

    const url = await dashboard();
    const page = await openPage(browser, url);
    const row = (id: string) =>
      evaluate<string | null>(
        browser,
        page,
        `(() => { const r = document.querySelector('tr[data-id=${JSON.stringify(id)}]'); return r && (r.className + ' | ' + r.textContent); })()`,
      );
    await eventually(
      async () => (await row("orders/1"))?.includes("alpha") === true,
      "alpha in the table",
      400,
    );
    assert.match((await row("reports/daily")) ?? "", /\(free\)/);
    assert.equal(await evaluate<number>(browser, page, "document.querySelectorAll('button').length"), 0);
    await evaluate(browser, page, `document.querySelector('tr[data-id="orders/1"]').click()`);
    await eventually(
      async () =>
        evaluate<boolean>(
          browser,
          page,
          "document.getElementById('timeline').complete && document.getElementById('timeline').naturalWidth > 0",
        ),
      "the history picture",
      400,
    );

    // Another process takes the lock over and holds it.
    const refreshes = countRefreshes(url);
    const run = startCli(
      [
        "run",
        "--table",
        table,
        "--id",
        "orders/1",
        "--holder",
        "beta",
        "--",
        process.execPath,
        "-e",
        "console.log('ready ' + process.pid); setTimeout(() => {}, 30000)",
      ],
      { env },
    );
    await run.waitFor(/ready \d+/, "stdout");
    // The command is the run's child: stopped by its own pid at the end, not left to its timer.
    grandchildren.push(Number(/ready (\d+)/.exec(run.stdout())?.[1]));
    const seenAt = refreshes.count();
    await eventually(
      async () => /highlight.*beta.*taken over|taken over.*beta/.test((await row("orders/1")) ?? ""),
      "the takeover on the page",
      400,
    );
    refreshes.stop();
    assert.ok(refreshes.count() - seenAt <= 5, `shown after ${refreshes.count() - seenAt} refreshes`);
    const text = (await row("orders/1")) ?? "";
    assert.match(text, /highlight/);
    assert.match(text, /← taken over/);
    await eventually(
      async () =>
        (await evaluate<string>(browser, page, "document.getElementById('changes').textContent")).includes(
          'taken over by "beta" from "alpha"',
        ),
      "the takeover in the history",
      400,
    );
    await eventually(
      async () =>
        evaluate<boolean>(
          browser,
          page,
          "document.getElementById('timeline').complete && document.getElementById('timeline').naturalWidth > 0",
        ),
      "the history picture after the takeover",
      400,
    );
    const path = await screenshot(page, "read-only-takeover.png");
    t.diagnostic(`screenshot: ${path}`);
    assert.deepEqual(pageErrors(browser, page), []);
    // The timeline the page shows is the demo's drawing of this lock: both holders, both fences.
    const svg = await fetchText(`${url}timeline?id=orders%2F1`);
    assert.match(svg, /<svg /);
    assert.match(svg, /alpha/);
    assert.match(svg, /beta/);
    assert.match(svg, /class="fence">2</);
    assert.doesNotMatch(svg, / done</, "no demo worker notes on holders seen from outside");
  });

  it("with --allow-release: a force-release button, behind a confirmation", async (t) => {
    const url = await dashboard("--allow-release");
    const page = await openPage(browser, url);
    await eventually(
      async () =>
        (await evaluate<number>(browser, page, "document.querySelectorAll('button.release').length")) === 1,
      "one release button (for the one held lock)",
      400,
    );
    // Refused without the page's token: another site cannot release.
    assert.equal(await post(`${url}release?id=orders%2F1`), 403);
    // Before the click: while a dialog is open the browser takes no screenshot.
    const path = await screenshot(page, "allow-release.png");
    t.diagnostic(`screenshot: ${path}`);
    const dialogs = browser.events.length;
    await evaluate(browser, page, "setTimeout(() => document.querySelector('button.release').click(), 0)");
    await eventually(
      () => browser.events.slice(dialogs).some((e) => e.method === "Page.javascriptDialogOpening"),
      "the confirmation",
      400,
    );
    await browser.send("Page.handleJavaScriptDialog", { accept: true }, page);
    const reader = new LockClient({ table, client: backend.client });
    clients.push(reader);
    await eventually(async () => (await reader.read("orders/1"))?.held === false, "the lock released", 400);
    assert.deepEqual(pageErrors(browser, page), []);
  });
});

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve(body));
    })
      .on("error", reject)
      .end();
  });
}

function post(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST" }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}
