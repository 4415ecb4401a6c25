/**
 * The published API, as the built declarations describe it, against a checked-in snapshot
 * (test/fixtures/public-api.d.txt): an accidental change of an export, a member or a signature
 * fails here. After an intended change: UPDATE_PUBLIC_API=1 node --import tsx --test test/public-api.test.ts
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const root = new URL("..", import.meta.url);
const entries = ["dist/esm/index.d.ts", "dist/esm/testing.d.ts"];
const snapshot = new URL("test/fixtures/public-api.d.txt", root);
const built = entries.every((e) => existsSync(new URL(e, root)));

/** Every export of each entry, resolved to its declarations, printed without comments. */
function surface(): string {
  const files = entries.map((e) => fileURLToPath(new URL(e, root)));
  const program = ts.createProgram(files, { skipLibCheck: true, types: ["node"], strict: true });
  const checker = program.getTypeChecker();
  const printer = ts.createPrinter({ removeComments: true });
  const out: string[] = [];
  for (const [i, file] of files.entries()) {
    const source = program.getSourceFile(file);
    const module = source === undefined ? undefined : checker.getSymbolAtLocation(source);
    assert.ok(source !== undefined && module !== undefined, `${entries[i]} is a module`);
    out.push(`// ---- ${entries[i]?.replace(/^dist\/esm\//, "")}`);
    const exports = checker.getExportsOfModule(module).sort((a, b) => a.name.localeCompare(b.name));
    for (const exported of exports) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      for (const declaration of symbol.declarations ?? []) {
        out.push(printer.printNode(ts.EmitHint.Unspecified, declaration, declaration.getSourceFile()));
      }
    }
  }
  return `${out.join("\n")}\n`;
}

it("the published API matches its snapshot", { skip: built ? false : "dist/ is not built" }, () => {
  const now = surface();
  if (process.env.UPDATE_PUBLIC_API === "1") writeFileSync(snapshot, now);
  assert.equal(
    now,
    readFileSync(snapshot, "utf8"),
    "the public API changed: if on purpose, update the snapshot",
  );
});
