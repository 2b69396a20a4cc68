import { randomUUID } from "node:crypto";
import type pg from "pg";
import type { KafkaClient, KafkaProducer } from "../../common/src/clients.js";
import { failpoint } from "../../common/src/failpoints.js";
import { withAdvisoryLock } from "./advisory-lock.js";
import type { LedgerNames } from "../../common/src/ledger.js";
import type { Logger } from "../../common/src/logger.js";

interface DeadLetterRow {
  partition: number;
  offset: string;
  event_id: string | null;
  reason: string;
  error_class: string;
  error_code: string | null;
  attempts: number;
  failed_at: Date;
  payload: Buffer | null;
  publish_attempted_at: Date | null;
}

/** The DLQ record key: the source record's position, unique per dead letter. */
export const dlqKey = (topic: string, partition: number, offset: string) => `${topic}:${partition}:${offset}`;

/**
 * What a DLQ record carries besides the original value: where it came from, which event it
 * was, why it failed (class, code, message), how many attempts were made and when it first
 * failed. Headers absent from a record had no value (an event id the value did not hold).
 */
function dlqHeaders(topic: string, r: DeadLetterRow): Record<string, string> {
  return {
    "source-topic": topic,
    "source-partition": String(r.partition),
    "source-offset": r.offset,
    ...(r.event_id !== null && { "event-id": r.event_id }),
    "error-class": r.error_class,
    ...(r.error_code !== null && { "error-code": r.error_code }),
    "error-message": r.reason,
    reason: r.reason, // the header's earlier name, kept for existing readers
    attempts: String(r.attempts),
    "first-failure-time": r.failed_at.toISOString(),
  };
}

/**
 * The DLQ outbox. Dead letters are committed in PostgreSQL with their batch; this publisher
 * sends them to the DLQ topic in Kafka transactions, exactly once:
 * - one publisher at a time per topic (a PostgreSQL advisory lock, released if it dies);
 * - each row is stamped `publish_attempted_at` before its Kafka transaction and
 *   `published_at` after the commit. A row stamped but not published may or may not be in
 *   the DLQ (a crash between the two): before it is sent again, the DLQ topic is read up
 *   to its end and rows whose key is already there are only marked published.
 */
export class DeadLetterPublisher {
  constructor(
    private readonly kafka: KafkaClient,
    private readonly producer: KafkaProducer,
    private readonly pool: pg.Pool,
    private readonly names: LedgerNames,
    private readonly topic: string,
    private readonly dlqTopic: string,
    private readonly log: Logger,
    private readonly onPublished: (n: number) => void,
  ) {}

  /** Publishes every unpublished dead letter of the topic; returns how many were sent. */
  async publish(): Promise<number> {
    const key = `logpipeline-dlq:${this.names.deadLetters}:${this.topic}`;
    const sent = await withAdvisoryLock(this.pool, key, async (session) => {
      let n = 0;
      for (;;) {
        const { rows } = await session.query<DeadLetterRow>(
          `SELECT partition, "offset", event_id, reason, error_class, error_code, attempts, failed_at, payload,
                  publish_attempted_at FROM ${this.names.deadLetters}
           WHERE topic = $1 AND published_at IS NULL ORDER BY partition, "offset" LIMIT 500`,
          [this.topic],
        );
        if (rows.length === 0) return n;
        const toSend = await this.skipAlreadyPublished(session, rows);
        if (toSend === undefined) return n; // the DLQ could not be read to its end: try later
        if (toSend.length > 0) {
          await this.mark(session, "publish_attempted_at", toSend);
          await this.sendTransaction(toSend);
          failpoint("after-dlq-commit");
          await this.mark(session, "published_at", toSend);
          n += toSend.length;
          this.onPublished(toSend.length);
        }
      }
    });
    return sent ?? 0; // undefined: another replica is publishing
  }

