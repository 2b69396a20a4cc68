import { createHash } from "node:crypto";
import type pg from "pg";
import type { LedgerNames } from "./ledger.js";

/**
 * The time layout of the events table (docs/storage.md): declarative range partitions on the
 * event's stored time `ts`, one per hour; per-minute and per-hour counts partitioned alike;
 * the deduplication keys of client-named events in daily partitions. Every reader and writer
 * of the layout (consumer, query API, divergence check, benchmarks) takes its rules from here.
 */

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
/** One events partition spans this long (and so do the count partitions). */
export const PARTITION_SPAN_MS = HOUR_MS;
/** One key partition spans a day. */
export const KEY_SPAN_MS = DAY_MS;

/**
 * The late-arrival window: an event stamped more than this before the gateway received it
 * is stored at receivedAt − LATE_WINDOW (its own time kept in `ts_original`). A partition is
 * closed (and gets its full-text index) once its upper bound plus this window has passed.
 */
export const LATE_WINDOW_MS = 15 * 60_000;
/** Clock skew allowed ahead: an event stamped further ahead of its receipt is stored at receivedAt + this. */
export const FUTURE_SKEW_MS = 5 * 60_000;
/** Partitions are made this far ahead of now (beyond the future skew, so a batch never waits for one). */
export const AHEAD_MS = 3 * HOUR_MS;

/**
 * Two key-inserting transactions whose statements straddle a key-partition boundary can each
 * miss the other's uncommitted key; within this distance of a boundary a key is written into
 * both neighbouring partitions, so the two collide in one of them. Sound as long as a batch
 * transaction commits within KEY_OVERLAP_MS of its key insert: the sink refuses to commit a
 * batch whose key insert is older than half of it (docs/storage.md, Deduplication).
 */
export const KEY_OVERLAP_MS = 10 * 60_000;

/** The time an event is stored under: its own, clamped into [receivedAt − late window, receivedAt + skew]. */
export function storedTime(eventMs: number, receivedMs: number): { ms: number; clamped: boolean } {
  const lo = receivedMs - LATE_WINDOW_MS;
  const hi = receivedMs + FUTURE_SKEW_MS;
  if (eventMs < lo) return { ms: lo, clamped: true };
  if (eventMs > hi) return { ms: hi, clamped: true };
  return { ms: eventMs, clamped: false };
}

export const bucketOf = (ms: number, span = PARTITION_SPAN_MS) => Math.floor(ms / span) * span;

/** The key partitions a key written at `ms` goes into: its own, and a neighbour near a boundary. */
export function keyBuckets(ms: number): number[] {
  const b = bucketOf(ms, KEY_SPAN_MS);
  if (ms - b < KEY_OVERLAP_MS) return [b - KEY_SPAN_MS, b];
  if (b + KEY_SPAN_MS - ms <= KEY_OVERLAP_MS) return [b, b + KEY_SPAN_MS];
  return [b];
}

/** "20261201t15": a bucket's start in partition names (UTC). */
function stamp(ms: number, withHour: boolean): string {
  const iso = new Date(ms).toISOString(); // 2026-12-01T15:00:00.000Z
  const day = iso.slice(0, 10).replaceAll("-", "");
  return withHour ? `${day}t${iso.slice(11, 13)}` : day;
}

/** A name prefix that leaves room for the longest suffix within PostgreSQL's 63 bytes. */
function prefix(bare: string): string {
  if (bare.length <= 40) return bare;
  return `${bare.slice(0, 31)}_${createHash("sha256").update(bare).digest("hex").slice(0, 8)}`;
}

export type PartitionedTable = "events" | "countsMinute" | "countsHour" | "keys";

export interface StorageNames {
  schema: string;
  /** Bare name of the schema (for catalog reads). */
  schemaBare: string;
  parents: Record<PartitionedTable, { qualified: string; bare: string }>;
  /** Name of one partition of `table` starting at `startMs`, bare. */
  partition(table: PartitionedTable, startMs: number): string;
  /** The pre-partitioning table of an upgraded pipeline while its rows are moved. */
  legacy: { qualified: string; bare: string };
}

