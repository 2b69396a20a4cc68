import { describe, expect, inject, it } from "vitest";
import type { Sink } from "../../../workloads/consumer/src/consumer.js";
import { makeEvent } from "../../support/events.js";
import { kafkaClient, transactionalWriter, workloadKafkaClient } from "../../support/kafka.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  conditionOf,
  createPostgresSecret,
  getPipeline,
  ledgerPipelineSpec,
  LP_API,
  waitForCondition,
  waitGone,
  operatorTestBed,
} from "../../support/operator.js";
import { ledgerCounts, testLedger } from "../../support/pipeline-db.js";
import { startSink } from "../../support/sink.js";

/**
 * status.delivery from the operator's own reads: Kafka's last stable offsets through the
 * Admin API, the consumer's positions from the ledger in PostgreSQL (external mode: the
 * stack's server), with the real consumer sink between them.
 */
const stack = inject("stack");
let db: Awaited<ReturnType<typeof testLedger>>;
let sink: Sink | undefined;
const ns = `t-op-dlv-${uniqueSuffix()}`;
const name = "ledger";
const topic = `${ns}.${name}.logs`;
const events = Array.from({ length: 300 }, (_, i) => makeEvent(i));

const bed = operatorTestBed({
  namespaces: [ns],
  clientId: "t-op-dlv",
  topics: () => [topic, `${ns}.wrong.logs`, `${ns}.drain.logs`, `${ns}.skip.logs`],
  setUp: async ({ kube }) => {
    await createPostgresSecret(kube, stack, ns, "pg");
    await createPostgresSecret(kube, stack, ns, "pg-wrong", "not-the-password");
    db = await testLedger(stack.postgresUrl, "t_delivery");
  },
  tearDown: async () => {
    await sink?.stop();
    await db.drop();
  },
});

interface Delivery {
  lag: number;
  dlq: number;
  duplicatesSkipped: number;
  asOf: string;
  partitions: { partition: number; lastStableOffset: number; dbNextOffset: number; lag: number }[];
}
const delivery = async () =>
  ((await getPipeline(bed.kube, ns, name)).status as { delivery?: Delivery } | undefined)?.delivery;

const spec = (schema: string, credentialsSecret: string) =>
  ledgerPipelineSpec(stack, schema, credentialsSecret);

