import { describe, expect, it } from "vitest";
import { parsePipeline } from "../api/parse.js";
import type { LogPipelineStatus } from "../api/logpipeline.js";
import { contentHash } from "./applied.js";
import {
  cachedChild,
  childDigest,
  observeKafkaTopic,
  observeWorkload,
  pipelineDigest,
  withoutManagedFields,
} from "./observe.js";
import { deliveryWaitMs } from "./probes.js";
import { requeueAfterMs } from "./reconcile.js";
import { SecretReads } from "./secret-reads.js";

/** The three things that kept an idle operator busy at 1,000 pipelines (make bench-operator). */

describe("childDigest: which child updates wake the pipeline", () => {
  const deployment = (status: Record<string, unknown>, replicas = 2, rv = "1") => ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: "p-consumer",
      namespace: "ns",
      generation: 4,
      resourceVersion: rv,
      managedFields: [{ rv }],
    },
    spec: { replicas },
    status: { observedGeneration: 4, ...status },
  });
  const available = (at: string) => ({ type: "Available", status: "True", lastUpdateTime: at });

  it("ignores a status update that changes nothing the reconcile reads", () => {
    const a = deployment({ readyReplicas: 2, conditions: [available("t1")] }, 2, "10");
    const b = deployment({ readyReplicas: 2, conditions: [available("t2")] }, 2, "11");
    expect(childDigest("Deployment", b)).toBe(childDigest("Deployment", a));
    const hpa = (cpu: number, rv: string) => ({
      metadata: { name: "p-consumer", namespace: "ns", resourceVersion: rv },
      spec: { minReplicas: 1, maxReplicas: 6 },
      status: { currentMetrics: [{ resource: { current: { averageUtilization: cpu } } }] },
    });
    expect(childDigest("HorizontalPodAutoscaler", hpa(40, "5"))).toBe(
      childDigest("HorizontalPodAutoscaler", hpa(75, "6")),
    );
  });

  it("sees readiness, spec, label and topic-state changes", () => {
    const base = childDigest("Deployment", deployment({ readyReplicas: 2 }));
    expect(childDigest("Deployment", deployment({ readyReplicas: 1 }))).not.toBe(base);
    expect(childDigest("Deployment", deployment({ readyReplicas: 2 }, 3))).not.toBe(base);
    const relabelled = deployment({ readyReplicas: 2 });
    (relabelled.metadata as Record<string, unknown>).labels = { team: "x" };
    expect(childDigest("Deployment", relabelled)).not.toBe(base);
    const topic = (ready: string) => ({
      metadata: { name: "t", namespace: "kafka" },
      spec: { partitions: 6 },
      status: { conditions: [{ type: "Ready", status: ready }] },
    });
    expect(childDigest("KafkaTopic", topic("True"))).not.toBe(childDigest("KafkaTopic", topic("False")));
  });
});

describe("pipelineDigest: which LogPipeline updates queue it", () => {
  const lp = (over: { status?: unknown; spec?: unknown; metadata?: Record<string, unknown> } = {}) => ({
    apiVersion: "logpipeline.io/v1alpha1",
    kind: "LogPipeline",
    metadata: {
      name: "p",
      namespace: "ns",
      uid: "u",
      generation: 2,
      resourceVersion: "10",
      ...over.metadata,
    },
    spec: over.spec ?? { kafka: { partitions: 6 } },
    status: over.status ?? { observedGeneration: 2 },
  });

  it("ignores its own status coming back, not a spec, finalizer, annotation or deletion change", () => {
    const base = pipelineDigest(lp());
    expect(
      pipelineDigest(
        lp({ status: { observedGeneration: 2, phase: "Ready" }, metadata: { resourceVersion: "11" } }),
      ),
    ).toBe(base);
    expect(pipelineDigest(lp({ spec: { kafka: { partitions: 12 } }, metadata: { generation: 3 } }))).not.toBe(
      base,
    );
    expect(pipelineDigest(lp({ metadata: { finalizers: ["logpipeline.io/finalizer"] } }))).not.toBe(base);
    expect(pipelineDigest(lp({ metadata: { annotations: { "logpipeline.io/check-now": "1" } } }))).not.toBe(
      base,
    );
    expect(pipelineDigest(lp({ metadata: { deletionTimestamp: "2026-12-02T00:00:00Z" } }))).not.toBe(base);
  });
});

