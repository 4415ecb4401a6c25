/**
 * DynamoDB expressions for the simulated store: condition, update and projection expressions are
 * parsed once into small trees (cached by text) and evaluated against an item, with names and values
 * bound from ExpressionAttributeNames / ExpressionAttributeValues at each request.
 *
 * Covered: comparisons (= <> < <= > >=), BETWEEN, IN, AND / OR / NOT, parentheses, the functions
 * attribute_exists, attribute_not_exists, attribute_type, begins_with, contains and size; SET (with
 * `+`, `-`, if_not_exists, list_append), REMOVE, ADD (numbers and sets), DELETE (sets). Paths are
 * attribute names, or map paths `a.b.c` (for the holders map of multi-holder locks: reading, size(),
 * SET and REMOVE of a nested entry, whose parent map must exist, as DynamoDB requires); list indexes
 * are refused loudly rather than modelled wrongly.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";

export type Item = Record<string, AttributeValue>;

/** A request-shaped mistake, reported as DynamoDB would (a ValidationException). */
export class ExpressionError extends Error {
  override name = "ValidationException";
}

// ---- tokens ----

type Token =
  | { readonly kind: "name"; readonly text: string } // #placeholder or a plain attribute name
  | { readonly kind: "value"; readonly text: string } // :placeholder
  | { readonly kind: "word"; readonly text: string } // keyword or function name, upper-cased
  | { readonly kind: "op"; readonly text: string };

const KEYWORDS = new Set(["AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"]);
const FUNCTIONS = new Set([
  "attribute_exists",
  "attribute_not_exists",
  "attribute_type",
  "begins_with",
  "contains",
  "size",
  "if_not_exists",
  "list_append",
]);

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const two = text.slice(i, i + 2);
    if (two === "<>" || two === "<=" || two === ">=") {
      tokens.push({ kind: "op", text: two });
      i += 2;
      continue;
    }
    if ("()=<>,+-".includes(c)) {
      tokens.push({ kind: "op", text: c });
      i++;
      continue;
    }
    if (c === "." || c === "[") throw new ExpressionError(`List indexes are not modelled: ${text}`);
    const match =
      /^#[A-Za-z0-9_]+(\.#?[A-Za-z0-9_]+)+/.exec(text.slice(i)) ?? /^[#:]?[A-Za-z0-9_]+/.exec(text.slice(i));
    if (match === null) throw new ExpressionError(`Invalid expression: unexpected "${c}" in ${text}`);
    const word = match[0];
    i += word.length;
    if (word.startsWith("#")) tokens.push({ kind: "name", text: word });
    else if (word.startsWith(":")) tokens.push({ kind: "value", text: word });
    else if (KEYWORDS.has(word.toUpperCase())) tokens.push({ kind: "word", text: word.toUpperCase() });
    else if (FUNCTIONS.has(word)) tokens.push({ kind: "word", text: word });
    else tokens.push({ kind: "name", text: word });
  }
  return tokens;
}

// ---- trees ----

/** An operand: an attribute (by its name token), a bound value, or size(attribute). */
export type Operand =
  | { readonly kind: "path"; readonly name: string }
  | { readonly kind: "value"; readonly ref: string }
  | { readonly kind: "size"; readonly name: string };

export type Condition =
  | { readonly kind: "or" | "and"; readonly left: Condition; readonly right: Condition }
  | { readonly kind: "not"; readonly inner: Condition }
  | { readonly kind: "compare"; readonly op: string; readonly left: Operand; readonly right: Operand }
  | { readonly kind: "between"; readonly subject: Operand; readonly low: Operand; readonly high: Operand }
  | { readonly kind: "in"; readonly subject: Operand; readonly options: readonly Operand[] }
  | { readonly kind: "call"; readonly fn: string; readonly args: readonly Operand[] };

export type ValueExpr =
  | Operand
  | { readonly kind: "plus" | "minus"; readonly left: ValueExpr; readonly right: ValueExpr }
  | { readonly kind: "if_not_exists"; readonly name: string; readonly fallback: ValueExpr }
  | { readonly kind: "list_append"; readonly first: ValueExpr; readonly second: ValueExpr };

export interface Update {
  readonly set: readonly { readonly name: string; readonly value: ValueExpr }[];
  readonly remove: readonly string[];
  readonly add: readonly { readonly name: string; readonly value: Operand }[];
  readonly delete: readonly { readonly name: string; readonly value: Operand }[];
}

