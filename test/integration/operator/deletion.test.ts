import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Manager } from "../../../operator/src/controller/manager.js";
import { KubeClient } from "../../../operator/src/kube/client.js";
import { type Admin, kafkaClient } from "../../support/kafka.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  LP_API,
  sampleObject,
  removeNamespace,
  startTestOperator,
  waitForCondition,
  waitGone,
  createNamespace,
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
  for (const n of [ns, doomed]) await createNamespace(kube, n);
  op = await startTestOperator(stack, [ns, doomed]);
  admin = kafkaClient(stack.kafkaBootstrap, "t-op-del").admin();
  await admin.connect();
});
afterAll(async () => {
  await removeNamespace(kube, ns);
  if (await kube.getOrUndefined("v1", "Namespace", undefined, doomed)) await removeNamespace(kube, doomed);
  await op.stop();
  await admin.disconnect();
  await kube.close();
}, 200_000);

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

  it("never holds a terminating namespace, even when the Kafka credentials' Secret goes first", async () => {
    const name = "tenant";
    await kube.create({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "kafka-credentials", namespace: doomed },
      stringData: { password: readFileSync(stack.kafkaSasl.passwordFile, "utf8").trim() },
    });
    const lp = pipeline(doomed, name);
    lp.spec.kafka = {
      ...(lp.spec.kafka as object),
      bootstrapServers: stack.kafkaSasl.bootstrap,
      auth: {
        securityProtocol: "SASL_PLAINTEXT",
        sasl: { username: stack.kafkaSasl.username, passwordSecretRef: { name: "kafka-credentials" } },
      },
    };
    await kube.create(lp);
    await waitForCondition(kube, doomed, name, "TopicsReady", "True");
    const started = Date.now();
    await kube.delete("v1", "Namespace", undefined, doomed);
    await waitGone(kube, "v1", "Namespace", undefined, doomed, 90_000);
    console.log(
      `namespace with a pipeline (deletionPolicy Delete) deleted in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  });
});
