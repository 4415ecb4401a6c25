/**
 * The CLI for locks with several holders (issue 12 item 6): `run --permits N` / `--shared`,
 * `status` listing every holder, `release --force --holder`. Separate processes against a real
 * local server (dynalite by default, see support/backend.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LockClient, LockLostError } from "../src/index.js";
import { type Backend, startBackend, uniqueName } from "./support/backend.js";
import { cleanEnv, cli, killAll, startCli } from "./support/cli.js";
import { eventually } from "./support/wait.js";

let backend: Backend;
let table: string;
let locks: LockClient;
let env: NodeJS.ProcessEnv;

before(async () => {
  backend = await startBackend();
  table = uniqueName("cliholders");
  locks = new LockClient({
    table,
    client: backend.client,
    leaseMs: 10_000,
    heartbeatMs: 1_000,
    holder: "lib",
  });
  await locks.createTable();
  env = cleanEnv({ AWS_ENDPOINT_URL_DYNAMODB: backend.endpoint });
});
after(async () => {
  await killAll();
  await locks.close();
  await backend.close();
});

const lockArgs = (id: string) => ["--table", table, "--id", id];
/** A command that says it is in, then holds until signalled (bounded: 20 s). */
const hold = [process.execPath, "-e", "console.log('in'); setTimeout(() => process.exit(0), 20000)"];

