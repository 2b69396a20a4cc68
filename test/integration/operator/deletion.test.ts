import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Manager } from "../../../operator/src/controller/manager.js";
import { KubeClient } from "../../../operator/src/kube/client.js";
import { type Admin, kafkaClient } from "../../support/kafka.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  LP_API,
  sampleObject,
  startTestOperator,
  waitForCondition,
  waitGone,
} from "../../support/operator.js";

const stack = inject("stack");
let kube: KubeClient;
let op: Manager;
let admin: Admin;
const ns = `t-op-del-${uniqueSuffix()}`;
const doomed = `t-op-nsdel-${uniqueSuffix()}`;

const pipeline = (namespace: string, name: string) =>
  sampleObject("minimal.yaml", namespace, name, (s) => ({
    ...s,
    kafka: { ...(s.kafka as object), bootstrapServers: stack.kafkaBootstrap, topic: { partitions: 2 } },
    consumer: { replicas: { max: 2 } },
    deletionPolicy: { topics: "Delete", postgres: "Delete" },
  }));

beforeAll(async () => {
  kube = await KubeClient.fromEnvironment(stack.kubeconfig);
  for (const n of [ns, doomed])
    await kube.create({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: n, labels: { "logpipeline.io/test": "true" } },
    });
  op = await startTestOperator(stack, [ns, doomed]);
  admin = kafkaClient(stack.kafkaBootstrap, "t-op-del").admin();
  await admin.connect();
});
afterAll(async () => {
  await op.stop();
  await admin.disconnect();
  await kube.delete("v1", "Namespace", undefined, ns);
  await kube.delete("v1", "Namespace", undefined, doomed);
  await kube.close();
});

describe("deletion with deletionPolicy Delete", () => {
  it("removes the topics from Kafka, the PostgreSQL volume and its credentials", async () => {
    const name = "gone";
    await kube.create(pipeline(ns, name));
    await waitForCondition(kube, ns, name, "TopicsReady", "True");
    const pvc = await eventually("the PostgreSQL PVC", async () => {
      const l = await kube.list("v1", "PersistentVolumeClaim", ns);
      return l.items[0];
    });
    expect(await admin.listTopics()).toContain(`${ns}.${name}.logs`);
    await kube.delete(LP_API, "LogPipeline", ns, name);
    await waitGone(kube, LP_API, "LogPipeline", ns, name);
    await waitGone(kube, "v1", "PersistentVolumeClaim", ns, pvc.metadata?.name ?? "");
    expect(await kube.getOrUndefined("v1", "Secret", ns, `${name}-postgres-credentials`)).toBeUndefined();
    await eventually("topics deleted from Kafka", async () => {
      const topics = await admin.listTopics();
      return topics.includes(`${ns}.${name}.logs`) || topics.includes(`${ns}.${name}.dlq`) ? undefined : true;
    });
  });

  it("never holds a terminating namespace: deleting the namespace removes pipeline and namespace", async () => {
    const name = "tenant";
    await kube.create(pipeline(doomed, name));
    await waitForCondition(kube, doomed, name, "TopicsReady", "True");
    const started = Date.now();
    await kube.delete("v1", "Namespace", undefined, doomed);
    await waitGone(kube, "v1", "Namespace", undefined, doomed, 90_000);
    console.log(
      `namespace with a pipeline (deletionPolicy Delete) deleted in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  });
});
