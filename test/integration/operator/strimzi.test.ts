import { describe, expect, inject, it } from "vitest";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  conditionOf,
  LP_API,
  sampleObject,
  waitForCondition,
  waitGone,
  operatorTestBed,
} from "../../support/operator.js";

/** kafka.mode strimzi against Strimzi's real topic operator, which the stack runs. */
const stack = inject("stack");
const ns = `t-op-strimzi-${uniqueSuffix()}`;
const STRIMZI_API = "kafka.strimzi.io/v1";

const bed = operatorTestBed({
  namespaces: [ns],
  clientId: "t-op-strimzi",
  topics: () => [`${ns}.kept.logs`, `${ns}.kept.dlq`, `${ns}.clash.logs`],
});

const pipeline = (name: string, spec: Record<string, unknown> = {}) =>
  sampleObject("strimzi.yaml", ns, name, (s) => ({
    ...s,
    kafka: {
      ...(s.kafka as object),
      clusterRef: { name: stack.strimzi.cluster, namespace: stack.strimzi.namespace },
      bootstrapServers: stack.kafkaBootstrap,
      topic: { partitions: 2 },
      ...(spec.kafka as object),
    },
    consumer: { replicas: { max: 2 } },
    ...spec,
  }));
const topicsOf = async (uid: string) =>
  (
    await bed.kube.list(STRIMZI_API, "KafkaTopic", stack.strimzi.namespace, {
      labelSelector: `logpipeline.io/pipeline-uid=${uid}`,
    })
  ).items;

describe.runIf(stack.strimzi.enabled)("kafka.mode strimzi, with Strimzi's topic operator", () => {
  it("writes KafkaTopics in Strimzi's namespace with its cluster label and mirrors their Ready into TopicsReady", async () => {
    const created = await bed.kube.create(pipeline("mirrored"));
    const uid = created.metadata?.uid ?? "";
    const lp = await waitForCondition(bed.kube, ns, "mirrored", "TopicsReady", "True", "TopicsReady", 90_000);
    expect(conditionOf(lp, "TopicsReady")?.message).toContain("Strimzi");
    const topics = await topicsOf(uid);
    expect(topics.map((t) => t.metadata?.labels?.["strimzi.io/cluster"])).toEqual([
      stack.strimzi.cluster,
      stack.strimzi.cluster,
    ]);
    const [meta] = await bed.admin.fetchTopicMetadata({ topics: [`${ns}.mirrored.logs`] });
    expect(meta?.partitions.length).toBe(2);

    // deletionPolicy.topics Delete (the sample): the KafkaTopics and the Kafka topics go.
    await bed.kube.delete(LP_API, "LogPipeline", ns, "mirrored");
    await waitGone(bed.kube, LP_API, "LogPipeline", ns, "mirrored");
    await eventually(
      "KafkaTopics gone",
      async () => ((await topicsOf(uid)).length === 0 ? true : undefined),
      60_000,
    );
    await eventually(
      "topic deleted from Kafka",
      async () => ((await bed.admin.listTopics()).includes(`${ns}.mirrored.logs`) ? undefined : true),
      60_000,
    );
  });

  it("with deletionPolicy Retain, lets the KafkaTopics go and keeps the topics in Kafka", async () => {
    const created = await bed.kube.create(pipeline("kept", { deletionPolicy: { topics: "Retain" } }));
    const uid = created.metadata?.uid ?? "";
    await waitForCondition(bed.kube, ns, "kept", "TopicsReady", "True", undefined, 90_000);
    await bed.kube.delete(LP_API, "LogPipeline", ns, "kept");
    await waitGone(bed.kube, LP_API, "LogPipeline", ns, "kept");
    await eventually(
      "KafkaTopics gone",
      async () => ((await topicsOf(uid)).length === 0 ? true : undefined),
      60_000,
    );
    // Barrier: Strimzi removes its finalizer only after it has handled the deletion (deleted
    // the topic in Kafka when managed), so the KafkaTopics' absence above is that barrier.
    expect(await bed.admin.listTopics()).toContain(`${ns}.kept.logs`);
  });

  it("surfaces a change Strimzi refuses (fewer partitions than the topic has) as a condition, not a crash loop", async () => {
    await bed.admin.createTopics({
      topics: [{ topic: `${ns}.clash.logs`, numPartitions: 4, replicationFactor: 1 }],
    });
    await bed.kube.create(pipeline("clash"));
    const lp = await waitForCondition(bed.kube, ns, "clash", "TopicsReady", "False", "NotSupported", 90_000);
    expect(conditionOf(lp, "TopicsReady")?.message).toMatch(/partition/i);
    expect(conditionOf(lp, "Stalled")).toMatchObject({ status: "True", reason: "TopicChangeNotSupported" });
    expect(lp.status?.phase).toBe("Failed");
    const reconciles = async (result: "error" | "success") => {
      const line = (await bed.op.registry.metrics())
        .split("\n")
        .find((l) => l.startsWith(`logpipeline_operator_reconcile_total{result="${result}"}`));
      return Number(line?.split(" ").pop() ?? 0);
    };
    const errors = await reconciles("error");
    const successes = await reconciles("success");
    // Barrier: a reconcile that certainly ran after this point (an annotation is a new
    // resourceVersion the watch delivers); a refused change must leave it a success.
    await bed.kube.mergePatch(LP_API, "LogPipeline", ns, "clash", {
      metadata: { annotations: { "test.logpipeline.io/nudge": "1" } },
    });
    await eventually("a reconcile after the nudge", async () =>
      (await reconciles("success")) + (await reconciles("error")) > successes + errors ? true : undefined,
    );
    expect(await reconciles("error")).toBe(errors);
  });
});
