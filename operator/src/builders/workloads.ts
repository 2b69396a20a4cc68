import { COMPLETENESS_DIR, COMPLETENESS_KEY } from "../../../workloads/common/src/completeness.js";
import type { V1Deployment, V1EnvVar, V1ResourceRequirements, V1Service } from "@kubernetes/client-node";
import type { z } from "zod";
import {
  type ConsumerEnv,
  KAFKA_RECORD_OVERHEAD,
  type ProducerEnv,
  type QueryEnv,
} from "../../../workloads/common/src/config.js";
import { usesSasl, usesTls } from "../../../workloads/common/src/connections.js";
import type { LogPipeline } from "../api/logpipeline.js";
import { postgresConnection, redisConnection } from "./data-services.js";
import { bootstrapServers } from "./kafka-topics.js";
import { type Component, LABEL_METRICS, pipelineLabels, pipelineNames, selectorLabels } from "./names.js";
import { type BuildOptions, childMeta } from "./options.js";
import {
  ANNOTATION_SECRET_HASH,
  containerSecurity,
  envVars,
  httpProbes,
  keyFile,
  keyMount,
  POD_NAME_ENV,
  podSecurity,
  resources,
  secretFile,
  type SecretMount,
  secretHash,
  secretVolumes,
  TMP_MOUNT,
  TMP_VOLUME,
} from "./pod.js";

/**
 * The env of each workload, keyed by the workload's own zod schema (the contract in
 * workloads/common): a renamed variable is a type error here, not a broken pod.
 */
type EnvOf<S extends z.ZodType> = { [K in keyof z.input<S>]?: string | number | boolean | undefined };

export const HTTP_PORT = 8080;
export const METRICS_PORT = 9090;
export const SERVICE_PORT = 80;

interface KafkaSettings {
  env: EnvOf<typeof ConsumerEnv>;
  mounts: SecretMount[];
}

function kafkaSettings(p: LogPipeline): KafkaSettings {
  const { auth } = p.spec.kafka;
  const mounts: SecretMount[] = [];
  const env: EnvOf<typeof ConsumerEnv> = {
    KAFKA_BOOTSTRAP_SERVERS: bootstrapServers(p),
    KAFKA_TOPIC: pipelineNames(p).topic,
    KAFKA_SECURITY_PROTOCOL: auth.securityProtocol,
  };
  if (auth.sasl && usesSasl(auth.securityProtocol)) {
    const m = keyMount("kafka-sasl", auth.sasl.passwordSecretRef);
    mounts.push(m);
    Object.assign(env, {
      KAFKA_SASL_MECHANISM: auth.sasl.mechanism,
      KAFKA_SASL_USERNAME: auth.sasl.username,
      KAFKA_SASL_PASSWORD_FILE: keyFile(m),
    });
  }
  if (auth.tls && usesTls(auth.securityProtocol)) {
    const ca = keyMount("kafka-ca", auth.tls.caSecretRef);
    mounts.push(ca);
    env.KAFKA_TLS_CA_FILE = keyFile(ca);
    if (auth.tls.clientCertSecretName) {
      const cert = {
        volume: "kafka-client",
        secretName: auth.tls.clientCertSecretName,
        keys: ["tls.crt", "tls.key"],
      };
      mounts.push(cert);
      env.KAFKA_TLS_CERT_FILE = secretFile(cert, "tls.crt");
      env.KAFKA_TLS_KEY_FILE = secretFile(cert, "tls.key");
    }
  }
  return { env, mounts };
}

interface StoreSettings {
  /** The query API's env has both stores' variables. */
  env: EnvOf<typeof QueryEnv>;
  secretEnv: V1EnvVar[];
  mounts: SecretMount[];
}

/**
 * The stores a workload reaches: PostgreSQL as one role (the consumer writes, the query API
 * reads) and Redis (producer, query: the consumer never uses it).
 */
