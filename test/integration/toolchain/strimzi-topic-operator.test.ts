import { PatchStrategy } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Admin, kafkaClient } from "../../support/kafka.js";
import { eventually, kubeClients, uniqueSuffix } from "../../support/kube.js";

const stack = inject("stack");
const { objects } = kubeClients(stack);
const name = `t-strimzi-${uniqueSuffix()}`;

interface KafkaTopic {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; labels: Record<string, string>; generation?: number };
  spec: { partitions: number; replicas: number };
  status?: {
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    observedGeneration?: number;
  };
}

const topic = (partitions: number): KafkaTopic => ({
  apiVersion: "kafka.strimzi.io/v1",
  kind: "KafkaTopic",
  metadata: {
    name,
    namespace: stack.strimzi.namespace,
    labels: { "strimzi.io/cluster": stack.strimzi.cluster },
  },
  spec: { partitions, replicas: 1 },
});

const readyCondition = async (generation?: number) => {
  const t = (await objects.read(topic(0))) as unknown as KafkaTopic;
  if (generation !== undefined && t.status?.observedGeneration !== generation) return undefined;
  return t.status?.conditions?.find((c) => c.type === "Ready");
};

describe.skipIf(!stack.strimzi.enabled)("Strimzi topic operator (real, 1.2.0)", () => {
  let admin: Admin;
  beforeAll(async () => {
    admin = kafkaClient(stack.kafkaBootstrap).admin();
    await admin.connect();
  });
  afterAll(async () => {
    // The topic operator's finalizer removes the Kafka topic; it runs while the stack is up.
    await objects.delete(topic(0)).catch(() => undefined);
    await admin.disconnect();
  });

  it("turns a KafkaTopic into a Kafka topic and reports Ready=True", async () => {
    await objects.patch(
      topic(3),
      undefined,
      undefined,
      "logpipeline-tests",
      true,
      PatchStrategy.ServerSideApply,
    );
    const ready = await eventually("KafkaTopic Ready=True", async () => {
      const c = await readyCondition();
      return c?.status === "True" ? c : undefined;
    });
    expect(ready.status).toBe("True");
    const [meta] = await admin.fetchTopicMetadata({ topics: [name] });
    expect(meta?.partitions).toHaveLength(3);
  });

  it("refuses to lower partitions with reason NotSupported", async () => {
    const applied = await objects.patch(
      topic(2),
      undefined,
      undefined,
      "logpipeline-tests",
      true,
      PatchStrategy.ServerSideApply,
    );
    const generation = applied.metadata.generation;
    const cond = await eventually("KafkaTopic Ready=False/NotSupported", async () => {
      const c = await readyCondition(generation);
      return c?.status === "False" ? c : undefined;
    });
    expect(cond.reason).toBe("NotSupported");
    const [meta] = await admin.fetchTopicMetadata({ topics: [name] });
    expect(meta?.partitions).toHaveLength(3);
  });
});
