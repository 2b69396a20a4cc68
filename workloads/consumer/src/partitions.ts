import type pg from "pg";
import { Counter, Gauge, type Registry } from "prom-client";
import type { LedgerNames } from "../../common/src/ledger.js";
import type { Logger } from "../../common/src/logger.js";
import {
  AHEAD_MS,
  bucketOf,
  buildFtsIndex,
  createPartition,
  DAY_MS,
  dropPartition,
  finishPendingDetaches,
  HOUR_MS,
  indexLag,
  isClosed,
  keyBuckets,
  KEY_SPAN_MS,
  LATE_WINDOW_MS,
  legacyExists,
  listPartitions,
  PARTITION_SPAN_MS,
  type PartitionInfo,
} from "../../common/src/storage.js";
import { withAdvisoryLock } from "./advisory-lock.js";
import { insertKeys, writeCounts } from "./sink.js";
import { errorText } from "../../common/src/connections.js";

export interface PartitionOptions {
  /** postgres.retentionDays: partitions wholly older are dropped; 0 keeps them. */
  retentionDays: number;
  /** How long deduplication keys are kept (at least the gateway's idempotency window). */
  dedupWindowHours: number;
  /** Time between maintenance passes. */
  intervalMs: number;
  /** Rows per transaction when moving an upgraded pipeline's rows into the partitions. */
  moveBatchRows: number;
  /** The pipeline's topic: the mover locks its stored positions like the consumer does. */
  topic: string;
}

/** The consumer's defaults (its env, config.ts), for a maintainer made without them (tests, benches). */
export const PARTITION_DEFAULTS = {
  retentionDays: 0,
  dedupWindowHours: 48,
  intervalMs: 60_000,
  moveBatchRows: 5000,
} as const satisfies Omit<PartitionOptions, "topic">;

/**
 * The partition maintainer, one replica at a time (advisory locks): makes the events, counts
 * and key partitions ahead of time; makes a batch's partition at once if it is missing (a
 * backlog from before); drops whole partitions past the retention and the dedup window
 * (DETACH … CONCURRENTLY, DROP: no row deleted); builds the full-text index of each closed
 * partition, concurrently, one at a time; and moves an upgraded pipeline's rows out of its
 * old, unpartitioned table (docs/storage.md).
 */
