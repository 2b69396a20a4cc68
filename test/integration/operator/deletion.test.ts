import { readFileSync } from "node:fs";
import { describe, expect, inject, it } from "vitest";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import { LP_API, sampleObject, waitForCondition, waitGone, operatorTestBed } from "../../support/operator.js";

const stack = inject("stack");
const ns = `t-op-del-${uniqueSuffix()}`;
const doomed = `t-op-nsdel-${uniqueSuffix()}`;

const bed = operatorTestBed({ namespaces: [ns, doomed], clientId: "t-op-del" });

const pipeline = (namespace: string, name: string) =>
  sampleObject("minimal.yaml", namespace, name, (s) => ({
    ...s,
    kafka: { ...(s.kafka as object), bootstrapServers: stack.kafkaBootstrap, topic: { partitions: 2 } },
    consumer: { replicas: { max: 2 } },
    deletionPolicy: { topics: "Delete", postgres: "Delete" },
  }));

describe("deletion with deletionPolicy Delete", () => {
  it("removes the topics from Kafka, the PostgreSQL volume and its credentials", async () => {
    const name = "gone";
    await bed.kube.create(pipeline(ns, name));
    await waitForCondition(bed.kube, ns, name, "TopicsReady", "True");
    const pvc = await eventually("the PostgreSQL PVC", async () => {
      const l = await bed.kube.list("v1", "PersistentVolumeClaim", ns);
      return l.items[0];
    });
    expect(await bed.admin.listTopics()).toContain(`${ns}.${name}.logs`);
    await bed.kube.delete(LP_API, "LogPipeline", ns, name);
    await waitGone(bed.kube, LP_API, "LogPipeline", ns, name);
    await waitGone(bed.kube, "v1", "PersistentVolumeClaim", ns, pvc.metadata?.name ?? "");
    expect(await bed.kube.getOrUndefined("v1", "Secret", ns, `${name}-postgres-credentials`)).toBeUndefined();
    await eventually("topics deleted from Kafka", async () => {
      const topics = await bed.admin.listTopics();
      return topics.includes(`${ns}.${name}.logs`) || topics.includes(`${ns}.${name}.dlq`) ? undefined : true;
    });
  });

  it("never holds a terminating namespace, even when the Kafka credentials' Secret goes first", async () => {
    const name = "tenant";
    await bed.kube.create({
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: "kafka-credentials",
        namespace: doomed,
        labels: { "logpipeline.io/pipeline-secret": "true" },
      },
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
    await bed.kube.create(lp);
    await waitForCondition(bed.kube, doomed, name, "TopicsReady", "True");
    const started = Date.now();
    await bed.kube.delete("v1", "Namespace", undefined, doomed);
    await waitGone(bed.kube, "v1", "Namespace", undefined, doomed, 90_000);
    console.log(
      `namespace with a pipeline (deletionPolicy Delete) deleted in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  });
});
