import type pg from "pg";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { KafkaClient, KafkaConsumer, KafkaProducer } from "../../common/src/clients.js";
import { failpoint } from "../../common/src/failpoints.js";
import type { LedgerNames } from "../../common/src/ledger.js";
import type { Logger } from "../../common/src/logger.js";
import { LATENCY_BUCKETS } from "../../common/src/metrics.js";
import { DeadLetterPublisher } from "./dlq.js";
import { PARTITION_DEFAULTS, Partitions } from "./partitions.js";
import { applyBatch, type BatchOutcome, errorHandling, recordStall, storedPositions } from "./sink.js";
import { errorText } from "../../common/src/connections.js";

export interface SinkOptions {
  topic: string;
  groupId: string;
  dlqTopic?: string | undefined;
  dlqTransactionalId?: string | undefined;
  batchMaxEvents: number;
  /** How long a crashed member holds its partitions before the group reassigns them. */
  sessionTimeoutMs?: number | undefined;
  backoffMs: number;
  backoffMaxMs: number;
  pipeline: string;
  /** postgres.retentionDays (0: none). */
  retentionDays?: number | undefined;
}

export interface SinkDeps {
  kafka: KafkaClient;
  pool: pg.Pool;
  names: LedgerNames;
  /** The partition maintainer (main.ts runs its loop); absent, the sink makes partitions on demand only. */
  partitions?: Partitions | undefined;
  log: Logger;
  registry: Registry;
}

