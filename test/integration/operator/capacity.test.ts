import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { LogPipelineStatus } from "../../../operator/src/api/logpipeline.js";
import type { Manager } from "../../../operator/src/controller/manager.js";
import { KubeClient } from "../../../operator/src/kube/client.js";
import type { Sink } from "../../../workloads/consumer/src/consumer.js";
import { makeEvent } from "../../support/events.js";
import { type Admin, kafkaClient, transactionalWriter, workloadKafkaClient } from "../../support/kafka.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  createPipelineUp,
  conditionOf,
  createNamespace,
  createPostgresSecret,
  getPipeline,
  ledgerPipelineSpec,
  removeNamespace,
  startTestOperator,
  waitForCondition,
} from "../../support/operator.js";
import { testLedger } from "../../support/pipeline-db.js";
import { startSink } from "../../support/sink.js";

/**
 * The capacity advice against the real Kafka, PostgreSQL, consumer sink and API server: a
 * pipeline driven at a low rate and then at a high one. At the low rate its three partitions
 * carry the peak and CapacityAtRisk is False; at the high rate the advice asks for more
 * partitions, with the figures it came from, and CapacityAtRisk turns True. The operator's
 * window is 20 s and its assumed consumer rate 200 events/s per replica (the consumers keep
 * up here, so no interval measures them), so both rates are reached in seconds.
 */
const stack = inject("stack");
let kube: KubeClient;
let op: Manager;
let admin: Admin;
let db: Awaited<ReturnType<typeof testLedger>>;
let sink: Sink | undefined;
const ns = `t-op-cap-${uniqueSuffix()}`;
const name = "sizing";
const topic = `${ns}.${name}.logs`;
const ASSUMED = 200;

type Capacity = NonNullable<LogPipelineStatus["capacity"]>;
const capacityOf = async () =>
  ((await getPipeline(kube, ns, name)).status as { capacity?: Capacity } | undefined)?.capacity;

/**
 * Writes `perSecond` events a second for `seconds` (or until `stop` aborts; `started` is called
 * when the rate begins), in transactions of at most 100. Every 100 ms it writes what the rate
 * has made due since the start, so a transaction that is slow to commit on a loaded machine
 * delays events, not the rate.
 */
