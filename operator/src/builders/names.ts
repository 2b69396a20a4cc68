import { createHash } from "node:crypto";
import type { LogPipeline } from "../api/logpipeline.js";

/**
 * Every name a pipeline uses, derived in one place (docs/architecture.md). Topics come from the
 * namespace and name (so a pipeline re-created under the same name finds its retained data);
 * the consumer group and transactional ids also carry the uid, so two pipelines sharing one
 * Kafka never fence or rebalance each other.
 */
export const MANAGED_BY = "logpipeline-operator";
export const LABEL_PIPELINE = "logpipeline.io/pipeline";
export const LABEL_PIPELINE_NAMESPACE = "logpipeline.io/pipeline-namespace";
export const LABEL_PIPELINE_UID = "logpipeline.io/pipeline-uid";
export const LABEL_COMPONENT = "app.kubernetes.io/component";
export const LABEL_METRICS = "logpipeline.io/metrics";

export type Component = "producer" | "consumer" | "query" | "postgres" | "redis" | "topics" | "monitoring";

const shortHash = (s: string, n = 8): string => createHash("sha256").update(s).digest("hex").slice(0, n);

/** A DNS-1123 subdomain of at most `max` characters: kept when it fits, else cut and suffixed with a hash. */
export function dnsName(raw: string, max = 63): string {
  const cleaned = raw
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, "-")
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "");
  if (cleaned === raw && raw.length <= max) return raw;
  const hash = shortHash(raw);
  return `${cleaned.slice(0, max - hash.length - 1).replace(/[^a-z0-9]+$/, "")}-${hash}`;
}

export interface PipelineNames {
  topic: string;
  deadLetterTopic: string;
  consumerGroup: string;
  /** Prefix of the producers' transactional ids; each pod appends its own name. */
  transactionalIdPrefix: string;
  deadLetterTransactionalId: string;
  /** KafkaTopic resource names (Strimzi's namespace is shared by every pipeline). */
  topicResource: string;
  deadLetterTopicResource: string;
  producer: string;
  consumer: string;
  query: string;
  /** The ConfigMap the operator tells the query pods the data's completeness with. */
  completeness: string;
  postgres: string;
  postgresCredentials: string;
  /** The managed server's login Secrets, one per role (postgres/roles.ts). */
  postgresRoles: Record<"owner" | "writer" | "reader", string>;
  redis: string;
  redisCredentials: string;
  apiKeys: string;
  queryKeys: string;
  monitoring: string;
}

/** The longest StatefulSet name whose pods' labels stay valid (see pipelineNames). */
export const STATEFULSET_NAME_MAX = 52;

export function pipelineNames(p: LogPipeline): PipelineNames {
  const { namespace, name, uid } = p.metadata;
  const base = `${namespace}.${name}`;
  const topic = p.spec.kafka.topic.name ?? `${base}.logs`;
  const deadLetterTopic = p.spec.kafka.deadLetter.topicName ?? `${base}.dlq`;
  const uid8 = uid.slice(0, 8);
  const child = (suffix: string) => dnsName(`${name}-${suffix}`);
  return {
    topic,
    deadLetterTopic,
    consumerGroup: `logpipeline.${base}.${uid8}`,
    transactionalIdPrefix: `logpipeline.${base}.${uid8}.producer`,
    deadLetterTransactionalId: `logpipeline.${base}.${uid8}.dlq`,
    topicResource: dnsName(`${base}.logs`, 253),
    deadLetterTopicResource: dnsName(`${base}.dlq`, 253),
    producer: child("producer"),
    consumer: child("consumer"),
    query: child("query"),
    completeness: child("completeness"),
    // A StatefulSet's name goes into its pods' controller-revision-hash label with 11
    // characters more ("-" and a 10-character hash), and a label value is at most 63: so 52.
    // Only names that never worked change (their pods could not be created).
    postgres: dnsName(`${name}-postgres`, STATEFULSET_NAME_MAX),
    postgresCredentials: child("postgres-credentials"),
    postgresRoles: {
      owner: child("postgres-owner"),
      writer: child("postgres-writer"),
      reader: child("postgres-reader"),
    },
    redis: child("redis"),
    redisCredentials: child("redis-credentials"),
    apiKeys: p.spec.producer.auth.apiKeysSecret ?? child("api-keys"),
    queryKeys: p.spec.query.apiKeysSecret ?? child("query-keys"),
    monitoring: child("monitoring"),
  };
}

/** Labels every child carries; the uid label is how the operator finds (and prunes) its children. */
export function pipelineLabels(p: LogPipeline, component: Component): Record<string, string> {
  return {
    "app.kubernetes.io/name": "logpipeline",
    "app.kubernetes.io/instance": dnsName(p.metadata.name),
    [LABEL_COMPONENT]: component,
    "app.kubernetes.io/managed-by": MANAGED_BY,
    [LABEL_PIPELINE]: dnsName(p.metadata.name),
    [LABEL_PIPELINE_NAMESPACE]: p.metadata.namespace,
    [LABEL_PIPELINE_UID]: p.metadata.uid,
  };
}

/** The stable subset used in selectors (a Deployment's selector is immutable). */
export function selectorLabels(p: LogPipeline, component: Component): Record<string, string> {
  return {
    "app.kubernetes.io/name": "logpipeline",
    "app.kubernetes.io/instance": dnsName(p.metadata.name),
    [LABEL_COMPONENT]: component,
  };
}
