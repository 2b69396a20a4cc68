import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { ApiException, PatchStrategy, type KubernetesObject } from "@kubernetes/client-node";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually, kubeClients, testNamespace } from "../../support/kube.js";
import { repoRoot } from "../../support/stack.js";

const stack = inject("stack");
const { core, apps, objects } = kubeClients(stack);
let ns: Awaited<ReturnType<typeof testNamespace>>;

beforeAll(async () => {
  ns = await testNamespace(core, "t-apiserver");
});
afterAll(async () => {
  await ns.remove();
});

const apply = (obj: KubernetesObject & { spec?: unknown }) =>
  objects.patch(obj, undefined, undefined, "logpipeline-tests", true, PatchStrategy.ServerSideApply);

function errorCode(e: unknown): number | undefined {
  return e instanceof ApiException ? e.code : undefined;
}

describe("custom resource definitions", () => {
  it("serves LogPipeline objects from the generated CRD", async () => {
    const lp = {
      apiVersion: "logpipeline.io/v1alpha1",
      kind: "LogPipeline",
      metadata: { name: "orders", namespace: ns.name },
      spec: { kafka: { mode: "external", bootstrapServers: "kafka:9092" } },
    };
    await apply(lp);
    const read = await objects.read<typeof lp & { spec: { kafka: { topic: { partitions: number } } } }>(lp);
    // Defaults from the schema are applied by the API server.
    expect(read.spec.kafka.topic.partitions).toBe(6);
  });

  const samplesDir = path.join(repoRoot, "config/samples");
  it.each(readdirSync(samplesDir).filter((f) => f.endsWith(".yaml")))(
    "accepts the sample %s",
    async (file) => {
      const sample = parse(readFileSync(path.join(samplesDir, file), "utf8")) as KubernetesObject;
      (sample.metadata ??= {}).namespace = ns.name;
      const created = await objects.create(sample);
      expect(created.metadata?.uid).toBeTruthy();
    },
  );

  it("refuses a LogPipeline that breaks a CEL rule, with the rule's message", async () => {
    const bad = {
      apiVersion: "logpipeline.io/v1alpha1",
      kind: "LogPipeline",
      metadata: { name: "no-cluster-ref", namespace: ns.name },
      spec: { kafka: { mode: "strimzi" } },
    };
    const err = await apply(bad).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(errorCode(err)).toBe(422);
    expect(String((err as ApiException<unknown>).body)).toContain(
      "kafka.clusterRef is required when kafka.mode is strimzi",
    );
  });

  it("refuses shrinking partitions (transition rule)", async () => {
    const lp = {
      apiVersion: "logpipeline.io/v1alpha1",
      kind: "LogPipeline",
      metadata: { name: "shrink", namespace: ns.name },
      spec: { kafka: { mode: "external", bootstrapServers: "kafka:9092", topic: { partitions: 8 } } },
    };
    await apply(lp);
    const err = await apply({ ...lp, spec: { kafka: { ...lp.spec.kafka, topic: { partitions: 4 } } } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(errorCode(err)).toBe(422);
    expect(String((err as ApiException<unknown>).body)).toContain("partitions may only grow");
  });

  it.each([
    {
      apiVersion: "kafka.strimzi.io/v1",
      kind: "KafkaTopic",
      metadata: { name: "served-only" },
      spec: { partitions: 3, replicas: 1 },
    },
    {
      apiVersion: "monitoring.coreos.com/v1",
      kind: "ServiceMonitor",
      metadata: { name: "served-only" },
      spec: { selector: { matchLabels: { app: "x" } }, endpoints: [{ port: "metrics", interval: "30s" }] },
    },
    {
      apiVersion: "monitoring.coreos.com/v1",
      kind: "PrometheusRule",
      metadata: { name: "served-only" },
      spec: { groups: [{ name: "g", rules: [{ alert: "A", expr: "up == 0", for: "5m" }] }] },
    },
  ])("serves $kind objects from the generated third-party CRD", async (obj) => {
    const withNs = { ...obj, metadata: { ...obj.metadata, namespace: ns.name } };
    await apply(withNs);
    const read = await objects.read(withNs);
    expect(read.metadata?.uid).toBeTruthy();
    expect((read as unknown as { spec: unknown }).spec).toMatchObject(obj.spec);
  });
});

describe("kube-controller-manager", () => {
  it("gives a Deployment a ReplicaSet, and garbage-collects it when the Deployment is deleted", async () => {
    const labels = { app: "gc-probe" };
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: {
        metadata: { name: "gc-probe", labels },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: { containers: [{ name: "c", image: "example.invalid/none:1" }] },
          },
        },
      },
    });
    const rs = await eventually("a ReplicaSet owned by the Deployment", async () => {
      const list = await apps.listNamespacedReplicaSet({ namespace: ns.name, labelSelector: "app=gc-probe" });
      return list.items.find((r) =>
        r.metadata?.ownerReferences?.some((o) => o.kind === "Deployment" && o.name === "gc-probe"),
      );
    });
    expect(rs.spec?.replicas).toBe(1);

    await apps.deleteNamespacedDeployment({
      namespace: ns.name,
      name: "gc-probe",
      propagationPolicy: "Background",
    });
    await eventually("the ReplicaSet to be garbage-collected", async () => {
      const list = await apps.listNamespacedReplicaSet({ namespace: ns.name, labelSelector: "app=gc-probe" });
      return list.items.length === 0 ? true : undefined;
    });
  });
});
