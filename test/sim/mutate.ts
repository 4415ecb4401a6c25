/**
 * `npm run mutate`: the simulation's mutation score. Each mutant of the catalogue (test/sim/mutants.ts)
 * is applied to a copy of the tree (src/ and test/sim/ in a temporary directory that reuses
 * node_modules), and a bounded search (test/sim/hunt.ts) runs on it in a child process. A mutant is
 * killed when the search finds a violation within the budget.
 *
 *   --stages S      the search per mutant, profile:schedules, in turn (default DEFAULT_STAGES);
 *                   a mutant may add stages of its own (`extraStages` in the catalogue)
 *   --only a,b      run these mutants only
 *   --jobs J        mutants run at once (default 1; the machine is shared)
 *   --check         only check that every patch applies exactly once
 *
 * The working tree is never modified. Exit code 1 when a mutant survives that the catalogue does not
 * explain as harmless, or when the unmutated code fails the same search.
 */
import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { MUTANTS, type Mutant } from "./mutants.js";

const root = resolve(import.meta.dirname, "../..");

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : (process.argv[i + 1] ?? "true");
}

/**
 * The profiles that find defects fastest, each with a few hundred schedules: about 1 300 schedules
 * for a mutant that survives (around half a minute on one core).
 */
const DEFAULT_STAGES = "tight:250,stormy:250,forceful:300,margin:250,calm:100,mixed:150";
const stages = option("stages") ?? DEFAULT_STAGES;
const jobs = Math.max(1, Number(option("jobs") ?? 1));
const only = option("only")?.split(",");
const checkOnly = process.argv.includes("--check");

/** The patched text of the mutant's file; throws unless the patch matches exactly once. */
function patched(m: Mutant): string {
  const text = readFileSync(join(root, m.file), "utf8");
  const count = text.split(m.from).length - 1;
  if (count !== 1) throw new Error(`mutant ${m.id}: its patch matches ${count} times in ${m.file} (stale?)`);
  return text.replace(m.from, () => m.to);
}

/** A private copy of the tree for one worker: src/ and test/sim/, with node_modules linked. */
function workspace(): string {
  const dir = mkdtempSync(join(tmpdir(), "dynamolock-mutant-"));
  cpSync(join(root, "src"), join(dir, "src"), { recursive: true });
  cpSync(join(root, "test/sim"), join(dir, "test/sim"), { recursive: true });
  for (const f of ["package.json", "tsconfig.json"]) cpSync(join(root, f), join(dir, f));
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
  return dir;
}

/** Stages with a mutant's own: a profile in both gets the larger count (seeds start at 1 in each). */
function mergeStages(base: string, extra: string): string {
  const counts = new Map<string, number>();
  for (const part of `${base},${extra}`.split(",")) {
    const [profile, n] = part.split(":") as [string, string];
    counts.set(profile, Math.max(counts.get(profile) ?? 0, Number(n)));
  }
  return [...counts].map(([p, n]) => `${p}:${n}`).join(",");
}

interface Hunt {
  readonly ran: number;
  readonly invariant?: string;
  readonly detail?: string;
  readonly seed?: number;
  readonly profile?: string;
  readonly after?: number;
}

function hunt(dir: string, extra?: string): Promise<Hunt> {
  const plan = extra === undefined ? stages : mergeStages(stages, extra);
  return new Promise((resolveHunt, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "test/sim/hunt.ts", plan], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      err += b.toString();
    });
    child.on("close", (code) => {
      const line = out.trim().split("\n").pop() ?? "";
      try {
        resolveHunt(JSON.parse(line) as Hunt);
      } catch {
        // A mutant that crashes the run (an exception at load, say) is killed, by that crash.
        resolveHunt({ ran: 0, invariant: `crash (exit ${code})`, detail: err.trim().split("\n")[0] ?? "" });
        if (code === null) reject(new Error("hunt killed"));
      }
    });
  });
}

async function main(): Promise<number> {
  const chosen = MUTANTS.filter((m) => only === undefined || only.includes(m.id));
  const ids = new Set<string>();
  for (const m of MUTANTS) {
    if (ids.has(m.id)) throw new Error(`duplicate mutant id ${m.id}`);
    ids.add(m.id);
    patched(m);
  }
  if (checkOnly) {
    console.log(`${MUTANTS.length} mutants, every patch applies exactly once`);
    return 0;
  }
  const dirs = Array.from({ length: Math.min(jobs, chosen.length) }, workspace);
  try {
    const started = performance.now();
    const extras = chosen.flatMap((m) => (m.extraStages === undefined ? [] : [m.extraStages]));
    const all = extras.length === 0 ? undefined : extras.join(",");
    console.log(
      `baseline: the unmutated code, stages ${all === undefined ? stages : mergeStages(stages, all)}`,
    );
    const base = await hunt(dirs[0] as string, all);
    if (base.invariant !== undefined) {
      console.log(
        `the unmutated code fails: ${base.invariant} (seed ${base.seed}, ${base.profile}): ${base.detail}`,
      );
      return 1;
    }
    const results = new Map<string, Hunt>();
    let next = 0;
    const work = async (dir: string) => {
      for (;;) {
        const m = chosen[next++];
        if (m === undefined) return;
        const original = readFileSync(join(root, m.file), "utf8");
        writeFileSync(join(dir, m.file), patched(m));
        const t = performance.now();
        const r = await hunt(dir, m.extraStages);
        writeFileSync(join(dir, m.file), original);
        results.set(m.id, r);
        const verdict =
          r.invariant === undefined
            ? `SURVIVED ${r.ran} schedules${m.harmless === undefined ? "" : " (harmless)"}`
            : `killed by "${r.invariant}" after ${r.after ?? "?"} (seed ${r.seed}, ${r.profile})`;
        console.log(
          `${m.id.padEnd(32)} ${m.area.padEnd(10)} ${verdict}  [${((performance.now() - t) / 1000).toFixed(1)} s]`,
        );
      }
    };
    await Promise.all(dirs.map(work));
    const killed = chosen.filter((m) => results.get(m.id)?.invariant !== undefined);
    const survivors = chosen.filter((m) => results.get(m.id)?.invariant === undefined);
    const unexplained = survivors.filter((m) => m.harmless === undefined);
    const score = (100 * killed.length) / chosen.length;
    console.log(
      `\nmutation score: ${killed.length}/${chosen.length} killed (${score.toFixed(0)}%) in ${((performance.now() - started) / 60_000).toFixed(1)} min; stages ${stages}`,
    );
    for (const m of survivors) {
      console.log(
        `  survivor ${m.id}: ${m.what} — ${m.harmless ?? "NOT EXPLAINED: a gap in the simulation"}`,
      );
    }
    return unexplained.length > 0 ? 1 : 0;
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
