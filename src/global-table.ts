/**
 * Global tables: which replicated lock tables keep mutual exclusion (docs/global-tables.md).
 *
 * A lock is only as safe as the conditional write that takes it. In a multi-Region eventually
 * consistent (MREC) global table, a condition is evaluated against the item as it is in the Region
 * that receives the write, and concurrent writes in two Regions are settled by last writer wins:
 * two callers in two Regions can both take the same lock, get the same fence, and neither is ever
 * told. A multi-Region strongly consistent (MRSC) table replicates writes synchronously, so a
 * condition means the same in every Region. This module reads what DescribeTable says of a table and
 * judges it; it sends nothing itself.
 */
import type { TableDescription } from "@aws-sdk/client-dynamodb";
import { LockError } from "./errors.js";

export type ReplicationMode =
  /** No replicas: an ordinary table in one Region. */
  | "single-region"
  /** Multi-Region eventual consistency (the default for global tables, and every legacy one). */
  | "MREC"
  /** Multi-Region strong consistency. */
  | "MRSC";

/** How a table is replicated, as DescribeTable tells it. */
export interface TableReplication {
  readonly mode: ReplicationMode;
  /** The Regions holding a replica (including the one answering), empty for a single-Region table. */
  readonly replicas: readonly string[];
  /** MRSC witness Regions: they take part in every write but hold no readable replica. */
  readonly witnesses: readonly string[];
}

/** The global tables version AWS calls legacy: always eventually consistent, and not described by `Replicas`. */
const LEGACY_VERSION = "2017.11.29";

export function replicationOf(table: TableDescription): TableReplication {
  const replicas = (table.Replicas ?? []).flatMap((r) => (r.RegionName === undefined ? [] : [r.RegionName]));
  const witnesses = (table.GlobalTableWitnesses ?? []).flatMap((w) =>
    w.RegionName === undefined ? [] : [w.RegionName],
  );
  if (table.MultiRegionConsistency === "STRONG") return { mode: "MRSC", replicas, witnesses };
  if (replicas.length > 0 || table.GlobalTableVersion === LEGACY_VERSION) {
    return { mode: "MREC", replicas, witnesses };
  }
  return { mode: "single-region", replicas, witnesses };
}

/** What the caller said and what is known of its client, for {@link judgeReplication}. */
export interface ReplicationContext {
  readonly table: string;
  /** The `singleWriterRegion` option: the one Region every locker of this table writes through. */
  readonly singleWriterRegion: string | undefined;
  /** The Region this client sends to, when it can be read from its configuration. */
  readonly clientRegion: string | undefined;
}

export type ReplicationVerdict =
  | { readonly ok: false; readonly error: LockError }
  | {
      readonly ok: true;
      /** Something to write in the logs, once per client (an MREC table used by the opt-in). */
      readonly warning?: string;
    };

const refuse = (message: string): ReplicationVerdict => ({
  ok: false,
  error: new LockError(message, { code: "EGLOBALTABLE" }),
});

/**
 * Whether locks on this table keep their guarantees. Single-Region and MRSC tables do. An MREC table
 * does only if every locker writes through the same Region's replica, which the caller must say
 * (`singleWriterRegion`) and which is then checked where it can be: that Region holds a replica, and
 * this client sends to it.
 */
export function judgeReplication(
  replication: TableReplication,
  context: ReplicationContext,
): ReplicationVerdict {
  const { table, singleWriterRegion, clientRegion } = context;
  if (replication.mode !== "MREC") return { ok: true };
  const regions = replication.replicas.length > 0 ? replication.replicas.join(", ") : "(legacy, not listed)";
  if (singleWriterRegion === undefined) {
    return refuse(
      `Table "${table}" is a global table with multi-Region eventual consistency (replicas: ${regions}). A lock on it is not safe: a conditional write is checked only against the Region that receives it, and writes in two Regions are settled by last writer wins, so two callers in two Regions can both take the same lock (with the same fence) and neither is told. Use a lock table in one Region, or a global table with multi-Region strong consistency (MRSC). If every locker of this table sends its requests to one Region's endpoint, say so with the \`singleWriterRegion\` option (see docs/global-tables.md).`,
    );
  }
  if (replication.replicas.length > 0 && !replication.replicas.includes(singleWriterRegion)) {
    return refuse(
      `singleWriterRegion is "${singleWriterRegion}", but table "${table}" has no replica there (replicas: ${regions})`,
    );
  }
  if (clientRegion !== undefined && clientRegion !== singleWriterRegion) {
    return refuse(
      `Table "${table}" is an eventually consistent global table locked only through Region "${singleWriterRegion}" (singleWriterRegion), but this client sends its requests to "${clientRegion}": two Regions writing would let two callers hold one lock`,
    );
  }
  const unchecked =
    clientRegion === undefined ? " (this client's Region could not be read, so that was not checked)" : "";
  return {
    ok: true,
    warning: `table "${table}" is a global table with multi-Region eventual consistency (replicas: ${regions}); locks on it are safe only while every locker sends its requests to Region "${singleWriterRegion}", as singleWriterRegion says${unchecked}`,
  };
}