  private async mark(
    session: pg.PoolClient,
    column: "publish_attempted_at" | "published_at",
    rows: DeadLetterRow[],
  ) {
    await session.query(
      `UPDATE ${this.names.deadLetters} SET ${column} = now()
       WHERE topic = $1 AND (partition, "offset") IN (SELECT * FROM unnest($2::int[], $3::bigint[]))`,
      [this.topic, rows.map((r) => r.partition), rows.map((r) => r.offset)],
    );
  }

  private async sendTransaction(rows: DeadLetterRow[]) {
    const tx = await this.producer.transaction();
    try {
      await tx.send({
        topic: this.dlqTopic,
        messages: rows.map((r) => ({
          key: dlqKey(this.topic, r.partition, r.offset),
          value: r.payload,
          headers: dlqHeaders(this.topic, r),
        })),
      });
      await tx.commit();
    } catch (e) {
      await tx.abort().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Rows an earlier attempt may have published are checked against the DLQ topic; those
   * found there are marked published and not sent again. Undefined: the check failed.
   */
  private async skipAlreadyPublished(
    session: pg.PoolClient,
    rows: DeadLetterRow[],
  ): Promise<DeadLetterRow[] | undefined> {
    const suspects = rows.filter((r) => r.publish_attempted_at !== null);
    if (suspects.length === 0) return rows;
    const present = await this.keysInDlq(
      new Set(suspects.map((r) => dlqKey(this.topic, r.partition, r.offset))),
    );
    if (present === undefined) return undefined;
    const already = suspects.filter((r) => present.has(dlqKey(this.topic, r.partition, r.offset)));
    if (already.length > 0) {
      await this.mark(session, "published_at", already);
      this.log.info(
        { count: already.length },
        "dead letters found already in the DLQ after an interrupted publish",
      );
    }
    return rows.filter((r) => !already.includes(r));
  }

  /** Reads the DLQ topic (read_committed) to its current end; returns which wanted keys it holds. */
  private async keysInDlq(wanted: Set<string>, timeoutMs = 60_000): Promise<Set<string> | undefined> {
    const admin = this.kafka.admin();
    const groupId = `logpipeline-dlq-check-${randomUUID()}`;
    const consumer = this.kafka.consumer({
      kafkaJS: { groupId, fromBeginning: true, autoCommit: false },
      "isolation.level": "read_committed",
    });
    const found = new Set<string>();
    try {
      await admin.connect();
      const ends = new Map(
        (await admin.fetchTopicOffsets(this.dlqTopic)).map((o) => [o.partition, BigInt(o.high)]),
      );
      const done = new Set<number>([...ends].filter(([, high]) => high === 0n).map(([p]) => p));
      if (done.size === ends.size) return found;
      await consumer.connect();
      await consumer.subscribe({ topics: [this.dlqTopic] });
      let lastMessageAt = Date.now();
      await consumer.run({
        eachMessage: ({ partition, message }) => {
          lastMessageAt = Date.now();
          const key = message.key?.toString();
          if (key && wanted.has(key)) found.add(key);
          // The end offset may be a transaction marker: the last record before it completes the read.
          if (BigInt(message.offset) + 2n >= (ends.get(partition) ?? 0n)) done.add(partition);
          return Promise.resolve();
        },
      });
      const deadline = Date.now() + timeoutMs;
      // Caught up: every partition reached its end offset, or (when a partition ends in an
      // aborted transaction, whose records a read_committed reader never sees) nothing new
      // arrived for a while.
      while (done.size < ends.size && found.size < wanted.size && Date.now() - lastMessageAt < 5000) {
        if (Date.now() > deadline) {
          this.log.warn(
            { dlq: this.dlqTopic },
            "could not read the DLQ to its end; dead letters wait for the next attempt",
          );
          return undefined;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      return found;
    } finally {
      await consumer.disconnect().catch(() => undefined);
      await admin.deleteGroups([groupId]).catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
    }
  }
}
