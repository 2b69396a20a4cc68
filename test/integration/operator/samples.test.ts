import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Manager } from "../../../operator/src/controller/manager.js";
import { KubeClient } from "../../../operator/src/kube/client.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  markPodsReady,
  sampleObject,
  removeNamespace,
  startTestOperator,
  waitForCondition,
  createNamespace,
  createPostgresSecret,
} from "../../support/operator.js";
import { repoRoot } from "../../support/stack.js";

/**
 * Every sample in config/samples, applied as a user would, with only its addresses pointed
 * at the stack (brokers, the Strimzi cluster, the external PostgreSQL) and the Secrets its
 * comments ask for created: every child exists with an owner reference, and Ready follows
 * the children.
 */
const stack = inject("stack");
const pgUrl = new URL(stack.postgresUrl);
let kube: KubeClient;
let op: Manager;
const ns = `t-op-samples-${uniqueSuffix()}`;
const samples = readdirSync(path.join(repoRoot, "config/samples")).filter(
  (f) => f.endsWith(".yaml") && (stack.strimzi.enabled || f !== "strimzi.yaml"),
);

type Spec = Record<string, Record<string, unknown>>;
const adapt: Record<string, (s: Spec) => Spec> = {
  "minimal.yaml": (s) => ({ ...s, kafka: { ...s.kafka, bootstrapServers: stack.kafkaBootstrap } }),
  "strimzi.yaml": (s) => ({
    ...s,
    kafka: {
      ...s.kafka,
      clusterRef: { name: stack.strimzi.cluster, namespace: stack.strimzi.namespace },
      bootstrapServers: stack.kafkaBootstrap,
    },
  }),
  "external-kafka.yaml": (s) => ({
    ...s,
    kafka: { ...s.kafka, bootstrapServers: stack.kafkaSasl.bootstrap },
  }),
  "external-postgres.yaml": (s) => ({
    ...s,
    kafka: { ...s.kafka, bootstrapServers: stack.kafkaBootstrap },
    postgres: {
      ...s.postgres,
      // The stack's server has no TLS: the sample's verify-full needs a server certificate.
      external: {
        ...(s.postgres?.external as object),
        host: pgUrl.hostname,
        port: Number(pgUrl.port),
        database: pgUrl.pathname.slice(1),
        sslMode: "disable",
        caSecretRef: undefined,
      },
    },
  }),
};

beforeAll(async () => {
  kube = await KubeClient.fromEnvironment(stack.kubeconfig);
  await createNamespace(kube, ns);
  const secret = (name: string, data: Record<string, string>) =>
    kube.create({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name, namespace: ns, labels: { "logpipeline.io/pipeline-secret": "true" } },
      stringData: data,
    });
  await secret("kafka-credentials", { password: readFileSync(stack.kafkaSasl.passwordFile, "utf8").trim() });
  await createPostgresSecret(kube, stack, ns, "pg-credentials");
  op = await startTestOperator(stack, [ns]);
});
afterAll(async () => {
  // The namespace's deletion runs each pipeline's finalizer (topics per deletionPolicy); the
  // SASL password's Secret may go first, which the finalizer must survive (bounded).
  await removeNamespace(kube, ns);
  await op.stop();
  await kube.close();
}, 120_000);

describe("every sample becomes a Ready pipeline", () => {
  it.each(samples)("%s", async (file) => {
    const name = path.basename(file, ".yaml");
    const lp = sampleObject(file, ns, name, (s) => {
      const a = adapt[file];
      return a ? a(s as Spec) : s;
    });
    const created = await kube.create(JSON.parse(JSON.stringify(lp)) as typeof lp);
    const uid = created.metadata?.uid ?? "";
    await waitForCondition(kube, ns, name, "TopicsReady", "True", undefined, 90_000);
    const byUid = { labelSelector: `logpipeline.io/pipeline-uid=${uid}` };
    const deployments = await eventually("Deployments", async () => {
      const l = await kube.list("apps/v1", "Deployment", ns, byUid);
      return l.items.length >= 3 ? l.items : undefined;
    });
    for (const [apiVersion, kind] of [
      ["apps/v1", "Deployment"],
      ["apps/v1", "StatefulSet"],
      ["v1", "Service"],
      ["autoscaling/v2", "HorizontalPodAutoscaler"],
      ["policy/v1", "PodDisruptionBudget"],
      ["networking.k8s.io/v1", "Ingress"],
    ] as const)
      for (const o of (await kube.list(apiVersion, kind, ns, byUid)).items)
        expect(o.metadata?.ownerReferences?.[0]?.uid, `${kind}/${o.metadata?.name ?? ""}`).toBe(uid);
    expect(deployments.length).toBeGreaterThanOrEqual(3);
    await eventually(
      "pods",
      async () => {
        await markPodsReady(kube, ns);
        const lp2 = await kube.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
          "logpipeline.io/v1alpha1",
          "LogPipeline",
          ns,
          name,
        );
        return lp2.status?.conditions?.find((c) => c.type === "Ready")?.status === "True" ? true : undefined;
      },
      60_000,
    );
  });
});