async function drive(
  perSecond: number,
  seconds: number,
  stop?: AbortSignal,
  started?: () => void,
): Promise<number> {
  const writer = await transactionalWriter(
    kafkaClient(stack.kafkaBootstrap, `t-op-cap-w${perSecond}`),
    `tx-${ns}-${perSecond}`,
  );
  let i = 0;
  try {
    // The first transaction on a fresh Kafka can take many seconds (its transaction log is
    // created); the rate starts after it, or it would be a burst of what fell due meanwhile.
    await writer.write(topic, [JSON.stringify(makeEvent(i++))], { perTxn: 100, partitions: 3 });
    started?.();
    const start = Date.now();
    const end = start + seconds * 1000;
    while (!stop?.aborted && Date.now() < end) {
      const due = 1 + Math.min(Math.round(((Date.now() - start) / 1000) * perSecond), perSecond * seconds);
      if (due > i)
        await writer.write(
          topic,
          Array.from({ length: due - i }, () => JSON.stringify(makeEvent(i++))),
          { perTxn: 100, partitions: 3 },
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await writer.close();
  }
  return i;
}

beforeAll(async () => {
  kube = await KubeClient.fromEnvironment(stack.kubeconfig);
  await createNamespace(kube, ns);
  await createPostgresSecret(kube, stack, ns, "pg");
  db = await testLedger(stack.postgresUrl, "t_capacity");
  op = await startTestOperator(stack, [ns], {
    capacity: { windowMs: 20_000, assumedPerReplica: ASSUMED },
  });
  admin = kafkaClient(stack.kafkaBootstrap, "t-op-cap").admin();
  await admin.connect();
  const spec = ledgerPipelineSpec(stack, db.schema, "pg");
  await createPipelineUp(kube, ns, name, {
    ...spec,
    postgres: {
      ...spec.postgres,
      retentionDays: 1,
      external: { ...spec.postgres.external, volumeSize: "1Ti" },
    },
    reconciliation: { intervalSeconds: 10 },
  });
  await waitForCondition(kube, ns, name, "Ready", "True");
  sink = await startSink({
    kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "t-op-cap"),
    db,
    topic,
    groupId: `g-${ns}`,
  });
}, 120_000);
afterAll(async () => {
  await sink?.stop();
  await removeNamespace(kube, ns);
  await op.stop();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
  await db.drop();
  await kube.close();
}, 120_000);

describe("capacity advice (status.capacity, CapacityAtRisk)", () => {
  it("follows the pipeline from a low rate its partitions carry to a high one that needs more", async () => {
    // Before any flow: not measured.
    expect(conditionOf(await getPipeline(kube, ns, name), "CapacityAtRisk")?.status).toBe("Unknown");

    // The low rate goes on until advice is taken whose whole window (10–20 s of delivery reads)
    // lies inside it: its sizes need a divergence check that saw records, which a loaded machine
    // may take a while to run, and by then a drive that had ended would have slid out of the
    // window. The window is the reads' own (windowEnd), not when the advice was computed (asOf):
    // on a loaded machine the newest read may be older than the advice, and a window placed at
    // asOf would claim a stretch of the drive it never measured.
    const stopLow = new AbortController();
    let lowStart = Number.POSITIVE_INFINITY;
    const lowDrive = drive(20, 120, stopLow.signal, () => {
      lowStart = Date.now();
    });
    const low = await eventually(
      "advice from the low rate over a window inside it, with the database's and Kafka's sizes",
      async () => {
        const c = await capacityOf();
        return c &&
          // (Reads are stamped to the second; figures unchanged since keep their window end.)
          Date.parse(c.windowEnd) - c.windowSeconds * 1000 >= lowStart - 1000 &&
          c.windowSeconds >= 10 &&
          c.ingest.meanPerSecond > 0 &&
          c.postgres.bytesPerEvent &&
          c.kafka.bytesPerEvent
          ? c
          : undefined;
      },
      100_000,
    ).finally(() => stopLow.abort());

    await lowDrive;
    expect(low.ingest.meanPerSecond).toBeGreaterThan(5);
    expect(low.ingest.meanPerSecond).toBeLessThan(60);
    expect(low.consumer).toEqual({ perReplicaPerSecond: ASSUMED, source: "assumed" });
    expect(low.partitions).toEqual({ current: 3, needed: 1 });
    // The events' own sizes: a JSON record of about 200 bytes, a row with its indexes more.
    expect(low.kafka.bytesPerEvent).toBeGreaterThan(100);
    expect(low.kafka.bytesPerEvent).toBeLessThan(1000);
    expect(low.postgres).toMatchObject({ volumeBytes: 2 ** 40, volumeSource: "stated" });
    expect(low.postgres.bytesPerEvent).toBeGreaterThan(50);
    expect(low.recommendations.find((r) => r.subject === "partitions")?.advice).toBe("none");
    await eventually("CapacityAtRisk False", async () => {
      const c = conditionOf(await getPipeline(kube, ns, name), "CapacityAtRisk");
      return c?.status === "False" && c.reason === "CapacitySufficient" ? true : undefined;
    });

    await drive(1500, 10);
    const high = await eventually(
      "advice from the high rate",
      async () => {
        const c = await capacityOf();
        return c && c.partitions.needed > 3 ? c : undefined;
      },
      60_000,
    );
    // 1,500 events/s at 200 per replica, planned at 80 %: about 10 partitions.
    expect(high.ingest.peakPerSecond).toBeGreaterThan(600);
    const rec = high.recommendations.find((r) => r.subject === "partitions");
    expect(rec?.advice).toBe(`raise kafka.topic.partitions to ${high.partitions.needed}`);
    expect(rec?.figures).toMatchObject({
      perReplicaEventsPerSecond: String(ASSUMED),
      partitions: "3",
      peakEventsPerSecond: String(high.ingest.peakPerSecond),
    });
    const atRisk = await eventually("CapacityAtRisk True", async () => {
      const c = conditionOf(await getPipeline(kube, ns, name), "CapacityAtRisk");
      return c?.status === "True" ? c : undefined;
    });
    expect(atRisk.reason).toBe("CapacityShort");
    expect(atRisk.message).toMatch(new RegExp(`needs ${high.partitions.needed} partitions; the topic has 3`));
  }, 240_000);
});
