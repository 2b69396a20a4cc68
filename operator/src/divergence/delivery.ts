import pg from "pg";
import { postgresSsl, type SslMode } from "../../../workloads/common/src/connections.js";
import { ledgerNames } from "../../../workloads/common/src/ledger.js";
import {
  eventsRelation,
  legacyExists,
  type StorageSummary,
  storageSummary,
} from "../../../workloads/common/src/storage.js";
import type { LogPipelineStatus } from "../api/logpipeline.js";
import type { LedgerEntry } from "./window.js";
import { rfc3339Seconds } from "../time.js";
import { countCommittedRecords } from "./kafka-reader.js";
import type { KafkaConnection } from "../kafka/topic-admin.js";

/** How the operator reaches a pipeline's PostgreSQL; the password comes from a Secret, in memory only. */
export interface PostgresConnection {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  sslMode: SslMode;
  caPem?: string | undefined;
}

export interface LedgerRow {
  partition: number;
  nextOffset: number;
  applied: number;
  duplicatesSkipped: number;
  deadLettered: number;
  /** The consumer recorded this partition as stalled (workloads/consumer/src/sink.ts, recordStall). */
  stalled?: { sqlstate: string; reason: string; since: string } | undefined;
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
  return withClient(c, async (client) => {
    if (!(await ledgerExists(client, names.offsets))) return []; // the consumer has not created its tables yet
    const r = await client.query<{
      partition: number;
      next_offset: string;
      applied: string;
      duplicates_skipped: string;
      dead_lettered: string;
      stalled_code: string | null;
      stalled_reason: string | null;
      stalled_since: Date | null;
    }>(
      // The stall columns through to_jsonb: a ledger made by an older consumer has none.
      `SELECT partition, next_offset, applied, duplicates_skipped, dead_lettered,
              to_jsonb(o) ->> 'stalled_code' AS stalled_code, to_jsonb(o) ->> 'stalled_reason' AS stalled_reason,
              (to_jsonb(o) ->> 'stalled_since')::timestamptz AS stalled_since
         FROM ${names.offsets} o WHERE topic = $1 ORDER BY partition`,
      [topic],
    );
    return r.rows.map((row) => ({
      partition: row.partition,
      nextOffset: Number(row.next_offset),
      applied: Number(row.applied),
      duplicatesSkipped: Number(row.duplicates_skipped),
      deadLettered: Number(row.dead_lettered),
      ...(row.stalled_code &&
        row.stalled_since && {
          stalled: {
            sqlstate: row.stalled_code,
            reason: row.stalled_reason ?? "",
            since: rfc3339Seconds(row.stalled_since),
          },
        }),
    }));
  });
}

/** One partition's offsets to check: [from, to) closed windows; rows at or beyond `to` are ahead of the consumer. */
export interface LedgerWindow {
  partition: number;
  from: number;
  to: number;
}

/**
 * What the ledger holds in each window (rows, skipped duplicates, dead letters, each with
 * its Kafka offset), plus the rows stored at offsets the consumer has not reached (none can
 * be legitimate). Bounded: indexed range reads, a statement timeout, `limit` entries per
 * partition and kind.
 */
export async function readLedgerWindows(
  c: PostgresConnection,
  schema: string,
  table: string,
  topic: string,
  windows: LedgerWindow[],
  opts: { ahead?: boolean; limit?: number } = {},
): Promise<Map<number, { entries: LedgerEntry[]; ahead: LedgerEntry[] }>> {
  const limit = opts.limit ?? 50_000;
  const names = ledgerNames(schema, table);
  return withClient(c, async (client) => {
    const out = new Map<number, { entries: LedgerEntry[]; ahead: LedgerEntry[] }>();
    if (!(await ledgerExists(client, names.offsets))) return out;
    // While an upgrade moves rows out of an old unpartitioned table, both are read.
    const events = eventsRelation(names, await legacyExists(client, names.storage));
    type Row = { offset: string; event_id: string | null };
    const entries = (rows: Row[], kind: LedgerEntry["kind"]) =>
      rows.map((r) => ({ offset: Number(r.offset), eventId: r.event_id, kind }));
    for (const w of windows) {
      const [rows, dups, dead, ahead] = [
        await client.query<Row>(
          `SELECT kafka_offset AS offset, event_id::text FROM ${events} WHERE kafka_partition = $1 AND kafka_offset >= $2 AND kafka_offset < $3 LIMIT $4`,
          [w.partition, w.from, w.to, limit],
        ),
        await client.query<Row>(
          `SELECT "offset", event_id::text FROM ${names.duplicates} WHERE topic = $1 AND partition = $2 AND "offset" >= $3 AND "offset" < $4 LIMIT $5`,
          [topic, w.partition, w.from, w.to, limit],
        ),
        await client.query<Row>(
          `SELECT "offset", event_id::text FROM ${names.deadLetters} WHERE topic = $1 AND partition = $2 AND "offset" >= $3 AND "offset" < $4 LIMIT $5`,
          [topic, w.partition, w.from, w.to, limit],
        ),
        opts.ahead === false
          ? { rows: [] as Row[] }
          : await client.query<Row>(
              `SELECT kafka_offset AS offset, event_id::text FROM ${events} WHERE kafka_partition = $1 AND kafka_offset >= $2 ORDER BY kafka_offset DESC LIMIT 100`,
              [w.partition, w.to],
            ),
      ];
      out.set(w.partition, {
        entries: [
          ...entries(rows.rows, "row"),
          ...entries(dups.rows, "duplicate"),
          ...entries(dead.rows, "deadLetter"),
        ],
        ahead: entries(ahead.rows, "row"),
      });
    }
    return out;
  });
}

