import pg from "pg";
import { Registry } from "prom-client";
import { createLogger } from "../../workloads/common/src/logger.js";
import { PARTITION_DEFAULTS, Partitions } from "../../workloads/consumer/src/partitions.js";
import type { ApplyOptions } from "../../workloads/consumer/src/sink.js";
import { ledgerDdl, ledgerNames, type LedgerNames } from "../../workloads/common/src/ledger.js";
import type { PostgresConnection } from "../../operator/src/divergence/delivery.js";
import { uniqueSuffix } from "./kube.js";

/** A PostgreSQL schema of its own for one test file, with the ledger tables created. */
export async function testLedger(
  url: string,
  prefix: string,
): Promise<{ pool: pg.Pool; names: LedgerNames; schema: string; drop: () => Promise<void> }> {
  const schema = `${prefix}_${uniqueSuffix()}`;
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on("error", () => undefined); // idle clients fail when a test stops PostgreSQL; the pool replaces them
  const names = ledgerNames(schema, "logs");
  await pool.query(ledgerDdl(names));
  return {
    pool,
    names,
    schema,
    drop: async () => {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    },
  };
}

export interface LedgerCounts {
  rows: number;
  distinctIds: number;
  applied: number;
  duplicates: number;
  deadLettered: number;
  duplicateRows: number;
  deadLetterRows: number;
}

export async function ledgerCounts(pool: pg.Pool, n: LedgerNames): Promise<LedgerCounts> {
  const q = async (sql: string) => Number((await pool.query<{ c: string }>(sql)).rows[0]?.c ?? 0);
  return {
    rows: await q(`SELECT count(*) AS c FROM ${n.events}`),
    distinctIds: await q(`SELECT count(DISTINCT event_id) AS c FROM ${n.events}`),
    applied: await appliedEvents(pool, n),
    duplicates: await q(`SELECT coalesce(sum(duplicates_skipped), 0) AS c FROM ${n.offsets}`),
    deadLettered: await q(`SELECT coalesce(sum(dead_lettered), 0) AS c FROM ${n.offsets}`),
    duplicateRows: await q(`SELECT count(*) AS c FROM ${n.duplicates}`),
    deadLetterRows: await q(`SELECT count(*) AS c FROM ${n.deadLetters}`),
  };
}

/**
 * Events the consumer has stored, from the ledger (its counters move in the same transaction
 * as the rows): a read of one row per partition. Benchmarks poll this, not `count(*)`, which
 * scans the whole table and, polled while the consumer writes, takes the cores it measures.
 */
export async function appliedEvents(pool: pg.Pool, n: LedgerNames): Promise<number> {
  const r = await pool.query<{ c: string }>(`SELECT coalesce(sum(applied), 0) AS c FROM ${n.offsets}`);
  return Number(r.rows[0]?.c ?? 0);
}

/**
 * Duplicates counted three ways, each able to see one the others miss: by the client's
 * sequence number (`metadata.seq`, see test/support/events.ts: a retry stored under a new
 * event id shows here), by Kafka position (a record applied twice) and by event id.
 */
export async function duplicateCounts(
  pool: pg.Pool,
  relation: string,
): Promise<{ bySeq: number; byPosition: number; byId: number }> {
  const extra = (groupBy: string, where = "") =>
    `(SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) AS c FROM ${relation} ${where}
        GROUP BY ${groupBy} HAVING count(*) > 1) x)`;
  const r = await pool.query<{ s: string; p: string; i: string }>(
    `SELECT ${extra("metadata->>'seq'", "WHERE metadata ? 'seq'")} AS s,
            ${extra("kafka_partition, kafka_offset")} AS p, ${extra("event_id")} AS i`,
  );
  const row = r.rows[0];
  return { bySeq: Number(row?.s ?? 0), byPosition: Number(row?.p ?? 0), byId: Number(row?.i ?? 0) };
}

/**
 * Lost, duplicated and spurious events: what an exactly-once claim must keep at zero.
 * `duplicated` is the largest of the three duplicate counts (duplicateCounts).
 */
export async function exactlyOnceAudit(
  pool: pg.Pool,
  n: LedgerNames,
  expected: Iterable<string>,
): Promise<{ lost: number; duplicated: number; spurious: number; rows: number }> {
  const want = new Set(expected);
  const { rows } = await pool.query<{ event_id: string }>(`SELECT DISTINCT event_id FROM ${n.events}`);
  const d = await duplicateCounts(pool, n.events);
  let spurious = 0;
  const seen = new Set<string>();
  for (const r of rows) {
    seen.add(r.event_id);
    if (!want.has(r.event_id)) spurious++;
  }
  let lost = 0;
  for (const id of want) if (!seen.has(id)) lost++;
  return { lost, duplicated: Math.max(d.bySeq, d.byPosition, d.byId), spurious, rows: rows.length };
}

/** The operator's connection settings for the stack's PostgreSQL (no TLS there), from its URL. */
export function postgresConnection(url: string): PostgresConnection {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port),
    database: u.pathname.slice(1),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    sslMode: "disable",
  };
}

/** A partition maintainer for a test ledger (its passes run when the test calls runOnce). */
export function testPartitions(
  db: { pool: pg.Pool; names: LedgerNames },
  o: { topic?: string; retentionDays?: number; moveBatchRows?: number } = {},
): Partitions {
  return new Partitions(
    db.pool,
    db.names,
    {
      ...PARTITION_DEFAULTS,
      retentionDays: o.retentionDays ?? PARTITION_DEFAULTS.retentionDays,
      moveBatchRows: o.moveBatchRows ?? PARTITION_DEFAULTS.moveBatchRows,
      topic: o.topic ?? "t",
    },
    createLogger("partitions-test", "error"),
    new Registry(),
  );
}

/** Options for calling applyBatch directly, as the consumer would (partitions made on demand). */
export function testBatchOptions(
  db: { pool: pg.Pool; names: LedgerNames },
  topic = "t",
  retentionDays = 0,
): ApplyOptions {
  const partitions = testPartitions(db, { topic, retentionDays });
  return { attempt: 1, ensureBuckets: (b) => partitions.ensureBuckets(b), retentionDays, legacy: false };
}

/**
 * Where the per-minute and per-hour counts disagree with the rows: for every minute and hour
 * holding rows or counts, count(*) against the summed counts. Empty when they agree.
 */
export async function countMismatches(pool: pg.Pool, n: LedgerNames): Promise<string[]> {
  const out: string[] = [];
  for (const [table, width] of [
    [n.storage.parents.countsMinute.qualified, "1 minute"],
    [n.storage.parents.countsHour.qualified, "1 hour"],
  ] as const) {
    const r = await pool.query<{ t: Date; rows: string; counted: string }>(
      `WITH r AS (SELECT date_bin('${width}', ts, 'epoch'::timestamptz) AS t, count(*) AS c FROM ${n.events} GROUP BY 1),
            k AS (SELECT t, sum(n) AS c FROM ${table} GROUP BY 1)
       SELECT coalesce(r.t, k.t) AS t, coalesce(r.c, 0) AS rows, coalesce(k.c, 0) AS counted
         FROM r FULL JOIN k ON r.t = k.t WHERE coalesce(r.c, 0) <> coalesce(k.c, 0)`,
    );
    for (const x of r.rows) out.push(`${width} ${x.t.toISOString()}: ${x.rows} rows, ${x.counted} counted`);
  }
  return out;
}