function metrics(registry: Registry) {
  return {
    processed: new Counter({
      name: "log_consumer_processed_total",
      help: "Events written to PostgreSQL",
      registers: [registry],
    }),
    duplicates: new Counter({
      name: "log_consumer_duplicates_total",
      help: "Records skipped: event id already stored",
      registers: [registry],
    }),
    deadLettered: new Counter({
      name: "log_consumer_dead_letters_total",
      help: "Poison records recorded in dead_letters",
      registers: [registry],
    }),
    dlqPublished: new Counter({
      name: "log_consumer_dlq_published_total",
      help: "Dead letters published to the DLQ topic",
      registers: [registry],
    }),
    stale: new Counter({
      name: "log_consumer_redelivered_total",
      help: "Records below the stored position (redelivery), skipped",
      registers: [registry],
    }),
    clamped: new Counter({
      name: "log_consumer_clamped_total",
      help: "Events stored under a clamped time: stamped outside the late window or the clock skew (their own time kept in ts_original)",
      registers: [registry],
    }),
    retries: new Counter({
      name: "log_consumer_batch_retries_total",
      help: "Batches retried after a transient error",
      labelNames: ["reason"],
      registers: [registry],
    }),
    rebalances: new Counter({
      name: "log_consumer_rebalances_total",
      help: "Partition assignments and revocations",
      labelNames: ["kind"],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: "log_consumer_batch_size",
      help: "Records per applied batch",
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2000, 5000],
      registers: [registry],
    }),
    latency: new Histogram({
      name: "log_consumer_batch_duration_seconds",
      help: "Time to apply one batch in PostgreSQL",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    endToEnd: new Histogram({
      name: "log_consumer_end_to_end_seconds",
      help: "Gateway receipt to PostgreSQL commit, per event",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    lag: new Gauge({
      name: "log_consumer_lag",
      help: "High watermark minus next offset, per partition",
      labelNames: ["partition"],
      registers: [registry],
    }),
    paused: new Gauge({
      name: "log_consumer_backing_off",
      help: "1 while a partition backs off after transient errors",
      labelNames: ["partition"],
      registers: [registry],
    }),
    stalled: new Gauge({
      name: "log_consumer_partition_stalled",
      help: "1 while a partition is stalled: PostgreSQL refuses its batches for a reason that is not the data's (a permission, the table)",
      labelNames: ["partition"],
      registers: [registry],
    }),
  };
}

/**
 * The exactly-once sink: `read_committed`, no auto-commit; each batch of a partition is one
 * PostgreSQL transaction (rows + position + ledger); the position stored there, not the
 * Kafka group, decides where a newly assigned partition resumes. Offsets are committed to
 * the group afterwards, best effort, only for lag tools.
 */
export class Sink {
  private consumer: KafkaConsumer | undefined;
  private dlqProducer: KafkaProducer | undefined;
  private dlq: DeadLetterPublisher | undefined;
  private readonly m: ReturnType<typeof metrics>;
  private readonly failures = new Map<number, number>();
  private readonly partitions: Partitions;
  private dlqFlushing: Promise<void> | undefined;
  /** Partitions this member holds now. */
  readonly assigned = new Set<number>();
  ready = false;

  constructor(
    private readonly opts: SinkOptions,
    private readonly deps: SinkDeps,
  ) {
    this.m = metrics(deps.registry);
    this.partitions =
      deps.partitions ??
      new Partitions(
        deps.pool,
        deps.names,
        { ...PARTITION_DEFAULTS, retentionDays: opts.retentionDays ?? 0, topic: opts.topic },
        deps.log,
        deps.registry,
      );
  }

  async start(): Promise<void> {
    const { kafka, log } = this.deps;
    if (this.opts.dlqTopic) {
      this.dlqProducer = kafka.producer({
        kafkaJS: {
          idempotent: true,
          transactionalId: this.opts.dlqTransactionalId ?? `${this.opts.groupId}-dlq`,
          maxInFlightRequests: 1,
        },
      });
      await this.dlqProducer.connect();
      this.dlq = new DeadLetterPublisher(
        kafka,
        this.dlqProducer,
        this.deps.pool,
        this.deps.names,
        this.opts.topic,
        this.opts.dlqTopic,
        log,
        (n) => this.m.dlqPublished.inc(n),
      );
    }
    const consumer = kafka.consumer({
      kafkaJS: {
        groupId: this.opts.groupId,
        fromBeginning: true,
        autoCommit: false,
        sessionTimeout: this.opts.sessionTimeoutMs ?? 10_000,
      },
      "isolation.level": "read_committed",
      "js.consumer.max.batch.size": this.opts.batchMaxEvents,
      "fetch.wait.max.ms": 50,
      "max.poll.interval.ms": 600_000,
      // A grown topic's new partitions are assigned within this (librdkafka's default is
      // 5 minutes); the producer's partitioner refreshes on the same period.
      "topic.metadata.refresh.interval.ms": 30_000,
      rebalance_cb: async (
        err: { code: number },
        assignment: { topic: string; partition: number; offset?: string }[],
      ) => this.onRebalance(err, assignment),
    });
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topics: [this.opts.topic] });
    await consumer.run({
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 4,
      eachBatch: async (payload) => {
        const { batch } = payload;
        const outcome = await this.processBatch(batch.partition, batch.messages);
        const last = batch.messages.at(-1);
        if (last) payload.resolveOffset(last.offset);
        if (outcome) await this.afterCommit(batch.partition, outcome, batch.highWatermark);
      },
    });
    this.ready = true;
    log.info({ topic: this.opts.topic, group: this.opts.groupId }, "consumer started");
    void this.flushDeadLetters();
  }

  /** On assignment, resume each partition from the position PostgreSQL holds. */
  private async onRebalance(
    err: { code: number },
    assignment: { topic: string; partition: number; offset?: string }[],
  ) {
    const ASSIGN = -175; // librdkafka RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
    if (err.code !== ASSIGN) {
      this.m.rebalances.inc({ kind: "revoke" });
      for (const a of assignment) this.assigned.delete(a.partition);
      return null;
    }
    this.m.rebalances.inc({ kind: "assign" });
    for (const a of assignment) this.assigned.add(a.partition);
    const positions = await storedPositions(
      this.deps.pool,
      this.deps.names,
      this.opts.topic,
      assignment.map((a) => a.partition),
    );
    this.deps.log.info(
      {
        assignment: assignment.map((a) => a.partition),
        stored: Object.fromEntries([...positions].map(([p, o]) => [p, o.toString()])),
      },
      "partitions assigned",
    );
    return assignment.map((a) => {
      const pos = a.topic === this.opts.topic ? positions.get(a.partition) : undefined;
      // librdkafka's assign takes numeric offsets.
      return pos === undefined ? a : { ...a, offset: Number(pos) };
    });
  }

  private async processBatch(
    partition: number,
    messages: { offset: string; value: Buffer | null }[],
  ): Promise<BatchOutcome | undefined> {
    if (messages.length === 0) return undefined;
    const started = process.hrtime.bigint();
    let client: pg.PoolClient | undefined;
    try {
      client = await this.deps.pool.connect();
      const { partitions } = this;
      const outcome = await applyBatch(client, this.deps.names, this.opts.topic, partition, messages, {
        attempt: (this.failures.get(partition) ?? 0) + 1,
        ensureBuckets: (b) => partitions.ensureBuckets(b),
        retentionDays: this.opts.retentionDays ?? 0,
        legacy: await partitions.hasLegacy(),
      });
      this.failures.delete(partition);
      this.m.paused.set({ partition: String(partition) }, 0);
      this.m.stalled.set({ partition: String(partition) }, 0);
      this.m.latency.observe(Number(process.hrtime.bigint() - started) / 1e9);
      return outcome;
    } catch (e) {
      // Retry (PostgreSQL down, connection lost, serialization): back off with jitter, then
      // throw so the client seeks back to the first record of this batch. Stall (a permission
      // taken away, a table altered: waiting will not fix it, a person will): the same, at the
      // longest backoff, said loudly (metric, error log, the ledger for the operator's
      // status), and nothing is ever dead-lettered for it.
      const handling = errorHandling(e);
      const n = (this.failures.get(partition) ?? 0) + 1;
      this.failures.set(partition, n);
      const delay =
        handling === "stall"
          ? this.opts.backoffMaxMs
          : Math.min(this.opts.backoffMaxMs, this.opts.backoffMs * 2 ** Math.min(n - 1, 16));
      const jittered = Math.round(delay / 2 + Math.random() * (delay / 2));
      const code = (e as { code?: string }).code ?? "error";
      this.m.retries.inc({ reason: code });
      this.m.paused.set({ partition: String(partition) }, 1);
      if (handling === "stall") {
        this.m.stalled.set({ partition: String(partition) }, 1);
        this.deps.log.error(
          { partition, attempt: n, sqlstate: code, retryInMs: jittered, err: errorText(e) },
          "partition stalled: PostgreSQL refuses the batch for a reason that is not the data's; fix the cause (a GRANT, the table), it resumes by itself",
        );
        await recordStall(
          this.deps.pool,
          this.deps.names,
          this.opts.topic,
          partition,
          code,
          errorText(e),
        ).catch((e2: unknown) => this.deps.log.debug({ err: errorText(e2) }, "could not record the stall"));
      } else
        this.deps.log.warn(
          { partition, attempt: n, retryInMs: jittered, err: errorText(e) },
          "batch failed; will retry",
        );
      await new Promise((r) => setTimeout(r, jittered));
      throw e;
    } finally {
      client?.release();
    }
  }

  private async afterCommit(partition: number, o: BatchOutcome, highWatermark: string): Promise<void> {
    failpoint("after-pg-commit");
    this.m.processed.inc(o.applied);
    this.m.duplicates.inc(o.duplicates);
    this.m.deadLettered.inc(o.deadLettered.length);
    this.m.stale.inc(o.stale);
    this.m.clamped.inc(o.clamped);
    this.m.batchSize.observe(o.applied + o.duplicates + o.deadLettered.length);
    this.m.lag.set(
      { partition: String(partition) },
      Math.max(0, Number(BigInt(highWatermark) - o.nextOffset)),
    );
    const now = Date.now();
    for (const e of o.events) this.m.endToEnd.observe((now - Date.parse(e.receivedAt)) / 1000);
    // Best effort: the group's offset serves lag tools; PostgreSQL holds the truth.
    await this.consumer
      ?.commitOffsets([{ topic: this.opts.topic, partition, offset: o.nextOffset.toString() }])
      .catch((e: unknown) => this.deps.log.debug({ err: errorText(e) }, "group offset commit failed"));
    if (o.deadLettered.length > 0) void this.flushDeadLetters();
  }

  /**
   * The DLQ outbox: dead letters are committed in PostgreSQL with their batch, then
   * published to the DLQ topic in a Kafka transaction and marked published.
   */
  flushDeadLetters(): Promise<void> {
    if (!this.dlq) return Promise.resolve();
    this.dlqFlushing ??= this.publishDeadLetters().finally(() => (this.dlqFlushing = undefined));
    return this.dlqFlushing;
  }

  private async publishDeadLetters(): Promise<void> {
    if (!this.dlq) return;
    try {
      await this.dlq.publish();
    } catch (e) {
      this.deps.log.warn({ err: errorText(e) }, "DLQ publish failed; will retry");
    }
  }

  /** Counters of this sink (for tests and diagnostics). */
  async metricsSnapshot(): Promise<{
    processed: number;
    duplicates: number;
    deadLettered: number;
    redelivered: number;
    clamped: number;
  }> {
    const v = async (c: Counter) => (await c.get()).values.reduce((a, x) => a + x.value, 0);
    return {
      processed: await v(this.m.processed),
      duplicates: await v(this.m.duplicates),
      deadLettered: await v(this.m.deadLettered),
      redelivered: await v(this.m.stale),
      clamped: await v(this.m.clamped),
    };
  }

  async stop(): Promise<void> {
    this.assigned.clear();
    this.ready = false;
    await this.consumer?.disconnect();
    await this.dlqFlushing;
    await this.dlqProducer?.disconnect();
  }
}