function storeSettings(
  p: LogPipeline,
  uses: { postgres: false | "writer" | "reader"; redis: boolean },
): StoreSettings {
  const mounts: SecretMount[] = [];
  const env: EnvOf<typeof QueryEnv> = {};
  const secretEnv: V1EnvVar[] = [];
  if (uses.postgres) {
    const pg = postgresConnection(p, uses.postgres);
    mounts.push(pg.password);
    Object.assign(env, {
      PG_HOST: pg.host,
      PG_PORT: pg.port,
      PG_DATABASE: pg.database,
      PG_SSLMODE: pg.sslMode,
      PG_PASSWORD_FILE: secretFile(pg.password, "password"),
      PG_SCHEMA: p.spec.postgres.schema,
      PG_TABLE: p.spec.postgres.table,
    });
    if (pg.ca) {
      mounts.push(pg.ca);
      env.PG_SSL_CA_FILE = keyFile(pg.ca);
    }
    secretEnv.push({
      name: "PG_USER",
      valueFrom: { secretKeyRef: { name: pg.userFromSecret.secretName, key: pg.userFromSecret.key } },
    });
  }
  const redis = uses.redis ? redisConnection(p) : undefined;
  if (redis) {
    env.REDIS_URL = redis.url;
    env.REDIS_KEY_PREFIX = redisKeyPrefix(p);
    if (redis.password) {
      mounts.push(redis.password);
      env.REDIS_PASSWORD_FILE = keyFile(redis.password);
    }
    if (redis.ca) {
      mounts.push(redis.ca);
      env.REDIS_TLS_CA_FILE = keyFile(redis.ca);
    }
  }
  return { env, secretEnv, mounts };
}

/** The ingest keys (producer) or the query keys (query): separate Secrets, so an ingest key cannot read. */
function apiKeysMount(p: LogPipeline, component: "producer" | "query"): SecretMount | undefined {
  const names = pipelineNames(p);
  return component === "producer"
    ? p.spec.producer.auth.disabled
      ? undefined
      : { volume: "api-keys", secretName: names.apiKeys, keys: ["api-keys"] }
    : p.spec.query.authDisabled
      ? undefined
      : { volume: "query-keys", secretName: names.queryKeys, keys: ["api-keys"] };
}

/**
 * The consumer's schema-owner login (DDL, partitions, retention), when it is not the writer's:
 * always on a managed server, on an external one when the spec names an owner Secret.
 */
function ownerSettings(p: LogPipeline): {
  env: EnvOf<typeof ConsumerEnv>;
  secretEnv: V1EnvVar[];
  mounts: SecretMount[];
} {
  const owner = postgresConnection(p, "owner");
  if (owner.userFromSecret.secretName === postgresConnection(p, "writer").userFromSecret.secretName)
    return { env: {}, secretEnv: [], mounts: [] };
  return {
    env: { PG_OWNER_PASSWORD_FILE: secretFile(owner.password, "password"), PG_OWNER_ROLE: owner.actAs },
    secretEnv: [
      {
        name: "PG_OWNER_USER",
        valueFrom: { secretKeyRef: { name: owner.userFromSecret.secretName, key: owner.userFromSecret.key } },
      },
    ],
    mounts: [owner.password],
  };
}

/** Replicas in our intent: absent when an autoscaler owns the count (never fight the HPA). */
export function intendedReplicas(p: LogPipeline, component: "producer" | "consumer"): number | undefined {
  if (p.spec.hibernate) return 0;
  const { min, max } = p.spec[component].replicas;
  const cap = component === "consumer" ? p.spec.kafka.topic.partitions : Number.MAX_SAFE_INTEGER;
  return min >= max ? Math.min(min, cap) : undefined;
}

interface WorkloadInput {
  component: Extract<Component, "producer" | "consumer" | "query">;
  image: string;
  port: { name: string; number: number };
  env: Record<string, string | number | boolean | undefined>;
  secretEnv: V1EnvVar[];
  mounts: SecretMount[];
  replicas: number | undefined;
  resources: V1ResourceRequirements;
  terminationGracePeriodSeconds: number;
  /** A ConfigMap mounted read-only (optional: absent, the directory is empty). */
  configMap?: { name: string; mountPath: string };
}

