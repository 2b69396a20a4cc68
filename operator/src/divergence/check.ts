import type { LogPipelineStatus } from "../api/logpipeline.js";
import {
  committedLag,
  deliveryStatus,
  type PostgresConnection,
  readLedger,
  readLedgerWindows,
} from "./delivery.js";
import { readCommittedRecords, readGroupOffsets } from "./kafka-reader.js";
import { closedWindow, compareWindow, type PositionMark, stuckState, sweepWindow } from "./window.js";
import type { KafkaConnection } from "../kafka/topic-admin.js";

/** What the check needs of Kafka's Admin API (TopicAdmin provides it). */
export interface OffsetsReader {
  lastStableOffsets(topic: string): Promise<Map<number, number>>;
  logStartOffsets(topic: string): Promise<Map<number, number>>;
}

export interface CheckTarget {
  topic: string;
  consumerGroup: string;
  schema: string;
  table: string;
  /** Offsets per partition each check compares (the latest the consumer has passed), and sweeps below them. */
  windowOffsets: number;
  /** postgres.retentionDays (0: none): older events may have had their rows deleted by it. */
  retentionDays: number;
}

export interface PartitionFindings {
  partition: number;
  lastStableOffset: number;
  storedNextOffset: number;
  groupCommittedOffset?: number;
  /** Committed records beyond the stored position (the offset gap, an upper bound, where it is large). */
  lag: number;
  stuck: boolean;
  windowFrom: number;
  windowTo: number;
  /** The older window swept this time, if any lies below the latest. */
  sweepFrom?: number;
  sweepTo?: number;
  kafkaRecords: number;
  missing: number;
  duplicated: number;
  spurious: number;
  expired: number;
}

export type DivergenceReason =
  "Consistent" | "EventsMissing" | "EventsDuplicated" | "EventsSpurious" | "ConsumerStuck";

export interface DivergenceResult {
  checkedAt: string;
  durationMs: number;
  windowOffsets: number;
  partitions: PartitionFindings[];
  missing: number;
  duplicated: number;
  spurious: number;
  expired: number;
  lag: number;
  stuckPartitions: number[];
  samples: { missing: string[]; duplicated: string[]; spurious: string[] };
  reason: DivergenceReason;
  message: string;
  /** status.delivery from the same reads: a check pass needs no separate delivery read. */
  delivery: NonNullable<LogPipelineStatus["delivery"]>;
  /** When Kafka's last stable offsets were read (ms): the moment the delivery figures describe. */
  deliveryReadAt: number;
  /** The records the check read and their key + value bytes (the capacity advice's Kafka figure). */
  recordBytes: { records: number; bytes: number };
}

/** Stored positions of earlier checks and since when they stood, to tell a stuck consumer. */
export type PositionMarks = Map<number, PositionMark>;

/** What a pipeline's checks keep from one to the next, by partition. */
export interface CheckMemory {
  marks: PositionMarks;
  /** Where the last sweep window began: the next one ends there. */
  sweep: Map<number, number>;
}

const DAY_MS = 86_400_000;
/** Clock skew allowed between the operator and PostgreSQL when applying the retention cutoff. */
const RETENTION_SKEW_MS = 5 * 60_000;

const SAMPLE_LIMIT = 10;

/**
 * One divergence check of a pipeline, without stopping ingest: per partition, the window
 * of offsets the consumer has passed (closed: nothing in it can still change) is read from
 * Kafka (read_committed, group-less) and from the ledger, and compared (window.ts). Rows at
 * offsets the consumer has not reached are spurious too. Bounded: `windowOffsets` per
 * partition, short timeouts on every read. Besides the latest window, each check sweeps one
 * older window (sweepWindow), so successive checks compare every offset Kafka still holds.
 */
