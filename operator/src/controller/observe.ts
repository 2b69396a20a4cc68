import { createHash } from "node:crypto";
import type { KubeObject } from "../builders/index.js";
import type { KubeObjectLike } from "../kube/client.js";
import type { TopicObservation, WorkloadObservation } from "../status/compute.js";
import { contentHash, hashOf } from "./applied.js";
import { OWN_MANAGERS } from "../status/spec-differences.js";
import { mirrored, Reason } from "../status/reasons.js";

interface WorkloadLike {
  metadata?: { generation?: number };
  spec?: { replicas?: number };
  status?: {
    replicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

/** A Deployment's or StatefulSet's replica figures, as the API server reports them. */
export function observeWorkload(o: KubeObjectLike | undefined): WorkloadObservation | undefined {
  if (!o) return undefined;
  const w = o as WorkloadLike;
  const desired = w.spec?.replicas ?? w.status?.replicas ?? 1;
  const ready = w.status?.readyReplicas ?? 0;
  const availableCondition = w.status?.conditions?.find((c) => c.type === "Available");
  const available = availableCondition
    ? availableCondition.status === "True"
    : ready >= desired && desired > 0;
  return {
    desired,
    ready,
    available,
    current: (w.status?.observedGeneration ?? 0) >= (w.metadata?.generation ?? 0),
  };
}

/** A Strimzi KafkaTopic's Ready condition, reason and message, mirrored as they are. */
export function observeKafkaTopic(o: KubeObjectLike): TopicObservation {
  const status = (
    o as { status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] } }
  ).status;
  const name = (o.spec as { topicName?: string } | undefined)?.topicName ?? o.metadata?.name ?? "";
  const ready = status?.conditions?.find((c) => c.type === "Ready");
  if (!ready)
    return {
      name,
      ready: "Unknown",
      reason: Reason.Pending,
      message: "waiting for Strimzi's topic operator",
    };
  const s = ready.status === "True" ? "True" : ready.status === "False" ? "False" : "Unknown";
  return {
    name,
    ready: s,
    reason: ready.reason ? mirrored(ready.reason) : s === "True" ? Reason.TopicsReady : Reason.NotReady,
    message: ready.message ?? (s === "True" ? "ready" : "not ready"),
  };
}

/** Secret names the pods mount or read env from: a change in one of them rolls the pods. */
export function referencedSecrets(objects: KubeObject[]): string[] {
  const names = new Set<string>();
  const walk = (v: unknown, parent?: string): void => {
    if (Array.isArray(v)) v.forEach((x) => walk(x, parent));
    else if (v && typeof v === "object") {
      const rec = v as Record<string, unknown>;
      if (parent === "secret" && typeof rec.secretName === "string") names.add(rec.secretName);
      if (parent === "secretKeyRef" && typeof rec.name === "string") names.add(rec.name);
      for (const [k, x] of Object.entries(rec)) walk(x, k);
    }
  };
  for (const o of objects) if (o.kind === "Deployment" || o.kind === "StatefulSet") walk(o.spec);
  return [...names].sort();
}

/** A content hash of a Secret's data (never its values). */
export function secretContentHash(secret: { data?: Record<string, string> } | undefined): string {
  if (!secret) return "absent";
  const h = createHash("sha256");
  for (const [k, v] of Object.entries(secret.data ?? {}).sort(([a], [b]) => a.localeCompare(b)))
    h.update(`${k}=${v};`);
  return h.digest("hex").slice(0, 16);
}

/**
 * What of a child its pipeline's reconcile depends on, as a digest: its metadata (without
 * resourceVersion and managedFields), for a kind without a generation the hash of its
 * content but status (contentHash; a kind with one moves its generation on a spec edit),
 * and what observeWorkload and observeKafkaTopic read of the status. A status update that
 * changes none of it (an HPA's current metrics, every 15 s; a Deployment's condition
 * timestamps) does not queue the pipeline, so the operator's idle cost does not grow with
 * how often children report status.
 */
