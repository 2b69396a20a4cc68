import { dashboardConfigMap } from "./dashboard.js";
import type { LogPipeline } from "../api/logpipeline.js";
import { consumerScaledObject, cpuAutoscaler, disruptionBudget, usesKeda } from "./autoscaling.js";
import {
  asKubeObject,
  type GeneratedCredentials,
  generatedSecrets,
  postgresService,
  postgresStatefulSet,
  redisDeployment,
  redisService,
} from "./data-services.js";
import { type DesiredTopic, desiredTopics, kafkaTopics } from "./kafka-topics.js";
import { prometheusRule, serviceMonitor } from "./monitoring.js";
import { ingress, networkPolicies } from "./network.js";
import type { BuildOptions, KubeObject } from "./options.js";
import { consumerDeployment, producerDeployment, queryDeployment, workloadService } from "./workloads.js";

export type { BuildOptions, KubeObject } from "./options.js";
export type { DesiredTopic } from "./kafka-topics.js";
export type { GeneratedCredentials } from "./data-services.js";

/** A note the builders leave for status: something asked for that the cluster cannot give. */
export interface BuildNote {
  reason: "KedaMissing" | "ServiceMonitorCrdMissing" | "PrometheusRuleCrdMissing" | "StrimziMissing";
  message: string;
}

export interface DesiredState {
  /** Applied with server-side apply on every reconcile. */
  apply: KubeObject[];
  /** Created once when absent, never rewritten (generated credentials). */
  createOnce: KubeObject[];
  /** Topics the operator manages through the Admin API (kafka.mode external). */
  adminTopics: DesiredTopic[];
  notes: BuildNote[];
}

/**
 * Everything a pipeline should consist of, from the pipeline and the options alone:
 * same input, same output (docs/architecture.md: builders are pure). Order is the apply order:
 * credentials and data services first, workloads after, autoscalers and monitoring last.
 */
export function desiredState(p: LogPipeline, opts: BuildOptions, creds: GeneratedCredentials): DesiredState {
  const notes: BuildNote[] = [];
  const { monitoring } = p.spec;
  if (p.spec.consumer.autoscaler === "kafkaLag" && !opts.capabilities.keda)
    notes.push({
      reason: "KedaMissing",
      message: "KEDA is not installed: the consumer scales on CPU instead of lag",
    });
  if (monitoring.serviceMonitor.enabled && !opts.capabilities.serviceMonitor)
    notes.push({
      reason: "ServiceMonitorCrdMissing",
      message: "the ServiceMonitor CRD is not installed: no scrape config",
    });
  if (monitoring.prometheusRule.enabled && !opts.capabilities.prometheusRule)
    notes.push({
      reason: "PrometheusRuleCrdMissing",
      message: "the PrometheusRule CRD is not installed: no alerts",
    });
  if (p.spec.kafka.mode === "strimzi" && !opts.capabilities.strimzi)
    notes.push({
      reason: "StrimziMissing",
      message: "the KafkaTopic CRD is not installed: topics cannot be created",
    });

  const strimzi = p.spec.kafka.mode === "strimzi" && opts.capabilities.strimzi;
  const apply: KubeObject[] = [
    ...(strimzi ? kafkaTopics(p) : []),
    ...asKubeObject(postgresService(p)),
    ...asKubeObject(postgresStatefulSet(p, opts)),
    ...asKubeObject(redisService(p)),
    ...asKubeObject(redisDeployment(p, opts)),
    ...asKubeObject(producerDeployment(p, opts)),
    ...asKubeObject(workloadService(p, "producer")),
    ...asKubeObject(consumerDeployment(p, opts)),
    ...asKubeObject(workloadService(p, "consumer")),
    ...asKubeObject(queryDeployment(p, opts)),
    ...asKubeObject(workloadService(p, "query")),
    ...asKubeObject(cpuAutoscaler(p, "producer")),
    ...(usesKeda(p, opts)
      ? asKubeObject(consumerScaledObject(p, opts))
      : asKubeObject(cpuAutoscaler(p, "consumer"))),
    ...asKubeObject(disruptionBudget(p, "producer")),
    ...asKubeObject(disruptionBudget(p, "consumer")),
    ...asKubeObject(disruptionBudget(p, "query")),
    ...networkPolicies(p, opts),
    ...asKubeObject(ingress(p)),
    ...asKubeObject(serviceMonitor(p, opts)),
    ...asKubeObject(prometheusRule(p, opts)),
    ...asKubeObject(dashboardConfigMap(p, opts)),
  ];
  return {
    apply,
    createOnce: generatedSecrets(p, creds).map((o) => o as KubeObject),
    adminTopics: p.spec.kafka.mode === "external" ? desiredTopics(p) : [],
    notes,
  };
}
