import pg from "pg";
import { storageDdl, storageNames, type StorageNames } from "./storage.js";

/**
 * The ledger: the one module that owns the names and shape of what the consumer writes
 * to PostgreSQL in the same transaction as the rows, and what the operator and the
 * divergence check read (docs/architecture.md, Contracts).
 *
 *   <events table>        one row per event, with its Kafka position; partitioned by time,
 *                         with per-minute and per-hour counts and the deduplication keys of
 *                         client-named events beside it (storage.ts, docs/storage.md)
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
  /** Unquoted schema name, for catalog reads. */
  schemaBare: string;
  /** The partitioned layout: counts, keys, partition names, the legacy table of an upgrade. */
  storage: StorageNames;
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
  const base = {
    schema: `"${schema}"`,
    events: q(eventsTable),
    offsets: q("pipeline_offsets"),
    duplicates: q("pipeline_duplicates"),
    deadLetters: q("dead_letters"),
    eventsBare: eventsTable,
    schemaBare: schema,
  };
  return { ...base, storage: storageNames(base, schema) };
}

/**
 * An events table made before partitioning (a plain table, relkind 'r') is renamed to the
 * legacy name, its indexes with it, in the migration's transaction: the partitioned table
 * takes its name at once and the consumer writes there; the rows are moved over in batches
 * behind the write (consumer/src/partitions.ts). The rename waits for at most 10 s for the
 * table's lock (a batch in flight); past that the consumer's start fails and is retried.
 */
function legacyRename(n: LedgerNames): string {
  const lit = pg.escapeLiteral;
  return `DO $$
DECLARE r record;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
              WHERE ns.nspname = ${lit(n.schemaBare)} AND c.relname = ${lit(n.eventsBare)} AND c.relkind = 'r') THEN
    PERFORM set_config('lock_timeout', '10s', true);
    EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', ${lit(n.schemaBare)}, ${lit(n.eventsBare)}, ${lit(n.storage.legacy.bare)});
    FOR r IN SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
              WHERE i.indrelid = format('%I.%I', ${lit(n.schemaBare)}, ${lit(n.storage.legacy.bare)})::regclass LOOP
      EXECUTE format('ALTER INDEX %I.%I RENAME TO %I', ${lit(n.schemaBare)}, r.relname, left('legacy_' || r.relname, 63));
    END LOOP;
  END IF;
END $$;`;
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
${legacyRename(n)}
${storageDdl(n.storage)}
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
-- A partition the consumer cannot write for a reason that is neither the data's nor a
-- passing outage (a permission taken away, a table altered): recorded best effort, cleared by
-- the next stored batch. The operator reports it (ConsumerAvailable False, ConsumerStalled).
ALTER TABLE ${n.offsets} ADD COLUMN IF NOT EXISTS stalled_code text;
ALTER TABLE ${n.offsets} ADD COLUMN IF NOT EXISTS stalled_reason text;
ALTER TABLE ${n.offsets} ADD COLUMN IF NOT EXISTS stalled_since timestamptz;
`;
}