function deployment(p: LogPipeline, opts: BuildOptions, w: WorkloadInput): V1Deployment {
  const labels = pipelineLabels(p, w.component);
  const secrets = secretVolumes(w.mounts);
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: childMeta(p, pipelineNames(p)[w.component], labels),
    spec: {
      ...(w.replicas !== undefined ? { replicas: w.replicas } : {}),
      selector: { matchLabels: selectorLabels(p, w.component) },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels, annotations: { [ANNOTATION_SECRET_HASH]: secretHash(w.mounts, opts) } },
        spec: {
          securityContext: podSecurity(),
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: w.terminationGracePeriodSeconds,
          containers: [
            {
              name: w.component,
              image: w.image,
              imagePullPolicy: opts.imagePullPolicy,
              // POD_NAME first: later values refer to it as $(POD_NAME).
              env: [POD_NAME_ENV, ...w.secretEnv, ...envVars(w.env)],
              // The API's port (producer, query) and the metrics port (every workload; the
              // consumer's only one): /metrics is never on an API's public port.
              ports: [
                ...(w.port.name === "metrics" ? [] : [{ name: w.port.name, containerPort: w.port.number }]),
                { name: "metrics", containerPort: METRICS_PORT },
              ],
              ...httpProbes(w.port.name),
              // An API pod told to stop keeps serving while the Service's endpoints forget it
              // (kube-proxy is not told at once): a rollout drops no request.
              ...(w.port.name === "http" && { lifecycle: { preStop: { sleep: { seconds: 5 } } } }),
              resources: w.resources,
              securityContext: containerSecurity(),
              volumeMounts: [
                TMP_MOUNT,
                ...secrets.volumeMounts,
                ...(w.configMap
                  ? [{ name: "config", mountPath: w.configMap.mountPath, readOnly: true }]
                  : []),
              ],
            },
          ],
          volumes: [
            TMP_VOLUME,
            ...secrets.volumes,
            ...(w.configMap
              ? [{ name: "config", configMap: { name: w.configMap.name, optional: true } }]
              : []),
          ],
        },
      },
    },
  };
}

/**
 * The largest record the gateway may send, and so the largest event it accepts, when the
 * topic's own max.message.bytes is below librdkafka's default (1,000,000): an accepted event
 * is then never one Kafka refuses. Unset otherwise (the gateway's defaults hold).
 */
function recordLimits(p: LogPipeline): { KAFKA_MESSAGE_MAX_BYTES?: number; EVENT_MAX_BYTES?: number } {
  const topicMax = Number(p.spec.kafka.topic.config?.["max.message.bytes"]);
  if (!Number.isFinite(topicMax) || topicMax >= 1_000_000) return {};
  const kafkaMax = Math.max(8192, Math.trunc(topicMax));
  return {
    KAFKA_MESSAGE_MAX_BYTES: kafkaMax,
    EVENT_MAX_BYTES: Math.min(256 * 1024, kafkaMax - KAFKA_RECORD_OVERHEAD),
  };
}

export function producerDeployment(p: LogPipeline, opts: BuildOptions): V1Deployment {
  const names = pipelineNames(p);
  const { producer, kafka, redis } = p.spec;
  const k = kafkaSettings(p);
  const store = storeSettings(p, { postgres: false, redis: true });
  const keys = apiKeysMount(p, "producer");
  const env: EnvOf<typeof ProducerEnv> = {
    ...k.env,
    ...store.env,
    PIPELINE_NAME: p.metadata.name,
    PORT: HTTP_PORT,
    METRICS_PORT,
    KAFKA_CLIENT_ID: "$(POD_NAME)",
    DELIVERY: producer.delivery,
    TRANSACTIONAL_ID:
      producer.delivery === "exactlyOnce" ? `${names.transactionalIdPrefix}.$(POD_NAME)` : undefined,
    KAFKA_COMPRESSION: kafka.topic.compression,
    REQUEST_MAX_EVENTS: producer.maxBatchEvents,
    REQUEST_MAX_BYTES: producer.maxBatchBytes,
    ...recordLimits(p),
    PRIORITY_LEVELS: kafka.priority.levels.join(","),
    PRIORITY_PARTITIONS: kafka.priority.partitions,
    IDEMPOTENCY_TTL_SECONDS: redis.idempotencyTtlSeconds,
    REDIS_FAILURE_MODE: redis.failureMode,
    RATE_LIMIT_PER_SECOND: producer.rateLimit.perSecond,
    RATE_LIMIT_BURST: producer.rateLimit.burst,
    AUTH_DISABLED: producer.auth.disabled,
    API_KEYS_FILE: keys ? secretFile(keys, "api-keys") : undefined,
    SHUTDOWN_GRACE_MS: 20_000,
  };
  return deployment(p, opts, {
    component: "producer",
    image: p.spec.images.producer ?? opts.images.producer,
    port: { name: "http", number: HTTP_PORT },
    env,
    secretEnv: [],
    mounts: [...k.mounts, ...store.mounts, ...(keys ? [keys] : [])],
    replicas: intendedReplicas(p, "producer"),
    resources: resources(producer.resources, { cpu: "250m", memory: "256Mi", memoryLimit: "512Mi" }),
    terminationGracePeriodSeconds: 30,
  });
}