describe("status.delivery: where Kafka and PostgreSQL stand, per partition", () => {
  it("counts committed events not yet stored as lag (transaction markers are not lag)", async () => {
    await bed.kube.create({
      apiVersion: LP_API,
      kind: "LogPipeline",
      metadata: { name, namespace: ns },
      spec: spec(db.schema, "pg"),
    });
    await waitForCondition(bed.kube, ns, name, "TopicsReady", "True");
    const writer = await transactionalWriter(kafkaClient(stack.kafkaBootstrap, "t-op-dlv-w"), `tx-${ns}`);
    await writer.write(
      topic,
      events.map((e) => JSON.stringify(e)),
      { perTxn: 50, partitions: 3 },
    );
    await writer.close();
    const d = await eventually("lag 300", async () => {
      const x = await delivery();
      return x?.lag === 300 ? x : undefined;
    });
    // 6 transactions, each with a commit marker in each of the 3 partitions: the offsets run 18 past the events.
    expect(d.partitions.reduce((s, p) => s + p.lastStableOffset, 0)).toBe(318);
    // The writer spreads each transaction of 50 round-robin: 17, 17 and 16 per partition.
    expect(d.partitions.map((p) => p.lag)).toEqual([102, 102, 96]);
    const lp = await getPipeline(bed.kube, ns, name);
    expect(conditionOf(lp, "PostgresReady")).toMatchObject({ status: "True", reason: "Reachable" });
  });

  it("drops to 0 once the consumer has stored them, although the offsets still differ by the markers", async () => {
    sink = await startSink({
      kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "t-op-dlv"),
      db,
      topic,
      groupId: `g-${ns}`,
    });
    await eventually(
      "300 rows",
      async () => ((await ledgerCounts(db.pool, db.names)).rows === 300 ? true : undefined),
      60_000,
    );
    const d = await eventually("lag 0", async () => {
      const x = await delivery();
      return x?.lag === 0 ? x : undefined;
    });
    expect(d.partitions.every((p) => p.dbNextOffset > 0 && p.dbNextOffset <= p.lastStableOffset)).toBe(true);
    expect(d.partitions.some((p) => p.dbNextOffset < p.lastStableOffset)).toBe(true);
    expect(d).toMatchObject({ dlq: 0, duplicatesSkipped: 0 });
    const out = await getPipeline(bed.kube, ns, name);
    expect(out.status?.phase).not.toBe("Failed");
  });

  it("counts a duplicate the consumer skipped", async () => {
    const writer = await transactionalWriter(kafkaClient(stack.kafkaBootstrap, "t-op-dlv-w2"), `tx2-${ns}`);
    await writer.write(topic, [JSON.stringify(events[7])], { perTxn: 1, partitions: 1 });
    await writer.close();
    await eventually("duplicatesSkipped 1 and lag 0", async () => {
      const x = await delivery();
      return x?.duplicatesSkipped === 1 && x.lag === 0 ? true : undefined;
    });
  });

  it("reports a PostgreSQL it cannot read as PostgresReady=False with the reason, never the password", async () => {
    await bed.kube.create({
      apiVersion: LP_API,
      kind: "LogPipeline",
      metadata: { name: "wrong", namespace: ns },
      spec: spec(db.schema, "pg-wrong"),
    });
    const lp = await waitForCondition(bed.kube, ns, "wrong", "PostgresReady", "False", "ConnectionFailed");
    const message = conditionOf(lp, "PostgresReady")?.message ?? "";
    expect(message).toMatch(/password authentication failed/);
    expect(JSON.stringify(lp.status)).not.toContain("not-the-password");
  });

  it("deletion with deletionPolicy Delete waits (bounded) for the lag to drain, and says so", async () => {
    const drain = {
      ...spec(db.schema, "pg"),
      deletionPolicy: { topics: "Delete", postgres: "Delete", drainTimeoutSeconds: 6 },
    };
    for (const n of ["drain", "skip"])
      await bed.kube.create({
        apiVersion: LP_API,
        kind: "LogPipeline",
        metadata: {
          name: n,
          namespace: ns,
          ...(n === "skip" ? { annotations: { "logpipeline.io/skip-drain": "true" } } : {}),
        },
        spec: drain,
      });
    for (const n of ["drain", "skip"]) {
      await waitForCondition(bed.kube, ns, n, "TopicsReady", "True");
      const writer = await transactionalWriter(
        kafkaClient(stack.kafkaBootstrap, `t-op-dlv-${n}`),
        `tx-${n}-${ns}`,
      );
      await writer.write(
        `${ns}.${n}.logs`,
        events.slice(0, 20).map((e) => JSON.stringify(e)),
        { perTxn: 20, partitions: 3 },
      );
      await writer.close();
      await eventually(`${n}: lag 20`, async () => {
        const lp = await getPipeline(bed.kube, ns, n);
        return (lp.status as { delivery?: Delivery } | undefined)?.delivery?.lag === 20 ? true : undefined;
      });
    }
    const started = Date.now();
    await bed.kube.delete(LP_API, "LogPipeline", ns, "drain");
    await bed.kube.delete(LP_API, "LogPipeline", ns, "skip");
    const waiting = await eventually("phase Deleting, waiting for the drain", async () => {
      const lp = await getPipeline(bed.kube, ns, "drain");
      return lp.status?.phase === "Deleting" &&
        /waiting for the consumer to drain 20 events/.test(lp.status.message ?? "")
        ? lp
        : undefined;
    });
    expect(conditionOf(waiting, "Ready")).toMatchObject({ status: "False", reason: "Deleting" });
    await waitGone(bed.kube, LP_API, "LogPipeline", ns, "skip", 5_000);
    const skipped = Date.now() - started;
    await waitGone(bed.kube, LP_API, "LogPipeline", ns, "drain", 30_000);
    const waited = Date.now() - started;
    console.log(
      `deletion with lag 20: skip-drain annotation ${skipped} ms; bounded drain wait ${waited} ms (drainTimeoutSeconds 6)`,
    );
    expect(waited).toBeGreaterThanOrEqual(5_000);
    expect(skipped).toBeLessThan(5_000);
    const recorded = await bed.kube.list<{
      reason: string;
      message: string;
      involvedObject: { name: string };
    }>("v1", "Event", ns);
    expect(recorded.items.some((e) => e.involvedObject.name === "drain" && /drain/.test(e.message))).toBe(
      true,
    );
  });
});
