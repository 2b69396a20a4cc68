import { describe, expect, inject, it } from "vitest";
import { reconcile } from "../../../operator/src/controller/reconcile.js";
import { FIELD_MANAGER } from "../../../operator/src/kube/client.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  childVersions,
  conditionOf,
  getPipeline,
  kubectl,
  LP_API,
  markPodsReady,
  sampleObject,
  waitForCondition,
  waitGone,
  operatorTestBed,
} from "../../support/operator.js";

const stack = inject("stack");
const ns = `t-op-life-${uniqueSuffix()}`;
const name = "orders";
const topic = `${ns}.${name}.logs`;
const CHILD_KINDS: [string, string][] = [
  ["apps/v1", "Deployment"],
  ["apps/v1", "StatefulSet"],
  ["v1", "Service"],
  ["autoscaling/v2", "HorizontalPodAutoscaler"],
  ["policy/v1", "PodDisruptionBudget"],
  ["networking.k8s.io/v1", "NetworkPolicy"],
  ["monitoring.coreos.com/v1", "ServiceMonitor"],
  ["monitoring.coreos.com/v1", "PrometheusRule"],
];

const bed = operatorTestBed({
  namespaces: [ns],
  clientId: "t-op-life",
  topics: () => [topic, `${ns}.${name}.dlq`],
});
const counter = async (metric: string, labels = "") => {
  const text = await bed.op.registry.metrics();
  const line = text.split("\n").find((l) => l.startsWith(`${metric}${labels}`));
  return line ? Number(line.split(" ").pop()) : 0;
};
/** Events the operator recorded in the namespace (the Kubernetes controllers record their own there too). */
const operatorEvents = async () =>
  (await bed.kube.list("v1", "Event", ns)).items.filter(
    (e) => (e as { reportingComponent?: string }).reportingComponent === FIELD_MANAGER,
  ).length;
const deployment = (n: string) =>
  bed.kube.get<{
    metadata: { resourceVersion: string };
    spec: { replicas?: number; template: { spec: { containers: { image: string }[] } } };
  }>("apps/v1", "Deployment", ns, n);
const patchLp = (spec: Record<string, unknown>) =>
  bed.kube.mergePatch(LP_API, "LogPipeline", ns, name, { spec });

