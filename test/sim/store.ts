/**
 * The simulated DynamoDB: an in-memory table of items, and exactly the single-item conditional
 * operations (plus TransactWriteItems) that the lock uses, applied one at a time — so the store is
 * trivially linearizable: each request takes effect at the instant the simulation delivers it.
 *
 * Failures are thrown as the SDK throws them: an Error whose `name` is the service's exception name,
 * with `$fault` and `$metadata.httpStatusCode`, `Item` on a failed condition when the request asked
 * for it (and the store is configured to honour that, as DynamoDB does and dynalite does not), and
 * `CancellationReasons` on a cancelled transaction.
 */
import type {
  AttributeValue,
  CancellationReason,
  DeleteItemCommandInput,
  GetItemCommandInput,
  PutItemCommandInput,
  TransactWriteItemsCommandInput,
  UpdateItemCommandInput,
} from "@aws-sdk/client-dynamodb";
import {
  applyUpdate,
  Bindings,
  type Condition,
  checkPaths,
  conditionParts,
  conditionText,
  ExpressionError,
  evaluate,
  type Item,
  type Parsed,
  parseCondition,
  parseProjection,
  parseUpdate,
  typeOf,
} from "./expression.js";

/** An error shaped like the SDK's service exceptions. */
export class ServiceError extends Error {
  readonly $fault: "client" | "server";
  readonly $metadata: { readonly httpStatusCode: number };
  Item?: Item;
  CancellationReasons?: CancellationReason[];

  constructor(name: string, message: string, status: number) {
    super(message);
    this.name = name;
    this.$fault = status >= 500 ? "server" : "client";
    this.$metadata = { httpStatusCode: status };
  }
}

export function validationError(message: string): ServiceError {
  return new ServiceError("ValidationException", message, 400);
}

export interface TableSchema {
  readonly partitionKey: string;
  readonly sortKey?: string | undefined;
}

/** A write the store applied, reported to observers (the invariant checker). */
export interface AppliedWrite {
  readonly table: string;
  readonly key: string;
  readonly before: Item | undefined;
  readonly after: Item | undefined;
  /** The request as sent. */
  readonly operation: "UpdateItem" | "PutItem" | "DeleteItem";
  readonly input: UpdateItemCommandInput | PutItemCommandInput | DeleteItemCommandInput;
}

export interface StoreOptions {
  /**
   * Whether a failed condition returns the old item when `ReturnValuesOnConditionCheckFailure` is
   * `ALL_OLD` (DynamoDB, DynamoDB Local) or ignores the parameter (dynalite).
   * @default true
   */
  readonly returnsOldItemOnConditionFailure?: boolean;
  /** Called after every applied write, in apply order. */
  readonly onWrite?: (write: AppliedWrite) => void;
  /** When given, every condition is also evaluated with each of its parts dropped (see ConditionCoverage). */
  readonly coverage?: ConditionCoverage;
}

/**
 * Condition coverage: for every condition the store evaluates, whether dropping each of its parts
 * would have changed the outcome. A part that never changes an outcome over a run is either dead
 * (implied by the others) or untested by it.
 */
export class ConditionCoverage {
  /** condition text → part text → [evaluations, outcomes it decided] */
  readonly parts = new Map<string, Map<string, [number, number]>>();

  record(condition: Condition, item: Item | undefined, b: Bindings, outcome: boolean): void {
    const text = conditionText(condition);
    let parts = this.parts.get(text);
    if (parts === undefined) {
      parts = new Map();
      this.parts.set(text, parts);
    }
    for (const { part, dropped } of conditionParts(condition)) {
      const without = evaluate(item, condition, b, new Map([[part, dropped]]));
      const key = conditionText(part);
      const counts = parts.get(key) ?? [0, 0];
      counts[0]++;
      if (without !== outcome) counts[1]++;
      parts.set(key, counts);
    }
  }

  merge(other: ConditionCoverage): void {
    for (const [text, parts] of other.parts) {
      const mine = this.parts.get(text) ?? new Map<string, [number, number]>();
      for (const [part, [n, d]] of parts) {
        const c = mine.get(part) ?? [0, 0];
        mine.set(part, [c[0] + n, c[1] + d]);
      }
      this.parts.set(text, mine);
    }
  }
}

