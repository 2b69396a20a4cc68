import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Sink } from "../../../workloads/consumer/src/consumer.js";
import { startSink } from "../../support/sink.js";
import { makeEvent } from "../../support/events.js";
import { type Admin, kafkaClient, workloadKafkaClient, transactionalWriter } from "../../support/kafka.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import { exactlyOnceAudit, ledgerCounts, testLedger } from "../../support/pipeline-db.js";

const stack = inject("stack");
const id = uniqueSuffix();
const topic = `t-rebalance-${id}`;
const EVENTS = 20_000;
const kafka = kafkaClient(stack.kafkaBootstrap);
let admin: Admin;
let db: Awaited<ReturnType<typeof testLedger>>;

const newSink = (name: string) =>
  startSink({
    kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, name),
    db,
    topic,
    groupId: `g-${id}`,
    sessionTimeoutMs: 6000,
  });

beforeAll(async () => {
  admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 4, replicationFactor: 1 }] });
  db = await testLedger(stack.postgresUrl, "t_rebalance");
});

afterAll(async () => {
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
  await db.drop();
});

describe("consumer group: two consumers, rebalances mid-run", () => {
  it("keeps lost = duplicated = spurious = 0 while members join and leave", async () => {
    const events = Array.from({ length: EVENTS }, (_, i) => makeEvent(i));
    const writer = await transactionalWriter(kafka, `tx-${id}`);
    const produce = (from: number, to: number) =>
      writer.write(
        topic,
        events.slice(from, to).map((e) => JSON.stringify(e)),
        { perTxn: 500, partitions: 4 },
      );
    const applied = async () => (await ledgerCounts(db.pool, db.names)).applied;

    const a = await newSink("a");
    await produce(0, EVENTS / 2);
    await eventually("a to make progress", async () => ((await applied()) > 1000 ? true : undefined));
    const b = await newSink("b");
    await eventually(
      "b to be assigned partitions (a rebalance)",
      () => Promise.resolve(b.assigned.size > 0 && a.assigned.size > 0 ? true : undefined),
      60_000,
    );
    // The second half arrives while a leaves: its partitions move to b mid-stream.
    const second = produce(EVENTS / 2, EVENTS);
    await new Promise((r) => setTimeout(r, 300));
    await a.stop();
    await second;
    await eventually(
      "every event applied",
      async () => ((await applied()) >= EVENTS ? true : undefined),
      90_000,
    );
    expect(b.assigned.size).toBe(4);
    await b.stop();
    await writer.close();
    const processed = async (s: Sink) => (await s.metricsSnapshot()).processed;
    expect(await processed(a)).toBeGreaterThan(0);
    expect(await processed(b)).toBeGreaterThan(0);

    expect(
      await exactlyOnceAudit(
        db.pool,
        db.names,
        events.map((e) => e.eventId),
      ),
    ).toEqual({ lost: 0, duplicated: 0, spurious: 0, rows: EVENTS });
    const c = await ledgerCounts(db.pool, db.names);
    expect({ applied: c.applied, duplicates: c.duplicates }).toEqual({ applied: EVENTS, duplicates: 0 });
  });
});
