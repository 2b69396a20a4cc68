/**
 * Capacity and cost advice (status.capacity, the CapacityAtRisk condition), from figures the
 * pipeline measures itself: its flow (the delivery reads), its PostgreSQL sizes and the bytes
 * of its Kafka records. A pure function of what was measured; docs/capacity.md has each
 * formula. Figures are rounded to two significant digits so that status does not churn
 * between reads; the controller recomputes at most once per resync.
 */

import { rfc3339Seconds } from "../time.js";

/** One reading of a pipeline's flow, from a delivery read. */
export interface FlowSample {
  /** Milliseconds since the epoch. */
  at: number;
  /** Events the consumers have taken from the topic: stored, skipped as duplicates, dead-lettered. */
  processed: number;
  /** Committed events not yet processed. */
  lag: number;
  /** Ready consumer replicas. */
  consumers: number;
}

export interface CapacityInput {
  now: number;
  /** The window's samples, oldest first. */
  samples: FlowSample[];
  partitions: number;
  kafka: {
    retentionHours: number;
    replicationFactor: number;
    /** Mean key + value bytes of the records read by the last divergence check (before compression). */
    bytesPerEvent?: number | undefined;
  };
  postgres: {
    /** 0: events are kept for ever. */
    retentionDays: number;
    /** The managed volume's requested size, or the size the user states for an external server. */
    volumeBytes?: number | undefined;
    volumeSource?: "managed" | "stated" | undefined;
    /** pg_database_size of the pipeline's database. */
    databaseBytes?: number | undefined;
    /** The events table with its indexes and TOAST, every partition. */
    eventsBytes?: number | undefined;
    /** The events it holds. */
    events?: number | undefined;
  };
  /** Events/s one consumer replica is taken to carry when no interval showed one saturated. */
  assumedPerReplica: number;
  /** The share of a replica's measured rate the partition advice plans the peak at. */
  utilisation: number;
  /** Days to look ahead when PostgreSQL keeps events for ever. */
  planningDays: number;
}

export interface Recommendation {
  subject: "partitions" | "postgresVolume" | "kafkaDisk";
  /** What to do ("none" when nothing needs doing). */
  advice: string;
  reason: string;
  /** The figures the advice came from, rounded. */
  figures: Record<string, string>;
}

export interface CapacityAdvice {
  /** When the window's newest sample was read (RFC 3339); the window is the windowSeconds before it. */
  windowEnd: string;
  windowSeconds: number;
  samples: number;
  ingest: { meanPerSecond: number; peakPerSecond: number };
  consumer: { perReplicaPerSecond: number; source: "measured" | "assumed" };
  partitions: { current: number; needed: number };
  kafka: { bytesPerEvent?: number; bytesPerDay?: number; logBytesPerPartition?: number };
  postgres: {
    bytesPerEvent?: number;
    databaseBytes?: number;
    volumeBytes?: number;
    volumeSource?: "managed" | "stated";
    daysUntilFull?: number;
    retentionDaysSupported?: number;
  };
  atRisk: boolean;
  /** Why it is at risk, one line per cause (empty when not). */
  risks: string[];
  recommendations: Recommendation[];
}

/** Two significant digits: 12,345 → 12,000; 0.01234 → 0.012. */
export const round2 = (x: number): number => (x === 0 || !Number.isFinite(x) ? 0 : Number(x.toPrecision(2)));

const DAY = 86_400;

