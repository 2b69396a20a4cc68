import { describe, expect, inject, it } from "vitest";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  conditionOf,
  getPipeline,
  LP_API,
  operatorTestBed,
  sampleObject,
  startTestOperator,
  waitForCondition,
  waitGone,
} from "../../support/operator.js";

/**
 * No confused deputy (issue: an operator safe to share): the operator acts with permissions
 * wider than the team that writes a LogPipeline, so a pipeline outside the operator's policy
 * (the chart's `policy` values; here the product's defaults with the stack's Strimzi
 * namespace allowed) is Stalled with reason PolicyViolation, every violation named, and
 * nothing is made for it: no workload, no Secret, no topic. A Secret a pipeline names is
 * used only when labelled for pipelines.
 */
const stack = inject("stack");
const ns = `t-op-pol-${uniqueSuffix()}`;
const bed = operatorTestBed({
  namespaces: [ns],
  clientId: "t-op-pol",
  topics: () => [
    `${ns}.keys.logs`,
    `${ns}.keys.dlq`,
    `${ns}.theirs.logs`,
    `${ns}.theirs.dlq`,
    `${ns}.adopts.logs`,
    `${ns}.adopts.dlq`,
    `${ns}.mine.logs`,
    `${ns}.mine.dlq`,
  ],
});

const external = { mode: "external", bootstrapServers: stack.kafkaBootstrap };
const refused: [string, string, Record<string, unknown>, RegExp][] = [
  [
    "a topic another namespace owns",
    "foreign-topic",
    { kafka: { ...external, topic: { name: "team-b.orders.logs" } } },
    /kafka\.topic\.name team-b\.orders\.logs does not start with t-op-pol-\w+\., the prefix namespace/,
  ],
  [
    "a Strimzi cluster in a namespace the policy does not list",
    "foreign-strimzi",
    { kafka: { mode: "strimzi", clusterRef: { name: "theirs", namespace: "team-b-kafka" } } },
    /kafka\.clusterRef\.namespace team-b-kafka is not a Strimzi namespace pipelines may use \(policy\.strimziNamespaces: kafka\)/,
  ],
  [
    "an image of its own",
    "own-image",
    { kafka: external, images: { consumer: "example.test/consumer:evil" } },
    /images\.consumer: pipelines in namespace t-op-pol-\w+ may not choose their images/,
  ],
  [
    "an Ingress without TLS",
    "plain-ingress",
    { kafka: external, ingress: { enabled: true, host: "logs.example.test" } },
    /ingress\.tlsSecret is required: an Ingress without TLS is not allowed/,
  ],
];

const children = async (uid: string) => {
  const selector = { labelSelector: `logpipeline.io/pipeline-uid=${uid}` };
  const lists = await Promise.all([
    bed.kube.list("apps/v1", "Deployment", ns, selector),
    bed.kube.list("apps/v1", "StatefulSet", ns, selector),
    bed.kube.list("v1", "Secret", ns, selector),
    bed.kube.list("v1", "Service", ns, selector),
  ]);
  return lists.flatMap((l) => l.items);
};

describe("a pipeline outside the operator's policy", () => {
  it.each(refused)(
    "asking for %s is Stalled (PolicyViolation), with nothing made for it",
    async (_, name, spec, why) => {
      const created = await bed.kube.create(sampleObject("minimal.yaml", ns, name, () => spec));
      const lp = await waitForCondition(bed.kube, ns, name, "Stalled", "True", "PolicyViolation");
      expect(conditionOf(lp, "Stalled")?.message).toMatch(why);
      expect(conditionOf(lp, "Ready")).toMatchObject({ status: "False", reason: "PolicyViolation" });
      expect(lp.status?.phase).toBe("Failed");
      expect((lp.status as { message?: string }).message).toMatch(/^outside the operator's policy: /);
      // The Stalled status is written by the reconcile that found the violation, before
      // anything is applied: no child exists.
      expect(await children(created.metadata?.uid ?? "")).toEqual([]);
      if (name === "foreign-topic") {
        const topics = await bed.admin.listTopics();
        expect(topics).not.toContain("team-b.orders.logs");
      }
    },
  );

  it("naming a Secret not labelled for pipelines is Stalled until the Secret is labelled", async () => {
    const name = "keys";
    await bed.kube.create({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "team-keys", namespace: ns },
      stringData: { "api-keys": "ci:0123456789abcdef0123456789abcdef" },
    });
    await bed.kube.create(
      sampleObject("minimal.yaml", ns, name, () => ({
        kafka: external,
        producer: { auth: { apiKeysSecret: "team-keys" } },
      })),
    );
    const lp = await waitForCondition(bed.kube, ns, name, "Stalled", "True", "PolicyViolation");
    expect(conditionOf(lp, "Stalled")?.message).toBe(
      "Secret team-keys is not labelled logpipeline.io/pipeline-secret=true, so pipelines may not use it",
    );
    // Only the operator's own generated Secrets may exist; no workload, which would mount it.
    expect((await children(lp.metadata?.uid ?? "")).map((c) => c.kind)).not.toContain("Deployment");

    await bed.kube.mergePatch("v1", "Secret", ns, "team-keys", {
      metadata: { labels: { "logpipeline.io/pipeline-secret": "true" } },
    });
    await eventually(
      "the pipeline to be reconciled past its Secrets",
      async () => {
        const now = await getPipeline(bed.kube, ns, name);
        return conditionOf(now, "Stalled")?.status === "False" &&
          conditionOf(now, "TopicsReady")?.status === "True"
          ? true
          : undefined;
      },
      60_000,
    );
    const deployments = await bed.kube.list("apps/v1", "Deployment", ns, {
      labelSelector: `logpipeline.io/pipeline-uid=${lp.metadata?.uid ?? ""}`,
    });
    expect(deployments.items.length).toBeGreaterThan(0);
  });
});