describe("SecretReads", () => {
  const fake = () => {
    const secrets = new Map<string, Record<string, string>>([["ns/a", { k: "djE=" }]]);
    let gets = 0;
    return {
      secrets,
      gets: () => gets,
      kube: {
        getOrUndefined: <T>(_v: string, _k: string, ns?: string, name?: string) => {
          gets++;
          const data = secrets.get(`${ns ?? ""}/${name ?? ""}`);
          return Promise.resolve((data ? { data } : undefined) as T | undefined);
        },
      },
    };
  };

  it("reads a Secret once per refresh period, and again after it", async () => {
    const f = fake();
    let now = 0;
    const reads = new SecretReads(f.kube, 120_000, () => now);
    const first = await reads.read("ns", "a");
    expect(first.exists).toBe(true);
    now = 119_999;
    f.secrets.set("ns/a", { k: "djI=" }); // rotated: not seen until the period ends
    expect((await reads.read("ns", "a")).hash).toBe(first.hash);
    expect(f.gets()).toBe(1);
    now = 120_000;
    expect((await reads.read("ns", "a")).hash).not.toBe(first.hash);
    expect(f.gets()).toBe(2);
  });

  it("never remembers a missing Secret, and reads afresh after invalidate or a namespace is forgotten", async () => {
    const f = fake();
    const reads = new SecretReads(f.kube, 120_000, () => 0);
    expect((await reads.read("ns", "b")).exists).toBe(false);
    f.secrets.set("ns/b", { k: "eA==" });
    expect((await reads.read("ns", "b")).exists).toBe(true);
    await reads.read("ns", "b");
    expect(f.gets()).toBe(2);
    reads.invalidate("ns", "b");
    await reads.read("ns", "b");
    expect(f.gets()).toBe(3);
    await reads.read("ns", "a");
    reads.forgetNamespace("ns");
    expect(reads.size).toBe(0);
  });

  it("answers from a Secret this process created, without a read, with the hash a read would give", async () => {
    const f = fake();
    const reads = new SecretReads(f.kube, 120_000, () => 0);
    const created = { data: { password: "cHc=" } };
    reads.remember("ns", "c", created);
    f.secrets.set("ns/c", created.data);
    const r = await reads.read("ns", "c");
    expect(f.gets()).toBe(0);
    expect(r.exists).toBe(true);
    reads.invalidate("ns", "c");
    expect((await reads.read("ns", "c")).hash).toBe(r.hash);
    expect(f.gets()).toBe(1);
  });
});

describe("requeueAfterMs", () => {
  const parsed = parsePipeline({
    metadata: { name: "p", namespace: "ns", uid: "u" },
    spec: { kafka: { mode: "external", bootstrapServers: "k:9092" } },
  });
  if (!parsed.ok) throw new Error(parsed.message);
  const p = parsed.pipeline;
  const config = { resyncMs: 300_000, progressingRequeueMs: 10_000, deliveryIntervalMs: 15_000 };
  const status = (ready: string, reconcilingSince: string, stalled = "False"): LogPipelineStatus =>
    ({
      conditions: [
        { type: "Ready", status: ready, reason: "r", message: "m", lastTransitionTime: reconcilingSince },
        {
          type: "Reconciling",
          status: "True",
          reason: "Progressing",
          message: "m",
          lastTransitionTime: reconcilingSince,
        },
        { type: "Stalled", status: stalled, reason: "r", message: "m", lastTransitionTime: reconcilingSince },
      ],
    }) as LogPipelineStatus;
  const t0 = Date.parse("2026-12-01T10:00:00Z");
  const at = (minutes: number) => t0 + minutes * 60_000;

  it("backs off while progressing, from the configured delay up to the resync period", () => {
    const s = status("False", "2026-12-01T10:00:00Z");
    expect(requeueAfterMs(p, s, at(0), config)).toBe(10_000);
    expect(requeueAfterMs(p, s, at(2), config)).toBe(30_000);
    expect(requeueAfterMs(p, s, at(10), config)).toBe(150_000);
    expect(requeueAfterMs(p, s, at(60), config)).toBe(300_000);
  });

  it("reads delivery each delivery interval when ready (or sooner: the resync, the divergence check), a minute when stalled", () => {
    expect(requeueAfterMs(p, status("True", "2026-12-01T10:00:00Z"), at(60), config)).toBe(15_000);
    const slow = { ...config, deliveryIntervalMs: 3_600_000 };
    expect(requeueAfterMs(p, status("True", "x"), at(0), slow)).toBe(300_000);
    expect(requeueAfterMs(p, status("True", "x"), at(0), { ...slow, resyncMs: 900_000 })).toBe(
      p.spec.reconciliation.intervalSeconds * 1000,
    );
    expect(requeueAfterMs(p, status("False", "2026-12-01T10:00:00Z", "True"), at(60), config)).toBe(60_000);
  });
});