async function ledgerExists(client: pg.Client, offsets: string): Promise<boolean> {
  const exists = await client.query<{ t: string | null }>("SELECT to_regclass($1) AS t", [offsets]);
  return Boolean(exists.rows[0]?.t);
}

/** What the pipeline's PostgreSQL holds, for the capacity advice (status/capacity.ts). */
export interface StorageSizes {
  /** pg_database_size of the database. */
  databaseBytes: number;
  /** Every partition of the events and key tables, indexes and TOAST included. */
  eventsBytes: number;
  /** Events stored, from the hourly count table (exact: written with the rows). */
  events: number;
}

/** Sizes from the catalog: a few indexed reads, no scan of the events. */
export async function readSizes(
  c: PostgresConnection,
  schema: string,
  table: string,
): Promise<StorageSizes | undefined> {
  const names = ledgerNames(schema, table);
  const { events, keys, countsHour } = names.storage.parents;
  return withClient(c, async (client) => {
    if (!(await ledgerExists(client, names.offsets))) return undefined;
    const r = await client.query<{ db: string; events_bytes: string; events: string }>(
      `SELECT pg_database_size(current_database()) AS db,
         (SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i
           WHERE i.inhparent IN ($1::regclass, $2::regclass)) AS events_bytes,
         (SELECT coalesce(sum(n), 0) FROM ${countsHour.qualified}) AS events`,
      [events.qualified, keys.qualified],
    );
    const row = r.rows[0];
    return row
      ? { databaseBytes: Number(row.db), eventsBytes: Number(row.events_bytes), events: Number(row.events) }
      : undefined;
  });
}

/** A short-lived connection: a connect timeout and a statement timeout bound every read. */
export async function withClient<T>(
  c: PostgresConnection,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({
    host: c.host,
    port: c.port,
    database: c.database,
    user: c.user,
    password: c.password,
    ssl: postgresSsl(c.sslMode, c.caPem),
    connectionTimeoutMillis: 5_000,
    statement_timeout: 10_000,
    application_name: "logpipeline-operator",
  });
  await client.connect();
  try {
    return await fn(client);
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
      const row = byPartition.get(partition);
      const next = row?.nextOffset ?? 0;
      const gap = Math.max(0, lso - next);
      return {
        partition,
        lastStableOffset: lso,
        dbNextOffset: next,
        lag: committed.get(partition) ?? gap,
        ...(row?.stalled && { stalled: row.stalled }),
      };
    });
  return {
    asOf: rfc3339Seconds(asOf),
    partitions,
    lag: partitions.reduce((s, p) => s + p.lag, 0),
    processed: ledger.reduce((s, r) => s + r.applied + r.duplicatesSkipped + r.deadLettered, 0),
    dlq: ledger.reduce((s, r) => s + r.deadLettered, 0),
    duplicatesSkipped: ledger.reduce((s, r) => s + r.duplicatesSkipped, 0),
  };
}

/** Partitions whose gap is small enough to count exactly on every read. */
export const EXACT_LAG_MAX_GAP = 10_000;

/**
 * Committed records between each partition's stored position and its last stable offset,
 * counted where the gap is at most EXACT_LAG_MAX_GAP offsets (absent elsewhere: there the
 * gap itself is the figure, an upper bound). Markers and aborted records are not counted.
 */
export function committedLag(
  c: KafkaConnection,
  topic: string,
  lastStable: Map<number, number>,
  stored: Map<number, number>,
): Promise<Map<number, number>> {
  const ranges = [...lastStable.entries()]
    .map(([partition, to]) => ({ partition, from: stored.get(partition) ?? 0, to }))
    .filter((r) => r.to > r.from && r.to - r.from <= EXACT_LAG_MAX_GAP);
  return countCommittedRecords(c, topic, ranges);
}

/** The events table's partitions and full-text index lag (status.storage); undefined before the consumer made them. */
export async function readStorage(
  c: PostgresConnection,
  schema: string,
  table: string,
  nowMs: number,
): Promise<StorageSummary | undefined> {
  const names = ledgerNames(schema, table);
  return withClient(c, async (client) =>
    (await ledgerExists(client, names.offsets)) ? storageSummary(client, names.storage, nowMs) : undefined,
  );
}