interface Table {
  readonly schema: TableSchema;
  readonly items: Map<string, Item>;
}

const clone = (item: Item): Item => structuredClone(item);

export class Store {
  readonly #tables = new Map<string, Table>();
  readonly #returnsOldItem: boolean;
  readonly #onWrite: ((write: AppliedWrite) => void) | undefined;
  readonly #coverage: ConditionCoverage | undefined;

  constructor(options: StoreOptions = {}) {
    this.#returnsOldItem = options.returnsOldItemOnConditionFailure ?? true;
    this.#onWrite = options.onWrite;
    this.#coverage = options.coverage;
  }

  /** Evaluates a condition, and records its parts' coverage when asked to. */
  #holds(item: Item | undefined, condition: Condition, b: Bindings): boolean {
    const outcome = evaluate(item, condition, b);
    this.#coverage?.record(condition, item, b, outcome);
    return outcome;
  }

  createTable(name: string, schema: TableSchema): void {
    if (this.#tables.has(name))
      throw new ServiceError("ResourceInUseException", `Table already exists: ${name}`, 400);
    this.#tables.set(name, { schema, items: new Map() });
  }

  /** The stored item (a copy), for observers; undefined if absent. */
  peek(table: string, key: Item): Item | undefined {
    const t = this.#table(table);
    const item = t.items.get(this.#keyString(t, key));
    return item === undefined ? undefined : clone(item);
  }

  #table(name: string | undefined): Table {
    const t = name === undefined ? undefined : this.#tables.get(name);
    if (t === undefined) {
      throw new ServiceError("ResourceNotFoundException", "Requested resource not found", 400);
    }
    return t;
  }

  /** The key of a request, checked against the table's key schema; a canonical string for the map. */
  #keyString(t: Table, key: Item | undefined): string {
    const names = [t.schema.partitionKey, ...(t.schema.sortKey === undefined ? [] : [t.schema.sortKey])];
    if (
      key === undefined ||
      Object.keys(key).length !== names.length ||
      names.some((n) => key[n] === undefined)
    ) {
      throw validationError("The provided key element does not match the schema");
    }
    return names
      .map((n) => {
        const v = key[n] as AttributeValue;
        if (v.S === undefined || v.S.length === 0)
          throw validationError("The provided key element does not match the schema");
        return v.S;
      })
      .join("\u0000");
  }

  #keyOf(t: Table, item: Item): Item {
    const key: Item = {};
    for (const n of [t.schema.partitionKey, t.schema.sortKey]) {
      if (n !== undefined && item[n] !== undefined) key[n] = item[n] as AttributeValue;
    }
    return key;
  }

  #condition(text: string | undefined): Parsed<ReturnType<typeof parseCondition>["tree"]> | undefined {
    return text === undefined ? undefined : parseCondition(text);
  }

  #conditionFailed(old: Item | undefined, returnOld: string | undefined): ServiceError {
    const err = new ServiceError("ConditionalCheckFailedException", "The conditional request failed", 400);
    if (this.#returnsOldItem && returnOld === "ALL_OLD" && old !== undefined) err.Item = clone(old);
    return err;
  }

  /**
   * Binds a single-item write's expressions (refusing unused names and values, as DynamoDB does) and
   * throws ConditionalCheckFailed, with the old item where asked, if its condition fails on `old`.
   */
  #checkWrite(
    input: {
      readonly ConditionExpression?: string | undefined;
      readonly ExpressionAttributeNames?: Record<string, string> | undefined;
      readonly ExpressionAttributeValues?: Record<string, AttributeValue> | undefined;
      readonly ReturnValuesOnConditionCheckFailure?: string | undefined;
    },
    old: Item | undefined,
    update?: Parsed<unknown>,
  ): Bindings {
    const condition = this.#condition(input.ConditionExpression);
    const b = new Bindings(input.ExpressionAttributeNames, input.ExpressionAttributeValues);
    b.checkAllUsed([update, condition].filter((p) => p !== undefined) as Parsed<unknown>[]);
    if (condition !== undefined && !this.#holds(old, condition.tree, b)) {
      throw this.#conditionFailed(old, input.ReturnValuesOnConditionCheckFailure);
    }
    return b;
  }

  /** Runs `fn`, turning expression mistakes into ValidationExceptions. */
  #validated<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof ExpressionError) throw validationError(err.message);
      throw err;
    }
  }

  getItem(input: GetItemCommandInput): { Item?: Item } {
    return this.#validated(() => {
      const t = this.#table(input.TableName);
      const k = this.#keyString(t, input.Key);
      const projection =
        input.ProjectionExpression === undefined ? undefined : parseProjection(input.ProjectionExpression);
      const b = new Bindings(input.ExpressionAttributeNames, undefined);
      b.checkAllUsed(projection === undefined ? [] : [projection]);
      const item = t.items.get(k);
      if (item === undefined) return {};
      if (projection === undefined) return { Item: clone(item) };
      const out: Item = {};
      for (const token of projection.tree) {
        const name = b.attribute(token);
        if (item[name] !== undefined) out[name] = structuredClone(item[name] as AttributeValue);
      }
      return { Item: out };
    });
  }

  updateItem(input: UpdateItemCommandInput): { Attributes?: Item } {
    const t = this.#table(input.TableName);
    const { k, old, next, touched } = this.#validated(() => {
      const k = this.#keyString(t, input.Key);
      if (input.UpdateExpression === undefined)
        throw validationError("UpdateExpression is required by this model");
      const update = parseUpdate(input.UpdateExpression);
      const old = t.items.get(k);
      checkPaths(update.tree, new Bindings(input.ExpressionAttributeNames, input.ExpressionAttributeValues));
      const b = this.#checkWrite(input, old, update);
      const { item, touched } = applyUpdate(old, input.Key as Item, update.tree, b);
      return { k, old, next: item, touched };
    });
    t.items.set(k, next);
    this.#onWrite?.({
      table: input.TableName as string,
      key: k,
      before: old,
      after: clone(next),
      operation: "UpdateItem",
      input,
    });
    return this.#returnValues(input.ReturnValues, old, next, touched);
  }

  #returnValues(
    mode: string | undefined,
    old: Item | undefined,
    next: Item | undefined,
    touched: readonly string[],
  ): { Attributes?: Item } {
    const pick = (item: Item | undefined): Item | undefined => {
      if (item === undefined) return undefined;
      const out: Item = {};
      for (const n of touched) if (item[n] !== undefined) out[n] = item[n] as AttributeValue;
      return Object.keys(out).length === 0 ? undefined : out;
    };
    let attributes: Item | undefined;
    switch (mode ?? "NONE") {
      case "NONE":
        return {};
      case "ALL_OLD":
        attributes = old;
        break;
      case "ALL_NEW":
        attributes = next;
        break;
      case "UPDATED_OLD":
        attributes = pick(old);
        break;
      case "UPDATED_NEW":
        attributes = pick(next);
        break;
      default:
        throw validationError(`Invalid ReturnValues: ${mode}`);
    }
    return attributes === undefined ? {} : { Attributes: clone(attributes) };
  }

  putItem(input: PutItemCommandInput): { Attributes?: Item } {
    const t = this.#table(input.TableName);
    const { k, old } = this.#validated(() => {
      if (input.Item === undefined) throw validationError("Item is required");
      for (const v of Object.values(input.Item)) typeOf(v);
      const k = this.#keyString(t, this.#keyOf(t, input.Item));
      const old = t.items.get(k);
      this.#checkWrite(input, old);
      return { k, old };
    });
    const next = clone(input.Item as Item);
    t.items.set(k, next);
    this.#onWrite?.({
      table: input.TableName as string,
      key: k,
      before: old,
      after: clone(next),
      operation: "PutItem",
      input,
    });
    if (input.ReturnValues === "ALL_OLD" && old !== undefined) return { Attributes: clone(old) };
    return {};
  }

  deleteItem(input: DeleteItemCommandInput): { Attributes?: Item } {
    const t = this.#table(input.TableName);
    const { k, old } = this.#validated(() => {
      const k = this.#keyString(t, input.Key);
      const old = t.items.get(k);
      this.#checkWrite(input, old);
      return { k, old };
    });
    t.items.delete(k);
    if (old !== undefined) {
      this.#onWrite?.({
        table: input.TableName as string,
        key: k,
        before: old,
        after: undefined,
        operation: "DeleteItem",
        input,
      });
    }
    if (input.ReturnValues === "ALL_OLD" && old !== undefined) return { Attributes: clone(old) };
    return {};
  }

  /**
   * All conditions are checked against the state before the transaction; if any fails, nothing is
   * written and the reasons line up with the items. Otherwise every write is applied at once.
   */
  transactWriteItems(input: TransactWriteItemsCommandInput): Record<string, never> {
    const items = input.TransactItems ?? [];
    if (items.length === 0 || items.length > 100)
      throw validationError("TransactItems must hold 1 to 100 items");
    const reasons: CancellationReason[] = [];
    const seen = new Set<string>();
    let failed = false;
    const plans = this.#validated(() =>
      items.map((entry) => {
        const ops = [entry.ConditionCheck, entry.Put, entry.Update, entry.Delete].filter(
          (o) => o !== undefined,
        );
        if (ops.length !== 1) throw validationError("Each TransactItem must hold exactly one operation");
        const op = ops[0] as NonNullable<(typeof ops)[number]>;
        const t = this.#table(op.TableName);
        const key =
          entry.Put !== undefined
            ? this.#keyOf(t, entry.Put.Item ?? {})
            : ((op as { Key?: Item }).Key as Item);
        const k = `${op.TableName}\u0001${this.#keyString(t, key)}`;
        if (seen.has(k)) {
          throw validationError("Transaction request cannot include multiple operations on one item");
        }
        seen.add(k);
        const condition = this.#condition(op.ConditionExpression);
        const update =
          entry.Update === undefined ? undefined : parseUpdate(entry.Update.UpdateExpression ?? "");
        const b = new Bindings(op.ExpressionAttributeNames, op.ExpressionAttributeValues);
        b.checkAllUsed([condition, update].filter((p) => p !== undefined) as Parsed<unknown>[]);
        if (entry.ConditionCheck !== undefined && condition === undefined) {
          throw validationError("ConditionCheck requires a ConditionExpression");
        }
        const old = t.items.get(this.#keyString(t, key));
        if (condition !== undefined && !this.#holds(old, condition.tree, b)) {
          failed = true;
          const reason: CancellationReason = {
            Code: "ConditionalCheckFailed",
            Message: "The conditional request failed",
          };
          if (
            this.#returnsOldItem &&
            op.ReturnValuesOnConditionCheckFailure === "ALL_OLD" &&
            old !== undefined
          ) {
            reason.Item = clone(old);
          }
          reasons.push(reason);
        } else {
          reasons.push({ Code: "None" });
        }
        return { entry, t, key, old, update, b };
      }),
    );
    if (failed) {
      const err = new ServiceError(
        "TransactionCanceledException",
        `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(", ")}]`,
        400,
      );
      err.CancellationReasons = reasons;
      throw err;
    }
    const writes = plans.map(({ entry, t, key, old, update, b }) => {
      const k = this.#keyString(t, key);
      if (entry.Put !== undefined)
        return { t, k, old, next: clone(entry.Put.Item as Item), op: "PutItem" as const, input: entry.Put };
      if (entry.Delete !== undefined)
        return { t, k, old, next: undefined, op: "DeleteItem" as const, input: entry.Delete };
      if (update !== undefined && entry.Update !== undefined) {
        const next = this.#validated(() => applyUpdate(old, key, update.tree, b).item);
        return { t, k, old, next, op: "UpdateItem" as const, input: entry.Update };
      }
      return undefined;
    });
    for (const w of writes) {
      if (w === undefined) continue;
      if (w.next === undefined) w.t.items.delete(w.k);
      else w.t.items.set(w.k, w.next);
    }
    for (const w of writes) {
      if (w === undefined || (w.old === undefined && w.next === undefined)) continue;
      const table = [...this.#tables].find(([, t]) => t === w.t)?.[0] as string;
      this.#onWrite?.({
        table,
        key: w.k,
        before: w.old,
        after: w.next === undefined ? undefined : clone(w.next),
        operation: w.op,
        input: w.input as UpdateItemCommandInput,
      });
    }
    return {};
  }
}
