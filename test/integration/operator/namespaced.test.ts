import { spawnSync } from "node:child_process";
import path from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseAllDocuments } from "yaml";
import type { Manager } from "../../../operator/src/controller/manager.js";
import { KubeClient, type KubeObjectLike } from "../../../operator/src/kube/client.js";
import { kafkaClient } from "../../support/kafka.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  createNamespace,
  getPipeline,
  LP_API,
  removeNamespace,
  sampleObject,
  startTestOperator,
  waitForCondition,
  waitGone,
} from "../../support/operator.js";
import { repoRoot } from "../../support/stack.js";

/**
 * The namespaced install mode (issue: an operator safe to share), with the chart's own RBAC:
 * `helm template --set installMode=namespaced` renders it, the test applies exactly that, and
 * the operator runs as the chart's ServiceAccount (impersonated). A pipeline in the watched
 * namespace is reconciled through Roles alone (its KafkaTopic through the Role in the Strimzi
 * namespace); one elsewhere is ignored with a log line; a watched namespace without a Role
 * stops the operator at start, naming it.
 */
const stack = inject("stack");
const s = uniqueSuffix();
const release = `lpns-${s}`;
const opNs = `t-op-nsd-${s}-system`;
const watched = `t-op-nsd-${s}-a`;
const other = `t-op-nsd-${s}-b`;
const noRole = `t-op-nsd-${s}-c`;
const account = `system:serviceaccount:${opNs}:${release}-logpipeline-operator`;
let admin: KubeClient;
let op: Manager;
let rendered: KubeObjectLike[] = [];
const logLines: string[] = [];

const RBAC_KINDS = new Set(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]);

function renderChart(): KubeObjectLike[] {
  const r = spawnSync(
    "helm",
    [
      "template",
      release,
      path.join(repoRoot, "charts/logpipeline-operator"),
      "-n",
      opNs,
      "--set",
      "installMode=namespaced",
      "--set",
      `watchNamespaces[0]=${watched}`,
      "--set",
      `policy.strimziNamespaces[0]=${stack.strimzi.namespace}`,
    ],
    { encoding: "utf8", timeout: 120_000 },
  );
  expect(r.status, r.stderr).toBe(0);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as KubeObjectLike | null)
    .filter((d): d is KubeObjectLike => d !== null);
}

beforeAll(async () => {
  admin = await KubeClient.fromEnvironment(stack.kubeconfig);
  for (const n of [opNs, watched, other, noRole]) await createNamespace(admin, n);
  rendered = renderChart();
  for (const o of rendered.filter((o) => RBAC_KINDS.has(o.kind ?? ""))) await admin.apply(o);
  await admin.create({
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: "kafka-credentials",
      namespace: watched,
      labels: { "logpipeline.io/pipeline-secret": "true" },
    },
    stringData: { password: "unused" },
  });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      done();
    },
  });
  op = await startTestOperator(
    stack,
    [watched],
    {
      installMode: "namespaced",
      impersonate: account,
      leaderElection: {
        enabled: true,
        namespace: opNs,
        name: `${release}-logpipeline-operator`,
        identity: "ns-test",
      },
    },
    pino({ level: "info" }, sink),
  );
}, 180_000);

afterAll(async () => {
  // Every step runs even when one before it failed: nothing of this file may outlive it.
  const steps: (() => Promise<unknown>)[] = [
    ...[watched, other].map((n) => () => removeNamespace(admin, n)),
    () => op.stop(),
    ...[opNs, noRole].map((n) => () => admin.delete("v1", "Namespace", undefined, n)),
    ...rendered
      .filter((o) => o.kind === "ClusterRole" || o.kind === "ClusterRoleBinding")
      .map(
        (o) => () =>
          admin.delete("rbac.authorization.k8s.io/v1", o.kind ?? "", undefined, o.metadata?.name ?? ""),
      ),
    ...rendered
      .filter(
        (o) =>
          (o.kind === "Role" || o.kind === "RoleBinding") &&
          o.metadata?.namespace === stack.strimzi.namespace,
      )
      .map(
        (o) => () =>
          admin.delete(
            "rbac.authorization.k8s.io/v1",
            o.kind ?? "",
            o.metadata?.namespace,
            o.metadata?.name ?? "",
          ),
      ),
    async () => {
      const kafka = kafkaClient(stack.kafkaBootstrap, "t-op-nsd").admin();
      await kafka.connect();
      await kafka
        .deleteTopics({ topics: [`${watched}.mine.logs`, `${watched}.mine.dlq`] })
        .catch(() => undefined);
      await kafka.disconnect();
    },
  ];
  const failures: unknown[] = [];
  for (const step of steps) await step().catch((e: unknown) => failures.push(e));
  await admin.close();
  if (failures.length > 0) {
    const warnings = logLines.filter((l) => /"level":(40|50)/.test(l)).slice(-10);
    throw new Error(`${String(failures[0])}\noperator warnings:\n${warnings.join("\n")}`);
  }
}, 200_000);