export async function checkDivergence(
  target: CheckTarget,
  kafka: { offsets: OffsetsReader; connection: KafkaConnection },
  pg: PostgresConnection,
  memory: CheckMemory,
  stuckAfterMs: number,
  now: () => Date,
): Promise<DivergenceResult> {
  const started = now().getTime();
  // Order matters, ingest goes on meanwhile: the stored positions first (every offset below
  // them is closed), then the windows, then the last stable offsets — so a row read at an
  // offset at or beyond them was written without any committed record to come from.
  // One request at a time on the Admin client (librdkafka's admin handle is not used
  // concurrently anywhere in the operator).
  const ledger = await readLedger(pg, target.schema, target.table, target.topic);
  const logStart = await kafka.offsets.logStartOffsets(target.topic);
  // Best effort (a field for lag tools): a failed read leaves it out.
  const group = await readGroupOffsets(kafka.connection, target.consumerGroup, target.topic, [
    ...logStart.keys(),
  ]).catch(() => new Map<number, number>());
  const stored = new Map(ledger.map((r) => [r.partition, r.nextOffset]));
  const partitions = [...logStart.keys()].sort((a, b) => a - b);
  const windows = partitions.map((partition) => ({
    partition,
    ...closedWindow(logStart.get(partition) ?? 0, stored.get(partition) ?? 0, target.windowOffsets),
  }));
  const sweeps = windows.flatMap((w) => {
    const s = sweepWindow(
      logStart.get(w.partition) ?? 0,
      w,
      memory.sweep.get(w.partition),
      target.windowOffsets,
    );
    return s ? [{ partition: w.partition, ...s }] : [];
  });
  // The latest and the sweep windows, from Kafka and from PostgreSQL, read at the same time.
  const sweepsOrNothing = <T>(read: () => Promise<Map<number, T>>) =>
    sweeps.length > 0 ? read() : Promise.resolve(new Map<number, T>());
  const [records, held, sweptRecords, sweptHeld] = await settled([
    readCommittedRecords(kafka.connection, target.topic, windows),
    readLedgerWindows(pg, target.schema, target.table, target.topic, windows),
    sweepsOrNothing(() => readCommittedRecords(kafka.connection, target.topic, sweeps)),
    sweepsOrNothing(() =>
      readLedgerWindows(pg, target.schema, target.table, target.topic, sweeps, { ahead: false }),
    ),
  ] as const);
  const lso = await kafka.offsets.lastStableOffsets(target.topic);
  // Processed (the ledger) plus lag (its positions to these offsets) is what was committed when
  // the offsets were read, however long the reads before and after took.
  const lsoAt = now();
  const delivery = deliveryStatus(
    lso,
    ledger,
    await committedLag(kafka.connection, target.topic, lso, stored),
    lsoAt,
  );
  const lagOf = new Map((delivery.partitions ?? []).map((r) => [r.partition, r.lag]));

  const samples = { missing: [] as string[], duplicated: [] as string[], spurious: [] as string[] };
  const addSamples = (from: typeof samples) => {
    for (const k of ["missing", "duplicated", "spurious"] as const)
      for (const s of from[k]) if (samples[k].length < SAMPLE_LIMIT) samples[k].push(s);
  };
  const expiredBefore =
    target.retentionDays > 0
      ? now().getTime() - target.retentionDays * DAY_MS + RETENTION_SKEW_MS
      : undefined;
  const sweepOf = new Map(sweeps.map((s) => [s.partition, s]));
  const rows: PartitionFindings[] = windows.map((w) => {
    const ahead = (held.get(w.partition)?.ahead ?? []).filter((e) => e.offset >= (lso.get(w.partition) ?? 0));
    const sweep = sweepOf.get(w.partition);
    if (sweep) memory.sweep.set(w.partition, sweep.from);
    // The latest and the sweep window never overlap, and the comparison goes by offset: the
    // two are compared as one.
    const f = compareWindow(
      [...(records.get(w.partition) ?? []), ...(sweptRecords.get(w.partition) ?? [])],
      [...(held.get(w.partition)?.entries ?? []), ...(sweptHeld.get(w.partition)?.entries ?? [])],
      SAMPLE_LIMIT,
      expiredBefore,
    );
    addSamples(f.samples);
    addSamples({
      missing: [],
      duplicated: [],
      spurious: ahead.map((e) => e.eventId ?? `offset ${e.offset}`),
    });
    const storedNext = stored.get(w.partition) ?? 0;
    const lag = lagOf.get(w.partition) ?? 0;
    const s = stuckState(memory.marks.get(w.partition), { storedNext, lag }, now().getTime(), stuckAfterMs);
    memory.marks.set(w.partition, s.mark);
    const groupCommitted = group.get(w.partition);
    return {
      partition: w.partition,
      lastStableOffset: lso.get(w.partition) ?? 0,
      storedNextOffset: storedNext,
      ...(groupCommitted !== undefined ? { groupCommittedOffset: groupCommitted } : {}),
      lag,
      stuck: s.stuck,
      windowFrom: w.from,
      windowTo: w.to,
      ...(sweep ? { sweepFrom: sweep.from, sweepTo: sweep.to } : {}),
      kafkaRecords: f.kafkaRecords,
      missing: f.missing,
      duplicated: f.duplicated,
      spurious: f.spurious + ahead.length,
      expired: f.expired,
    };
  });
  const sum = (k: "missing" | "duplicated" | "spurious" | "expired" | "lag") =>
    rows.reduce((s, r) => s + r[k], 0);
  const recordBytes = { records: 0, bytes: 0 };
  for (const read of [records, sweptRecords])
    for (const list of read.values())
      for (const r of list)
        if (r.bytes !== undefined) {
          recordBytes.records++;
          recordBytes.bytes += r.bytes;
        }
  const result = {
    checkedAt: now().toISOString(),
    durationMs: now().getTime() - started,
    windowOffsets: target.windowOffsets,
    partitions: rows,
    missing: sum("missing"),
    duplicated: sum("duplicated"),
    spurious: sum("spurious"),
    expired: sum("expired"),
    lag: sum("lag"),
    stuckPartitions: rows.filter((r) => r.stuck).map((r) => r.partition),
    samples,
    delivery,
    deliveryReadAt: lsoAt.getTime(),
    recordBytes,
  };
  return { ...result, ...verdict(result) };
}