export function storageNames(
  n: Pick<LedgerNames, "schema" | "events" | "eventsBare">,
  schemaBare: string,
): StorageNames {
  const p = prefix(n.eventsBare);
  const bare = {
    events: n.eventsBare,
    countsMinute: `${p}_counts_minute`,
    countsHour: `${p}_counts_hour`,
    keys: `${p}_keys`,
  } as const;
  const q = (t: string) => `${n.schema}."${t}"`;
  const short = { events: "p", countsMinute: "cm", countsHour: "ch", keys: "k" } as const;
  return {
    schema: n.schema,
    schemaBare,
    parents: {
      events: { qualified: n.events, bare: bare.events },
      countsMinute: { qualified: q(bare.countsMinute), bare: bare.countsMinute },
      countsHour: { qualified: q(bare.countsHour), bare: bare.countsHour },
      keys: { qualified: q(bare.keys), bare: bare.keys },
    },
    partition: (table, startMs) => `${p}_${short[table]}${stamp(startMs, table !== "keys")}`,
    legacy: { qualified: q(`${p}_legacy`), bare: `${p}_legacy` },
  };
}

/** The full-text index of one events partition (built once the partition is closed). */
export const ftsIndexName = (partition: string) => `${partition}_fts`;
/** The text search expression the full-text index is built on; queries must use it verbatim. */
export const FTS_EXPR = "to_tsvector('simple', message)";

/** Counts per time bucket (minute or hour), Kafka partition, level and source: one writer per row. */
const countsTable = (qualified: string) => `CREATE TABLE IF NOT EXISTS ${qualified} (
  t               timestamptz NOT NULL,
  kafka_partition int NOT NULL,
  level           text NOT NULL,
  source          text NOT NULL,
  n               bigint NOT NULL,
  PRIMARY KEY (t, kafka_partition, level, source)
) PARTITION BY RANGE (t);`;

/** DDL of the partitioned tables (parents and their partitioned indexes); idempotent. */
export function storageDdl(s: StorageNames): string {
  const { events, countsMinute, countsHour, keys } = s.parents;
  const idx = (name: string, on: string, what: string) =>
    `CREATE INDEX IF NOT EXISTS "${name}" ON ${on} ${what};`;
  return `
CREATE TABLE IF NOT EXISTS ${events.qualified} (
  event_id        uuid NOT NULL,
  ts              timestamptz NOT NULL,
  level           text NOT NULL,
  source          text NOT NULL,
  message         text NOT NULL,
  metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
  stack_trace     text,
  user_id         text,
  trace_id        text,
  schema_version  int NOT NULL,
  received_at     timestamptz NOT NULL,
  kafka_partition int NOT NULL,
  kafka_offset    bigint NOT NULL,
  stored_at       timestamptz NOT NULL DEFAULT now(),
  ts_original     timestamptz,
  writer          text,
  span_id         text
) PARTITION BY RANGE (ts);
-- The API key (its name) that wrote each event; a table made before it gains it (no rewrite).
ALTER TABLE ${events.qualified} ADD COLUMN IF NOT EXISTS writer text;
-- The OpenTelemetry span id of events that came in over OTLP (docs/otlp.md); the same.
ALTER TABLE ${events.qualified} ADD COLUMN IF NOT EXISTS span_id text;
${idx(`${events.bare}_ts_id_idx`, events.qualified, "(ts, event_id)")}
${idx(`${events.bare}_source_ts_idx`, events.qualified, "(source, ts)")}
${idx(`${events.bare}_position_idx`, events.qualified, "(kafka_partition, kafka_offset)")}
${idx(`${events.bare}_event_id_idx`, events.qualified, "(event_id)")}
${idx(`${events.bare}_trace_idx`, events.qualified, "(trace_id) WHERE trace_id IS NOT NULL")}
${idx(`${events.bare}_user_idx`, events.qualified, "(user_id) WHERE user_id IS NOT NULL")}
${countsTable(countsMinute.qualified)}
${countsTable(countsHour.qualified)}
CREATE TABLE IF NOT EXISTS ${keys.qualified} (
  event_id uuid NOT NULL,
  bucket   timestamptz NOT NULL,
  PRIMARY KEY (event_id, bucket)
) PARTITION BY RANGE (bucket);
`;
}

/** One partition as the catalog has it. */
export interface PartitionInfo {
  table: PartitionedTable;
  name: string;
  from: number;
  to: number;
  /** Events partitions: the full-text index exists and is valid. */
  indexed: boolean;
}

/**
 * Reads the partitions of the layout from the catalog. The bounds are deparsed without the
 * relation (`pg_get_expr(…, 0)`: they hold no columns), so this takes no lock on a partition
 * and never waits behind one being dropped or locked.
 */
