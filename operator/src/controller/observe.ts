import { createHash } from "node:crypto";
import type { KubeObject } from "../builders/index.js";
import type { KubeObjectLike } from "../kube/client.js";
import type { TopicObservation, WorkloadObservation } from "../status/compute.js";
import { hashOf } from "./applied.js";
import { OWN_MANAGERS } from "../status/spec-differences.js";

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
    return { name, ready: "Unknown", reason: "Pending", message: "waiting for Strimzi's topic operator" };
  const s = ready.status === "True" ? "True" : ready.status === "False" ? "False" : "Unknown";
  return {
    name,
    ready: s,
    reason: ready.reason ?? (s === "True" ? "TopicsReady" : "NotReady"),
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
 * resourceVersion and managedFields), everything but its status, and what observeWorkload
 * and observeKafkaTopic read of the status. A status update that changes none of it (an
 * HPA's current metrics, every 15 s; a Deployment's condition timestamps) does not queue the
 * pipeline, so the operator's idle cost does not grow with how often children report status.
 */
export function childDigest(kind: string, o: KubeObjectLike): string {
  const body: Record<string, unknown> = { ...(o as Record<string, unknown>) };
  delete body.status;
  delete body.kind;
  delete body.apiVersion;
  delete body.metadata;
  const meta: Record<string, unknown> = { ...(o.metadata ?? {}) };
  delete meta.resourceVersion;
  delete meta.managedFields;
  const observed =
    kind === "KafkaTopic"
      ? observeKafkaTopic(o)
      : kind === "Deployment" || kind === "StatefulSet"
        ? observeWorkload(o)
        : undefined;
  return hashOf({ meta, body, observed });
}

/** A LogPipeline as cached: its managedFields are never read. */
export function withoutManagedFields<T extends KubeObjectLike>(o: T): T {
  if (!o.metadata?.managedFields) return o;
  const metadata = { ...o.metadata };
  delete metadata.managedFields;
  return { ...o, metadata };
}

/**
 * A child as cached: of its managedFields only the entries of other managers' spec edits,
 * which are all the reconcile reads of them (a reverted edit's author, a replica count set
 * against the autoscaler: status/spec-differences.ts). The operator's own entry and status
 * writers' are most of a child's size.
 */
export function withForeignManagedFields<T extends KubeObjectLike>(o: T): T {
  const entries = o.metadata?.managedFields as { manager?: string; subresource?: string }[] | undefined;
  if (!entries) return o;
  const foreign = entries.filter(
    (m) => m.manager && !OWN_MANAGERS.has(m.manager) && m.subresource !== "status",
  );
  return { ...o, metadata: { ...o.metadata, managedFields: foreign } };
}
