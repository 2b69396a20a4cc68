import type { BuildOptions } from "../builders/index.js";
import { KEDA_API_VERSION } from "../builders/autoscaling.js";
import { STRIMZI_API_VERSION } from "../builders/kafka-topics.js";
import { MONITORING_API_VERSION } from "../builders/monitoring.js";
import type { KubeClient } from "../kube/client.js";
import { KubeError } from "../kube/client.js";

export type Capabilities = BuildOptions["capabilities"];

/** Every kind the builders can emit for `apply`, and the optional CRD it needs. */
export interface ChildKind {
  apiVersion: string;
  kind: string;
  capability?: keyof Capabilities;
}

export const CHILD_KINDS: readonly ChildKind[] = [
  { apiVersion: STRIMZI_API_VERSION, kind: "KafkaTopic", capability: "strimzi" },
  { apiVersion: "apps/v1", kind: "Deployment" },
  { apiVersion: "apps/v1", kind: "StatefulSet" },
  { apiVersion: "v1", kind: "Service" },
  { apiVersion: "v1", kind: "ConfigMap" },
  { apiVersion: "autoscaling/v2", kind: "HorizontalPodAutoscaler" },
  { apiVersion: KEDA_API_VERSION, kind: "ScaledObject", capability: "keda" },
  { apiVersion: "policy/v1", kind: "PodDisruptionBudget" },
  { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy" },
  { apiVersion: "networking.k8s.io/v1", kind: "Ingress" },
  { apiVersion: MONITORING_API_VERSION, kind: "ServiceMonitor", capability: "serviceMonitor" },
  { apiVersion: MONITORING_API_VERSION, kind: "PrometheusRule", capability: "prometheusRule" },
];

const CRDS: Record<keyof Capabilities, string> = {
  strimzi: "kafkatopics.kafka.strimzi.io",
  keda: "scaledobjects.keda.sh",
  serviceMonitor: "servicemonitors.monitoring.coreos.com",
  prometheusRule: "prometheusrules.monitoring.coreos.com",
};

/** Which optional integrations the cluster has: their CRDs are established. */
export async function detectCapabilities(kube: KubeClient): Promise<Capabilities> {
  const has = async (crd: string) => {
    try {
      const o = await kube.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        undefined,
        crd,
      );
      return o.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") ?? false;
    } catch (e) {
      if (e instanceof KubeError && (e.notFound || e.status === 403)) return false;
      throw e;
    }
  };
  const entries = await Promise.all(
    (Object.keys(CRDS) as (keyof Capabilities)[]).map(async (k) => [k, await has(CRDS[k])] as const),
  );
  return Object.fromEntries(entries) as Capabilities;
}

export const childKinds = (caps: Capabilities): ChildKind[] =>
  CHILD_KINDS.filter((k) => !k.capability || caps[k.capability]);

export const objectRef = (kind: string, namespace: string | undefined, name: string): string =>
  `${kind}/${namespace ?? ""}/${name}`;