export function consumerDeployment(p: LogPipeline, opts: BuildOptions): V1Deployment {
  const names = pipelineNames(p);
  const { consumer, kafka } = p.spec;
  const k = kafkaSettings(p);
  const store = storeSettings(p, { postgres: "writer", redis: false });
  const owner = ownerSettings(p);
  const env: EnvOf<typeof ConsumerEnv> = {
    ...k.env,
    ...store.env,
    PIPELINE_NAME: p.metadata.name,
    KAFKA_CLIENT_ID: "$(POD_NAME)",
    KAFKA_GROUP_ID: names.consumerGroup,
    KAFKA_DLQ_TOPIC: kafka.deadLetter.enabled ? names.deadLetterTopic : undefined,
    DLQ_TRANSACTIONAL_ID: kafka.deadLetter.enabled ? names.deadLetterTransactionalId : undefined,
    BATCH_MAX_EVENTS: consumer.batchMaxEvents,
    RETRY_BACKOFF_MS: consumer.retry.backoffMs,
    RETRY_BACKOFF_MAX_MS: consumer.retry.maxBackoffMs,
    // Unset when 0 (keep for ever), so pipelines without retention keep their pod template.
    RETENTION_DAYS: p.spec.postgres.retentionDays || undefined,
    METRICS_PORT,
    ...owner.env,
  };
  return deployment(p, opts, {
    component: "consumer",
    image: p.spec.images.consumer ?? opts.images.consumer,
    port: { name: "metrics", number: METRICS_PORT },
    env,
    secretEnv: [...store.secretEnv, ...owner.secretEnv],
    mounts: [...k.mounts, ...store.mounts, ...owner.mounts],
    replicas: intendedReplicas(p, "consumer"),
    resources: resources(consumer.resources, { cpu: "250m", memory: "256Mi", memoryLimit: "512Mi" }),
    terminationGracePeriodSeconds: 60,
  });
}

export function queryDeployment(p: LogPipeline, opts: BuildOptions): V1Deployment {
  const { query } = p.spec;
  const store = storeSettings(p, { postgres: "reader", redis: true });
  const keys = apiKeysMount(p, "query");
  const env: EnvOf<typeof QueryEnv> = {
    ...store.env,
    PIPELINE_NAME: p.metadata.name,
    PORT: HTTP_PORT,
    METRICS_PORT,
    CACHE_TTL_SECONDS: query.cacheTtlSeconds,
    AUTH_DISABLED: query.authDisabled,
    API_KEYS_FILE: keys ? secretFile(keys, "api-keys") : undefined,
    COMPLETENESS_FILE: `${COMPLETENESS_DIR}/${COMPLETENESS_KEY}`,
    TRACE_URL_TEMPLATE: query.traceUrlTemplate,
  };
  return deployment(p, opts, {
    component: "query",
    // The operator's answer on completeness (optional: the pod starts before the first one).
    configMap: { name: pipelineNames(p).completeness, mountPath: COMPLETENESS_DIR },
    image: p.spec.images.query ?? opts.images.query,
    port: { name: "http", number: HTTP_PORT },
    env,
    secretEnv: store.secretEnv,
    mounts: [...store.mounts, ...(keys ? [keys] : [])],
    replicas: p.spec.hibernate ? 0 : query.replicas,
    resources: resources(query.resources, { cpu: "100m", memory: "192Mi", memoryLimit: "384Mi" }),
    terminationGracePeriodSeconds: 30,
  });
}

/**
 * A ClusterIP Service per workload: the API's port (producer, query; what the Ingress routes
 * to) and the metrics port the ServiceMonitor scrapes (all three carry its label).
 */
export function workloadService(p: LogPipeline, component: "producer" | "consumer" | "query"): V1Service {
  const metrics = { name: "metrics", port: METRICS_PORT, targetPort: "metrics" };
  const ports =
    component === "consumer"
      ? [metrics]
      : [{ name: "http", port: SERVICE_PORT, targetPort: "http" }, metrics];
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: childMeta(p, pipelineNames(p)[component], {
      ...pipelineLabels(p, component),
      [LABEL_METRICS]: "metrics",
    }),
    spec: { selector: selectorLabels(p, component), ports },
  };
}

/** Where a pipeline's keys live in Redis: its namespace and uid, never its name alone. */
export const redisKeyPrefix = (p: LogPipeline): string => `lp:${p.metadata.namespace}:${p.metadata.uid}:`;