export function childDigest(kind: string, o: KubeObjectLike): string {
  const meta: Record<string, unknown> = { ...(o.metadata ?? {}) };
  delete meta.resourceVersion;
  delete meta.managedFields;
  const observed =
    kind === "KafkaTopic"
      ? observeKafkaTopic(o)
      : kind === "Deployment" || kind === "StatefulSet"
        ? observeWorkload(o)
        : undefined;
  return hashOf({ meta, content: meta.generation === undefined ? contentHash(o) : undefined, observed });
}

/**
 * What of a LogPipeline its reconcile acts on: metadata (without resourceVersion and
 * managedFields: finalizers, deletion, annotations such as check-now) and spec. Its status is
 * the reconcile's own output: the operator's status write coming back as a watch event is
 * not a reason to reconcile again.
 */
export function pipelineDigest(o: KubeObjectLike): string {
  const meta: Record<string, unknown> = { ...(o.metadata ?? {}) };
  delete meta.resourceVersion;
  delete meta.managedFields;
  return hashOf({ meta, spec: o.spec });
}

/** A LogPipeline as cached: its managedFields are never read. */
export function withoutManagedFields<T extends KubeObjectLike>(o: T): T {
  if (!o.metadata?.managedFields) return o;
  const metadata = { ...o.metadata };
  delete metadata.managedFields;
  return { ...o, metadata };
}

/**
 * A child as cached: only what the reconcile reads of it (a cache of full children was most
 * of the operator's memory, about 200 KiB per pipeline at 1,000: docs/benchmarks.md).
 * - metadata: identity, generation and resourceVersion (AppliedChildren), labels, annotations
 *   and owner references (pruning, drift), and of managedFields only the entries of other
 *   managers' spec edits (a reverted edit's author, a replica count set against the
 *   autoscaler: status/spec-differences.ts); the operator's own entry and status writers'
 *   are most of a child's size;
 * - spec: the replica count (observeWorkload) and a KafkaTopic's topic name;
 * - status: what observeWorkload and observeKafkaTopic read;
 * - for a kind without a generation, `contentHash`: the hash of what it had but metadata and status.
 * Everything else (pod templates, ports, rules) is the operator's own desired state, compared
 * by the generation or resourceVersion instead.
 */
export function cachedChild<T extends KubeObjectLike>(o: T): T {
  const m = o.metadata ?? {};
  const metadata: Record<string, unknown> = {};
  for (const k of [
    "name",
    "namespace",
    "uid",
    "generation",
    "resourceVersion",
    "labels",
    "annotations",
    "ownerReferences",
    "deletionTimestamp",
  ] as const)
    if (m[k] !== undefined) metadata[k] = m[k];
  const entries = m.managedFields as { manager?: string; subresource?: string }[] | undefined;
  const foreign = entries?.filter(
    (e) => e.manager && !OWN_MANAGERS.has(e.manager) && e.subresource !== "status",
  );
  if (foreign?.length) metadata.managedFields = foreign;
  const spec = o.spec as { replicas?: number; topicName?: string } | undefined;
  const status = o.status as (WorkloadLike["status"] & { conditions?: unknown[] }) | undefined;
  const out: Record<string, unknown> = { apiVersion: o.apiVersion, kind: o.kind, metadata };
  if (m.generation === undefined) out.contentHash = contentHash(o);
  if (spec) out.spec = pickDefined({ replicas: spec.replicas, topicName: spec.topicName });
  if (status)
    out.status = pickDefined({
      replicas: status.replicas,
      readyReplicas: status.readyReplicas,
      availableReplicas: status.availableReplicas,
      observedGeneration: status.observedGeneration,
      conditions: status.conditions?.map(({ type, status, reason, message }) =>
        pickDefined({ type, status, reason, message }),
      ),
    });
  return out as T;
}

function pickDefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