describe("topics the operator did not create", () => {
  const make = async (topic: string) => {
    await bed.admin.createTopics({ topics: [{ topic, numPartitions: 6, replicationFactor: 1 }] });
  };
  const topicsNow = async () => new Set(await bed.admin.listTopics());
  const deleting = { topics: "Delete", postgres: "Delete" };

  it("are never used, nor deleted with the pipeline, without adopt", async () => {
    await make(`${ns}.theirs.logs`);
    await bed.kube.create(
      sampleObject("minimal.yaml", ns, "theirs", () => ({ kafka: external, deletionPolicy: deleting })),
    );
    const lp = await waitForCondition(bed.kube, ns, "theirs", "Stalled", "True", "TopicNotOwned", 60_000);
    expect(conditionOf(lp, "TopicsReady")).toMatchObject({ status: "False", reason: "NotOwned" });
    expect(conditionOf(lp, "TopicsReady")?.message).toMatch(
      new RegExp(
        `^topic ${ns}\\.theirs\\.logs: exists and was not created by the operator for this pipeline: set kafka.topic.adopt: true`,
      ),
    );
    // The dead-letter topic did not exist: the operator made it, and recorded it first.
    expect((lp.status as { topics?: { created?: string[] } }).topics?.created).toEqual([`${ns}.theirs.dlq`]);
    await bed.kube.delete(LP_API, "LogPipeline", ns, "theirs");
    await waitGone(bed.kube, LP_API, "LogPipeline", ns, "theirs");
    const left = await topicsNow();
    expect(left.has(`${ns}.theirs.logs`)).toBe(true); // someone else's: kept
    expect(left.has(`${ns}.theirs.dlq`)).toBe(false); // the operator's: deleted, as deletionPolicy says
  });

  it("are used with adopt, and then deleted with the pipeline under deletionPolicy Delete", async () => {
    await make(`${ns}.adopts.logs`);
    await bed.kube.create(
      sampleObject("minimal.yaml", ns, "adopts", () => ({
        kafka: { ...external, topic: { adopt: true } },
        deletionPolicy: deleting,
      })),
    );
    await waitForCondition(bed.kube, ns, "adopts", "TopicsReady", "True", undefined, 60_000);
    await bed.kube.delete(LP_API, "LogPipeline", ns, "adopts");
    await waitGone(bed.kube, LP_API, "LogPipeline", ns, "adopts");
    expect((await topicsNow()).has(`${ns}.adopts.logs`)).toBe(false);
  });

  it("records the topics it creates, and a restarted operator still owns them", async () => {
    await bed.kube.create(sampleObject("minimal.yaml", ns, "mine", () => ({ kafka: external })));
    const lp = await waitForCondition(bed.kube, ns, "mine", "TopicsReady", "True", undefined, 60_000);
    expect((lp.status as { topics?: { created?: string[] } }).topics?.created).toEqual([
      `${ns}.mine.dlq`,
      `${ns}.mine.logs`,
    ]);
    // A new operator process knows only the status: the topics are still its own.
    await bed.op.stop();
    bed.op = await startTestOperator(stack, [ns]);
    await bed.kube.mergePatch(LP_API, "LogPipeline", ns, "mine", {
      spec: { kafka: { topic: { partitions: 8 } } },
    });
    const grown = await eventually(
      "the partitions grown by the new process",
      async () => {
        const now = await getPipeline(bed.kube, ns, "mine");
        return now.status?.observedGeneration === now.metadata?.generation &&
          conditionOf(now, "TopicsReady")?.status === "True"
          ? now
          : undefined;
      },
      60_000,
    );
    expect(conditionOf(grown, "Stalled")?.status).toBe("False");
  });
});
