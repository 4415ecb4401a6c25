/**
 * Import time of the main entry, in a fresh process each run: `import("dynamolock")` (ESM) and
 * `require("dynamolock")` (CJS), resolved through the package's own exports from the repository root,
 * so what is measured is the built dist/ a user would load (the SDK included).
 */
import { spawnSync } from "node:child_process";
import { fixed, summarize, table } from "./stats.js";

const PROBES = {
  ESM: [
    "--input-type=module",
    "-e",
    "const t = performance.now(); await import('dynamolock'); console.log(performance.now() - t)",
  ],
  CJS: [
    "--input-type=commonjs",
    "-e",
    "const t = performance.now(); require('dynamolock'); console.log(performance.now() - t)",
  ],
  /** For scale: the one dependency alone, which any DynamoDB code in the process loads anyway. */
  "SDK only": [
    "--input-type=module",
    "-e",
    "const t = performance.now(); await import('@aws-sdk/client-dynamodb'); console.log(performance.now() - t)",
  ],
} as const;

export interface ImportResult {
  readonly format: string;
  readonly runs: number;
  readonly p50: number;
  readonly min: number;
  readonly max: number;
  readonly processP50: number;
}

export function measureImports(root: string, runs: number): ImportResult[] {
  const results: ImportResult[] = [];
  const samples: Record<string, number[]> = {};
  const wall: Record<string, number[]> = {};
  // Alternated, like every other comparison of the bench.
  for (let r = 0; r < runs; r++) {
    for (const format of Object.keys(PROBES) as (keyof typeof PROBES)[]) {
      const started = performance.now();
      const run = spawnSync(process.execPath, [...PROBES[format]], { cwd: root, encoding: "utf8" });
      const elapsed = performance.now() - started;
      if (run.status !== 0) throw new Error(`import probe (${format}) failed: ${run.stderr}`);
      samples[format] = [...(samples[format] ?? []), Number(run.stdout.trim())];
      wall[format] = [...(wall[format] ?? []), elapsed];
    }
  }
  for (const format of Object.keys(PROBES)) {
    const list = samples[format] ?? [];
    const s = summarize(list);
    results.push({
      format,
      runs: s.n,
      p50: s.p50,
      min: Math.min(...list),
      max: Math.max(...list),
      processP50: summarize(wall[format] ?? []).p50,
    });
  }
  return results;
}

export function importTable(results: readonly ImportResult[]): string {
  return table([
    [
      "entry",
      "runs",
      "import p50 ms",
      "min ms",
      "max ms",
      "whole process p50 ms (node start + import + exit)",
    ],
    ...results.map((r) => [
      r.format === "SDK only" ? "@aws-sdk/client-dynamodb alone (ESM)" : `dynamolock (${r.format})`,
      String(r.runs),
      fixed(r.p50, 1),
      fixed(r.min, 1),
      fixed(r.max, 1),
      fixed(r.processP50, 1),
    ]),
  ]);
}
