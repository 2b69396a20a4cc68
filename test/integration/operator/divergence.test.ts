import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Manager } from "../../../operator/src/controller/manager.js";
import type { LogPipeline } from "../../../operator/src/api/logpipeline.js";
import { pipelineNames } from "../../../operator/src/builders/names.js";
import { KubeClient } from "../../../operator/src/kube/client.js";
import type { Sink } from "../../../workloads/consumer/src/consumer.js";
import { makeEvent } from "../../support/events.js";
import { type Admin, kafkaClient, transactionalWriter, workloadKafkaClient } from "../../support/kafka.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  createPipelineUp,
  conditionOf,
  type Divergence,
  requestCheck,
  createNamespace,
  createPostgresSecret,
  getPipeline,
  kubectl,
  ledgerPipelineSpec,
  removeNamespace,
  startTestOperator,
  waitForCondition,
} from "../../support/operator.js";
import { testLedger } from "../../support/pipeline-db.js";
import { startSink } from "../../support/sink.js";

/**
 * The divergence check against the real Kafka, PostgreSQL and consumer sink: no false alarm
 * while transactions abort under load; each injected fault (rows deleted, a row no event
 * produced, a record stored twice, a stopped consumer) turns DataConsistent False with its
 * reason and counts, and back to True once repaired.
 */
const stack = inject("stack");
const pgUrl = new URL(stack.postgresUrl);
let kube: KubeClient;
let op: Manager;
let admin: Admin;
let db: Awaited<ReturnType<typeof testLedger>>;
let sink: Sink | undefined;
let groupId: string;
const ns = `t-op-div-${uniqueSuffix()}`;
const name = "audit";
const topic = `${ns}.${name}.logs`;

/** Asks for a check now and waits for its result (test/support/operator.ts). */
const checkNow = (): Promise<Divergence> => requestCheck(kube, ns, name);
const divergence = async () =>
  ((await getPipeline(kube, ns, name)).status as { divergence?: Divergence } | undefined)?.divergence ?? {};

async function dataConsistent() {
  return conditionOf(await getPipeline(kube, ns, name), "DataConsistent");
}

