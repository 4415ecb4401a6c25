// Builds two self-contained trees from one source: dist/esm (ES modules) and dist/cjs (CommonJS),
// each with its own .d.ts files, so `import` and `require` users both get types that describe the
// module format they actually load.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const run = (...args) => execFileSync(process.execPath, [tsc, ...args], { stdio: "inherit" });

rmSync("dist", { recursive: true, force: true });
run("-p", "tsconfig.build.json", "--outDir", "dist/esm");
// The CLI is an ES module program (the package's bin); only the library needs a CommonJS build.
run(
  "-p",
  "tsconfig.build.cjs.json",
  "--outDir",
  "dist/cjs",
  "--module",
  "CommonJS",
  "--moduleResolution",
  "Node10",
  "--verbatimModuleSyntax",
  "false",
);
// The nested package.json makes Node and TypeScript treat dist/cjs/*.js and *.d.ts as CommonJS.
mkdirSync("dist/cjs", { recursive: true });
writeFileSync("dist/cjs/package.json", '{ "type": "commonjs" }\n');