describe("dynamolock run --permits / --shared", { concurrency: 2 }, () => {
  it("--permits 2: two runs hold the id at once, a third finds it full (75)", async () => {
    const one = startCli(
      ["run", ...lockArgs("cli-sem"), "--permits", "2", "--holder", "one", "--", ...hold],
      { env },
    );
    await one.waitFor("in", "stdout");
    const two = startCli(
      ["run", ...lockArgs("cli-sem"), "--permits", "2", "--holder", "two", "--", ...hold],
      { env },
    );
    await two.waitFor("in", "stdout");
    const info = await locks.read("cli-sem");
    assert.equal(info?.kind, "permits");
    assert.deepEqual(info?.holders.map((h) => h.holder).sort(), ["one", "two"]);
    const third = await cli(["run", ...lockArgs("cli-sem"), "--permits", "2", "--", "true"], { env });
    assert.equal(third.code, 75, third.stderr);

    const text = await cli(["status", ...lockArgs("cli-sem")], { env });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /2 of 2 permits held/);
    assert.match(text.stdout, /permit\s+one \[key \w{8}, heartbeat/);
    assert.match(text.stdout, /permit\s+two \[key \w{8}, heartbeat/);
    const json = JSON.parse((await cli(["status", ...lockArgs("cli-sem"), "--json"], { env })).stdout);
    assert.equal(json.held, true);
    assert.equal(json.holder, null);
    assert.equal(json.kind, "permits");
    assert.equal(json.permits, 2);
    assert.equal(json.holders.length, 2);
    for (const h of json.holders) {
      assert.deepEqual(Object.keys(h).sort(), [
        "fence",
        "heartbeatAgeMs",
        "heartbeatAt",
        "holder",
        "key",
        "leaseMs",
        "mode",
        "stale",
      ]);
      assert.equal(h.mode, "permit");
      assert.equal(h.fence, null);
      assert.equal(typeof h.heartbeatAgeMs, "number");
    }

    const listed = await cli(["list", "--table", table, "--held", "--prefix", "cli-sem", "--json"], { env });
    assert.equal(listed.code, 0, listed.stderr);
    const row = JSON.parse(listed.stdout.trim());
    assert.equal(row.held, true, "list --held shows a semaphore with holders in");
    assert.equal(row.holders, 2);

    // release --force --holder removes exactly that run's permit: it stops its command and exits 79.
    const released = await cli(["release", "--force", ...lockArgs("cli-sem"), "--holder", "one", "--json"], {
      env,
    });
    assert.equal(released.code, 0, released.stderr);
    const out = JSON.parse(released.stdout);
    assert.equal(out.released, true);
    assert.equal(out.holder, "one");
    assert.equal(out.mode, "permit");
    const oneDone = await one.done;
    assert.equal(oneDone.code, 79, oneDone.stderr);
    assert.match(oneDone.stderr, /force-released/);
    const left = await locks.read("cli-sem");
    assert.deepEqual(
      left?.holders.map((h) => h.holder),
      ["two"],
    );
    two.child.kill("SIGTERM");
    await two.done;
  });

  it("--shared runs hold together; status shows mode shared", async () => {
    const a = startCli(["run", ...lockArgs("cli-rw"), "--shared", "--holder", "r1", "--", ...hold], { env });
    await a.waitFor("in", "stdout");
    const b = startCli(["run", ...lockArgs("cli-rw"), "--shared", "--holder", "r2", "--", ...hold], { env });
    await b.waitFor("in", "stdout");
    const json = JSON.parse((await cli(["status", ...lockArgs("cli-rw"), "--json"], { env })).stdout);
    assert.equal(json.kind, "shared");
    assert.deepEqual(
      json.holders.map((h: { mode: string }) => h.mode),
      ["shared", "shared"],
    );
    const text = await cli(["status", ...lockArgs("cli-rw")], { env });
    assert.match(text.stdout, /held shared by 2 holders/);
    const exclusive = await cli(["run", ...lockArgs("cli-rw"), "--", "true"], { env });
    assert.equal(exclusive.code, 75, "an exclusive run is kept out while shared runs hold");
    a.child.kill("SIGTERM");
    b.child.kill("SIGTERM");
    await Promise.all([a.done, b.done]);
  });

  it("a name two holders share is refused (64), listing keys; the key picks one", async () => {
    const first = await locks.acquire("cli-amb", { permits: 3 });
    const second = await locks.acquire("cli-amb", { permits: 3 });
    const amb = await cli(["release", "--force", ...lockArgs("cli-amb"), "--holder", "lib"], { env });
    assert.equal(amb.code, 64);
    assert.match(amb.stderr, /2 holders are named "lib".*--holder KEY/);
    assert.equal((await locks.read("cli-amb"))?.holders.length, 2, "nothing removed");
    const secondKey = (await locks.read("cli-amb"))?.holders.find((h) => h.heartbeatAt !== undefined)
      ?.key as string;
    const byKey = await cli(["release", "--force", ...lockArgs("cli-amb"), "--holder", secondKey], { env });
    assert.equal(byKey.code, 0, byKey.stderr);
    assert.match(byKey.stdout, new RegExp(`released permit holder "lib" \\(key ${secondKey}`));
    assert.equal((await locks.read("cli-amb"))?.holders.length, 1);
    const none = await cli(["release", "--force", ...lockArgs("cli-amb"), "--holder", "nobody"], { env });
    assert.equal(none.code, 0);
    assert.match(none.stdout, /no holder "nobody"/);
    await eventually(
      () => !first.held || !second.held,
      "the removed holder learns at its next heartbeat",
      4_000,
    ).catch(() => undefined);
    for (const l of [first, second])
      await l.release().catch((err) => assert.ok(err instanceof LockLostError));
  });

  it("bad flags are usage errors before any request", async () => {
    const both = await cli(["run", ...lockArgs("x"), "--permits", "2", "--shared", "--", "true"], { env });
    assert.equal(both.code, 64);
    assert.match(both.stderr, /--permits and --shared/);
    // 101: the library's bound (MAX_PERMITS), refused by the CLI before it connects.
    for (const bad of ["0", "1.5", "two", "101"]) {
      const r = await cli(["run", ...lockArgs("x"), "--permits", bad, "--", "true"], { env });
      assert.equal(r.code, 64, bad);
      assert.match(r.stderr, /--permits/);
    }
    const rec = await cli(["run", ...lockArgs("x"), "--shared", "--record-exit", "--", "true"], { env });
    assert.equal(rec.code, 64);
    assert.match(rec.stderr, /read-only/);
    assert.equal(await locks.read("x"), undefined, "nothing was written");
  });
});
