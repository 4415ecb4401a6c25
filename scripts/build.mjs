// Builds one implementation (ES modules, dist/esm) that both `import` and `require` load, so that
// `instanceof` holds across a code base that mixes them. `require("dynamolock")` reaches it through a
// one-line CommonJS file in dist/cjs that requires the ES module (Node >= 20.19 / 22.12 can). dist/cjs
// also holds CommonJS declarations of the same code: TypeScript checks each format against files that
// describe what it loads. No source maps: src/ is not shipped, so maps would point at nothing.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const run = (...args) => execFileSync(process.execPath, [tsc, ...args], { stdio: "inherit" });

rmSync("dist", { recursive: true, force: true });
// All the JavaScript, the CLI included (the package's bin), without declarations: the CLI's modules
// are not an API, so their .d.ts files are not shipped.
run("-p", "tsconfig.build.json", "--outDir", "dist/esm", "--declaration", "false");
// The library's declarations, without the CLI's and without what is marked @internal.
run("-p", "tsconfig.build.lib.json", "--outDir", "dist/esm", "--emitDeclarationOnly");
run(
  "-p",
  "tsconfig.build.lib.json",
  "--outDir",
  "dist/cjs",
  "--emitDeclarationOnly",
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
for (const entry of ["index", "testing"]) {
  writeFileSync(
    `dist/cjs/${entry}.js`,
    `"use strict";\n// The ES module build, loaded by require(): one copy of every class for import and require.\nmodule.exports = require("../esm/${entry}.js");\n`,
  );
}
