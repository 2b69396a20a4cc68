import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { UNKNOWN_FIELDS_KEY } from "../../../workloads/common/src/event.js";
import { ledgerDdl, ledgerNames } from "../../../workloads/common/src/ledger.js";
import { createRegistry } from "../../../workloads/common/src/metrics.js";
import { Sink } from "../../../workloads/consumer/src/consumer.js";
import { startSink } from "../../support/sink.js";
import { makeEvent } from "../../support/events.js";
import { type Admin, kafkaClient, readAll, workloadKafkaClient } from "../../support/kafka.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import { exactlyOnceAudit, ledgerCounts, testLedger } from "../../support/pipeline-db.js";
import { promtoolCheckMetrics } from "../../support/promtool.js";

const stack = inject("stack");
const id = uniqueSuffix();
const topic = `t-consumer-${id}`;
const dlq = `${topic}.dlq`;
const kafka = kafkaClient(stack.kafkaBootstrap);
let admin: Admin;
let db: Awaited<ReturnType<typeof testLedger>>;
let sink: Sink;
const registry = createRegistry("consumer", "t");

beforeAll(async () => {
  admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic, numPartitions: 2, replicationFactor: 1 },
      { topic: dlq, numPartitions: 1, replicationFactor: 1 },
    ],
  });
  db = await testLedger(stack.postgresUrl, "t_consumer");
  sink = await startSink({
    kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "t"),
    db,
    topic,
    groupId: `g-${id}`,
    dlqTopic: dlq,
    registry,
  });
});

afterAll(async () => {
  await sink.stop();
  await admin.deleteTopics({ topics: [topic, dlq] }).catch(() => undefined);
  await admin.disconnect();
  await db.drop();
});