export async function listPartitions(c: pg.ClientBase | pg.Pool, s: StorageNames): Promise<PartitionInfo[]> {
  const parents = Object.entries(s.parents) as [PartitionedTable, { bare: string }][];
  const r = await c.query<{ parent: string; name: string; bound: string; indexed: boolean }>(
    `SELECT p.relname AS parent, c.relname AS name, pg_get_expr(c.relpartbound, 0) AS bound,
            EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                     WHERE i.indrelid = c.oid AND ic.relname = c.relname || '_fts' AND i.indisvalid) AS indexed
       FROM pg_inherits h
       JOIN pg_class c ON c.oid = h.inhrelid
       JOIN pg_class p ON p.oid = h.inhparent
       JOIN pg_namespace n ON n.oid = p.relnamespace
      WHERE n.nspname = $1 AND p.relname = ANY($2::text[]) AND NOT h.inhdetachpending`,
    [s.schemaBare, parents.map(([, v]) => v.bare)],
  );
  const byBare = new Map(parents.map(([k, v]) => [v.bare, k]));
  const out: PartitionInfo[] = [];
  for (const row of r.rows) {
    const table = byBare.get(row.parent);
    const m = /FROM \('([^']+)'\) TO \('([^']+)'\)/.exec(row.bound);
    if (!table || !m?.[1] || !m[2]) continue;
    out.push({ table, name: row.name, from: Date.parse(m[1]), to: Date.parse(m[2]), indexed: row.indexed });
  }
  return out.sort((a, b) => a.from - b.from);
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Creates one partition without blocking writers: the table is made on its own, then
 * attached, which takes SHARE UPDATE EXCLUSIVE on the parent (CREATE TABLE … PARTITION OF
 * would take ACCESS EXCLUSIVE). `lock_timeout` bounds the wait; a refused attach is retried
 * by the next caller. An events bucket brings its count partitions with it.
 */
export async function createPartition(
  session: pg.ClientBase,
  s: StorageNames,
  table: PartitionedTable,
  startMs: number,
): Promise<boolean> {
  const span = table === "keys" ? KEY_SPAN_MS : PARTITION_SPAN_MS;
  const parent = s.parents[table];
  const name = s.partition(table, startMs);
  const qualified = `${s.schema}."${name}"`;
  await session.query("BEGIN");
  try {
    await session.query("SET LOCAL lock_timeout = '5s'");
    const exists = await session.query<{ e: boolean }>("SELECT to_regclass($1) IS NOT NULL AS e", [
      qualified,
    ]);
    if (exists.rows[0]?.e) {
      await session.query("COMMIT");
      return false;
    }
    await session.query(
      `CREATE TABLE ${qualified} (LIKE ${parent.qualified} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)`,
    );
    await session.query(
      `ALTER TABLE ${parent.qualified} ATTACH PARTITION ${qualified} FOR VALUES FROM ('${iso(startMs)}') TO ('${iso(startMs + span)}')`,
    );
    await session.query("COMMIT");
    return true;
  } catch (e) {
    await session.query("ROLLBACK").catch(() => undefined);
    throw e;
  }
}

/**
 * Detaches and drops one partition: DETACH … CONCURRENTLY (no lock that blocks writers of
 * the other partitions), then DROP of the detached table, a catalog change: no row is
 * deleted, no WAL per row, no dead tuple. A detach interrupted earlier is finished first.
 */
export async function dropPartition(
  session: pg.ClientBase,
  s: StorageNames,
  p: PartitionInfo,
): Promise<void> {
  const parent = s.parents[p.table].qualified;
  const qualified = `${s.schema}."${p.name}"`;
  await session.query("SET lock_timeout = '5s'");
  try {
    await session.query(`ALTER TABLE ${parent} DETACH PARTITION ${qualified} CONCURRENTLY`);
  } finally {
    await session.query("RESET lock_timeout");
  }
  await session.query(`DROP TABLE IF EXISTS ${qualified}`);
}

/** Finishes detaches an interrupted DETACH … CONCURRENTLY left pending, and drops those tables. */
export async function finishPendingDetaches(session: pg.ClientBase, s: StorageNames): Promise<number> {
  const r = await session.query<{ parent: string; name: string }>(
    `SELECT p.relname AS parent, c.relname AS name FROM pg_inherits h
       JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_class p ON p.oid = h.inhparent
       JOIN pg_namespace n ON n.oid = p.relnamespace
      WHERE n.nspname = $1 AND h.inhdetachpending`,
    [s.schemaBare],
  );
  for (const row of r.rows) {
    await session.query(
      `ALTER TABLE ${s.schema}."${row.parent}" DETACH PARTITION ${s.schema}."${row.name}" FINALIZE`,
    );
    await session.query(`DROP TABLE IF EXISTS ${s.schema}."${row.name}"`);
  }
  return r.rows.length;
}

/**
 * Builds the full-text index of one closed events partition, CONCURRENTLY (writes go on; a
 * late event is indexed as it is inserted). A failed earlier build leaves an invalid index:
 * it is dropped and built again.
 */
export async function buildFtsIndex(
  session: pg.ClientBase,
  s: StorageNames,
  partition: string,
): Promise<void> {
  const index = `${s.schema}."${ftsIndexName(partition)}"`;
  await session.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index}`);
  await session.query(
    `CREATE INDEX CONCURRENTLY "${ftsIndexName(partition)}" ON ${s.schema}."${partition}" USING gin (${FTS_EXPR})`,
  );
}

/** A partition is closed once its upper bound plus the late window has passed. */
export const isClosed = (p: { to: number }, nowMs: number) => p.to + LATE_WINDOW_MS <= nowMs;

/** True while an upgraded pipeline's old, unpartitioned table exists (its rows are being moved). */
export async function legacyExists(c: pg.ClientBase | pg.Pool, s: StorageNames): Promise<boolean> {
  const r = await c.query<{ e: boolean }>("SELECT to_regclass($1) IS NOT NULL AS e", [s.legacy.qualified]);
  return r.rows[0]?.e === true;
}

/** The columns every reader selects; an old table lacks `ts_original`, `writer` and `span_id`. */
export const EVENT_READ_COLUMNS =
  "event_id, ts, level, source, message, metadata, stack_trace, user_id, trace_id, schema_version, received_at, kafka_partition, kafka_offset, stored_at, ts_original, writer, span_id";

/**
 * The relation readers select from: the events table, and while an upgrade moves rows, the
 * old table beside it (a row is in exactly one of the two at any snapshot).
 */
export function eventsRelation(n: { events: string; storage: StorageNames }, legacy: boolean): string {
  if (!legacy) return n.events;
  const old = EVENT_READ_COLUMNS.replace("ts_original", "NULL::timestamptz AS ts_original")
    .replace("writer", "NULL::text AS writer")
    .replace("span_id", "NULL::text AS span_id");
  return `(SELECT ${EVENT_READ_COLUMNS} FROM ${n.events} UNION ALL SELECT ${old} FROM ${n.storage.legacy.qualified}) AS ev`;
}

/** What status.storage says: the partitions, how far the full-text index lags, an upgrade under way. */
export interface StorageSummary {
  partitions: number;
  oldest?: string;
  newest?: string;
  /** Closed partitions still waiting for their full-text index. */
  unindexedClosed: number;
  /** How long the oldest of them has waited, in whole seconds (0: none waits). */
  indexDelaySeconds: number;
  /** An upgraded pipeline's unpartitioned table is still being moved into the partitions. */
  upgradeInProgress: boolean;
}

/** Closed events partitions still without their full-text index, oldest first, and how long the oldest has waited. */
export function indexLag(
  all: PartitionInfo[],
  nowMs: number,
): { waiting: PartitionInfo[]; delaySeconds: number } {
  const waiting = all.filter((p) => p.table === "events" && !p.indexed && isClosed(p, nowMs));
  const oldest = waiting[0];
  return {
    waiting,
    delaySeconds: oldest ? Math.max(0, Math.floor((nowMs - oldest.to - LATE_WINDOW_MS) / 1000)) : 0,
  };
}

export async function storageSummary(
  c: pg.ClientBase | pg.Pool,
  s: StorageNames,
  nowMs: number,
): Promise<StorageSummary> {
  const all = await listPartitions(c, s);
  const events = all.filter((p) => p.table === "events");
  const lag = indexLag(all, nowMs);
  const first = events[0];
  const last = events.at(-1);
  return {
    partitions: events.length,
    ...(first ? { oldest: iso(first.from) } : {}),
    ...(last ? { newest: iso(last.from) } : {}),
    unindexedClosed: lag.waiting.length,
    indexDelaySeconds: lag.delaySeconds,
    upgradeInProgress: await legacyExists(c, s),
  };
}
