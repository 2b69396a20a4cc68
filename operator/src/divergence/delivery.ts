import pg from "pg";
import { ledgerNames } from "../../../workloads/common/src/ledger.js";
import type { LogPipelineStatus } from "../api/logpipeline.js";

/** How the operator reaches a pipeline's PostgreSQL; the password comes from a Secret, in memory only. */
export interface PostgresConnection {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  sslMode: string;
  caPem?: string | undefined;
}

export interface LedgerRow {
  partition: number;
  nextOffset: number;
  applied: number;
  duplicatesSkipped: number;
  deadLettered: number;
}

function ssl(c: PostgresConnection): pg.ClientConfig["ssl"] {
  switch (c.sslMode) {
    case "disable":
      return false;
    case "verify-ca":
    case "verify-full":
      return {
        ca: c.caPem,
        rejectUnauthorized: true,
        ...(c.sslMode === "verify-ca" ? { checkServerIdentity: () => undefined } : {}),
      };
    case "require":
      return { rejectUnauthorized: false };
    default:
      // "prefer": node-postgres cannot fall back, so it connects without TLS, as libpq would to a server without it.
      return false;
  }
}

/**
 * The consumer's stored positions and counters for one topic, from the ledger the consumer
 * writes in the same transaction as the rows (workloads/common/src/ledger.ts owns the names).
 * A bounded read: one indexed query, a connect timeout, a statement timeout.
 */
export async function readLedger(
  c: PostgresConnection,
  schema: string,
  table: string,
  topic: string,
): Promise<LedgerRow[]> {
  const names = ledgerNames(schema, table);
  const client = new pg.Client({
    host: c.host,
    port: c.port,
    database: c.database,
    user: c.user,
    password: c.password,
    ssl: ssl(c),
    connectionTimeoutMillis: 5_000,
    statement_timeout: 5_000,
    application_name: "logpipeline-operator",
  });
  await client.connect();
  try {
    const exists = await client.query<{ t: string | null }>("SELECT to_regclass($1) AS t", [names.offsets]);
    if (!exists.rows[0]?.t) return []; // the consumer has not created its tables yet
    const r = await client.query<{
      partition: number;
      next_offset: string;
      applied: string;
      duplicates_skipped: string;
      dead_lettered: string;
    }>(
      `SELECT partition, next_offset, applied, duplicates_skipped, dead_lettered FROM ${names.offsets} WHERE topic = $1 ORDER BY partition`,
      [topic],
    );
    return r.rows.map((row) => ({
      partition: row.partition,
      nextOffset: Number(row.next_offset),
      applied: Number(row.applied),
      duplicatesSkipped: Number(row.duplicates_skipped),
      deadLettered: Number(row.dead_lettered),
    }));
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Delivery figures, pure: per partition Kafka's last stable offset against the consumer's
 * stored position. The offset gap between them also counts transaction markers (one per
 * committed transaction), so where the committed records in the gap were counted
 * (`committed`), that count is the lag; elsewhere the gap is reported, an upper bound.
 */
export function deliveryStatus(
  lastStable: Map<number, number>,
  ledger: LedgerRow[],
  committed: Map<number, number>,
  asOf: Date,
): NonNullable<LogPipelineStatus["delivery"]> {
  const byPartition = new Map(ledger.map((r) => [r.partition, r]));
  const partitions = [...lastStable.entries()]
    .sort(([a], [b]) => a - b)
    .map(([partition, lso]) => {
      const next = byPartition.get(partition)?.nextOffset ?? 0;
      const gap = Math.max(0, lso - next);
      return { partition, lastStableOffset: lso, dbNextOffset: next, lag: committed.get(partition) ?? gap };
    });
  return {
    asOf: asOf.toISOString().replace(/\.\d{3}Z$/, "Z"),
    partitions,
    lag: partitions.reduce((s, p) => s + p.lag, 0),
    dlq: ledger.reduce((s, r) => s + r.deadLettered, 0),
    duplicatesSkipped: ledger.reduce((s, r) => s + r.duplicatesSkipped, 0),
  };
}

/** Partitions whose gap is small enough to count exactly on every read. */
export const EXACT_LAG_MAX_GAP = 10_000;