export class Partitions {
  private readonly known = new Set<number>();
  private readonly knownKeys = new Set<number>();
  private legacy: { exists: boolean; at: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly m: ReturnType<typeof metrics>;

  constructor(
    private readonly pool: pg.Pool,
    private readonly names: LedgerNames,
    private readonly opts: PartitionOptions,
    private readonly log: Logger,
    registry: Registry,
    private readonly now: () => number = Date.now,
  ) {
    this.m = metrics(registry);
  }

  private get lockKey() {
    return `logpipeline-partitions:${this.names.events}`;
  }

  /** Events older than this (ms) are past the retention; undefined without one. */
  retentionCutoff(): number | undefined {
    return this.opts.retentionDays > 0 ? this.now() - this.opts.retentionDays * DAY_MS : undefined;
  }

  /**
   * True while an upgraded pipeline's old table exists (its rows are being moved): the sink
   * looks ids up there too. Read from the catalog at most every 5 s (another replica may
   * have dropped it: a batch that met the dropped table is retried after at most that).
   */
  async hasLegacy(): Promise<boolean> {
    if (!this.legacy || this.now() - this.legacy.at > 5_000)
      this.legacy = { exists: await legacyExists(this.pool, this.names.storage), at: this.now() };
    return this.legacy.exists;
  }

  /**
   * Makes sure the events partitions of these buckets exist (the sink calls it before each
   * batch); returns the buckets wholly past the retention, which are not made again.
   */
  async ensureBuckets(buckets: number[]): Promise<Set<number>> {
    const cutoff = this.retentionCutoff();
    const expired = new Set(buckets.filter((b) => cutoff !== undefined && b + PARTITION_SPAN_MS <= cutoff));
    // The key partitions a key written now may go into, and the next day's.
    const keys = [...keyBuckets(this.now()), bucketOf(this.now(), KEY_SPAN_MS) + KEY_SPAN_MS];
    const missingNow = () => ({
      events: buckets.filter((b) => !expired.has(b) && !this.known.has(b)),
      keys: keys.filter((b) => !this.knownKeys.has(b)),
    });
    let missing = missingNow();
    if (missing.events.length + missing.keys.length === 0) return expired;
    await this.refresh(this.pool);
    missing = missingNow();
    if (missing.events.length + missing.keys.length === 0) return expired;
    const session = await this.pool.connect();
    try {
      // Wait (bounded) for the maintainer's DDL lock rather than skip: the batch needs these.
      await session.query("SET lock_timeout = '10s'");
      await session.query("SELECT pg_advisory_lock(hashtext($1))", [this.lockKey]);
      try {
        for (const b of missing.events) await this.createBucket(session, b);
        for (const b of missing.keys) {
          await createPartition(session, this.names.storage, "keys", b);
          this.knownKeys.add(b);
        }
      } finally {
        await session.query("SELECT pg_advisory_unlock(hashtext($1))", [this.lockKey]);
        await session.query("RESET lock_timeout");
      }
    } finally {
      session.release();
    }
    return expired;
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.runOnce()
        .then(() => undefined)
        .catch((e: unknown) =>
          this.log.warn({ err: errorText(e) }, "partition maintenance failed; next pass retries"),
        )
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(tick, this.opts.intervalMs);
        });
    };
    this.timer = setTimeout(tick, Math.min(this.opts.intervalMs, 1_000));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One maintenance pass: DDL, then index builds, then moving legacy rows. */
  async runOnce(): Promise<{ created: number; dropped: number; indexed: number; moved: number }> {
    const out = { created: 0, dropped: 0, indexed: 0, moved: 0 };
    await withAdvisoryLock(this.pool, this.lockKey, async (session) => {
      await finishPendingDetaches(session, this.names.storage);
      const now = this.now();
      for (let b = bucketOf(now - LATE_WINDOW_MS); b <= bucketOf(now + AHEAD_MS); b += PARTITION_SPAN_MS)
        if (!this.known.has(b)) out.created += await this.createBucket(session, b);
      for (
        let b = bucketOf(now, KEY_SPAN_MS) - KEY_SPAN_MS;
        b <= bucketOf(now, KEY_SPAN_MS) + KEY_SPAN_MS;
        b += KEY_SPAN_MS
      )
        out.created += Number(await createPartition(session, this.names.storage, "keys", b));
      const all = await listPartitions(session, this.names.storage);
      const cutoff = this.retentionCutoff();
      const keysCutoff = now - this.opts.dedupWindowHours * HOUR_MS;
      for (const p of all) {
        const old = p.table === "keys" ? p.to <= keysCutoff : cutoff !== undefined && p.to <= cutoff;
        if (!old || this.stopped) continue;
        const started = performance.now();
        await dropPartition(session, this.names.storage, p);
        out.dropped++;
        this.m.dropped.inc({ table: p.table });
        this.log.info(
          { partition: p.name, ms: Math.round(performance.now() - started) },
          "partition dropped",
        );
      }
      await this.refresh(session);
    });
    await withAdvisoryLock(this.pool, `${this.lockKey}:index`, async (session) => {
      // Newest first: the range users search most is indexed first after a backlog.
      const before = indexLag(await listPartitions(session, this.names.storage), this.now());
      for (const p of before.waiting.reverse()) {
        if (this.stopped) break;
        const started = performance.now();
        await buildFtsIndex(session, this.names.storage, p.name);
        out.indexed++;
        this.m.indexBuild.inc();
        this.log.info(
          { partition: p.name, ms: Math.round(performance.now() - started) },
          "full-text index built",
        );
      }
      const all = await listPartitions(session, this.names.storage);
      this.setIndexGauges(all);
      // The partitions taking writes have no statistics until autovacuum gets to them, and a
      // planner without them scans where an index would do: sampled on every pass.
      const now = this.now();
      for (const p of all.filter((x) => x.table === "events" && !isClosed(x, now) && x.from <= now))
        await session.query(`ANALYZE ${this.names.schema}."${p.name}"`);
    });
    out.moved = (await withAdvisoryLock(this.pool, `${this.lockKey}:move`, () => this.moveLegacy())) ?? 0;
    return out;
  }

  private setIndexGauges(all: PartitionInfo[]): void {
    const lag = indexLag(all, this.now());
    this.m.indexDelay.set(lag.delaySeconds);
    this.m.unindexed.set(lag.waiting.length);
    for (const t of ["events", "countsMinute", "countsHour", "keys"] as const)
      this.m.partitions.set({ table: t }, all.filter((p) => p.table === t).length);
  }

  private async refresh(c: pg.ClientBase | pg.Pool): Promise<void> {
    const all = await listPartitions(c, this.names.storage);
    this.known.clear();
    this.knownKeys.clear();
    for (const p of all) if (p.table === "keys") this.knownKeys.add(p.from);
    const has = (t: PartitionInfo["table"], b: number) => all.some((p) => p.table === t && p.from === b);
    for (const p of all)
      if (p.table === "events" && has("countsMinute", p.from) && has("countsHour", p.from))
        this.known.add(p.from);
    this.legacy = { exists: await legacyExists(c, this.names.storage), at: this.now() };
  }

  /** Makes an events bucket with its count partitions; returns how many tables were made. */
  private async createBucket(session: pg.ClientBase, b: number): Promise<number> {
    let made = 0;
    for (const t of ["events", "countsMinute", "countsHour"] as const)
      made += Number(await createPartition(session, this.names.storage, t, b));
    this.known.add(b);
    if (made > 0) this.m.created.inc(made);
    return made;
  }

  /**
   * Moves an upgraded pipeline's rows from its old table into the partitions, a batch of one
   * Kafka partition per transaction: the batch's stored position row is locked first, as the
   * consumer does, so a batch of the consumer and a move never interleave; rows, counts and
   * keys move in one transaction, so every event is in exactly one of the two tables at any
   * snapshot (readers read both while the old one exists). Rows past the retention are
   * dropped instead. The emptied table is dropped.
   */
  private async moveLegacy(): Promise<number> {
    const s = this.names.storage;
    if (!(await this.hasLegacy())) return 0;
    const partitions = await this.pool.query<{ p: number }>(
      `SELECT DISTINCT partition AS p FROM ${this.names.offsets} WHERE topic = $1 ORDER BY 1`,
      [this.opts.topic],
    );
    let moved = 0;
    for (const { p } of partitions.rows) {
      for (;;) {
        if (this.stopped) return moved;
        const n = await this.moveBatch(p);
        moved += n.moved;
        this.m.moved.inc(n.moved);
        if (n.taken < this.opts.moveBatchRows) break;
      }
    }
    const left = await this.pool.query(`SELECT 1 FROM ${s.legacy.qualified} LIMIT 1`);
    if (left.rows.length === 0) {
      await this.pool.query(`DROP TABLE ${s.legacy.qualified}`);
      this.legacy = { exists: false, at: this.now() };
      this.log.info(
        { moved },
        "upgrade: every row of the old events table moved into the partitions; dropped it",
      );
    }
    return moved;
  }

  /** One batch: `taken` rows left the old table, `moved` of them went into the partitions. */
  private async moveBatch(kafkaPartition: number): Promise<{ taken: number; moved: number }> {
    const s = this.names.storage;
    const pick = `SELECT ctid FROM ${s.legacy.qualified} WHERE kafka_partition = $1 ORDER BY kafka_offset LIMIT $2`;
    const buckets = await this.pool.query<{ b: Date }>(
      `SELECT DISTINCT date_bin('1 hour', ts, 'epoch'::timestamptz) AS b FROM ${s.legacy.qualified} WHERE ctid = ANY(ARRAY(${pick}))`,
      [kafkaPartition, this.opts.moveBatchRows],
    );
    const expired = await this.ensureBuckets(buckets.rows.map((r) => r.b.getTime()));
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query(
        `SELECT 1 FROM ${this.names.offsets} WHERE topic = $1 AND partition = $2 FOR UPDATE`,
        [this.opts.topic, kafkaPartition],
      );
      const cols =
        "event_id, ts, level, source, message, metadata, stack_trace, user_id, trace_id, schema_version, received_at, kafka_partition, kafka_offset, stored_at";
      // Typed as the driver returns them: the count-only row (nothing moved) has nulls.
      const r = await client.query<{
        event_id: string | null;
        ts: Date;
        level: string;
        source: string;
        received_at: Date;
        taken: string;
      }>(
        `WITH taken AS (DELETE FROM ${s.legacy.qualified} WHERE ctid = ANY(ARRAY(${pick})) RETURNING ${cols}),
         moved AS (
           INSERT INTO ${this.names.events} (${cols})
           SELECT ${cols} FROM taken WHERE NOT (date_bin('1 hour', ts, 'epoch'::timestamptz) = ANY($3::timestamptz[]))
           RETURNING event_id, ts, level, source, received_at)
         SELECT moved.*, (SELECT count(*) FROM taken) AS taken FROM moved
         UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, (SELECT count(*) FROM taken) WHERE NOT EXISTS (SELECT 1 FROM moved)`,
        [kafkaPartition, this.opts.moveBatchRows, [...expired].map((b) => new Date(b))],
      );
      const taken = Number(r.rows[0]?.taken ?? 0);
      const movedRows = r.rows.flatMap((x) => (x.event_id === null ? [] : [{ ...x, event_id: x.event_id }]));
      const rows = movedRows.map((x) => ({
        ts: x.ts.getTime(),
        event: { level: x.level, source: x.source },
      }));
      await writeCounts(client, this.names, kafkaPartition, rows);
      const window = this.now() - this.opts.dedupWindowHours * HOUR_MS;
      const recent = movedRows.filter((x) => x.received_at.getTime() >= window).map((x) => x.event_id);
      if (recent.length > 0) await insertKeys(client, this.names, recent, false);
      await client.query("COMMIT");
      return { taken, moved: movedRows.length };
    } catch (e) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }
}