/** Placeholders an expression uses, for DynamoDB's "unused / undefined placeholder" checks. */
export interface Parsed<T> {
  readonly tree: T;
  readonly names: ReadonlySet<string>;
  readonly values: ReadonlySet<string>;
}

class Parser {
  readonly names = new Set<string>();
  readonly values = new Set<string>();
  #tokens: Token[];
  #at = 0;
  readonly #text: string;

  constructor(text: string) {
    this.#text = text;
    this.#tokens = tokenize(text);
  }

  get done(): boolean {
    return this.#at >= this.#tokens.length;
  }

  fail(what: string): never {
    throw new ExpressionError(`Invalid expression (${what}): ${this.#text}`);
  }

  peek(): Token | undefined {
    return this.#tokens[this.#at];
  }

  isWord(text: string): boolean {
    const t = this.peek();
    return t !== undefined && t.kind === "word" && t.text === text;
  }

  isOp(text: string): boolean {
    const t = this.peek();
    return t !== undefined && t.kind === "op" && t.text === text;
  }

  expectOp(text: string): void {
    if (!this.isOp(text)) this.fail(`expected "${text}"`);
    this.#at++;
  }

  take(): Token {
    const t = this.#tokens[this.#at++];
    if (t === undefined) this.fail("unexpected end");
    return t;
  }

  name(): string {
    const t = this.take();
    if (t.kind !== "name") this.fail(`expected an attribute name, got "${t.text}"`);
    for (const part of t.text.split(".")) if (part.startsWith("#")) this.names.add(part);
    return t.text;
  }

  // condition := or ; or := and (OR and)* ; and := not (AND not)* ; not := NOT not | primary
  condition(): Condition {
    let left = this.conjunction();
    while (this.isWord("OR")) {
      this.#at++;
      left = { kind: "or", left, right: this.conjunction() };
    }
    return left;
  }

  conjunction(): Condition {
    let left = this.negation();
    while (this.isWord("AND")) {
      this.#at++;
      left = { kind: "and", left, right: this.negation() };
    }
    return left;
  }

  negation(): Condition {
    if (this.isWord("NOT")) {
      this.#at++;
      return { kind: "not", inner: this.negation() };
    }
    return this.primary();
  }

  primary(): Condition {
    if (this.isOp("(")) {
      this.#at++;
      const inner = this.condition();
      this.expectOp(")");
      return inner;
    }
    const t = this.peek();
    if (t?.kind === "word" && t.text !== "size") {
      this.#at++;
      if (
        !["attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains"].includes(
          t.text,
        )
      ) {
        this.fail(`${t.text} is not a condition function`);
      }
      this.expectOp("(");
      const args: Operand[] = [this.operand()];
      while (this.isOp(",")) {
        this.#at++;
        args.push(this.operand());
      }
      this.expectOp(")");
      const arity = t.text.startsWith("attribute_") && t.text !== "attribute_type" ? 1 : 2;
      if (args.length !== arity || args[0]?.kind !== "path") this.fail(`bad arguments to ${t.text}`);
      return { kind: "call", fn: t.text, args };
    }
    const subject = this.operand();
    if (this.isWord("BETWEEN")) {
      this.#at++;
      const low = this.operand();
      if (!this.isWord("AND")) this.fail("BETWEEN without AND");
      this.#at++;
      return { kind: "between", subject, low, high: this.operand() };
    }
    if (this.isWord("IN")) {
      this.#at++;
      this.expectOp("(");
      const options = [this.operand()];
      while (this.isOp(",")) {
        this.#at++;
        options.push(this.operand());
      }
      this.expectOp(")");
      return { kind: "in", subject, options };
    }
    const op = this.take();
    if (op.kind !== "op" || !["=", "<>", "<", "<=", ">", ">="].includes(op.text)) {
      this.fail(`expected a comparison, got "${op.text}"`);
    }
    return { kind: "compare", op: op.text, left: subject, right: this.operand() };
  }