/**
 * Like Promise.all, but waits for every read to finish before failing: the caller closes the
 * Kafka Admin client afterwards, and librdkafka must not be closed under a request still in
 * flight (that crashed the process, SIGSEGV, when PostgreSQL failed first).
 */
async function settled<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<{
  -readonly [K in keyof T]: T[K];
}> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as {
    -readonly [K in keyof T]: T[K];
  };
}

/** The condition's reason and a one-line story of the check; the worst finding names it. */
export function verdict(r: {
  missing: number;
  duplicated: number;
  spurious: number;
  expired?: number;
  lag: number;
  stuckPartitions: number[];
  partitions: { kafkaRecords: number }[];
  samples: { missing: string[]; duplicated: string[]; spurious: string[] };
}): { reason: DivergenceReason; message: string } {
  const checked = r.partitions.reduce((s, p) => s + p.kafkaRecords, 0);
  const sample = (xs: string[]) => (xs.length ? ` (e.g. ${xs.slice(0, 3).join(", ")})` : "");
  if (r.missing > 0)
    return {
      reason: "EventsMissing",
      message: `${r.missing} committed events are not in PostgreSQL${sample(r.samples.missing)}`,
    };
  if (r.duplicated > 0)
    return {
      reason: "EventsDuplicated",
      message: `${r.duplicated} events are stored more than once${sample(r.samples.duplicated)}`,
    };
  if (r.spurious > 0)
    return {
      reason: "EventsSpurious",
      message: `${r.spurious} rows have no committed Kafka record${sample(r.samples.spurious)}`,
    };
  if (r.stuckPartitions.length > 0)
    return {
      reason: "ConsumerStuck",
      message: `the consumer's position has not moved on partitions ${r.stuckPartitions.join(", ")} while ${r.lag} offsets wait`,
    };
  return {
    reason: "Consistent",
    message:
      `${checked} committed events in the checked windows, each stored exactly once` +
      (r.expired ? ` or deleted by the retention (${r.expired})` : "") +
      `; lag ${r.lag}`,
  };
}

/** What the DIVERGENCE printer column shows. */
export function summary(
  r: Pick<DivergenceResult, "missing" | "duplicated" | "spurious" | "stuckPartitions">,
): string {
  const parts = [
    r.missing ? `${r.missing} missing` : "",
    r.duplicated ? `${r.duplicated} duplicated` : "",
    r.spurious ? `${r.spurious} spurious` : "",
    r.stuckPartitions.length ? `stuck` : "",
  ].filter(Boolean);
  return parts.length ? parts.join(", ") : "0";
}
