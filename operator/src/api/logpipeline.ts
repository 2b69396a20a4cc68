import { z } from "zod";

/**
 * The LogPipeline API (logpipeline.io/v1alpha1), defined once: the CRD in crds/ is generated
 * from these schemas by `make generate`, and the operator validates with them.
 * Every field carries a description so `kubectl explain logpipeline.spec` teaches.
 *
 * This is the foundation's first cut (Kafka topic settings); the operator work extends it.
 */
export const GROUP = "logpipeline.io";
export const VERSION = "v1alpha1";
export const KIND = "LogPipeline";
export const PLURAL = "logpipelines";

const celRule = (rule: string, message: string, reason?: string) => ({
  rule,
  message,
  ...(reason ? { reason } : {}),
});

export const KafkaTopicSpec = z
  .object({
    partitions: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(6)
      .meta({
        description:
          "Number of partitions of the main topic. May grow, never shrink (Kafka cannot remove partitions).",
        "x-kubernetes-validations": [
          celRule("self >= oldSelf", "partitions may only grow", "FieldValueInvalid"),
        ],
      }),
    replicationFactor: z
      .number()
      .int()
      .min(1)
      .max(10)
      .default(1)
      .meta({
        description: "Replication factor of the main and dead-letter topics. Immutable once set.",
        "x-kubernetes-validations": [celRule("self == oldSelf", "replicationFactor is immutable")],
      }),
  })
  .meta({ description: "The main topic's partitions and replication." });

export const KafkaSpec = z
  .object({
    mode: z.enum(["strimzi", "external"]).meta({
      description:
        "How topics are managed: `strimzi` writes KafkaTopic resources for a Strimzi cluster; `external` manages them through the Kafka Admin API. Immutable.",
      "x-kubernetes-validations": [celRule("self == oldSelf", "kafka.mode is immutable")],
    }),
    clusterRef: z
      .object({
        name: z
          .string()
          .min(1)
          .meta({ description: "Name of the Strimzi Kafka cluster (label strimzi.io/cluster)." }),
        namespace: z
          .string()
          .min(1)
          .meta({ description: "Namespace of the Strimzi Kafka cluster and its topic operator." }),
      })
      .optional()
      .meta({
        description:
          "The Strimzi cluster whose topic operator manages this pipeline's topics (mode strimzi).",
      }),
    bootstrapServers: z.string().min(1).optional().meta({
      description:
        "Comma-separated host:port list of brokers. Required in mode external; overrides Strimzi's bootstrap Service in mode strimzi.",
    }),
    topic: KafkaTopicSpec.default({ partitions: 6, replicationFactor: 1 }),
  })
  .meta({
    description: "Kafka: where the pipeline's topics live and how they are managed.",
    "x-kubernetes-validations": [
      celRule(
        "self.mode != 'strimzi' || has(self.clusterRef)",
        "kafka.clusterRef is required when kafka.mode is strimzi",
      ),
      celRule(
        "self.mode != 'external' || has(self.bootstrapServers)",
        "kafka.bootstrapServers is required when kafka.mode is external",
      ),
    ],
  });

export const LogPipelineSpec = z
  .object({
    kafka: KafkaSpec,
  })
  .meta({ description: "Desired state of the log pipeline." });

export const LogPipelineStatus = z
  .object({
    observedGeneration: z
      .number()
      .int()
      .optional()
      .meta({ description: "The generation of the spec this status describes." }),
    phase: z
      .enum(["Pending", "Provisioning", "Ready", "Degraded", "Suspended", "Hibernated", "Deleting", "Failed"])
      .optional()
      .meta({ description: "A one-word summary of the pipeline's state." }),
    message: z.string().optional().meta({ description: "A one-line human-readable summary." }),
  })
  .meta({ description: "Observed state of the log pipeline, written only by the operator." });

export type LogPipelineSpec = z.infer<typeof LogPipelineSpec>;
export type LogPipelineStatus = z.infer<typeof LogPipelineStatus>;
