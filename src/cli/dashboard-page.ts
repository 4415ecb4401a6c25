/**
 * The dashboard's single page: inline style and script, no external files, so it works offline.
 * Lock ids and holder names are arbitrary strings: they reach the page only through textContent.
 */

function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export function dashboardPage(options: { table: string; allowRelease: boolean; token: string }): string {
  const config = JSON.stringify({ allowRelease: options.allowRelease, token: options.token }).replace(
    /</g,
    "\\u003c",
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dynamolock: ${esc(options.table)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
  body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5rem; color: #1f2328; }
  h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
  .meta { color: #656d76; font-size: .85rem; margin-bottom: 1rem; }
  .error { color: #cf222e; font-weight: 700; }
  table { border-collapse: collapse; font-size: .9rem; width: 100%; }
  th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #d8dee4; white-space: nowrap; }
  th { background: #f6f8fa; }
  tbody tr { cursor: pointer; }
  tbody tr:hover { background: #f6f8fa; }
  tr.selected { outline: 2px solid #0072B2; }
  tr.free td { color: #656d76; }
  tr.stale td { background: #fff8c5; }
  tr.highlight td { background: #ffebe9; color: #cf222e; font-weight: 700; }
  .mark { font-size: .8rem; }
  button.release { background: #cf222e; color: #fff; border: 0; border-radius: 4px; padding: .2rem .6rem; cursor: pointer; }
  #history { margin-top: 1.5rem; }
  #history img { max-width: 100%; border: 1px solid #d8dee4; }
  #changes li.bad { color: #cf222e; font-weight: 700; }
  .note { color: #656d76; font-size: .85rem; }
</style>
</head>
<body>
<h1>Locks in table “${esc(options.table)}”</h1>
<div class="meta" id="meta">connecting…</div>
<table>
  <thead><tr><th>id</th><th>holder</th><th>fence</th><th>heartbeat</th><th>lease left</th><th>stale</th><th>waiters</th><th>data</th>${options.allowRelease ? "<th></th>" : ""}</tr></thead>
  <tbody id="locks"></tbody>
</table>
<p class="note">Waiters are not recorded in the table, so that column shows “-”. ${options.allowRelease ? "Force-release is enabled (--allow-release)." : "Read-only: start with --allow-release for a force-release button."}</p>
<section id="history" hidden>
  <h2 id="history-title"></h2>
  <p class="note">History as this dashboard saw it by polling since it started, kept in its memory (the table records none).</p>
  <img id="timeline" alt="timeline of the selected lock">
  <ul id="changes"></ul>
</section>
<script>
"use strict";
const CONFIG = ${config};
let selected = null;
let last = null;

function ms(value) {
  if (value === null) return "-";
  const abs = Math.abs(value);
  if (abs < 1000) return Math.round(abs) + "ms";
  if (abs < 60000) return (abs / 1000).toFixed(1) + "s";
  return Math.floor(abs / 60000) + "m " + String(Math.round((abs % 60000) / 1000)).padStart(2, "0") + "s";
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function render(snapshot) {
  last = snapshot;
  const meta = document.getElementById("meta");
  meta.textContent = snapshot.locks.length + " locks, " + snapshot.locks.filter((l) => l.held).length +
    " held · refreshed every " + ms(snapshot.intervalMs) + " · cost: " + snapshot.scansPerRefresh +
    " Scan request(s) per refresh · " + new Date(snapshot.at).toLocaleTimeString();
  if (snapshot.error !== null) {
    const span = document.createElement("span");
    span.className = "error";
    span.textContent = " · last refresh failed: " + snapshot.error;
    meta.appendChild(span);
  }
  const body = document.getElementById("locks");
  body.replaceChildren();
  for (const lock of snapshot.locks) {
    const tr = document.createElement("tr");
    tr.dataset.id = lock.id;
    const mark = snapshot.highlighted[lock.id];
    tr.className = [lock.held ? "" : "free", lock.stale ? "stale" : "", mark ? "highlight" : "", lock.id === selected ? "selected" : ""].join(" ").trim();
    const id = cell(tr, lock.id);
    if (mark) {
      const span = document.createElement("span");
      span.className = "mark";
      span.textContent = " ← " + mark;
      id.appendChild(span);
    }
    cell(tr, lock.held ? (lock.holder ?? "(unnamed)") : "(free)");
    cell(tr, String(lock.fence));
    cell(tr, lock.held && lock.heartbeatAgeMs !== null ? ms(Math.max(0, lock.heartbeatAgeMs)) + " ago" : "-");
    cell(tr, lock.leaseLeftMs === null ? "-" : lock.leaseLeftMs > 0 ? ms(lock.leaseLeftMs) : "expired");
    cell(tr, lock.stale ? "STALE" : lock.held ? "no" : "-");
    cell(tr, lock.waiters === null ? "-" : String(lock.waiters));
    cell(tr, lock.dataBytes === null ? "-" : lock.dataBytes + " B");
    if (CONFIG.allowRelease) {
      const td = cell(tr, "");
      if (lock.held) {
        const button = document.createElement("button");
        button.className = "release";
        button.textContent = "force-release";
        button.addEventListener("click", (event) => {
          event.stopPropagation();
          release(lock);
        });
        td.appendChild(button);
      }
    }
    tr.addEventListener("click", () => select(lock.id));
    body.appendChild(tr);
  }
  showHistory();
}

function select(id) {
  selected = id;
  if (last !== null) render(last);
}

function showHistory() {
  const section = document.getElementById("history");
  if (selected === null) return;
  section.hidden = false;
  document.getElementById("history-title").textContent = "History of “" + selected + "”";
  document.getElementById("timeline").src = "/timeline?id=" + encodeURIComponent(selected) + "&at=" + (last ? last.at : 0);
  const list = document.getElementById("changes");
  list.replaceChildren();
  for (const change of (last ? last.changes : []).filter((c) => c.id === selected)) {
    const li = document.createElement("li");
    li.className = change.kind === "taken over" || change.kind === "lost" ? "bad" : "";
    li.textContent = new Date(change.at).toLocaleTimeString() + " " + change.text;
    list.appendChild(li);
  }
}

async function release(lock) {
  const holder = lock.holder ?? "(unnamed)";
  if (!window.confirm("Force-release lock “" + lock.id + "” held by " + holder + " (fence " + lock.fence + ")? The holder finds out at its next heartbeat.")) return;
  const response = await fetch("/release?id=" + encodeURIComponent(lock.id), { method: "POST", headers: { "x-dynamolock-token": CONFIG.token } });
  if (!response.ok) window.alert("force-release failed: " + (await response.text()));
}

const events = new EventSource("/events");
events.onmessage = (event) => render(JSON.parse(event.data));
events.onerror = () => {
  document.getElementById("meta").textContent = "disconnected from the dashboard process; retrying…";
};
</script>
</body>
</html>
`;
}