describe("operator: a pipeline's life (minimal sample, external Kafka through the Admin API)", () => {
  let uid = "";

  it("creates every child with an owner reference, generated credentials and the topics in Kafka", async () => {
    const lp = sampleObject("minimal.yaml", ns, name, (s) => ({
      ...s,
      kafka: { ...(s.kafka as object), bootstrapServers: stack.kafkaBootstrap },
      consumer: { autoscaler: "kafkaLag" },
    }));
    const created = await bed.kube.create(lp);
    uid = created.metadata?.uid ?? "";
    const deployments = await eventually("four Deployments", async () => {
      const l = await bed.kube.list("apps/v1", "Deployment", ns);
      return l.items.length === 4 ? l.items : undefined;
    });
    for (const d of deployments)
      expect(d.metadata?.ownerReferences?.[0], d.metadata?.name).toMatchObject({
        kind: "LogPipeline",
        uid,
        controller: true,
      });
    // Children are applied one after another: wait for the last ones, then look at all.
    await eventually("the autoscalers", async () =>
      (await bed.kube.list("autoscaling/v2", "HorizontalPodAutoscaler", ns)).items.length === 2
        ? true
        : undefined,
    );
    const names = (kind: string, apiVersion: string) =>
      bed.kube.list(apiVersion, kind, ns).then((l) => l.items.map((i) => i.metadata?.name).sort());
    expect(await names("StatefulSet", "apps/v1")).toEqual([`${name}-postgres`]);
    expect(await names("Service", "v1")).toEqual(
      ["consumer", "postgres", "producer", "query", "redis"].map((c) => `${name}-${c}`),
    );
    expect(await names("HorizontalPodAutoscaler", "autoscaling/v2")).toEqual([
      `${name}-consumer`,
      `${name}-producer`,
    ]);
    expect(await names("Secret", "v1")).toEqual(
      [
        "api-keys",
        "postgres-credentials",
        "postgres-owner",
        "postgres-reader",
        "postgres-writer",
        "query-keys",
        "redis-credentials",
      ].map((c) => `${name}-${c}`),
    );
    await eventually("topics in Kafka", async () => {
      const topics = await bed.admin.listTopics();
      return topics.includes(topic) && topics.includes(`${ns}.${name}.dlq`) ? true : undefined;
    });
    const [meta] = await bed.admin.fetchTopicMetadata({ topics: [topic] });
    expect(meta?.partitions.length).toBe(6);
  });

  it("reports conditions from the first visit, and a missing optional CRD (KEDA) as a condition", async () => {
    const lp = await waitForCondition(bed.kube, ns, name, "TopicsReady", "True");
    expect(conditionOf(lp, "Ready")?.status).toBe("False");
    expect(conditionOf(lp, "DataConsistent")).toMatchObject({ status: "Unknown", reason: "NotChecked" });
    expect(conditionOf(lp, "IntegrationsAvailable")).toMatchObject({
      status: "False",
      reason: "KedaMissing",
    });
    expect(lp.status?.phase).toBe("Provisioning");
  });

  it("turns Ready when the children are available, and kubectl shows the printer columns", async () => {
    await eventually("pods to exist", async () =>
      (await bed.kube.list("v1", "Pod", ns)).items.length >= 5 ? true : undefined,
    );
    await markPodsReady(bed.kube, ns);
    const lp = await waitForCondition(bed.kube, ns, name, "Ready", "True");
    expect(lp.status?.phase).toBe("Ready");
    const out = kubectl(stack, ["get", "lp", "-n", ns]);
    expect(out.stdout.split("\n")[0]?.split(/\s+/)).toEqual([
      "NAME",
      "READY",
      "PHASE",
      "PRODUCERS",
      "CONSUMERS",
      "LAG",
      "DIVERGENCE",
      "DLQ",
      "AGE",
    ]);
    expect(out.stdout).toMatch(new RegExp(`${name}\\s+True\\s+Ready\\s+1/1\\s+1/1`));
  });

  it("a second reconcile of an unchanged pipeline changes nothing: no resourceVersion moves, no status write, no Event", async () => {
    // Barrier: the pods were just marked ready, so the children's controllers may still be
    // reporting. Settled means one reconcile that wrote no status and recorded no Event.
    // The first divergence check runs in the background once the pipeline is Ready (the
    // probes): its result is a status write and an Event of its own, so wait for it first.
    await eventually("the first divergence check's result in the status", async () =>
      conditionOf(await getPipeline(bed.kube, ns, name), "DataConsistent")?.reason !== "NotChecked"
        ? true
        : undefined,
    );
    await eventually("a reconcile that writes nothing", async () => {
      const w = await counter("logpipeline_operator_status_writes_total");
      const e = await operatorEvents();
      await reconcile(`${ns}/${name}`, bed.op.deps);
      return (await counter("logpipeline_operator_status_writes_total")) === w &&
        (await operatorEvents()) === e
        ? true
        : undefined;
    });
    const before = await childVersions(bed.kube, CHILD_KINDS, uid, [ns]);
    const lpBefore = await getPipeline(bed.kube, ns, name);
    const events = await operatorEvents();
    const writes = await counter("logpipeline_operator_status_writes_total");
    const applies = async () => ({
      unchanged: await counter("logpipeline_operator_apply_total", '{result="unchanged"}'),
      noop: await counter("logpipeline_operator_apply_total", '{result="noop"}'),
      changed: await counter("logpipeline_operator_apply_total", '{result="changed"}'),
    });
    const a0 = await applies();
    await reconcile(`${ns}/${name}`, bed.op.deps);
    await reconcile(`${ns}/${name}`, bed.op.deps);
    const after = await childVersions(bed.kube, CHILD_KINDS, uid, [ns]);
    expect(after).toEqual(before);
    expect(before.size).toBeGreaterThanOrEqual(15);
    expect((await getPipeline(bed.kube, ns, name)).metadata?.resourceVersion).toBe(
      lpBefore.metadata?.resourceVersion,
    );
    expect(await counter("logpipeline_operator_status_writes_total")).toBe(writes);
    expect(await operatorEvents()).toBe(events);
    const a1 = await applies();
    const d = {
      unchanged: a1.unchanged - a0.unchanged,
      noop: a1.noop - a0.noop,
      changed: a1.changed - a0.changed,
    };
    console.log(
      `two reconciles of an unchanged pipeline, ${before.size} children: ${d.unchanged} left alone (unchanged since the last apply), ${d.noop} applied as no-ops, ${d.changed} changed`,
    );
    // Every child is accounted for in both reconciles and both left every child alone: no
    // apply at all, not even a no-op (there is no time-based re-apply).
    expect(d.unchanged).toBeGreaterThanOrEqual(2 * before.size);
    expect(d.noop).toBe(0);
    expect(d.changed).toBe(0);
  });

  it("puts back a child someone deleted, and reverts a field someone edited, within one resync", async () => {
    await bed.kube.delete("v1", "Service", ns, `${name}-producer`);
    // As a person would: kubectl (field manager kubectl-patch), not the operator's own identity.
    const patched = kubectl(stack, [
      "patch",
      "deployment",
      `${name}-query`,
      "-n",
      ns,
      "--type=strategic",
      "-p",
      JSON.stringify({
        spec: { template: { spec: { containers: [{ name: "query", image: "evil/image:1" }] } } },
      }),
    ]);
    expect(patched.stderr).toBe("");
    // A label the operator sets, removed: the generation does not move, the label comes back.
    const unlabelled = kubectl(stack, [
      "label",
      "deployment",
      `${name}-producer`,
      "-n",
      ns,
      "app.kubernetes.io/name-",
    ]);
    expect(unlabelled.stderr).toBe("");
    await eventually(
      "the producer's name label to be back",
      async () =>
        (await bed.kube.get("apps/v1", "Deployment", ns, `${name}-producer`)).metadata?.labels?.[
          "app.kubernetes.io/name"
        ]
          ? true
          : undefined,
      10_000,
    );
    await eventually(
      "the Service to be back",
      async () => bed.kube.getOrUndefined("v1", "Service", ns, `${name}-producer`),
      10_000,
    );
    await eventually(
      "the query image to be reverted",
      async () =>
        (await deployment(`${name}-query`)).spec.template.spec.containers[0]?.image ===
        "logpipeline/query:test"
          ? true
          : undefined,
      10_000,
    );
    // The reverted edit shows in the spec differences, naming who made it and the field.
    const diffs = await eventually(
      "the spec differences",
      async () => {
        const d = (
          (await getPipeline(bed.kube, ns, name)).status as {
            divergence?: { specDifferences?: { object: string; field: string; reason: string }[] };
          }
        ).divergence?.specDifferences;
        return d?.some((x) => x.object.endsWith("-query")) ? d : undefined;
      },
      15_000,
    );
    expect(diffs).toContainEqual(
      expect.objectContaining({
        object: `Deployment/${name}-query`,
        field: "spec.template.spec.containers[query].image",
        reason: expect.stringContaining("kubectl-patch") as string,
      }),
    );
    // And the missing optional integration (no KEDA here).
    expect(diffs).toContainEqual(
      expect.objectContaining({ object: `ScaledObject/${name}`, field: "(not created)" }),
    );
    // Each announced once by a Warning Event when it appeared.
    const announced = await eventually("the SpecDifference Event", async () => {
      const events = (await bed.kube.list("v1", "Event", ns)).items as {
        reason?: string;
        message?: string;
      }[];
      const mine = events.filter((e) => e.reason === "SpecDifference").map((e) => e.message ?? "");
      return mine.some((m) => m.includes(`Deployment/${name}-query`)) ? mine : undefined;
    });
    expect(announced.filter((m) => m.startsWith(`Deployment/${name}-query spec.template`))).toHaveLength(1);
  });

  it("a spec change rolls only what it changes", async () => {
    const before = await childVersions(bed.kube, [["apps/v1", "Deployment"]], uid, [ns]);
    await patchLp({ query: { cacheTtlSeconds: 42 } });
    await eventually("query Deployment to change", async () => {
      const d = await deployment(`${name}-query`);
      return d.metadata.resourceVersion !== before.get(`Deployment/${ns}/${name}-query`) ? true : undefined;
    });
    // The barrier: the reconcile applies every child before it writes the status, so a status
    // for the new generation means every child has been applied for it.
    const generation = (await getPipeline(bed.kube, ns, name)).metadata?.generation;
    await eventually("the status of the new generation", async () =>
      (await getPipeline(bed.kube, ns, name)).status?.observedGeneration === generation ? true : undefined,
    );
    const after = await childVersions(bed.kube, [["apps/v1", "Deployment"]], uid, [ns]);
    for (const c of ["producer", "consumer", "redis"])
      expect(after.get(`Deployment/${ns}/${name}-${c}`), c).toBe(before.get(`Deployment/${ns}/${name}-${c}`));
    const lp = await getPipeline(bed.kube, ns, name);
    expect(lp.status?.observedGeneration).toBe(lp.metadata?.generation);
  });

  it("grows the topic's partitions through the Admin API when the spec asks for more", async () => {
    await patchLp({ kafka: { topic: { partitions: 8 } } });
    await eventually("8 partitions in Kafka", async () => {
      const [meta] = await bed.admin.fetchTopicMetadata({ topics: [topic] });
      return meta?.partitions.length === 8 ? true : undefined;
    });
    await waitForCondition(bed.kube, ns, name, "TopicsReady", "True");
  });

  it("suspend stops all changes; resuming reverts what drifted meanwhile", async () => {
    await patchLp({ suspend: true });
    await eventually("phase Suspended", async () =>
      (await getPipeline(bed.kube, ns, name)).status?.phase === "Suspended" ? true : undefined,
    );
    await bed.kube.mergePatch("apps/v1", "Deployment", ns, `${name}-producer`, {
      spec: { template: { spec: { containers: [{ name: "producer", image: "edited/while:suspended" }] } } },
    });
    // The barrier: two more reconciles of the suspended pipeline have run (its resync is 3 s).
    const reconciles = await counter("logpipeline_operator_reconcile_total", `{result="success"}`);
    await eventually("two more reconciles", async () =>
      (await counter("logpipeline_operator_reconcile_total", `{result="success"}`)) >= reconciles + 2
        ? true
        : undefined,
    );
    expect((await deployment(`${name}-producer`)).spec.template.spec.containers[0]?.image).toBe(
      "edited/while:suspended",
    );
    await patchLp({ suspend: false });
    await eventually("the producer image reverted", async () =>
      (await deployment(`${name}-producer`)).spec.template.spec.containers[0]?.image ===
      "logpipeline/producer:test"
        ? true
        : undefined,
    );
  });

  it("hibernate scales every workload to 0 and removes autoscalers; waking restores them", async () => {
    await patchLp({ hibernate: true });
    await eventually("workloads at 0, no HPA", async () => {
      const ds = await bed.kube.list<{ spec: { replicas: number } }>("apps/v1", "Deployment", ns);
      const hpas = await bed.kube.list("autoscaling/v2", "HorizontalPodAutoscaler", ns);
      return ds.items.every((d) => d.spec.replicas === 0) && hpas.items.length === 0 ? true : undefined;
    });
    await eventually("phase Hibernated", async () =>
      (await getPipeline(bed.kube, ns, name)).status?.phase === "Hibernated" ? true : undefined,
    );
    await patchLp({ hibernate: false });
    await eventually("HPAs back", async () =>
      (await bed.kube.list("autoscaling/v2", "HorizontalPodAutoscaler", ns)).items.length === 2
        ? true
        : undefined,
    );
  });

  it("deletion with deletionPolicy Retain keeps the topics, the PVC and the database credentials", async () => {
    const pvcs = await eventually("the PostgreSQL PVC", async () => {
      const l = await bed.kube.list("v1", "PersistentVolumeClaim", ns);
      return l.items.length > 0 ? l.items : undefined;
    });
    await bed.kube.delete(LP_API, "LogPipeline", ns, name);
    await waitGone(bed.kube, LP_API, "LogPipeline", ns, name);
    expect(await bed.admin.listTopics()).toContain(topic);
    expect(
      await bed.kube.getOrUndefined("v1", "PersistentVolumeClaim", ns, pvcs[0]?.metadata?.name ?? ""),
    ).toBeDefined();
    expect(await bed.kube.getOrUndefined("v1", "Secret", ns, `${name}-postgres-credentials`)).toBeDefined();
    expect(await bed.kube.getOrUndefined("v1", "Secret", ns, `${name}-redis-credentials`)).toBeUndefined();
    // The generated keys, ingest and query, belong to the pipeline alone.
    expect(await bed.kube.getOrUndefined("v1", "Secret", ns, `${name}-api-keys`)).toBeUndefined();
    expect(await bed.kube.getOrUndefined("v1", "Secret", ns, `${name}-query-keys`)).toBeUndefined();
  });
});
