import type { Logger } from "pino";
import type { Counter, Gauge, Histogram } from "prom-client";
import type { LogPipelineStatus } from "../api/logpipeline.js";
import type { BuildOptions } from "../builders/index.js";
import type { KafkaConnection, TopicAdmin } from "../kafka/topic-admin.js";
import type { KubeClient, KubeObjectLike } from "../kube/client.js";
import type { EventRecorder } from "../runtime/events.js";
import type { Cache } from "../runtime/informer.js";
import type { Capabilities } from "./children.js";
import type { CheckMemory, DivergenceResult } from "../divergence/check.js";
import type { DesiredTopic } from "../builders/index.js";
import type { TopicResult } from "../kafka/topic-admin.js";
import type { LogPipeline } from "../api/logpipeline.js";
import type { RevertedEdit } from "../status/spec-differences.js";
import type { AppliedChildren } from "./applied.js";
import type { SecretReads } from "./secret-reads.js";
import type { PipelinePolicy } from "./policy.js";
import type { FlowSample } from "../status/capacity.js";
import type { StorageSizes } from "../divergence/delivery.js";

export interface ControllerConfig {
  images: BuildOptions["images"];
  imagePullPolicy: BuildOptions["imagePullPolicy"];
  operatorNamespace: string;
  /** Requeue of a ready pipeline: the drift-correction period even when no event arrives. */
  resyncMs: number;
  /** Requeue while children are still coming up. */
  progressingRequeueMs: number;
  /** Kafka and the ledger are read for status.delivery at most this often per pipeline. */
  deliveryIntervalMs: number;
  /** The capacity advice's window and assumed consumer rate (status/capacity.ts). */
  capacity: { windowMs: number; assumedPerReplica: number };
  /** Pipelines whose Kafka/PostgreSQL are read at once, and how long one pass may take. */
  probeConcurrency: number;
  probeTimeoutMs: number;
  /** A Secret a pipeline names is read again after this long (secret-reads.ts). */
  secretRefreshMs: number;
  /** What a pipeline may ask of the operator (policy.ts). */
  policy: PipelinePolicy;
}

/** The last delivery read of a pipeline: reused until deliveryIntervalMs has passed. */
export interface DeliveryRead {
  /** When the read began (ms): the next is due an interval later. */
  at: number;
  delivery?: LogPipelineStatus["delivery"];
  /**
   * When Kafka's last stable offsets were read for `delivery` (ms): the moment its figures
   * describe (its asOf, to the millisecond). A capacity sample is stamped with it.
   */
  readAt?: number;
  /** Why the ledger could not be read (PostgreSQL unreachable, bad credentials). */
  postgresError?: string;
  /** Reads in a row that reached neither Kafka nor PostgreSQL: the next waits longer (deliveryDue). */
  failures?: number;
}

export interface ControllerMetrics {
  reconciles: Counter<"result">;
  reconcileDuration: Histogram;
  applies: Counter<"result">;
  statusWrites: Counter;
  divergenceEvents: Gauge<"pipeline_namespace" | "pipeline" | "kind">;
  consumerLag: Gauge<"pipeline_namespace" | "pipeline" | "partition">;
  stuckPartitions: Gauge<"pipeline_namespace" | "pipeline">;
  ftsIndexDelay: Gauge<"pipeline_namespace" | "pipeline">;
  workloadReplicas: Gauge<"pipeline_namespace" | "pipeline" | "component" | "state">;
  reconcileErrors: Counter<"pipeline_namespace" | "pipeline">;
  divergenceChecks: Histogram;
  divergenceCheckFailures: Counter<"pipeline_namespace" | "pipeline">;
  probeTimeouts: Counter;
  capacityAtRisk: Gauge<"pipeline_namespace" | "pipeline">;
  partitionsNeeded: Gauge<"pipeline_namespace" | "pipeline">;
  ingestRate: Gauge<"pipeline_namespace" | "pipeline">;
  postgresDaysUntilFull: Gauge<"pipeline_namespace" | "pipeline">;
}

/** Everything reconcile touches, passed in one object (no module singletons; tests build their own). */
export interface ControllerDeps {
  kube: KubeClient;
  /** The cached LogPipelines, by namespace/name. */
  pipelines: Pick<Cache<KubeObjectLike>, "get">;
  /** Child caches by kind (selected by the managed-by label; cluster-wide, or one informer per namespace). */
  children: Map<string, Cache<KubeObjectLike>>;
  capabilities: () => Capabilities;
  config: ControllerConfig;
  recorder: EventRecorder;
  log: Logger;
  metrics: ControllerMetrics;
  now: () => Date;
  connectTopicAdmin: (c: KafkaConnection) => Promise<TopicAdmin>;
  /** Statuses this process wrote, by pipeline key: the cache may not show them yet. */
  writtenStatus: Map<string, unknown>;
  deliveryReads: Map<string, DeliveryRead>;
  /** The flow samples and the last capacity advice, by pipeline key (controller/capacity.ts). */
  capacity: Map<string, CapacityState>;
  /** Divergence checks by pipeline key (controller/divergence.ts). */
  divergence: Map<string, DivergenceState>;
  /** Edits made outside the operator that it reverted, by pipeline key (recent ones). */
  revertedEdits: Map<string, RevertedEdit[]>;
  /** What was last applied to each child, so unchanged children cost no apply. */
  applied: AppliedChildren;
  /** The Secrets pipelines name, read by name and reused for a while (secret-reads.ts). */
  secrets: SecretReads;
  /** The tenants' Kafka and PostgreSQL reads, off the reconcile path (probes.ts). */
  probes: ProbeScheduler;
}

/** A pipeline's flow over the capacity window, and the advice last written from it. */
export interface CapacityState {
  samples: FlowSample[];
  /** When the advice was last computed (at most once per resync). */
  at?: number;
  advice?: NonNullable<LogPipelineStatus["capacity"]>;
  atRisk?: { risk: boolean; message: string };
}

/** A pipeline's divergence check: its last result, or why it failed (controller/divergence.ts). */
export interface DivergenceState {
  /** When the last check ran (or failed). */
  at: number;
  /** The check-now annotation's value when the last check started (answered or not). */
  trigger?: string | undefined;
  /** The check-now value current when the check behind `result` started. */
  answered?: string | undefined;
  /** Position marks (to tell a stuck consumer) and sweep cursors, from check to check. */
  memory: CheckMemory;
  result?: DivergenceResult;
  /** The events table's partitions, read with the check. */
  storage?: LogPipelineStatus["storage"];
  /** The database's sizes, read with the check (capacity advice). */
  sizes?: StorageSizes;
  /** Why the last check could not run; the last result stays, with its checkedAt. */
  error?: string;
}

/** What a reconcile asks of a pipeline's Kafka and PostgreSQL this time. */
export interface ProbeRequest {
  /** external mode: the topics to create or grow through the Admin API. */
  topics?: DesiredTopic[] | undefined;
  delivery: boolean;
  check: boolean;
}

/** What reconcile sees of the probes (controller/probes.ts). */
export interface ProbeScheduler {
  request(key: string, p: LogPipeline, want: ProbeRequest): void;
  topics(key: string): TopicResult[] | undefined;
  topicsDue(key: string, topics: DesiredTopic[]): boolean;
  /** Topics the operator created for the pipeline (mode external): recorded, and this process's. */
  created(key: string, p: LogPipeline): string[];
  forget(key: string): void;
  stop(): void;
}
