import type { V1PodDisruptionBudget, V2HorizontalPodAutoscaler } from "@kubernetes/client-node";
import type { LogPipeline } from "../api/logpipeline.js";
import { bootstrapServers } from "./kafka-topics.js";
import { pipelineLabels, pipelineNames, selectorLabels } from "./names.js";
import { type BuildOptions, childMeta, type KubeObject } from "./options.js";
import { intendedReplicas } from "./workloads.js";

export const KEDA_API_VERSION = "keda.sh/v1alpha1";

/** Replica bounds, the consumer's capped at the partition count (a partition feeds one consumer). */
function bounds(p: LogPipeline, component: "producer" | "consumer"): { min: number; max: number } {
  const { min, max } = p.spec[component].replicas;
  const cap = component === "consumer" ? p.spec.kafka.topic.partitions : max;
  return { min: Math.max(1, Math.min(min, cap)), max: Math.min(max, cap) };
}

/** An HPA on CPU, when the workload autoscales (not hibernating, min < max). */
export function cpuAutoscaler(
  p: LogPipeline,
  component: "producer" | "consumer",
): V2HorizontalPodAutoscaler | undefined {
  if (intendedReplicas(p, component) !== undefined) return undefined;
  const name = pipelineNames(p)[component];
  const { min, max } = bounds(p, component);
  return {
    apiVersion: "autoscaling/v2",
    kind: "HorizontalPodAutoscaler",
    metadata: childMeta(p, name, pipelineLabels(p, component)),
    spec: {
      scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name },
      minReplicas: min,
      maxReplicas: max,
      metrics: [
        {
          type: "Resource",
          resource: {
            name: "cpu",
            target: { type: "Utilization", averageUtilization: p.spec[component].targetCPUUtilization },
          },
        },
      ],
      behavior: {
        scaleDown: { stabilizationWindowSeconds: p.spec.autoscaling.scaleDownStabilizationSeconds },
      },
    },
  };
}

/** True when the consumer scales on Kafka lag through KEDA (asked for, and KEDA is installed). */
export const usesKeda = (p: LogPipeline, opts: BuildOptions): boolean =>
  p.spec.consumer.autoscaler === "kafkaLag" && opts.capabilities.keda;

/** A KEDA ScaledObject on the consumer group's lag; KEDA then owns the consumer's HPA. */
export function consumerScaledObject(p: LogPipeline, opts: BuildOptions): KubeObject | undefined {
  if (!usesKeda(p, opts) || intendedReplicas(p, "consumer") !== undefined) return undefined;
  const names = pipelineNames(p);
  const { min, max } = bounds(p, "consumer");
  return {
    apiVersion: KEDA_API_VERSION,
    kind: "ScaledObject",
    metadata: childMeta(p, names.consumer, pipelineLabels(p, "consumer")),
    spec: {
      scaleTargetRef: { name: names.consumer },
      minReplicaCount: min,
      maxReplicaCount: max,
      advanced: {
        horizontalPodAutoscalerConfig: {
          behavior: {
            scaleDown: { stabilizationWindowSeconds: p.spec.autoscaling.scaleDownStabilizationSeconds },
          },
        },
      },
      triggers: [
        {
          type: "kafka",
          metadata: {
            bootstrapServers: bootstrapServers(p),
            consumerGroup: names.consumerGroup,
            topic: names.topic,
            lagThreshold: String(p.spec.consumer.lagTarget),
            // Never more consumers than partitions.
            allowIdleConsumers: "false",
          },
        },
      ],
    },
  };
}

/** At most one pod of each workload down at a time during voluntary disruptions. */
export function disruptionBudget(
  p: LogPipeline,
  component: "producer" | "consumer" | "query",
): V1PodDisruptionBudget | undefined {
  if (p.spec.hibernate) return undefined;
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: childMeta(p, pipelineNames(p)[component], pipelineLabels(p, component)),
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels(p, component) } },
  };
}