  operand(): Operand {
    const t = this.peek();
    if (t?.kind === "value") {
      this.#at++;
      this.values.add(t.text);
      return { kind: "value", ref: t.text };
    }
    if (t?.kind === "word" && t.text === "size") {
      this.#at++;
      this.expectOp("(");
      const name = this.name();
      this.expectOp(")");
      return { kind: "size", name };
    }
    return { kind: "path", name: this.name() };
  }

  valueExpr(): ValueExpr {
    const left = this.valueTerm();
    if (this.isOp("+") || this.isOp("-")) {
      const op = this.take().text;
      return { kind: op === "+" ? "plus" : "minus", left, right: this.valueTerm() };
    }
    return left;
  }

  valueTerm(): ValueExpr {
    const t = this.peek();
    if (t?.kind === "word" && (t.text === "if_not_exists" || t.text === "list_append")) {
      this.#at++;
      this.expectOp("(");
      if (t.text === "if_not_exists") {
        const name = this.name();
        this.expectOp(",");
        const fallback = this.valueExpr();
        this.expectOp(")");
        return { kind: "if_not_exists", name, fallback };
      }
      const first = this.valueExpr();
      this.expectOp(",");
      const second = this.valueExpr();
      this.expectOp(")");
      return { kind: "list_append", first, second };
    }
    return this.operand();
  }

  // update := (SET a = v, ... | REMOVE a, ... | ADD a :v, ... | DELETE a :v, ...)+ , each clause once
  update(): Update {
    const set: { name: string; value: ValueExpr }[] = [];
    const remove: string[] = [];
    const add: { name: string; value: Operand }[] = [];
    const del: { name: string; value: Operand }[] = [];
    const seen = new Set<string>();
    while (!this.done) {
      const clause = this.take();
      if (clause.kind !== "word" || !["SET", "REMOVE", "ADD", "DELETE"].includes(clause.text)) {
        this.fail(`expected SET, REMOVE, ADD or DELETE, got "${clause.text}"`);
      }
      if (seen.has(clause.text)) this.fail(`the ${clause.text} section can only be used once`);
      seen.add(clause.text);
      do {
        if (clause.text === "SET") {
          const name = this.name();
          this.expectOp("=");
          set.push({ name, value: this.valueExpr() });
        } else if (clause.text === "REMOVE") {
          remove.push(this.name());
        } else {
          const name = this.name();
          const value = this.operand();
          if (value.kind !== "value") this.fail(`${clause.text} takes a value placeholder`);
          (clause.text === "ADD" ? add : del).push({ name, value });
        }
      } while (this.isOp(",") && this.take());
    }
    if (seen.size === 0) this.fail("empty update");
    return { set, remove, add, delete: del };
  }

  projection(): string[] {
    const names = [this.name()];
    while (this.isOp(",")) {
      this.#at++;
      names.push(this.name());
    }
    return names;
  }
}

const cache = new Map<string, Parsed<unknown>>();

