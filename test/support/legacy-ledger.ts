import type { LedgerNames } from "../../workloads/common/src/ledger.js";

/**
 * The events table as pipelines made it before time partitions (one plain table, the event
 * id its primary key): the fixture the upgrade tests migrate from. A copy of the old DDL on
 * purpose: it must not follow later changes to the layout.
 */
export function legacyEventsDdl(n: LedgerNames): string {
  return `
CREATE SCHEMA IF NOT EXISTS ${n.schema};
CREATE TABLE ${n.events} (
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
CREATE INDEX "${n.eventsBare}_ts_idx" ON ${n.events} (ts);
CREATE INDEX "${n.eventsBare}_source_ts_idx" ON ${n.events} (source, ts);
CREATE INDEX "${n.eventsBare}_position_idx" ON ${n.events} (kafka_partition, kafka_offset);
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
`;
}
