import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Admin, kafkaClient, readAll } from "../../support/kafka.js";
import { uniqueSuffix } from "../../support/kube.js";

const stack = inject("stack");
const kafka = kafkaClient(stack.kafkaBootstrap);
const topic = `t-kafka-${uniqueSuffix()}`;
let admin: Admin;

beforeAll(async () => {
  admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] });
});
afterAll(async () => {
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
});

describe("Kafka broker (KRaft, single node)", () => {
  it("answers metadata for a topic created through the Admin API", async () => {
    const [meta] = await admin.fetchTopicMetadata({ topics: [topic] });
    expect(meta?.partitions).toHaveLength(2);
  });

  it("delivers committed transactions to read_committed consumers and hides aborted ones", async () => {
    const producer = kafka.producer({
      kafkaJS: { transactionalId: `tx-${topic}`, idempotent: true, maxInFlightRequests: 1 },
    });
    await producer.connect();
    try {
      for (const [values, outcome] of [
        [["a1", "a2"], "commit"],
        [["b1", "b2"], "abort"],
        [["c1"], "commit"],
      ] as const) {
        const tx = await producer.transaction();
        await tx.send({ topic, messages: values.map((value) => ({ key: "k", value })) });
        await (outcome === "commit" ? tx.commit() : tx.abort());
      }
    } finally {
      await producer.disconnect();
    }

    const committed = await readAll(kafka, topic, {
      groupId: `g-rc-${topic}`,
      readCommitted: true,
      expected: 3,
    });
    expect(committed.map((m) => m.value)).toEqual(["a1", "a2", "c1"]);

    // The aborted records were really written: an uncommitted reader sees them.
    const uncommitted = await readAll(kafka, topic, {
      groupId: `g-ru-${topic}`,
      readCommitted: false,
      expected: 5,
    });
    expect(uncommitted.map((m) => m.value)).toEqual(["a1", "a2", "b1", "b2", "c1"]);
  });
});