function parse<T>(kind: string, text: string, build: (p: Parser) => T): Parsed<T> {
  const key = `${kind}\u0000${text}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit as Parsed<T>;
  const p = new Parser(text);
  const tree = build(p);
  if (!p.done) p.fail("trailing tokens");
  const parsed: Parsed<T> = { tree, names: p.names, values: p.values };
  cache.set(key, parsed);
  return parsed;
}

export const parseCondition = (text: string): Parsed<Condition> => parse("c", text, (p) => p.condition());
export const parseUpdate = (text: string): Parsed<Update> => parse("u", text, (p) => p.update());
export const parseProjection = (text: string): Parsed<string[]> => parse("p", text, (p) => p.projection());

// ---- binding and evaluation ----

/** Names and values of one request, with DynamoDB's checks on them. */
export class Bindings {
  readonly #names: Record<string, string>;
  readonly #values: Record<string, AttributeValue>;

  constructor(names: Record<string, string> | undefined, values: Record<string, AttributeValue> | undefined) {
    this.#names = names ?? {};
    this.#values = values ?? {};
  }

  /** DynamoDB refuses a request that defines a placeholder no expression uses. */
  checkAllUsed(parsed: readonly Parsed<unknown>[]): void {
    const names = new Set<string>();
    const values = new Set<string>();
    for (const p of parsed) {
      for (const n of p.names) names.add(n);
      for (const v of p.values) values.add(v);
    }
    const unusedNames = Object.keys(this.#names).filter((n) => !names.has(n));
    if (unusedNames.length > 0) {
      throw new ExpressionError(
        `Value provided in ExpressionAttributeNames unused in expressions: keys: {${unusedNames.join(", ")}}`,
      );
    }
    const unusedValues = Object.keys(this.#values).filter((v) => !values.has(v));
    if (unusedValues.length > 0) {
      throw new ExpressionError(
        `Value provided in ExpressionAttributeValues unused in expressions: keys: {${unusedValues.join(", ")}}`,
      );
    }
  }

  /** A document path: its top-level attribute, then map keys. */
  path(token: string): string[] {
    return token.split(".").map((part) => this.attribute(part));
  }

  attribute(token: string): string {
    if (token.includes(".")) throw new ExpressionError(`A nested path is not allowed here: ${token}`);
    if (!token.startsWith("#")) return token;
    const name = this.#names[token];
    if (name === undefined) {
      throw new ExpressionError(
        `An expression attribute name used in the document path is not defined; attribute name: ${token}`,
      );
    }
    return name;
  }

  value(ref: string): AttributeValue {
    const value = this.#values[ref];
    if (value === undefined) {
      throw new ExpressionError(
        `An expression attribute value used in expression is not defined; attribute value: ${ref}`,
      );
    }
    return value;
  }
}

function operandValue(item: Item | undefined, operand: Operand, b: Bindings): AttributeValue | undefined {
  switch (operand.kind) {
    case "value":
      return b.value(operand.ref);
    case "path":
      return getPath(item, b.path(operand.name));
    case "size": {
      const v = getPath(item, b.path(operand.name));
      const n = v === undefined ? undefined : sizeOf(v);
      return n === undefined ? undefined : { N: String(n) };
    }
  }
}

/** The value at a document path, or undefined if any step is missing or not a map. */
function getPath(item: Item | undefined, path: readonly string[]): AttributeValue | undefined {
  let v: AttributeValue | undefined = item?.[path[0] as string];
  for (const key of path.slice(1)) v = v?.M?.[key];
  return v;
}

function sizeOf(v: AttributeValue): number | undefined {
  if (v.S !== undefined) return new TextEncoder().encode(v.S).length;
  if (v.B !== undefined) return v.B.length;
  if (v.SS !== undefined) return v.SS.length;
  if (v.NS !== undefined) return v.NS.length;
  if (v.BS !== undefined) return v.BS.length;
  if (v.L !== undefined) return v.L.length;
  if (v.M !== undefined) return Object.keys(v.M).length;
  return undefined;
}

export function typeOf(v: AttributeValue): string {
  for (const t of ["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M"] as const) {
    if (v[t] !== undefined) return t;
  }
  throw new ExpressionError(
    `Supplied AttributeValue is empty, must contain exactly one of the supported datatypes`,
  );
}

function bytesCompare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  }
  return a.length - b.length;
}

/** Order of two scalars of one type (N numerically, S by UTF-8 bytes, B bytewise); undefined if unordered. */
function order(a: AttributeValue, b: AttributeValue): number | undefined {
  if (a.N !== undefined && b.N !== undefined) return Math.sign(Number(a.N) - Number(b.N));
  if (a.S !== undefined && b.S !== undefined) {
    const enc = new TextEncoder();
    return Math.sign(bytesCompare(enc.encode(a.S), enc.encode(b.S)));
  }
  if (a.B !== undefined && b.B !== undefined) return Math.sign(bytesCompare(a.B, b.B));
  return undefined;
}

export function equal(a: AttributeValue, b: AttributeValue): boolean {
  const t = typeOf(a);
  if (t !== typeOf(b)) return false;
  switch (t) {
    case "S":
    case "N":
    case "B":
      return order(a, b) === 0;
    case "BOOL":
      return a.BOOL === b.BOOL;
    case "NULL":
      return true;
    case "SS":
      return sameSet(a.SS as string[], b.SS as string[]);
    case "NS":
      return sameSet((a.NS as string[]).map(Number), (b.NS as string[]).map(Number));
    case "BS":
      return sameSet(
        (a.BS as Uint8Array[]).map((x) => Buffer.from(x).toString("hex")),
        (b.BS as Uint8Array[]).map((x) => Buffer.from(x).toString("hex")),
      );
    case "L": {
      const la = a.L as AttributeValue[];
      const lb = b.L as AttributeValue[];
      return la.length === lb.length && la.every((x, i) => equal(x, lb[i] as AttributeValue));
    }
    default: {
      const ma = a.M as Record<string, AttributeValue>;
      const mb = b.M as Record<string, AttributeValue>;
      const ka = Object.keys(ma);
      return (
        ka.length === Object.keys(mb).length &&
        ka.every((k) => mb[k] !== undefined && equal(ma[k] as AttributeValue, mb[k] as AttributeValue))
      );
    }
  }
}

function sameSet<T>(a: readonly T[], b: readonly T[]): boolean {
  const sb = new Set(b);
  return a.length === b.length && a.every((x) => sb.has(x));
}

function compare(op: string, a: AttributeValue | undefined, b: AttributeValue | undefined): boolean {
  // A missing attribute equals nothing and differs from everything; it has no order.
  if (a === undefined || b === undefined) return op === "<>";
  if (op === "=") return equal(a, b);
  if (op === "<>") return !equal(a, b);
  const o = order(a, b);
  if (o === undefined) return false;
  switch (op) {
    case "<":
      return o < 0;
    case "<=":
      return o <= 0;
    case ">":
      return o > 0;
    default:
      return o >= 0;
  }
}

/**
 * `fixed` replaces parts of the condition by a constant (condition coverage: a part dropped from an
 * AND holds, one dropped from an OR fails), keyed by the node itself.
 */
export function evaluate(
  item: Item | undefined,
  c: Condition,
  b: Bindings,
  fixed?: ReadonlyMap<Condition, boolean>,
): boolean {
  const pinned = fixed?.get(c);
  if (pinned !== undefined) return pinned;
  switch (c.kind) {
    case "or":
      // Both sides are bound even when the left decides, so an undefined placeholder always fails.
      return [evaluate(item, c.left, b, fixed), evaluate(item, c.right, b, fixed)].some(Boolean);
    case "and":
      return [evaluate(item, c.left, b, fixed), evaluate(item, c.right, b, fixed)].every(Boolean);
    case "not":
      return !evaluate(item, c.inner, b, fixed);
    case "compare":
      return compare(c.op, operandValue(item, c.left, b), operandValue(item, c.right, b));
    case "between": {
      const v = operandValue(item, c.subject, b);
      return (
        compare(">=", v, operandValue(item, c.low, b)) && compare("<=", v, operandValue(item, c.high, b))
      );
    }
    case "in": {
      const v = operandValue(item, c.subject, b);
      const options = c.options.map((o) => operandValue(item, o, b));
      return options.some((o) => compare("=", v, o));
    }
    case "call": {
      const [first, second] = c.args;
      const v = operandValue(item, first as Operand, b);
      const arg = second === undefined ? undefined : operandValue(item, second, b);
      switch (c.fn) {
        case "attribute_exists":
          return v !== undefined;
        case "attribute_not_exists":
          return v === undefined;
        case "attribute_type":
          return v !== undefined && arg?.S !== undefined && typeOf(v) === arg.S;
        case "begins_with":
          if (v?.S !== undefined && arg?.S !== undefined) return v.S.startsWith(arg.S);
          if (v?.B !== undefined && arg?.B !== undefined) {
            return bytesCompare(v.B.subarray(0, arg.B.length), arg.B) === 0;
          }
          return false;
        default: // contains
          if (v === undefined || arg === undefined) return false;
          if (v.S !== undefined && arg.S !== undefined) return v.S.includes(arg.S);
          if (v.SS !== undefined && arg.S !== undefined) return v.SS.includes(arg.S);
          if (v.NS !== undefined && arg.N !== undefined) return v.NS.some((n) => Number(n) === Number(arg.N));
          if (v.L !== undefined) return v.L.some((x) => equal(x, arg));
          return false;
      }
    }
  }
}

function addNumbers(a: string, b: string, negate = false): AttributeValue {
  const sum = Number(a) + (negate ? -Number(b) : Number(b));
  if (!Number.isFinite(sum)) throw new ExpressionError("Number overflow in an update");
  return { N: String(sum) };
}

function computeValue(old: Item | undefined, v: ValueExpr, b: Bindings): AttributeValue {
  switch (v.kind) {
    case "plus":
    case "minus": {
      const left = computeValue(old, v.left, b);
      const right = computeValue(old, v.right, b);
      if (left.N === undefined || right.N === undefined) {
        throw new ExpressionError("An operand in the update expression has an incorrect data type");
      }
      return addNumbers(left.N, right.N, v.kind === "minus");
    }
    case "if_not_exists":
      return getPath(old, b.path(v.name)) ?? computeValue(old, v.fallback, b);
    case "list_append": {
      const first = computeValue(old, v.first, b);
      const second = computeValue(old, v.second, b);
      if (first.L === undefined || second.L === undefined) {
        throw new ExpressionError("An operand in the update expression has an incorrect data type");
      }
      return { L: [...first.L, ...second.L] };
    }
    default: {
      const value = operandValue(old, v, b);
      if (value === undefined) {
        throw new ExpressionError(
          "The provided expression refers to an attribute that does not exist in the item",
        );
      }
      return value;
    }
  }
}

function setUnion(current: AttributeValue | undefined, added: AttributeValue): AttributeValue {
  const t = typeOf(added);
  if (t === "N") {
    if (current !== undefined && current.N === undefined) {
      throw new ExpressionError("An operand in the update expression has an incorrect data type");
    }
    return addNumbers(current?.N ?? "0", added.N as string);
  }
  if (t !== "SS" && t !== "NS" && t !== "BS") {
    throw new ExpressionError(
      `Incorrect operand type for operator or function; operator: ADD, operand type: ${t}`,
    );
  }
  if (current !== undefined && typeOf(current) !== t) {
    throw new ExpressionError("An operand in the update expression has an incorrect data type");
  }
  const key = (x: unknown) => (x instanceof Uint8Array ? Buffer.from(x).toString("hex") : String(x));
  const merged = new Map<string, unknown>();
  for (const x of [...((current?.[t] as unknown[]) ?? []), ...(added[t] as unknown[])]) merged.set(key(x), x);
  return { [t]: [...merged.values()] } as unknown as AttributeValue;
}

function setDifference(
  current: AttributeValue | undefined,
  removed: AttributeValue,
): AttributeValue | undefined {
  const t = typeOf(removed);
  if (t !== "SS" && t !== "NS" && t !== "BS") {
    throw new ExpressionError(
      `Incorrect operand type for operator or function; operator: DELETE, operand type: ${t}`,
    );
  }
  if (current === undefined) return undefined;
  if (typeOf(current) !== t)
    throw new ExpressionError("An operand in the update expression has an incorrect data type");
  const key = (x: unknown) => (x instanceof Uint8Array ? Buffer.from(x).toString("hex") : String(x));
  const gone = new Set((removed[t] as unknown[]).map(key));
  const left = (current[t] as unknown[]).filter((x) => !gone.has(key(x)));
  return left.length === 0 ? undefined : ({ [t]: left } as unknown as AttributeValue);
}

/**
 * The static checks DynamoDB makes before it evaluates the condition: overlapping document paths
 * (including two placeholders that name the same path) are a ValidationException even when the
 * condition would fail.
 */
export function checkPaths(update: Update, b: Bindings): void {
  const paths: string[][] = [];
  for (const token of [
    ...update.set.map((x) => x.name),
    ...update.remove,
    ...update.add.map((x) => x.name),
    ...update.delete.map((x) => x.name),
  ]) {
    const path = b.path(token);
    const prefix = (a: string[], c: string[]) => a.slice(0, c.length).every((x, i) => x === c[i]);
    if (paths.some((o) => prefix(o, path) || prefix(path, o))) {
      throw new ExpressionError("Two document paths overlap with each other");
    }
    paths.push(path);
  }
}

/**
 * Applies an update to `old` (undefined: the item does not exist yet) and returns the new item and
 * the names of the attributes it touched. Every right-hand side is read from the old item, as
 * DynamoDB does; key attributes and overlapping paths are refused.
 */
export function applyUpdate(
  old: Item | undefined,
  key: Item,
  update: Update,
  b: Bindings,
): { readonly item: Item; readonly touched: readonly string[] } {
  const touched: string[] = [];
  const paths: string[][] = [];
  const claim = (token: string): string[] => {
    const path = b.path(token);
    const name = path[0] as string;
    if (key[name] !== undefined) {
      throw new ExpressionError(`Cannot update attribute ${name}. This attribute is part of the key`);
    }
    const overlaps = (a: string[], c: string[]) =>
      a.slice(0, c.length).every((x, i) => x === c[i]) || c.slice(0, a.length).every((x, i) => x === a[i]);
    if (paths.some((other) => overlaps(other, path)))
      throw new ExpressionError("Two document paths overlap with each other");
    paths.push(path);
    if (!touched.includes(name)) touched.push(name);
    return path;
  };
  const topLevel = (path: string[]): string => {
    if (path.length > 1) throw new ExpressionError("ADD and DELETE of a nested path are not modelled");
    return path[0] as string;
  };
  const item: Item = { ...(old ?? {}), ...key };
  /** The map that holds a nested path's last key, copied on write; DynamoDB refuses a missing parent. */
  const parentOf = (path: string[]): Record<string, AttributeValue> => {
    let container: Record<string, AttributeValue> = item;
    for (const step of path.slice(0, -1)) {
      const next = container[step];
      if (next?.M === undefined) {
        throw new ExpressionError(
          "The document path provided in the update expression is invalid for update",
        );
      }
      const copy = { M: { ...next.M } };
      container[step] = copy;
      container = copy.M;
    }
    return container;
  };
  const computed = update.set.map((s) => ({ path: claim(s.name), value: computeValue(old, s.value, b) }));
  const removed = update.remove.map(claim);
  const added = update.add.map((a) => ({
    name: topLevel(claim(a.name)),
    value: operandValue(old, a.value, b),
  }));
  const deleted = update.delete.map((d) => ({
    name: topLevel(claim(d.name)),
    value: operandValue(old, d.value, b),
  }));
  // Parents are checked against the old item before anything changes, as one request is all or nothing.
  for (const path of [...computed.map((c) => c.path), ...removed]) {
    if (path.length > 1 && getPath(old, path.slice(0, -1))?.M === undefined) {
      throw new ExpressionError("The document path provided in the update expression is invalid for update");
    }
  }
  for (const { path, value } of computed) parentOf(path)[path[path.length - 1] as string] = value;
  for (const path of removed) delete parentOf(path)[path[path.length - 1] as string];
  for (const { name, value } of added) item[name] = setUnion(old?.[name], value as AttributeValue);
  for (const { name, value } of deleted) {
    const left = setDifference(old?.[name], value as AttributeValue);
    if (left === undefined) delete item[name];
    else item[name] = left;
  }
  return { item, touched };
}

// ---- condition coverage ----

function operandText(o: Operand): string {
  return o.kind === "path" ? o.name : o.kind === "value" ? o.ref : `size(${o.name})`;
}

/** A condition as text (placeholders as written), to name its parts in a report. */
export function conditionText(c: Condition): string {
  switch (c.kind) {
    case "or":
    case "and":
      return `(${conditionText(c.left)} ${c.kind.toUpperCase()} ${conditionText(c.right)})`;
    case "not":
      return `NOT ${conditionText(c.inner)}`;
    case "compare":
      return `${operandText(c.left)} ${c.op} ${operandText(c.right)}`;
    case "between":
      return `${operandText(c.subject)} BETWEEN ${operandText(c.low)} AND ${operandText(c.high)}`;
    case "in":
      return `${operandText(c.subject)} IN (${c.options.map(operandText).join(", ")})`;
    case "call":
      return `${c.fn}(${c.args.map(operandText).join(", ")})`;
  }
}

/**
 * The parts of a condition that can be dropped: the operands of its AND and OR chains (a part
 * dropped from an AND holds, one dropped from an OR fails), or the whole condition if it is one
 * test (dropped, the write is unconditional).
 */
export function conditionParts(c: Condition): { readonly part: Condition; readonly dropped: boolean }[] {
  if (c.kind !== "and" && c.kind !== "or") return [{ part: c, dropped: true }];
  const out: { part: Condition; dropped: boolean }[] = [];
  const walk = (node: Condition, parent: "and" | "or") => {
    if (node.kind === parent) {
      walk(node.left, parent);
      walk(node.right, parent);
    } else if (node.kind === "and" || node.kind === "or") {
      out.push({ part: node, dropped: parent === "and" });
      walk(node.left, node.kind);
      walk(node.right, node.kind);
    } else out.push({ part: node, dropped: parent === "and" });
  };
  walk(c, c.kind);
  return out;
}
