import type { LogPipeline } from "../api/logpipeline.js";
import {
  LABEL_PIPELINE,
  LABEL_PIPELINE_NAMESPACE,
  LABEL_PIPELINE_UID,
  MANAGED_BY,
  pipelineNames,
} from "./names.js";
import type { KubeObject } from "./options.js";

export const STRIMZI_API_VERSION = "kafka.strimzi.io/v1";
export const STRIMZI_CLUSTER_LABEL = "strimzi.io/cluster";

/** A topic as Kafka should have it, whoever creates it (Strimzi or the operator's Admin client). */
export interface DesiredTopic {
  role: "main" | "deadLetter";
  name: string;
  partitions: number;
  replicationFactor: number;
  config: Record<string, string>;
}

const HOUR_MS = 3_600_000;

export function desiredTopics(p: LogPipeline): DesiredTopic[] {
  const { topic, deadLetter } = p.spec.kafka;
  const names = pipelineNames(p);
  // Sorted keys: the same spec always yields the same bytes.
  const sorted = (o: Record<string, string>) =>
    Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
  const topics: DesiredTopic[] = [
    {
      role: "main",
      name: names.topic,
      partitions: topic.partitions,
      replicationFactor: topic.replicationFactor,
      config: sorted({ ...topic.config, "retention.ms": String(topic.retentionHours * HOUR_MS) }),
    },
  ];
  if (deadLetter.enabled)
    topics.push({
      role: "deadLetter",
      name: names.deadLetterTopic,
      // Dead letters are rare; one partition keeps their order and costs nothing.
      partitions: 1,
      replicationFactor: topic.replicationFactor,
      config: { "retention.ms": String(deadLetter.retentionHours * HOUR_MS) },
    });
  return topics;
}

/**
 * KafkaTopic resources for Strimzi's topic operator. They live in the Kafka cluster's
 * namespace, so they cannot carry an owner reference to the pipeline: they are found by
 * the pipeline labels and removed by the operator's finalizer as deletionPolicy says.
 */
export function kafkaTopics(p: LogPipeline): KubeObject[] {
  const ref = p.spec.kafka.clusterRef;
  if (p.spec.kafka.mode !== "strimzi" || !ref) return [];
  const names = pipelineNames(p);
  return desiredTopics(p).map((t) => ({
    apiVersion: STRIMZI_API_VERSION,
    kind: "KafkaTopic",
    metadata: {
      name: t.role === "main" ? names.topicResource : names.deadLetterTopicResource,
      namespace: ref.namespace,
      labels: {
        [STRIMZI_CLUSTER_LABEL]: ref.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        [LABEL_PIPELINE]: p.metadata.name.slice(0, 63),
        [LABEL_PIPELINE_NAMESPACE]: p.metadata.namespace,
        [LABEL_PIPELINE_UID]: p.metadata.uid,
      },
    },
    spec: {
      topicName: t.name,
      partitions: t.partitions,
      replicas: t.replicationFactor,
      config: t.config,
    },
  }));
}

/** Where the workloads find the brokers. */
export function bootstrapServers(p: LogPipeline): string {
  const { bootstrapServers: explicit, clusterRef } = p.spec.kafka;
  if (explicit) return explicit;
  if (clusterRef)
    return `${clusterRef.name}-kafka-bootstrap.${clusterRef.namespace}.svc:${clusterRef.listenerPort}`;
  // CEL refuses this at admission; a stale object without either still gets a clear value.
  return "";
}

/** The Kafka names a pipeline's status reports (status.topics, without the record of creations). */
export function statusTopicNames(p: LogPipeline): {
  main: string;
  deadLetter?: string;
  consumerGroup: string;
  bootstrapServers: string;
} {
  const names = pipelineNames(p);
  return {
    main: names.topic,
    ...(p.spec.kafka.deadLetter.enabled ? { deadLetter: names.deadLetterTopic } : {}),
    consumerGroup: names.consumerGroup,
    bootstrapServers: bootstrapServers(p),
  };
}

/**
 * The topics the operator recorded as created for a pipeline (status.topics.created). A
 * status written before the record existed has topics but no `created`: those topics were
 * made by the operator then (it adopted nothing knowingly), so they count as created.
 */
export function recordedTopics(p: LogPipeline): string[] {
  const t = p.status?.topics;
  if (!t) return [];
  if (t.created) return t.created;
  return [t.main, ...(t.deadLetter ? [t.deadLetter] : [])];
}
