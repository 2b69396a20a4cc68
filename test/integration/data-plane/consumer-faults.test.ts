import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { makeEvent } from "../../support/events.js";
import { type Admin, kafkaClient, readAll, transactionalWriter } from "../../support/kafka.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import { countMismatches, exactlyOnceAudit, ledgerCounts, testLedger } from "../../support/pipeline-db.js";
import { pgEnv, startWorkload } from "../../support/workload-process.js";

const stack = inject("stack");
const id = uniqueSuffix();
const topic = `t-faults-${id}`;
const EVENTS = process.env.LP_TEST_SCALE === "full" ? 200_000 : 20_000;
const kafka = kafkaClient(stack.kafkaBootstrap);
const logs = mkdtempSync(path.join(tmpdir(), "lp-consumer-faults-"));
const events = Array.from({ length: EVENTS }, (_, i) => makeEvent(i));
/** Sentinels written so far: each case's consumer reads the whole topic, earlier cases' sentinels too. */
const sentinels: ReturnType<typeof makeEvent>[] = [];
let admin: Admin;

beforeAll(async () => {
  admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }] });
  const writer = await transactionalWriter(kafka, `tx-${id}`);
  await writer.write(
    topic,
    events.map((e) => JSON.stringify(e)),
    { perTxn: 1000, partitions: 3 },
  );
  await writer.close();
});

afterAll(async () => {
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
});

describe("consumer: kill -9, then restart — lost = duplicated = spurious = 0", () => {
  it.each(["mid-batch", "before-pg-commit", "after-pg-commit"])(
    `killed at %s over ${EVENTS} events`,
    async (point) => {
      const db = await testLedger(stack.postgresUrl, "t_faults");
      const env = {
        ...pgEnv(stack.postgresUrl, db.schema),
        KAFKA_BOOTSTRAP_SERVERS: stack.kafkaBootstrap,
        KAFKA_TOPIC: topic,
        KAFKA_GROUP_ID: `g-${id}-${point}`,
        BATCH_MAX_EVENTS: "1000",
        METRICS_PORT: String(20_000 + Math.floor(Math.random() * 20_000)),
        LOG_LEVEL: "info",
      };
      const log = path.join(logs, `${point}.log`);
      try {
        const doomed = startWorkload("consumer", { ...env, LP_FAILPOINTS: `${point}=kill@4` }, log);
        const died = await doomed.exited;
        expect(died.signal, `the failpoint must have killed the process (log: ${log})`).toBe("SIGKILL");
        const partial = await ledgerCounts(db.pool, db.names);
        expect(partial.applied).toBeLessThan(EVENTS);

        const survivor = startWorkload("consumer", env, log);
        try {
          // The barrier: one sentinel per partition, written after the restart, behind every
          // record a redelivery could bring again; once all are stored, nothing earlier is left.
          const mine = Array.from({ length: 3 }, (_, i) =>
            makeEvent(900_000 + i, { message: `sentinel ${point}` }),
          );
          sentinels.push(...mine);
          const writer = await transactionalWriter(kafka, `tx-${id}-${point}`);
          await writer.write(
            topic,
            mine.map((e) => JSON.stringify(e)),
            { perTxn: 3, partitions: 3 },
          );
          await writer.close();
          await eventually(
            "every event and the sentinels applied after the restart",
            async () =>
              (await ledgerCounts(db.pool, db.names)).applied >= EVENTS + sentinels.length ? true : undefined,
            90_000,
          );
        } finally {
          await survivor.stop();
        }
        const expectedIds = [...events.map((e) => e.eventId), ...sentinels.map((e) => e.eventId)];
        const audit = await exactlyOnceAudit(db.pool, db.names, expectedIds);
        expect(audit).toEqual({ lost: 0, duplicated: 0, spurious: 0, rows: EVENTS + sentinels.length });
        const counts = await ledgerCounts(db.pool, db.names);
        expect(counts.applied).toBe(EVENTS + sentinels.length);
        expect(counts.duplicates).toBe(0);
        // The per-minute and per-hour counts, written in the batches' transactions, equal count(*).
        expect(await countMismatches(db.pool, db.names)).toEqual([]);
        // Negative control: the same audit sees one event stored twice in these rows.
        await db.pool.query(
          `INSERT INTO ${db.names.events} SELECT (jsonb_populate_record(e, jsonb_build_object(
             'kafka_offset', e.kafka_offset + 1000000))).* FROM ${db.names.events} e WHERE event_id = $1`,
          [events[0]?.eventId],
        );
        expect((await exactlyOnceAudit(db.pool, db.names, expectedIds)).duplicated).toBe(1);
      } finally {
        await db.drop();
      }
    },
    180_000,
  );
});

describe("dead letters: kill -9 between the DLQ commit and its mark in PostgreSQL", () => {
  it("publishes each poison record to the DLQ exactly once", async () => {
    const poisonTopic = `t-poison-${id}`;
    const dlq = `${poisonTopic}.dlq`;
    await admin.createTopics({
      topics: [
        { topic: poisonTopic, numPartitions: 2, replicationFactor: 1 },
        { topic: dlq, numPartitions: 1, replicationFactor: 1 },
      ],
    });
    const good = Array.from({ length: 300 }, (_, i) => makeEvent(i));
    const poison = Array.from({ length: 40 }, (_, i) => Buffer.from(`not json ${i}`));
    const writer = await transactionalWriter(kafka, `tx-poison-${id}`);
    const values = [...good.map((e) => Buffer.from(JSON.stringify(e))), ...poison];
    await writer.write(poisonTopic, values, { perTxn: values.length, partitions: 2 });
    await writer.close();

    const db = await testLedger(stack.postgresUrl, "t_poison");
    const env = {
      ...pgEnv(stack.postgresUrl, db.schema),
      KAFKA_BOOTSTRAP_SERVERS: stack.kafkaBootstrap,
      KAFKA_TOPIC: poisonTopic,
      KAFKA_DLQ_TOPIC: dlq,
      KAFKA_GROUP_ID: `g-poison-${id}`,
      METRICS_PORT: String(20_000 + Math.floor(Math.random() * 20_000)),
      LOG_LEVEL: "info",
    };
    const log = path.join(logs, "poison.log");
    try {
      const doomed = startWorkload("consumer", { ...env, LP_FAILPOINTS: "after-dlq-commit=kill@1" }, log);
      expect((await doomed.exited).signal).toBe("SIGKILL");
      const survivor = startWorkload("consumer", env, log);
      try {
        await eventually(
          "every dead letter published",
          async () => {
            const q = await db.pool.query<{ c: string }>(
              `SELECT count(*) AS c FROM ${db.names.deadLetters} WHERE published_at IS NOT NULL`,
            );
            return Number(q.rows[0]?.c) === poison.length ? true : undefined;
          },
          90_000,
        );
      } finally {
        await survivor.stop();
      }
      const records = await readAll(kafka, dlq, {
        groupId: `g-read-${id}`,
        readCommitted: true,
        expected: poison.length,
        idleMs: 3000,
      });
      expect(records).toHaveLength(poison.length);
      expect(new Set(records.map((r) => r.value)).size).toBe(poison.length);
      expect(
        await exactlyOnceAudit(
          db.pool,
          db.names,
          good.map((e) => e.eventId),
        ),
      ).toEqual({ lost: 0, duplicated: 0, spurious: 0, rows: 300 });
    } finally {
      await db.drop();
      await admin.deleteTopics({ topics: [poisonTopic, dlq] }).catch(() => undefined);
    }
  }, 180_000);
});