describe("the namespaced install mode (chart installMode=namespaced)", () => {
  it("renders nothing cluster-wide but reading CRDs and LogPipelines (and their finalizers), and no admission fence", () => {
    const clusterRoles = rendered.filter((o) => o.kind === "ClusterRole") as (KubeObjectLike & {
      rules: { resources: string[]; verbs: string[] }[];
    })[];
    expect(clusterRoles).toHaveLength(1);
    expect(clusterRoles[0]?.rules).toEqual([
      { apiGroups: ["apiextensions.k8s.io"], resources: ["customresourcedefinitions"], verbs: ["get"] },
      { apiGroups: ["logpipeline.io"], resources: ["logpipelines"], verbs: ["list", "watch", "patch"] },
    ]);
    const roles = rendered.filter((o) => o.kind === "Role").map((o) => o.metadata?.namespace);
    expect(roles.sort()).toEqual([opNs, stack.strimzi.namespace, watched].sort());
    expect(rendered.some((o) => o.kind === "ValidatingAdmissionPolicy")).toBe(false);
  });

  it("reconciles a pipeline in a watched namespace through Roles alone, and ignores one elsewhere with a log line", async () => {
    // Elsewhere first: by the time the watched one is reconciled, this one has been seen.
    await admin.create(
      sampleObject("minimal.yaml", other, "theirs", () => ({
        kafka: { mode: "external", bootstrapServers: stack.kafkaBootstrap },
      })),
    );
    await admin.create(
      sampleObject("minimal.yaml", watched, "mine", () => ({
        kafka: { mode: "external", bootstrapServers: stack.kafkaBootstrap },
      })),
    );
    const mine = await waitForCondition(admin, watched, "mine", "TopicsReady", "True", undefined, 60_000);
    const uid = mine.metadata?.uid ?? "";
    const deployments = await admin.list("apps/v1", "Deployment", watched, {
      labelSelector: `logpipeline.io/pipeline-uid=${uid}`,
    });
    expect(deployments.items.length).toBeGreaterThanOrEqual(3);
    expect(
      logLines.some(
        (l) =>
          l.includes("LogPipeline ignored: its namespace is not one this operator watches") &&
          l.includes(`${other}/theirs`),
      ),
    ).toBe(true);
    const theirs = await getPipeline(admin, other, "theirs");
    expect(theirs.status).toBeUndefined();
    expect(theirs.metadata?.finalizers ?? []).toEqual([]);
    expect((await admin.list("apps/v1", "Deployment", other)).items).toEqual([]);
    const text = await op.registry.metrics();
    expect(text).not.toMatch(/^logpipeline_operator_apply_total\{result="error"\} [1-9]/m);
  });

  it.runIf(stack.strimzi.enabled || process.env.CI)(
    "writes a KafkaTopic into an allowed Strimzi namespace through the Role there",
    async () => {
      await admin.create(
        sampleObject("strimzi.yaml", watched, "viastrimzi", (spec) => ({
          ...spec,
          kafka: {
            ...(spec.kafka as object),
            clusterRef: { name: stack.strimzi.cluster, namespace: stack.strimzi.namespace },
          },
        })),
      );
      const lp = await waitForCondition(
        admin,
        watched,
        "viastrimzi",
        "TopicsReady",
        "True",
        undefined,
        90_000,
      );
      const topics = await admin.list("kafka.strimzi.io/v1", "KafkaTopic", stack.strimzi.namespace, {
        labelSelector: `logpipeline.io/pipeline-uid=${lp.metadata?.uid ?? ""}`,
      });
      expect(topics.items.length).toBeGreaterThanOrEqual(1);
    },
  );

  it("carries out deletionPolicy through the Role when a pipeline is deleted", async () => {
    await admin.mergePatch(LP_API, "LogPipeline", watched, "mine", {
      spec: { deletionPolicy: { topics: "Delete", postgres: "Delete" } },
    });
    await eventually("the new deletionPolicy observed", async () => {
      const lp = await getPipeline(admin, watched, "mine");
      return lp.status?.observedGeneration === lp.metadata?.generation ? true : undefined;
    });
    await admin.delete(LP_API, "LogPipeline", watched, "mine");
    await waitGone(admin, LP_API, "LogPipeline", watched, "mine");
    const kafka = kafkaClient(stack.kafkaBootstrap, "t-op-nsd").admin();
    await kafka.connect();
    const topics = await kafka.listTopics();
    await kafka.disconnect();
    expect(topics).not.toContain(`${watched}.mine.logs`);
    expect(logLines.some((l) => l.includes("deletionPolicy not carried out"))).toBe(false);
  });

  it("lets a pipeline go, data retained, once its namespace's Role is gone (as the namespace controller removes it)", async () => {
    await admin.create(
      sampleObject("minimal.yaml", watched, "orphan", () => ({
        kafka: { mode: "external", bootstrapServers: stack.kafkaBootstrap },
      })),
    );
    await waitForCondition(admin, watched, "orphan", "TopicsReady", "True", undefined, 60_000);
    const binding = rendered.find((o) => o.kind === "RoleBinding" && o.metadata?.namespace === watched);
    await admin.delete("rbac.authorization.k8s.io/v1", "RoleBinding", watched, binding?.metadata?.name ?? "");
    await admin.delete(LP_API, "LogPipeline", watched, "orphan");
    await waitGone(admin, LP_API, "LogPipeline", watched, "orphan");
    expect(
      logLines.some(
        (l) =>
          l.includes(`${watched}/orphan`) &&
          l.includes("this operator's access to it gone: deletionPolicy not carried out"),
      ),
    ).toBe(true);
    // Back as it was for what follows.
    if (binding) await admin.apply(binding);
  });

  it("refuses to start when asked to watch a namespace its Roles do not cover, naming it", async () => {
    await expect(
      startTestOperator(stack, [watched, noRole], { installMode: "namespaced", impersonate: account }),
    ).rejects.toThrow(
      new RegExp(`does not cover what it needs: .*list deployments\\.apps in namespace ${noRole}`),
    );
  });
});