function metrics(registry: Registry) {
  return {
    partitions: new Gauge({
      name: "log_consumer_partitions",
      help: "Partitions of the events, counts and key tables",
      labelNames: ["table"],
      registers: [registry],
    }),
    created: new Counter({
      name: "log_consumer_partitions_created_total",
      help: "Partitions made (ahead of time, or for a batch's backlog)",
      registers: [registry],
    }),
    dropped: new Counter({
      name: "log_consumer_partitions_dropped_total",
      help: "Partitions dropped: events and counts past the retention, keys past the dedup window",
      labelNames: ["table"],
      registers: [registry],
    }),
    indexBuild: new Counter({
      name: "log_consumer_fts_indexes_built_total",
      help: "Full-text indexes built on closed partitions",
      registers: [registry],
    }),
    indexDelay: new Gauge({
      name: "log_consumer_fts_index_delay_seconds",
      help: "How long the oldest closed partition has waited for its full-text index (0: none waits)",
      registers: [registry],
    }),
    unindexed: new Gauge({
      name: "log_consumer_fts_unindexed_partitions",
      help: "Closed partitions without their full-text index yet",
      registers: [registry],
    }),
    moved: new Counter({
      name: "log_consumer_upgrade_moved_total",
      help: "Rows moved from an upgraded pipeline's unpartitioned table into the partitions",
      registers: [registry],
    }),
  };
}
