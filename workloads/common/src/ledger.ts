import pg from "pg";

/**
 * The ledger: the one module that owns the names and shape of what the consumer writes
 * to PostgreSQL in the same transaction as the rows, and what the operator and the
 * divergence check read (DESIGN.md, Contracts).
 *
 *   <events table>        one row per event (unique event_id), with its Kafka position
 *   pipeline_offsets      per topic partition: next offset to apply + counters
 *   pipeline_duplicates   one row per record skipped as a duplicate (partition, offset, event_id)
 *   dead_letters          one row per poison record, with the reason, the error's class and
 *                         code and the attempts made; `publish_attempted_at`
 *                         and `published_at` drive the DLQ outbox (consumer/src/dlq.ts)
 */
export interface LedgerNames {
  schema: string;
  events: string;
  offsets: string;
  duplicates: string;
  deadLetters: string;
  /** Unqualified events table name, for index names (indexes live in the table's schema). */
  eventsBare: string;
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

export function ledgerNames(schema: string, eventsTable: string): LedgerNames {
  for (const [what, v] of [
    ["schema", schema],
    ["events table", eventsTable],
  ] as const) {
    if (!IDENT.test(v)) throw new Error(`${what} name "${v}" must match ${IDENT.source}`);
  }
  const q = (t: string) => `"${schema}"."${t}"`;
  return {
    schema: `"${schema}"`,
    events: q(eventsTable),
    offsets: q("pipeline_offsets"),
    duplicates: q("pipeline_duplicates"),
    deadLetters: q("dead_letters"),
    eventsBare: eventsTable,
  };
}

/**
 * DDL, idempotent: the consumer runs it at start, as one multi-statement query (one implicit
 * transaction) that first takes a transaction-scoped advisory lock: replicas starting together
 * migrate one after the other (concurrent `CREATE … IF NOT EXISTS` can otherwise fail on
 * PostgreSQL's catalog unique keys).
 */
export function ledgerDdl(n: LedgerNames): string {
  return `
SELECT pg_advisory_xact_lock(hashtext('logpipeline-migrate:' || ${pg.escapeLiteral(n.events)}));
CREATE SCHEMA IF NOT EXISTS ${n.schema};
CREATE TABLE IF NOT EXISTS ${n.events} (
  event_id        uuid PRIMARY KEY,
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
  stored_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS "${n.eventsBare}_ts_idx" ON ${n.events} (ts);
CREATE INDEX IF NOT EXISTS "${n.eventsBare}_source_ts_idx" ON ${n.events} (source, ts);
CREATE INDEX IF NOT EXISTS "${n.eventsBare}_position_idx" ON ${n.events} (kafka_partition, kafka_offset);
CREATE TABLE IF NOT EXISTS ${n.offsets} (
  topic              text NOT NULL,
  partition          int NOT NULL,
  next_offset        bigint NOT NULL,
  applied            bigint NOT NULL DEFAULT 0,
  duplicates_skipped bigint NOT NULL DEFAULT 0,
  dead_lettered      bigint NOT NULL DEFAULT 0,
  updated_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS ${n.duplicates} (
  topic      text NOT NULL,
  partition  int NOT NULL,
  "offset"   bigint NOT NULL,
  event_id   uuid NOT NULL,
  skipped_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS ${n.deadLetters} (
  topic        text NOT NULL,
  partition    int NOT NULL,
  "offset"     bigint NOT NULL,
  event_id     uuid,
  reason       text NOT NULL,
  error_class  text NOT NULL DEFAULT 'unknown',
  error_code   text,
  attempts     int NOT NULL DEFAULT 1,
  payload      bytea,
  failed_at    timestamptz NOT NULL DEFAULT now(),
  publish_attempted_at timestamptz,
  published_at timestamptz,
  PRIMARY KEY (topic, partition, "offset")
);
ALTER TABLE ${n.deadLetters} ADD COLUMN IF NOT EXISTS publish_attempted_at timestamptz;
ALTER TABLE ${n.deadLetters} ADD COLUMN IF NOT EXISTS error_class text NOT NULL DEFAULT 'unknown';
ALTER TABLE ${n.deadLetters} ADD COLUMN IF NOT EXISTS error_code text;
ALTER TABLE ${n.deadLetters} ADD COLUMN IF NOT EXISTS attempts int NOT NULL DEFAULT 1;
`;
}
