import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  checkDivergence,
  type CheckMemory,
  type DivergenceResult,
} from "../../../operator/src/divergence/check.js";
import { TopicAdmin } from "../../../operator/src/kafka/topic-admin.js";
import { createLogger } from "../../../workloads/common/src/logger.js";
import { createRegistry } from "../../../workloads/common/src/metrics.js";
import type { Sink } from "../../../workloads/consumer/src/consumer.js";
import { PARTITION_DEFAULTS, Partitions } from "../../../workloads/consumer/src/partitions.js";
import { makeEvent } from "../../support/events.js";
import { type Admin, kafkaClient, transactionalWriter, workloadKafkaClient } from "../../support/kafka.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import { postgresConnection, testLedger } from "../../support/pipeline-db.js";
import { startSink } from "../../support/sink.js";

/**
 * The check's sweep over older windows and the retention's partition drops, against the real Kafka,
 * PostgreSQL and consumer sink, with windows of 40 offsets so that a few hundred events
 * span many of them: a row deleted far below the latest window is found by the sweep within
 * one pass over the partition; events in partitions the retention dropped count as
 * expired, not missing.
 */
const stack = inject("stack");
const WINDOW = 40;
const DAY_MS = 86_400_000;
const topic = `t-div-sweep-${uniqueSuffix()}`;
const connection = { bootstrapServers: stack.kafkaBootstrap, security: { protocol: "PLAINTEXT" as const } };
const pgConnection = postgresConnection(stack.postgresUrl);
let admin: Admin;
let topicAdmin: TopicAdmin;
let db: Awaited<ReturnType<typeof testLedger>>;
let sink: Sink | undefined;

const check = (memory: CheckMemory, retentionDays = 0): Promise<DivergenceResult> =>
  checkDivergence(
    {
      topic,
      consumerGroup: `g-${topic}`,
      schema: db.schema,
      table: "logs",
      windowOffsets: WINDOW,
      retentionDays,
    },
    { offsets: topicAdmin, connection },
    pgConnection,
    memory,
    60_000,
    () => new Date(),
  );
const newMemory = (): CheckMemory => ({ marks: new Map(), sweep: new Map() });
const rowCount = async () =>
  Number((await db.pool.query<{ c: string }>(`SELECT count(*) AS c FROM ${db.names.events}`)).rows[0]?.c);

beforeAll(async () => {
  const kafka = kafkaClient(stack.kafkaBootstrap, "t-div-sweep");
  admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] });
  db = await testLedger(stack.postgresUrl, "t_div_sweep");
  topicAdmin = await TopicAdmin.connect(connection);
  // 400 events over 2 partitions in transactions of 20, every fourth transaction aborted;
  // 40 of them 10 days old (received then too: a backlog, stored under their own time).
  const writer = await transactionalWriter(kafka, `tx-${topic}`);
  const old = new Date(Date.now() - 10 * DAY_MS).toISOString();
  await writer.write(
    topic,
    Array.from({ length: 400 }, (_, i) =>
      JSON.stringify(makeEvent(i, i >= 100 && i < 140 ? { timestamp: old, receivedAt: old } : {})),
    ),
    { perTxn: 20, partitions: 2, abortEvery: 4 },
  );
  await writer.close();
  sink = await startSink({
    kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "t-div-sweep"),
    db,
    topic,
    groupId: `g-${topic}`,
  });
  await eventually(
    "the 400 events stored",
    async () => ((await rowCount()) === 400 ? true : undefined),
    60_000,
  );
}, 120_000);
afterAll(async () => {
  await sink?.stop();
  await topicAdmin.close();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
  await db.drop();
});

describe("the divergence check's sweep and the retention", () => {
  it("finds rows deleted far below the latest window within one sweep of the partition", async () => {
    const victims = await db.pool.query<{ event_id: string; kafka_offset: string }>(
      `DELETE FROM ${db.names.events} WHERE event_id IN (
         SELECT event_id FROM ${db.names.events} WHERE kafka_partition = 0 ORDER BY kafka_offset LIMIT 2)
       RETURNING event_id, kafka_offset`,
    );
    expect(victims.rows.map((r) => Number(r.kafka_offset)).sort((a, b) => a - b)).toEqual([0, 1]);
    const memory = newMemory();
    const first = await check(memory);
    // The latest window alone does not reach offsets 0 and 1; the first sweep starts just below it.
    const p0 = first.partitions.find((p) => p.partition === 0);
    expect(p0?.windowFrom).toBeGreaterThan(WINDOW);
    expect(p0?.sweepTo).toBe(p0?.windowFrom);
    // Partition 0 holds ~260 offsets (records, aborted records, markers): a pass is at most 7 windows.
    const passes = Math.ceil((p0?.storedNextOffset ?? 0) / WINDOW) + 1;
    let found: DivergenceResult | undefined = first.missing > 0 ? first : undefined;
    let checks = 1;
    while (!found && checks < passes) {
      const r = await check(memory);
      checks++;
      expect(r.duplicated + r.spurious).toBe(0);
      if (r.missing > 0) found = r;
    }
    expect(found, `the sweep found the deleted rows within ${passes} checks`).toBeDefined();
    expect(found?.missing).toBe(2);
    expect(found?.samples.missing.sort()).toEqual(victims.rows.map((r) => r.event_id).sort());
    expect(found?.partitions.find((p) => p.partition === 0)?.sweepFrom).toBe(0);
    // After the log start, the sweep starts again from the top.
    const next = await check(memory);
    expect(next.partitions.find((p) => p.partition === 0)?.sweepTo).toBe(p0?.windowFrom);
  });

  it("drops whole partitions past the retention, and counts their events as expired, not missing", async () => {
    const partitions = new Partitions(
      db.pool,
      db.names,
      { ...PARTITION_DEFAULTS, retentionDays: 7, topic },
      createLogger("retention-test", "error"),
      createRegistry("consumer", "t"),
    );
    const before = await rowCount();
    const pass = await partitions.runOnce();
    // The 10-day-old events' hour (with its two count partitions) is dropped; nothing younger.
    expect(pass.dropped).toBe(3);
    expect(await rowCount()).toBe(before - 40);
    expect((await partitions.runOnce()).dropped).toBe(0);
    // One whole sweep (until every partition's sweep reached its log start), with the
    // pipeline's retention: the 40 are expired and only the two rows deleted by hand in the
    // test above are missing. Without the retention, all 42 would be.
    const sweep = async (retentionDays: number) => {
      const memory = newMemory();
      const total = { expired: 0, missing: 0, checks: 0 };
      const reachedStart = new Set<number>();
      while (reachedStart.size < 2 && total.checks < 20) {
        const r = await check(memory, retentionDays);
        total.checks++;
        total.expired += r.expired;
        total.missing += r.missing;
        for (const p of r.partitions) if (p.sweepFrom === 0) reachedStart.add(p.partition);
      }
      return total;
    };
    const { expired, missing, checks } = await sweep(7);
    expect(checks).toBeLessThan(20);
    expect((await sweep(0)).missing).toBe(42);
    expect(expired).toBe(40);
    expect(missing).toBe(2);
  });
});
