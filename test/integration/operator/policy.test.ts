import { describe, expect, inject, it } from "vitest";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  conditionOf,
  getPipeline,
  operatorTestBed,
  sampleObject,
  waitForCondition,
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
  topics: () => [`${ns}.keys.logs`, `${ns}.keys.dlq`],
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