beforeAll(async () => {
  kube = await KubeClient.fromEnvironment(stack.kubeconfig);
  await createNamespace(kube, ns);
  await createPostgresSecret(kube, stack, ns, "pg");
  db = await testLedger(stack.postgresUrl, "t_divergence");
  op = await startTestOperator(stack, [ns]);
  admin = kafkaClient(stack.kafkaBootstrap, "t-op-div").admin();
  await admin.connect();
  // No node in this stack: the workloads' pods are made Ready through their status.
  await createPipelineUp(kube, ns, name, {
    ...ledgerPipelineSpec(stack, db.schema, "pg"),
    reconciliation: { intervalSeconds: 10 },
  });
  await waitForCondition(kube, ns, name, "Ready", "True");
  // The pipeline's own consumer group, as its consumer pods use it (the check reads its offsets).
  groupId = pipelineNames((await getPipeline(kube, ns, name)) as unknown as LogPipeline).consumerGroup;
  sink = await startSink({
    kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "t-op-div"),
    db,
    topic,
    groupId,
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

const rowCount = async () =>
  Number((await db.pool.query<{ c: string }>(`SELECT count(*) AS c FROM ${db.names.events}`)).rows[0]?.c);

describe("the divergence check (status.divergence, DataConsistent)", () => {
  it("reports no divergence over 10 checks under load with transactions aborting in the middle", async () => {
    const writer = await transactionalWriter(kafkaClient(stack.kafkaBootstrap, "t-op-div-w"), `tx-${ns}`);
    let i = 0;
    const loading = { stop: false };
    // Steady load: transactions of 20, every third aborted, until the checks are done (bounded).
    const load = (async () => {
      const deadline = Date.now() + 120_000;
      while (!loading.stop && Date.now() < deadline) {
        await writer.write(
          topic,
          Array.from({ length: 60 }, () => JSON.stringify(makeEvent(i++))),
          { perTxn: 20, partitions: 3, abortEvery: 3 },
        );
      }
    })();
    const seen: Divergence[] = [];
    try {
      for (let n = 0; n < 10; n++) {
        const d = await checkNow();
        seen.push(d);
        expect({ missing: d.missing, duplicated: d.duplicated, spurious: d.spurious }).toEqual({
          missing: 0,
          duplicated: 0,
          spurious: 0,
        });
      }
    } finally {
      loading.stop = true;
      await load;
      await writer.close();
    }
    // The checks compared real records, aborted ones among the offsets they passed over.
    expect(seen.at(-1)?.partitions?.reduce((s, p) => s + p.kafkaRecords, 0)).toBeGreaterThan(100);
    // The consumer group's offsets in Kafka (the sink commits them after PostgreSQL), read
    // through a consumer handle of the group: once the sink has caught up (its stored
    // positions stood still between two checks), on every partition at most the stored position.
    let before = "";
    const withGroup = await eventually(
      "a caught-up check with the group's committed offsets",
      async () => {
        const d = await checkNow();
        const stored = JSON.stringify(d.partitions?.map((p) => p.storedNextOffset));
        const still = stored === before;
        before = stored;
        if (
          still &&
          d.partitions?.length === 3 &&
          d.partitions.every((p) => (p.groupCommittedOffset ?? 0) > 0)
        )
          return d;
        throw new Error(`not yet: ${JSON.stringify(d.partitions)}`);
      },
      60_000,
    );
    for (const p of withGroup.partitions ?? [])
      expect(p.groupCommittedOffset).toBeLessThanOrEqual(p.storedNextOffset ?? -1);
    await eventually("DataConsistent True", async () =>
      (await dataConsistent())?.status === "True" ? true : undefined,
    );
    expect((await dataConsistent())?.reason).toBe("Consistent");
    const lp = await getPipeline(kube, ns, name);
    expect(lp.status?.phase).toBe("Ready");
  });

  it("turns False with EventsMissing when rows are deleted, naming them, and True once they are back", async () => {
    await eventually(
      "the sink to catch up",
      async () => ((await checkNow()).lag === 0 ? true : undefined),
      60_000,
    );
    const victims = await db.pool.query<{ event_id: string }>(
      `DELETE FROM ${db.names.events} WHERE event_id IN (SELECT event_id FROM ${db.names.events} ORDER BY stored_at DESC LIMIT 3) RETURNING *`,
    );
    const d = await checkNow();
    expect(d.missing).toBe(3);
    expect(d.samples?.missing?.sort()).toEqual(victims.rows.map((r) => r.event_id).sort());
    expect(await dataConsistent()).toMatchObject({ status: "False", reason: "EventsMissing" });
    expect((await getPipeline(kube, ns, name)).status?.phase).toBe("Degraded");
    expect(d.summary).toBe("3 missing");
    // Repair: the rows back as they were.
    const cols = Object.keys(victims.rows[0] ?? {});
    for (const r of victims.rows as unknown as Record<string, unknown>[])
      await db.pool.query(
        `INSERT INTO ${db.names.events} (${cols.join(", ")}) VALUES (${cols.map((_, j) => `$${j + 1}`).join(", ")})`,
        cols.map((c) => r[c]),
      );
    expect((await checkNow()).missing).toBe(0);
    expect(await dataConsistent()).toMatchObject({ status: "True", reason: "Consistent" });
  });

  it("turns False with EventsSpurious for a row no event produced, and EventsDuplicated for a record stored twice", async () => {
    await db.pool.query(
      `INSERT INTO ${db.names.events} (event_id, ts, level, source, message, schema_version, received_at, kafka_partition, kafka_offset)
       VALUES (gen_random_uuid(), now(), 'INFO', 'forged', 'never produced', 1, now(), 0, 100000000)`,
    );
    let d = await checkNow();
    expect(d.spurious).toBe(1);
    expect(await dataConsistent()).toMatchObject({ status: "False", reason: "EventsSpurious" });
    await db.pool.query(`DELETE FROM ${db.names.events} WHERE source = 'forged'`);

    // A replay that bypassed the ledger: an existing record written again under a new id.
    await db.pool.query(
      `INSERT INTO ${db.names.events} (event_id, ts, level, source, message, schema_version, received_at, kafka_partition, kafka_offset)
       SELECT gen_random_uuid(), ts, level, 'replayed', message, schema_version, received_at, kafka_partition, kafka_offset
         FROM ${db.names.events} ORDER BY stored_at DESC LIMIT 2`,
    );
    d = await checkNow();
    expect(d.duplicated).toBe(2);
    expect(d.spurious).toBe(0);
    expect(await dataConsistent()).toMatchObject({ status: "False", reason: "EventsDuplicated" });
    await db.pool.query(`DELETE FROM ${db.names.events} WHERE source = 'replayed'`);
    d = await checkNow();
    expect({ missing: d.missing, duplicated: d.duplicated, spurious: d.spurious }).toEqual({
      missing: 0,
      duplicated: 0,
      spurious: 0,
    });
    expect(await dataConsistent()).toMatchObject({ status: "True" });
  });

  it("turns False with ConsumerStuck when the consumer stops while events arrive, True when it resumes", async () => {
    await sink?.stop();
    sink = undefined;
    const writer = await transactionalWriter(kafkaClient(stack.kafkaBootstrap, "t-op-div-w2"), `tx2-${ns}`);
    await writer.write(
      topic,
      Array.from({ length: 30 }, (_, j) => JSON.stringify(makeEvent(100_000 + j))),
      { perTxn: 10, partitions: 3 },
    );
    await writer.close();
    // Within two check intervals (10 s each) of the position standing still.
    const started = Date.now();
    const d = await eventually(
      "ConsumerStuck",
      async () => {
        const x = await checkNow();
        return x.partitions?.filter((p) => p.stuck).length === 3 ? x : undefined;
      },
      40_000,
    );
    expect(Date.now() - started).toBeLessThan(20_000 + 5_000);
    expect(d.lag).toBeGreaterThan(0);
    expect(await dataConsistent()).toMatchObject({ status: "False", reason: "ConsumerStuck" });
    const before = await rowCount();
    sink = await startSink({
      kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "t-op-div"),
      db,
      topic,
      groupId,
    });
    await eventually(
      "the 30 events stored",
      async () => ((await rowCount()) >= before + 30 ? true : undefined),
      60_000,
    );
    await checkNow();
    expect(await dataConsistent()).toMatchObject({ status: "True", reason: "Consistent" });
  });

  it("shows divergence in kubectl get -o wide, and never a secret or an unbounded list in the status", async () => {
    const wide = kubectl(stack, ["get", "lp", name, "-n", ns, "-o", "wide"]);
    expect(wide.stdout).toMatch(/DIVERGENCE/);
    const row = wide.stdout.split("\n")[1] ?? "";
    expect(row).toContain("True");
    const status = JSON.stringify((await getPipeline(kube, ns, name)).status);
    expect(status).not.toContain(decodeURIComponent(pgUrl.password));
    const d = await divergence();
    for (const list of Object.values(d.samples ?? {})) expect(list.length).toBeLessThanOrEqual(10);
    expect(d.partitions?.length).toBe(3);
  });
});