/** Bytes for people: 1.2 GiB. */
export function bytesText(b: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = b;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${round2(v)} ${units[u]}`;
}

/**
 * The advice, or undefined until two samples span some time (no rate can be measured from
 * one reading).
 */
export function adviseCapacity(i: CapacityInput): CapacityAdvice | undefined {
  const s = i.samples;
  const first = s[0];
  const last = s[s.length - 1];
  if (!first || !last || last.at <= first.at) return undefined;
  const windowSeconds = (last.at - first.at) / 1000;
  const produced = (x: FlowSample) => x.processed + x.lag;
  // A counter that went backwards (a ledger reset, a topic re-created) makes no rate.
  const meanIngest = Math.max(0, (produced(last) - produced(first)) / windowSeconds);
  let peakIngest = 0;
  let measuredPerReplica = 0;
  for (let k = 1; k < s.length; k++) {
    const a = s[k - 1] as FlowSample;
    const b = s[k] as FlowSample;
    const dt = (b.at - a.at) / 1000;
    if (dt <= 0) continue;
    const ingest = (produced(b) - produced(a)) / dt;
    if (ingest > peakIngest) peakIngest = ingest;
    // Saturated: at both ends more events waited than the consumers took in the whole
    // interval, so they were never idle in it, and what they took is what they can take. (Some
    // lag is always in flight at a high rate; that alone says nothing.)
    const taken = b.processed - a.processed;
    const consumed = taken / dt;
    if (taken > 0 && a.lag >= taken && b.lag >= taken && a.consumers > 0)
      measuredPerReplica = Math.max(measuredPerReplica, consumed / a.consumers);
  }
  peakIngest = Math.max(peakIngest, meanIngest);
  const measured = measuredPerReplica > 0;
  const perReplica = measured ? measuredPerReplica : i.assumedPerReplica;
  // One partition is read by one replica at most: the partitions bound the replicas.
  const needed = Math.max(1, Math.ceil(peakIngest / (perReplica * i.utilisation)));
  const risks: string[] = [];
  const recommendations: Recommendation[] = [];

  const partitionFigures = {
    peakEventsPerSecond: String(round2(peakIngest)),
    perReplicaEventsPerSecond: String(round2(perReplica)),
    perReplicaSource: measured ? "measured (the busiest saturated interval)" : "assumed (never saturated)",
    utilisation: String(i.utilisation),
    partitions: String(i.partitions),
  };
  if (needed > i.partitions) {
    risks.push(`the observed peak needs ${needed} partitions; the topic has ${i.partitions}`);
    recommendations.push({
      subject: "partitions",
      advice: `raise kafka.topic.partitions to ${needed}`,
      reason: `a peak of ${round2(peakIngest)} events/s at ${round2(perReplica)} events/s per consumer replica, planned at ${Math.round(i.utilisation * 100)} %, needs ${needed} replicas, and each partition is read by one replica at most`,
      figures: partitionFigures,
    });
  } else
    recommendations.push({
      subject: "partitions",
      advice: "none",
      reason: `${i.partitions} partitions carry the observed peak of ${round2(peakIngest)} events/s (${needed} needed)`,
      figures: partitionFigures,
    });

  const kafka: CapacityAdvice["kafka"] = {};
  const kb = i.kafka.bytesPerEvent;
  if (kb !== undefined && kb > 0) {
    kafka.bytesPerEvent = round2(kb);
    kafka.bytesPerDay = round2(meanIngest * DAY * kb * i.kafka.replicationFactor);
    kafka.logBytesPerPartition = round2(
      (meanIngest / Math.max(1, i.partitions)) * i.kafka.retentionHours * 3600 * kb,
    );
    recommendations.push({
      subject: "kafkaDisk",
      advice: "none",
      reason: `at the mean rate Kafka writes ${bytesText(kafka.bytesPerDay)} a day across its replicas and keeps at most ${bytesText(kafka.logBytesPerPartition)} per partition replica for ${i.kafka.retentionHours} h (before compression: an upper bound)`,
      figures: {
        meanEventsPerSecond: String(round2(meanIngest)),
        bytesPerEvent: String(kafka.bytesPerEvent),
        replicationFactor: String(i.kafka.replicationFactor),
        retentionHours: String(i.kafka.retentionHours),
      },
    });
  }

  const postgres: CapacityAdvice["postgres"] = {};
  const pg = i.postgres;
  if (pg.databaseBytes !== undefined) postgres.databaseBytes = round2(pg.databaseBytes);
  if (pg.volumeBytes !== undefined) {
    postgres.volumeBytes = pg.volumeBytes;
    if (pg.volumeSource) postgres.volumeSource = pg.volumeSource;
  }
  const bpe =
    pg.events && pg.events > 0 && pg.eventsBytes !== undefined ? pg.eventsBytes / pg.events : undefined;
  if (bpe !== undefined) postgres.bytesPerEvent = round2(bpe);
  if (bpe !== undefined && pg.volumeBytes !== undefined && pg.databaseBytes !== undefined) {
    const growth = meanIngest * DAY * bpe; // bytes a day
    // What is not events (the ledger, the count tables, the catalog) stays as it is.
    const fixed = Math.max(0, pg.databaseBytes - (pg.eventsBytes ?? 0));
    const horizon = pg.retentionDays > 0 ? pg.retentionDays : i.planningDays;
    const figures = {
      meanEventsPerSecond: String(round2(meanIngest)),
      bytesPerEvent: String(round2(bpe)),
      databaseBytes: String(round2(pg.databaseBytes)),
      volumeBytes: String(pg.volumeBytes),
      volumeSource: pg.volumeSource ?? "unknown",
      retentionDays: String(pg.retentionDays),
    };
    if (growth > 0) {
      const supported = (pg.volumeBytes - fixed) / growth;
      postgres.retentionDaysSupported = round2(Math.max(0, supported));
      // With a retention the table stops growing once it holds that many days.
      const fills = pg.retentionDays > 0 ? supported < pg.retentionDays : true;
      if (fills) postgres.daysUntilFull = round2(Math.max(0, (pg.volumeBytes - pg.databaseBytes) / growth));
      const within = postgres.daysUntilFull !== undefined && postgres.daysUntilFull < horizon;
      if (fills && (pg.retentionDays > 0 || within)) {
        const want = fixed + growth * horizon * 1.2;
        risks.push(
          pg.retentionDays > 0
            ? `the PostgreSQL volume holds ${postgres.retentionDaysSupported} days of events; the retention is ${pg.retentionDays}`
            : `the PostgreSQL volume is full in ${postgres.daysUntilFull} days at the mean rate`,
        );
        recommendations.push({
          subject: "postgresVolume",
          advice: `grow the volume to ${bytesText(want)}${pg.retentionDays > 0 ? ` or lower postgres.retentionDays to ${Math.max(1, Math.floor(supported))}` : " or set postgres.retentionDays"}`,
          reason: `${bytesText(growth)} a day (${round2(meanIngest)} events/s × ${round2(bpe)} B) fills ${bytesText(pg.volumeBytes)} in ${postgres.daysUntilFull} days, before the ${pg.retentionDays > 0 ? "retention" : "planning"} horizon of ${horizon} days`,
          figures,
        });
      } else
        recommendations.push({
          subject: "postgresVolume",
          advice: "none",
          reason:
            pg.retentionDays > 0
              ? `the volume holds ${postgres.retentionDaysSupported} days at the mean rate; the retention keeps ${pg.retentionDays}`
              : `the volume is full in ${postgres.daysUntilFull ?? "more than"} days at the mean rate, beyond the planning horizon of ${horizon} days`,
          figures,
        });
    }
  }

  return {
    windowEnd: rfc3339Seconds(new Date(last.at)),
    windowSeconds: Math.round(windowSeconds),
    samples: s.length,
    ingest: { meanPerSecond: round2(meanIngest), peakPerSecond: round2(peakIngest) },
    consumer: { perReplicaPerSecond: round2(perReplica), source: measured ? "measured" : "assumed" },
    partitions: { current: i.partitions, needed },
    kafka,
    postgres,
    atRisk: risks.length > 0,
    risks,
    recommendations,
  };
}
