/**
 * The operator's configuration: environment variables (flags override them in main.ts),
 * validated, and the manager's settings made from them. The one place that knows the
 * defaults, for the process and for the benchmarks that run its manager.
 */
import { z } from "zod";
import type { ManagerConfig } from "./controller/manager.js";

const csv = z.string().transform((s) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean),
);
const bool = (d: boolean) => z.stringbool().default(d);
const int = (min: number, max: number, d: number) => z.coerce.number().int().min(min).max(max).default(d);

export const OperatorEnv = z
  .object({
    KUBECONFIG: z.string().optional(),
    WATCH_NAMESPACES: csv.default([]),
    /** cluster: cluster-wide RBAC; namespaced: Roles in WATCH_NAMESPACES only (docs/security.md). */
    INSTALL_MODE: z.enum(["cluster", "namespaced"]).default("cluster"),
    POLICY_STRIMZI_NAMESPACES: csv.default([]),
    POLICY_TOPIC_PREFIX: z.string().max(200).default("{namespace}."),
    POLICY_IMAGE_OVERRIDE_NAMESPACES: csv.default([]),
    POLICY_ALLOW_INGRESS_WITHOUT_TLS: bool(false),
    RESYNC_SECONDS: int(5, 86_400, 300),
    PROGRESSING_REQUEUE_SECONDS: int(1, 3600, 10),
    DELIVERY_INTERVAL_SECONDS: int(1, 3600, 15),
    /** The capacity advice: the window of delivery reads it measures over (docs/capacity.md). */
    CAPACITY_WINDOW_SECONDS: int(60, 7 * 86_400, 3600),
    /** Events/s one consumer replica is taken to carry until an interval saturates one (make bench: about 13,000). */
    CAPACITY_CONSUMER_EVENTS_PER_SECOND: int(1, 10_000_000, 5000),
    PROBE_CONCURRENCY: int(1, 64, 4),
    PROBE_TIMEOUT_SECONDS: int(1, 600, 30),
    SECRET_REFRESH_SECONDS: int(0, 3600, 120),
    CONCURRENCY: int(1, 64, 4),
    LEADER_ELECT: bool(true),
    LEASE_NAMESPACE: z.string().min(1).default("logpipeline-system"),
    LEASE_NAME: z.string().min(1).default("logpipeline-operator"),
    POD_NAME: z.string().optional(),
    OPERATOR_NAMESPACE: z.string().min(1).default("logpipeline-system"),
    HEALTH_PORT: int(1, 65535, 8081),
    METRICS_PORT: int(1, 65535, 8080),
    BIND_ADDRESS: z.string().default("0.0.0.0"),
    PRODUCER_IMAGE: z.string().min(1).default("logpipeline/producer:0.1.0"),
    CONSUMER_IMAGE: z.string().min(1).default("logpipeline/consumer:0.1.0"),
    QUERY_IMAGE: z.string().min(1).default("logpipeline/query:0.1.0"),
    POSTGRES_IMAGE: z.string().min(1).default("postgres:17-bookworm"),
    REDIS_IMAGE: z.string().min(1).default("redis:7.4-bookworm"),
    IMAGE_PULL_POLICY: z.enum(["Always", "IfNotPresent", "Never"]).default("IfNotPresent"),
    CAPABILITY_REFRESH_SECONDS: int(5, 3600, 60),
    LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"),
  })
  .refine((e) => e.INSTALL_MODE !== "namespaced" || e.WATCH_NAMESPACES.length > 0, {
    message: "INSTALL_MODE namespaced needs WATCH_NAMESPACES (the namespaces its Roles are in)",
    path: ["WATCH_NAMESPACES"],
  })
  .refine((e) => e.INSTALL_MODE !== "namespaced" || !e.POLICY_STRIMZI_NAMESPACES.includes("*"), {
    message: "INSTALL_MODE namespaced needs POLICY_STRIMZI_NAMESPACES by name, not * (a Role is in each)",
    path: ["POLICY_STRIMZI_NAMESPACES"],
  });

export type OperatorEnv = z.infer<typeof OperatorEnv>;

/** The manager's settings from the validated environment. */
export function managerConfig(env: OperatorEnv): ManagerConfig {
  return {
    kubeconfig: env.KUBECONFIG,
    watchNamespaces: env.WATCH_NAMESPACES,
    installMode: env.INSTALL_MODE,
    policy: {
      strimziNamespaces: env.POLICY_STRIMZI_NAMESPACES,
      topicPrefix: env.POLICY_TOPIC_PREFIX,
      imageOverrideNamespaces: env.POLICY_IMAGE_OVERRIDE_NAMESPACES,
      allowIngressWithoutTLS: env.POLICY_ALLOW_INGRESS_WITHOUT_TLS,
    },
    concurrency: env.CONCURRENCY,
    resyncMs: env.RESYNC_SECONDS * 1000,
    progressingRequeueMs: env.PROGRESSING_REQUEUE_SECONDS * 1000,
    deliveryIntervalMs: env.DELIVERY_INTERVAL_SECONDS * 1000,
    capacity: {
      windowMs: env.CAPACITY_WINDOW_SECONDS * 1000,
      assumedPerReplica: env.CAPACITY_CONSUMER_EVENTS_PER_SECOND,
    },
    probeConcurrency: env.PROBE_CONCURRENCY,
    probeTimeoutMs: env.PROBE_TIMEOUT_SECONDS * 1000,
    secretRefreshMs: env.SECRET_REFRESH_SECONDS * 1000,
    capabilityRefreshMs: env.CAPABILITY_REFRESH_SECONDS * 1000,
    operatorNamespace: env.OPERATOR_NAMESPACE,
    images: {
      producer: env.PRODUCER_IMAGE,
      consumer: env.CONSUMER_IMAGE,
      query: env.QUERY_IMAGE,
      postgres: env.POSTGRES_IMAGE,
      redis: env.REDIS_IMAGE,
    },
    imagePullPolicy: env.IMAGE_PULL_POLICY,
    leaderElection: {
      enabled: env.LEADER_ELECT,
      namespace: env.LEASE_NAMESPACE,
      name: env.LEASE_NAME,
      identity: env.POD_NAME,
    },
  };
}