describe("consumer: exactly-once sink into PostgreSQL", () => {
  it("stores each committed event once, records duplicates and poison, never an aborted event", async () => {
    // COPY's text format escapes these characters: one event carries each of them, another
    // only backslashes (unescaped, COPY would silently read "\t" as a tab).
    const awkward = { message: "tab\t newline\n return\r backslash\\ \\N", stackTrace: "at x\n\tat y" };
    const windowsPath = { message: "C:\\temp\\new \\N" };
    const events = Array.from({ length: 2000 }, (_, i) =>
      makeEvent(i, i === 7 ? awkward : i === 8 ? windowsPath : {}),
    );
    const resent = events.slice(100, 150); // a producer or client retry: same event ids again
    const aborted = Array.from({ length: 10 }, (_, i) => makeEvent(10_000 + i));
    const poison = [
      Buffer.from("this is not json"),
      Buffer.from(JSON.stringify({ ...makeEvent(1), level: "LOUD" })),
      Buffer.from(JSON.stringify(makeEvent(2, { message: "nul \u0000 byte" }))), // PostgreSQL text cannot hold it: refused before PostgreSQL
    ];
    const producer = kafka.producer({
      kafkaJS: { transactionalId: `tx-${id}`, idempotent: true, maxInFlightRequests: 1 },
    });
    await producer.connect();
    const send = async (values: Buffer[], commit: boolean) => {
      const tx = await producer.transaction();
      await tx.send({ topic, messages: values.map((value, i) => ({ value, partition: i % 2 })) });
      await (commit ? tx.commit() : tx.abort());
    };
    const enc = (e: object) => Buffer.from(JSON.stringify(e));
    for (let i = 0; i < events.length; i += 500) await send(events.slice(i, i + 500).map(enc), true);
    await send(aborted.map(enc), false);
    await send([...resent.map(enc), ...poison], true);
    await producer.disconnect();

    const total = events.length + resent.length + poison.length;
    const counts = await eventually(
      "every committed record accounted for in the ledger",
      async () => {
        const c = await ledgerCounts(db.pool, db.names);
        return c.applied + c.duplicates + c.deadLettered >= total ? c : undefined;
      },
      60_000,
    );
    expect(counts).toMatchObject({
      applied: 2000,
      rows: 2000,
      duplicates: 50,
      duplicateRows: 50,
      deadLettered: 3,
      deadLetterRows: 3,
    });
    expect(
      await exactlyOnceAudit(
        db.pool,
        db.names,
        events.map((e) => e.eventId),
      ),
    ).toEqual({ lost: 0, duplicated: 0, spurious: 0, rows: 2000 });
    const stored = async (i: number) =>
      (
        await db.pool.query<{ message: string; stack_trace: string | null }>(
          `SELECT message, stack_trace FROM ${db.names.events} WHERE event_id = $1`,
          [events[i]?.eventId],
        )
      ).rows[0];
    expect(await stored(7)).toEqual({ message: awkward.message, stack_trace: awkward.stackTrace });
    expect(await stored(8)).toEqual({ message: windowsPath.message, stack_trace: null });

    // The stored positions equal the partitions' end offsets (markers included).
    const offsets = await admin.fetchTopicOffsets(topic);
    const { rows } = await db.pool.query<{ partition: number; next_offset: string }>(
      `SELECT partition, next_offset FROM ${db.names.offsets}`,
    );
    for (const o of offsets) {
      const stored = rows.find((r) => r.partition === o.partition);
      // The last record is followed by a commit marker: the high watermark is one past it.
      expect(BigInt(stored?.next_offset ?? -1)).toBe(BigInt(o.high) - 1n);
    }

    // Each poison record reaches the DLQ topic once, with its reason.
    const reasons = (
      await db.pool.query<{ reason: string }>(`SELECT reason FROM ${db.names.deadLetters}`)
    ).rows.map((r) => r.reason);
    for (const want of [/not valid JSON/, /^schema: level:/, /^unstorable: message: must not contain NUL/])
      expect(reasons.filter((r) => want.test(r))).toHaveLength(1);
    const dlqRecords = await readAll(kafka, dlq, {
      groupId: `g-dlq-${id}`,
      readCommitted: true,
      expected: 3,
      idleMs: 2000,
    });
    expect(dlqRecords).toHaveLength(3);
    // Each DLQ record says where it came from, which event, why (class, code, message), the
    // attempts and when it first failed.
    const header = (value: Buffer) => dlqRecords.find((r) => r.value === value.toString())?.headers;
    const [notJson, loud, nul] = poison as [Buffer, Buffer, Buffer];
    for (const h of [header(notJson), header(loud), header(nul)]) {
      expect(h).toMatchObject({ "source-topic": topic, attempts: "1" });
      expect(Number(h?.["source-offset"])).toBeGreaterThanOrEqual(0);
      expect(Date.parse(h?.["first-failure-time"] ?? "")).toBeGreaterThan(Date.now() - 600_000);
    }
    expect(header(notJson)).toMatchObject({
      "error-class": "json",
      "error-message": "value is not valid JSON",
    });
    expect(header(notJson)?.["event-id"]).toBeUndefined();
    expect(header(loud)).toMatchObject({
      "error-class": "schema",
      "error-code": "invalid_value",
      "event-id": (JSON.parse(loud.toString()) as { eventId: string }).eventId,
    });
    // Text cannot hold NUL: refused before PostgreSQL (its own refusals are in consumer-errors.test.ts).
    expect(header(nul)).toMatchObject({
      "error-class": "unstorable",
      "error-message": "unstorable: message: must not contain NUL (\\u0000)",
      "event-id": (JSON.parse(nul.toString()) as { eventId: string }).eventId,
    });
  });

  it("migrates once when six replicas start together (the DDL waits on an advisory lock)", async () => {
    const schema = `${db.schema}_mig`;
    const names = ledgerNames(schema, "logs");
    const pools = Array.from(
      { length: 6 },
      () => new pg.Pool({ connectionString: stack.postgresUrl, max: 1 }),
    );
    try {
      const results = await Promise.allSettled(pools.map((p) => p.query(ledgerDdl(names))));
      expect(results.filter((r) => r.status === "rejected").map((r) => String(r.reason))).toEqual([]);
      const made = await pools[0]?.query<{ t: string | null }>("SELECT to_regclass($1) AS t", [names.events]);
      expect(made?.rows[0]?.t).not.toBeNull();
    } finally {
      await pools[0]?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it("exports metrics that pass promtool check metrics, with the original names", async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/log_consumer_processed_total\{[^}]*\} 2000/);
    expect(text).toMatch(/log_consumer_duplicates_total\{[^}]*\} 50/);
    expect(promtoolCheckMetrics(text)).toEqual({ status: 0, findings: "" });
  });

  it("reads across a rolling upgrade: a newer gateway's unknown field is kept in metadata, an older gateway's event lacks spanId and is stored as before", async () => {
    const newer = { ...makeEvent(50_001), spanId: "00f067aa0ba902b7", futureField: { kept: [1, "two"] } };
    const older = makeEvent(50_002); // written before spanId existed
    const current = { ...makeEvent(50_003), spanId: "b7ad6b7169203331" };
    const producer = kafka.producer({
      kafkaJS: { transactionalId: `tx-upgrade-${id}`, idempotent: true, maxInFlightRequests: 1 },
    });
    await producer.connect();
    const tx = await producer.transaction();
    await tx.send({
      topic,
      messages: [newer, older, current].map((e) => ({ value: JSON.stringify(e), partition: 0 })),
    });
    await tx.commit();
    await producer.disconnect();
    const ids = [newer.eventId, older.eventId, current.eventId];
    const rows = await eventually("the three events stored", async () => {
      const r = await db.pool.query<{
        event_id: string;
        span_id: string | null;
        metadata: Record<string, unknown>;
      }>(
        `SELECT event_id, span_id, metadata FROM ${db.names.events} WHERE event_id = ANY($1::uuid[]) ORDER BY message`,
        [ids],
      );
      return r.rows.length === 3 ? r.rows : undefined;
    });
    const byId = new Map(rows.map((r) => [r.event_id, r]));
    expect(byId.get(newer.eventId)?.span_id).toBe("00f067aa0ba902b7");
    expect(byId.get(newer.eventId)?.metadata[UNKNOWN_FIELDS_KEY]).toEqual({
      futureField: { kept: [1, "two"] },
    });
    expect(byId.get(older.eventId)?.span_id).toBeNull();
    expect(byId.get(older.eventId)?.metadata).toEqual(older.metadata);
    expect(byId.get(current.eventId)?.span_id).toBe("b7ad6b7169203331");
    expect(Object.keys(byId.get(current.eventId)?.metadata ?? {})).not.toContain(UNKNOWN_FIELDS_KEY);
  });
});
