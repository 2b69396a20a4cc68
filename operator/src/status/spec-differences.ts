import type { BuildNote } from "../builders/index.js";
import type { TopicObservation } from "./compute.js";

/** One difference between what the operator wants and what the cluster has, and why. */
export interface SpecDifference {
  object: string;
  field: string;
  reason: string;
}

/** A child someone else changed, which the operator's apply put back. */
export interface RevertedEdit {
  object: string;
  managers: string[];
  fields: string[];
  at: string;
}

interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  subresource?: string;
  fieldsV1?: unknown;
}

/** Field managers that are the operator itself or Kubernetes' own controllers acting for it. */
export const OWN_MANAGERS: ReadonlySet<string> = new Set([
  "logpipeline-operator",
  "kube-controller-manager",
  "kube-scheduler",
]);

/**
 * Paths of a managedFields entry's fieldsV1, as `spec.template.spec.containers[name].image`,
 * limited to `spec` and `metadata.labels`/`annotations` and to `max` paths.
 */
export function fieldPaths(fieldsV1: unknown, max = 5): string[] {
  const out: string[] = [];
  const walk = (node: unknown, path: string) => {
    if (out.length >= max) return;
    const keys = node && typeof node === "object" ? Object.keys(node).filter((k) => k !== ".") : [];
    if (keys.length === 0) {
      if (path) out.push(path);
      return;
    }
    for (const k of keys) {
      const seg = k.startsWith("f:")
        ? `${path ? "." : ""}${k.slice(2)}`
        : k.startsWith("k:")
          ? `[${Object.values(JSON.parse(k.slice(2)) as Record<string, unknown>).join(",")}]`
          : k.startsWith("v:")
            ? `[${k.slice(2)}]`
            : `.${k}`;
      walk((node as Record<string, unknown>)[k], path + seg);
    }
  };
  const root = (fieldsV1 ?? {}) as Record<string, unknown>;
  for (const top of ["f:spec", "f:metadata"]) if (root[top]) walk({ [top]: root[top] }, "");
  return out.filter(
    (p) => p.startsWith("spec") || p.startsWith("metadata.labels") || p.startsWith("metadata.annotations"),
  );
}

/** Other managers' entries on an object: who else has set fields of it, and which. */
export function foreignEdits(managedFields: ManagedFieldsEntry[] | undefined): {
  managers: string[];
  fields: string[];
} {
  const entries = (managedFields ?? []).filter(
    (m) => m.manager && !OWN_MANAGERS.has(m.manager) && m.subresource !== "status",
  );
  const fields = entries.flatMap((m) => fieldPaths(m.fieldsV1));
  return {
    managers: [...new Set(entries.map((m) => m.manager ?? ""))],
    fields: [...new Set(fields)].slice(0, 5),
  };
}

const NOTE_OBJECT: Record<BuildNote["reason"], string> = {
  KedaMissing: "ScaledObject",
  ServiceMonitorCrdMissing: "ServiceMonitor",
  PrometheusRuleCrdMissing: "PrometheusRule",
  StrimziMissing: "KafkaTopic",
};

/**
 * The spec differences, pure: optional integrations the cluster lacks, topics Strimzi
 * refused, a replica count someone set against the autoscaler, and recent edits the
 * operator reverted. Bounded to 20 rows.
 */
export function specDifferences(input: {
  pipeline: string;
  notes: BuildNote[];
  topics: TopicObservation[];
  /** Deployments the pipeline owns that an HPA scales, with their managedFields. */
  autoscaled: { name: string; managedFields?: ManagedFieldsEntry[] }[];
  reverted: RevertedEdit[];
}): SpecDifference[] {
  const out: SpecDifference[] = [];
  for (const n of input.notes)
    out.push({
      object: `${NOTE_OBJECT[n.reason]}/${input.pipeline}`,
      field: "(not created)",
      reason: n.message,
    });
  for (const t of input.topics)
    if (t.reason === "NotSupported")
      out.push({
        object: `KafkaTopic/${t.name}`,
        field: "spec.partitions",
        reason: `refused by Strimzi: ${t.message}`,
      });
  for (const d of input.autoscaled)
    for (const m of d.managedFields ?? [])
      if (m.manager && !OWN_MANAGERS.has(m.manager) && fieldPaths(m.fieldsV1, 50).includes("spec.replicas"))
        out.push({
          object: `Deployment/${d.name}`,
          field: "spec.replicas",
          reason: `set by ${m.manager}; the HorizontalPodAutoscaler owns the replica count and sets it back`,
        });
  for (const r of input.reverted)
    out.push({
      object: r.object,
      field: r.fields.join(", ") || "spec",
      reason: `changed by ${r.managers.join(", ")} at ${r.at}; the operator put its own values back`,
    });
  return out.slice(0, 20);
}

/**
 * The differences in `after` that `before` did not have (by object and field): what a
 * Kubernetes Event announces, once, when it appears.
 */
export function newSpecDifferences(
  before: readonly SpecDifference[] | undefined,
  after: readonly SpecDifference[] | undefined,
): SpecDifference[] {
  const known = new Set((before ?? []).map((d) => `${d.object}\u0000${d.field}`));
  return (after ?? []).filter((d) => !known.has(`${d.object}\u0000${d.field}`));
}
