import type { V1OwnerReference } from "@kubernetes/client-node";
import { API_VERSION, KIND, type LogPipeline } from "../api/logpipeline.js";

/** What the builders need besides the pipeline: the operator's configuration and what the cluster offers. */
export interface BuildOptions {
  /** Default images (the operator's configuration); a pipeline's spec.images override the workloads'. */
  images: { producer: string; consumer: string; query: string; postgres: string; redis: string };
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  /** Optional integrations found in the cluster (their CRDs exist). */
  capabilities: { strimzi: boolean; keda: boolean; serviceMonitor: boolean; prometheusRule: boolean };
  /**
   * Content hashes of the Secrets each pod mounts, by Secret name; written into the pod
   * template so a rotated Secret rolls the pods (and an unchanged one never does).
   */
  secretHashes: Readonly<Record<string, string>>;
  /** Where the operator runs: its pods may reach PostgreSQL (the ledger) through the NetworkPolicy. */
  operatorNamespace: string;
}

/** A Kubernetes object as the builders emit it: always apiVersion, kind, name (and namespace when namespaced). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: V1OwnerReference[];
  };
  [field: string]: unknown;
}

export function ownerReference(p: LogPipeline): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: p.metadata.name,
    uid: p.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Metadata of a same-namespace child: labels and the controller owner reference. */
export function childMeta(
  p: LogPipeline,
  name: string,
  labels: Record<string, string>,
  annotations?: Record<string, string>,
): KubeObject["metadata"] {
  return {
    name,
    namespace: p.metadata.namespace,
    labels,
    ...(annotations ? { annotations } : {}),
    ownerReferences: [ownerReference(p)],
  };
}