describe("what the caches keep of managedFields", () => {
  const withFields = {
    metadata: {
      name: "p-consumer",
      managedFields: [
        { manager: "logpipeline-operator", operation: "Apply", fieldsV1: { "f:spec": {} } },
        { manager: "kube-controller-manager", subresource: "status", fieldsV1: { "f:status": {} } },
        { manager: "kubectl-edit", operation: "Update", fieldsV1: { "f:spec": { "f:replicas": {} } } },
        { manager: "helm", subresource: "status", fieldsV1: {} },
      ],
    },
  };

  it("keeps of a child only other managers' spec edits", () => {
    expect(cachedChild(withFields).metadata.managedFields).toEqual([
      { manager: "kubectl-edit", operation: "Update", fieldsV1: { "f:spec": { "f:replicas": {} } } },
    ]);
    expect(withFields.metadata.managedFields).toHaveLength(4); // the input is left alone
  });

  it("keeps none of a pipeline's", () => {
    expect(withoutManagedFields(withFields).metadata).toEqual({ name: "p-consumer" });
  });
});

describe("cachedChild: the child cache keeps what the reconcile reads, not the children", () => {
  /** What the cache keeps of the Deployment's metadata. */
  const kept = {
    name: "p-consumer",
    namespace: "ns",
    uid: "d1",
    generation: 3,
    resourceVersion: "9",
    labels: { a: "b" },
    annotations: { c: "d" },
    ownerReferences: [{ uid: "u", kind: "LogPipeline", name: "p", controller: true }],
  };
  const deployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { ...kept, creationTimestamp: "2026-12-01T00:00:00Z" },
    spec: {
      replicas: 2,
      template: {
        spec: {
          containers: [{ name: "consumer", image: "x", env: [{ name: "A", value: "1".repeat(2000) }] }],
        },
      },
    },
    status: {
      replicas: 2,
      readyReplicas: 1,
      observedGeneration: 3,
      conditions: [
        {
          type: "Available",
          status: "False",
          reason: "MinimumReplicasUnavailable",
          message: "m",
          lastUpdateTime: "t",
        },
      ],
    },
  };
  const topic = {
    apiVersion: "kafka.strimzi.io/v1",
    kind: "KafkaTopic",
    metadata: { name: "p-events", namespace: "k", generation: 1 },
    spec: { topicName: "p.events", partitions: 6, config: { "retention.ms": "1" } },
    status: { conditions: [{ type: "Ready", status: "False", reason: "KafkaError", message: "refused" }] },
  };
  const hpa = (max: number, cpu: number) => ({
    apiVersion: "autoscaling/v2",
    kind: "HorizontalPodAutoscaler",
    metadata: { name: "p-consumer", namespace: "ns", resourceVersion: String(cpu) },
    spec: { minReplicas: 1, maxReplicas: max },
    status: { currentMetrics: [{ resource: { current: { averageUtilization: cpu } } }] },
  });

  it("observes the same as the full object, with the same content hash, in a quarter of its size", () => {
    expect(observeWorkload(cachedChild(deployment))).toEqual(observeWorkload(deployment));
    expect(observeKafkaTopic(cachedChild(topic))).toEqual(observeKafkaTopic(topic));
    const h = hpa(6, 40);
    expect(contentHash(cachedChild(h))).toBe(contentHash(h));
    expect(cachedChild(deployment).metadata).toEqual(kept);
    expect(JSON.stringify(cachedChild(deployment)).length).toBeLessThan(
      JSON.stringify(deployment).length / 4,
    );
  });

  it("sees an autoscaler's spec change, not its metrics", () => {
    const base = childDigest("HorizontalPodAutoscaler", cachedChild(hpa(6, 40)));
    expect(childDigest("HorizontalPodAutoscaler", cachedChild(hpa(6, 75)))).toBe(base);
    expect(childDigest("HorizontalPodAutoscaler", cachedChild(hpa(8, 40)))).not.toBe(base);
  });
});

describe("deliveryWaitMs: reads that keep failing back off", () => {
  it("waits the interval after a read that worked, twice as long per failure in a row, up to 8 intervals or the resync", () => {
    const config = { deliveryIntervalMs: 15_000, resyncMs: 300_000 };
    expect([0, 1, 2, 3, 4, 50].map((f) => deliveryWaitMs(f, config))).toEqual([
      15_000, 30_000, 60_000, 120_000, 120_000, 120_000,
    ]);
    expect(deliveryWaitMs(3, { deliveryIntervalMs: 15_000, resyncMs: 60_000 })).toBe(60_000);
    // An interval longer than the resync is never shortened.
    expect(deliveryWaitMs(3, { deliveryIntervalMs: 600_000, resyncMs: 300_000 })).toBe(600_000);
  });
});
