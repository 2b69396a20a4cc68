import { z } from "zod";

/**
 * The LogPipeline API (logpipeline.io/v1alpha1), defined once: the CRD in crds/ is generated
 * from these schemas by `make generate`, and the operator parses with them (so the defaults
 * the API server applies and the ones the operator assumes are the same numbers).
 * Every field carries a description so `kubectl explain logpipeline.spec` teaches.
 */
/**
 * The longest LogPipeline name: its topic is named `<namespace>.<name>.logs`, which must fit
 * Kafka's 249 characters with a namespace of up to 63 (every Kubernetes name derived from it
 * is shortened consistently instead: builders/names.ts).
 */
export const NAME_MAX = 180;
export const NAME_MAX_MESSAGE = `metadata.name must be at most ${NAME_MAX} characters: the topic <namespace>.<name>.logs must fit Kafka's 249`;

/** host[:port] (a DNS name, an IPv4 address or a bracketed IPv6 one), comma-separated. */
const BROKER = String.raw`(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?)(:[0-9]{1,5})?`;
const BOOTSTRAP_SERVERS = new RegExp(String.raw`^${BROKER}(\s*,\s*${BROKER})*$`);

export const GROUP = "logpipeline.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "LogPipeline";
export const PLURAL = "logpipelines";

const celRule = (rule: string, message: string, reason?: string) => ({
  rule,
  message,
  ...(reason ? { reason } : {}),
});
const immutable = (what: string) => [celRule("self == oldSelf", `${what} is immutable`)];

/** A DNS-1123 label or subdomain name (Secrets, Services, StorageClasses). */
const objectName = (description: string) =>
  z
    .string()
    .min(1)
    .max(253)
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/)
    .meta({ description });
const secretKey = (dflt: string, description: string) =>
  z
    .string()
    .min(1)
    .max(253)
    .regex(/^[-._a-zA-Z0-9]+$/)
    .default(dflt)
    .meta({ description });
const image = (what: string) =>
  z
    .string()
    .min(1)
    .max(512)
    .optional()
    .meta({ description: `Container image for ${what}; unset uses the operator's default.` });
const quantity = z
  .string()
  .max(64)
  .regex(/^[0-9.]+(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/);

const Resources = z
  .object({
    requests: z
      .object({
        cpu: quantity.optional().meta({ description: "CPU request, e.g. 100m." }),
        memory: quantity.optional().meta({ description: "Memory request, e.g. 256Mi." }),
      })
      .optional()
      .meta({ description: "What the scheduler reserves." }),
    limits: z
      .object({
        cpu: quantity.optional().meta({ description: "CPU limit; unset means none." }),
        memory: quantity.optional().meta({ description: "Memory limit, e.g. 512Mi." }),
      })
      .optional()
      .meta({ description: "Hard caps." }),
  })
  .meta({ description: "Compute resources of each container; unset uses the operator's defaults." });

const Replicas = (dfltMin: number, dfltMax: number, what: string) =>
  z
    .object({
      min: z
        .number()
        .int()
        .min(0)
        .max(1000)
        .default(dfltMin)
        .meta({ description: `Fewest ${what} replicas the autoscaler keeps.` }),
      max: z
        .number()
        .int()
        .min(1)
        .max(1000)
        .default(dfltMax)
        .meta({ description: `Most ${what} replicas the autoscaler may run.` }),
    })
    .meta({
      description: `Autoscaling bounds of the ${what}; min == max pins the count (no autoscaler).`,
      "x-kubernetes-validations": [
        celRule("self.min <= self.max", "replicas.min must not exceed replicas.max"),
      ],
    });

const SecretKeyRef = (description: string, dfltKey: string) =>
  z
    .object({
      name: objectName("Name of the Secret, in the pipeline's namespace."),
      key: secretKey(dfltKey, "Key within the Secret."),
    })
    .meta({ description });

export const KafkaTopicSpec = z
  .object({
    name: z
      .string()
      .min(1)
      .max(249)
      .regex(/^[a-zA-Z0-9._-]+$/)
      .optional()
      .meta({
        description:
          "Topic name. Unset derives `<namespace>.<name>.logs`, so pipelines sharing one Kafka never collide. Immutable.",
        "x-kubernetes-validations": immutable("kafka.topic.name"),
      }),
    adopt: z.boolean().default(false).meta({
      description:
        "Use the main and dead-letter topics when they already exist and the operator did not create them (mode external). They are then also deleted with the pipeline under deletionPolicy topics: Delete. Without it such a topic is reported (TopicsReady False, reason NotOwned) and never written to or deleted.",
    }),
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
        "x-kubernetes-validations": immutable("replicationFactor"),
      }),
    retentionHours: z
      .number()
      .int()
      .min(1)
      .max(24 * 3650)
      .default(168)
      .meta({ description: "How long Kafka keeps events (retention.ms), in hours." }),
    compression: z
      .enum(["none", "gzip", "snappy", "lz4", "zstd"])
      .default("lz4")
      .meta({ description: "Compression the producer applies to record batches." }),
    config: z.record(z.string().max(256), z.string().max(1024)).optional().meta({
      description:
        "Extra topic configuration (e.g. `min.insync.replicas`), passed to Kafka as given. retention.ms is set from retentionHours.",
      maxProperties: 64,
    }),
  })
  .meta({ description: "The main topic." });

export const DeadLetterSpec = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .meta({ description: "Publish events that cannot be stored to a dead-letter topic." }),
    topicName: z
      .string()
      .min(1)
      .max(249)
      .regex(/^[a-zA-Z0-9._-]+$/)
      .optional()
      .meta({ description: "Dead-letter topic name. Unset derives `<namespace>.<name>.dlq`." }),
    retentionHours: z
      .number()
      .int()
      .min(1)
      .max(24 * 3650)
      .default(720)
      .meta({ description: "How long Kafka keeps dead letters, in hours." }),
  })
  .meta({
    description: "The dead-letter topic for poison events (every dead letter is also kept in PostgreSQL).",
  });

export const KafkaSpec = z
  .object({
    mode: z.enum(["strimzi", "external"]).meta({
      description:
        "How topics are managed: `strimzi` writes KafkaTopic resources for a Strimzi cluster; `external` manages them through the Kafka Admin API. Immutable.",
      "x-kubernetes-validations": immutable("kafka.mode"),
    }),
    clusterRef: z
      .object({
        name: objectName("Name of the Strimzi Kafka cluster (label strimzi.io/cluster)."),
        namespace: objectName("Namespace of the Strimzi Kafka cluster and its topic operator."),
        listenerPort: z
          .number()
          .int()
          .min(1)
          .max(65535)
          .default(9092)
          .meta({ description: "Port of the bootstrap Service's listener the workloads use." }),
      })
      .optional()
      .meta({
        description:
          "The Strimzi cluster whose topic operator manages this pipeline's topics (mode strimzi). Brokers are found at `<name>-kafka-bootstrap.<namespace>.svc:<listenerPort>`.",
      }),
    bootstrapServers: z
      .string()
      .min(1)
      .max(2048)
      .regex(BOOTSTRAP_SERVERS, {
        message: "must be a comma-separated list of host:port (e.g. kafka-0.kafka:9092,kafka-1.kafka:9092)",
      })
      .optional()
      .meta({
        description:
          "Comma-separated host:port list of brokers (a host without a port means 9092; IPv6 in brackets). Required in mode external; overrides Strimzi's bootstrap Service in mode strimzi.",
      }),
    auth: z
      .object({
        securityProtocol: z
          .enum(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
          .default("PLAINTEXT")
          .meta({ description: "Kafka security protocol of the connection." }),
        sasl: z
          .object({
            mechanism: z
              .enum(["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
              .default("SCRAM-SHA-512")
              .meta({ description: "SASL mechanism." }),
            username: z.string().min(1).max(256).meta({ description: "SASL user name." }),
            passwordSecretRef: SecretKeyRef("Secret key holding the SASL password.", "password"),
          })
          .optional()
          .meta({ description: "SASL credentials (protocols SASL_PLAINTEXT and SASL_SSL)." }),
        tls: z
          .object({
            caSecretRef: SecretKeyRef(
              "Secret key holding the CA bundle (PEM) brokers are verified with.",
              "ca.crt",
            ),
            clientCertSecretName: objectName(
              "A kubernetes.io/tls Secret with a client certificate for mutual TLS.",
            ).optional(),
          })
          .optional()
          .meta({ description: "TLS settings (protocols SSL and SASL_SSL)." }),
      })
      .prefault({})
      .meta({
        description:
          "How the workloads and the operator authenticate to Kafka. Secrets are mounted, never copied.",
        "x-kubernetes-validations": [
          celRule(
            "!self.securityProtocol.startsWith('SASL') || has(self.sasl)",
            "kafka.auth.sasl is required for SASL security protocols",
          ),
        ],
      }),
    topic: KafkaTopicSpec.prefault({}),
    deadLetter: DeadLetterSpec.prefault({}),
    priority: z
      .object({
        levels: z
          .array(z.enum(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]))
          .max(6)
          .default(["ERROR", "FATAL"])
          .meta({ description: "Levels routed to the reserved partitions." }),
        partitions: z
          .number()
          .int()
          .min(0)
          .max(1000)
          .default(1)
          .meta({ description: "Number of partitions reserved for priority levels (0 disables routing)." }),
      })
      .prefault({})
      .meta({
        description:
          "Priority routing: these levels go to reserved partitions so they are never behind bulk logs.",
      }),
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
      celRule(
        "!has(self.deadLetter.topicName) || !has(self.topic.name) || self.deadLetter.topicName != self.topic.name",
        "kafka.deadLetter.topicName must differ from kafka.topic.name",
      ),
      celRule(
        "self.priority.partitions < self.topic.partitions",
        "kafka.priority.partitions must leave at least one partition for other levels",
      ),
    ],
  });

export const PostgresSpec = z
  .object({
    mode: z
      .enum(["managed", "external"])
      .default("managed")
      .meta({
        description:
          "`managed` runs PostgreSQL in a StatefulSet with generated credentials; `external` connects to a database you run. Immutable.",
        "x-kubernetes-validations": immutable("postgres.mode"),
      }),
    table: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/)
      .default("logs")
      .meta({
        description: "Table the events are written to. Immutable.",
        "x-kubernetes-validations": immutable("postgres.table"),
      }),
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/)
      .default("public")
      .meta({
        description: "Schema of the events table and the ledger. Immutable.",
        "x-kubernetes-validations": immutable("postgres.schema"),
      }),
    retentionDays: z.number().int().min(0).max(36500).default(0).meta({
      description:
        "Days events are kept in PostgreSQL, by their stored time; whole hourly partitions are dropped once wholly older. 0 keeps them for ever.",
    }),
    managed: z
      .object({
        image: image("PostgreSQL (default the official `postgres` image)"),
        storage: z
          .object({
            size: quantity.default("1Gi").meta({ description: "Size of the data volume." }),
            storageClassName: objectName(
              "StorageClass of the data volume; unset uses the cluster default.",
            ).optional(),
          })
          .prefault({})
          .meta({
            description:
              "The data volume (a PVC per replica, kept on deletion unless deletionPolicy.postgres is Delete).",
          }),
        resources: Resources.optional(),
      })
      .prefault({})
      .meta({ description: "Settings of a managed PostgreSQL (mode managed)." }),
    external: z
      .object({
        host: z.string().min(1).max(253).meta({ description: "Host name or address of the server." }),
        port: z.number().int().min(1).max(65535).default(5432).meta({ description: "Port of the server." }),
        database: z.string().min(1).max(63).default("logpipeline").meta({ description: "Database name." }),
        volumeSize: quantity.optional().meta({
          description:
            "The size of the server's data volume, which the operator cannot see: the capacity advice measures against it (status.capacity). Unset: no volume advice.",
        }),
        credentialsSecret: objectName(
          "Secret with keys `username` and `password`: the role that writes rows (the consumer), and every role below that is not set.",
        ),
        ownerCredentialsSecret: objectName(
          "Secret (`username`, `password`) of the schema's owner: the consumer's DDL, partition maintenance and retention. Unset: credentialsSecret. docs/security.md lists the GRANTs.",
        ).optional(),
        readerCredentialsSecret: objectName(
          "Secret (`username`, `password`) of a read-only role: the query API and the operator's checks. Unset: credentialsSecret.",
        ).optional(),
        sslMode: z
          .enum(["disable", "prefer", "require", "verify-ca", "verify-full"])
          .default("verify-full")
          .meta({
            description:
              "libpq sslmode. verify-full by default (TLS, the certificate and the host name verified, against caSecretRef or the system's CAs); a weaker mode is an explicit choice, shown by the TransportVerified condition.",
          }),
        caSecretRef: SecretKeyRef(
          "Secret key with the CA bundle for verify-ca/verify-full.",
          "ca.crt",
        ).optional(),
      })
      .optional()
      .meta({ description: "Connection to an existing PostgreSQL (mode external)." }),
  })
  .meta({
    description: "PostgreSQL: where events, consumer positions and the ledger are stored.",
    "x-kubernetes-validations": [
      celRule(
        "self.mode != 'external' || has(self.external)",
        "postgres.external is required when postgres.mode is external",
      ),
    ],
  });

export const RedisSpec = z
  .object({
    mode: z.enum(["managed", "external", "disabled"]).default("managed").meta({
      description:
        "`managed` runs Redis (idempotency keys, rate limits, query cache); `external` uses yours; `disabled` runs without (PostgreSQL still deduplicates).",
    }),
    idempotencyTtlSeconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 86400)
      .default(86400)
      .meta({ description: "How long an Idempotency-Key answers a retry with the original eventId." }),
    failureMode: z
      .enum(["open", "closed"])
      .default("open")
      .meta({ description: "When Redis is down: `open` keeps ingesting, `closed` refuses with 503." }),
    managed: z
      .object({ image: image("Redis (default the official `redis` image)"), resources: Resources.optional() })
      .prefault({})
      .meta({ description: "Settings of a managed Redis (mode managed)." }),
    external: z
      .object({
        url: z
          .string()
          .min(1)
          .max(2048)
          .regex(/^rediss?:\/\//)
          .meta({ description: "redis:// or rediss:// URL, without the password." }),
        passwordSecretRef: SecretKeyRef(
          "Secret key holding the Redis password (AUTH).",
          "password",
        ).optional(),
        caSecretRef: SecretKeyRef(
          "Secret key with the CA bundle (PEM) a rediss:// server is verified with; unset uses the system's CAs.",
          "ca.crt",
        ).optional(),
      })
      .optional()
      .meta({
        description: "Connection to an existing Redis (mode external).",
        "x-kubernetes-validations": [
          celRule(
            "!has(self.caSecretRef) || self.url.startsWith('rediss://')",
            "redis.external.caSecretRef needs a rediss:// url",
          ),
        ],
      }),
  })
  .meta({
    description: "Redis: idempotency keys, rate limits and the query cache.",
    "x-kubernetes-validations": [
      celRule(
        "self.mode != 'external' || has(self.external)",
        "redis.external is required when redis.mode is external",
      ),
    ],
  });

export const ProducerSpec = z
  .object({
    replicas: Replicas(1, 3, "producer").prefault({}),
    targetCPUUtilization: z
      .number()
      .int()
      .min(10)
      .max(100)
      .default(70)
      .meta({ description: "Average CPU utilisation (% of request) the autoscaler aims for." }),
    resources: Resources.optional(),
    delivery: z.enum(["exactlyOnce", "atLeastOnce"]).default("exactlyOnce").meta({
      description:
        "`exactlyOnce`: one Kafka transaction per micro-batch, 202 after commit. `atLeastOnce`: acks without transactions.",
    }),
    maxBatchEvents: z
      .number()
      .int()
      .min(1)
      .max(100000)
      .default(1000)
      .meta({ description: "Most events one batch request may carry." }),
    maxBatchBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(1048576)
      .meta({ description: "Largest request body accepted, in bytes." }),
    rateLimit: z
      .object({
        perSecond: z
          .number()
          .int()
          .min(0)
          .max(10000000)
          .default(0)
          .meta({ description: "Events per second per client; 0 is unlimited." }),
        burst: z
          .number()
          .int()
          .min(0)
          .max(10000000)
          .default(0)
          .meta({ description: "Token-bucket burst; 0 means perSecond." }),
      })
      .prefault({})
      .meta({ description: "Per-client (API key or IP) token-bucket rate limit, kept in Redis." }),
    auth: z
      .object({
        apiKeysSecret: objectName(
          "Secret whose key `api-keys` holds one `name:key` per line. Unset generates one named `<pipeline>-api-keys`.",
        ).optional(),
        disabled: z
          .boolean()
          .default(false)
          .meta({ description: "Turn API-key authentication off (not for production)." }),
      })
      .prefault({})
      .meta({ description: "Authentication of the ingest API." }),
  })
  .meta({ description: "The ingest gateway (HTTP → Kafka)." });

export const ConsumerSpec = z
  .object({
    replicas: Replicas(1, 6, "consumer").prefault({}),
    autoscaler: z.enum(["cpu", "kafkaLag"]).default("cpu").meta({
      description:
        "`cpu`: a HorizontalPodAutoscaler on CPU; `kafkaLag`: a KEDA ScaledObject on consumer lag (needs KEDA; without it a condition says so and CPU is used).",
    }),
    targetCPUUtilization: z
      .number()
      .int()
      .min(10)
      .max(100)
      .default(70)
      .meta({ description: "CPU target (autoscaler cpu)." }),
    lagTarget: z
      .number()
      .int()
      .min(1)
      .max(100000000)
      .default(10000)
      .meta({ description: "Lag per replica KEDA aims for (autoscaler kafkaLag)." }),
    resources: Resources.optional(),
    batchMaxEvents: z
      .number()
      .int()
      .min(1)
      .max(100000)
      .default(2000)
      .meta({ description: "Most events written in one PostgreSQL transaction." }),
    retry: z
      .object({
        backoffMs: z.number().int().min(1).max(600000).default(1000).meta({
          description:
            "First retry delay after a transient error; each retry doubles it up to maxBackoffMs (by default 1 s, 2 s, 4 s, then every 4 s), with jitter. The records are retried until the error clears, never skipped.",
        }),
        maxBackoffMs: z
          .number()
          .int()
          .min(1)
          .max(3600000)
          .default(4000)
          .meta({ description: "Longest retry delay." }),
      })
      .prefault({})
      .meta({ description: "Retry policy for transient errors (PostgreSQL or Kafka unavailable)." }),
  })
  .meta({ description: "The exactly-once sink (Kafka → PostgreSQL)." });

export const QuerySpec = z
  .object({
    replicas: z.number().int().min(0).max(100).default(1).meta({ description: "Replicas of the query API." }),
    cacheTtlSeconds: z.number().int().min(0).max(86400).default(10).meta({
      description:
        "Redis cache TTL of the query API's stats answers (per range of whole minutes); 0 disables the cache.",
    }),
    resources: Resources.optional(),
    traceUrlTemplate: z
      .string()
      .max(2048)
      .regex(/^https?:\/\/\S+$/)
      .refine((u) => u.includes("{traceId}"))
      .optional()
      .meta({
        description:
          "A link from the explorer to an external tracing UI: an http(s) URL in which `{traceId}` is replaced by the event's trace id (URL-encoded), e.g. `https://tracing.example.com/trace/{traceId}`.",
      }),
    authDisabled: z
      .boolean()
      .default(false)
      .meta({ description: "Turn API-key authentication of the query API off." }),
    apiKeysSecret: objectName(
      "Secret whose key `api-keys` holds the query keys, one `name:key` per line; `name[ingest-a,ingest-b]:key` reads only the events those ingest keys wrote. Ingest keys cannot read. Unset generates one named `<pipeline>-query-keys`.",
    ).optional(),
  })
  .meta({ description: "The read API over PostgreSQL." });

const LabelSelector = z
  .object({
    matchLabels: z
      .record(z.string().min(1).max(317), z.string().max(63))
      .optional()
      .meta({ description: "Labels a match must carry.", maxProperties: 32 }),
    matchExpressions: z
      .array(
        z
          .object({
            key: z.string().min(1).max(317).meta({ description: "Label key." }),
            operator: z
              .enum(["In", "NotIn", "Exists", "DoesNotExist"])
              .meta({ description: "How values apply." }),
            values: z
              .array(z.string().max(63))
              .max(64)
              .optional()
              .meta({ description: "Values (In, NotIn)." }),
          })
          .meta({ description: "One label requirement." }),
      )
      .max(16)
      .optional()
      .meta({ description: "Label requirements, all of which must hold." }),
  })
  .meta({ description: "A Kubernetes label selector; empty selects everything." });

const NetworkPeer = z
  .object({
    podSelector: LabelSelector.optional().meta({
      description: "Pods (in the pipeline's namespace unless namespaceSelector is set).",
    }),
    namespaceSelector: LabelSelector.optional().meta({ description: "Namespaces." }),
    ipBlock: z
      .object({
        cidr: z
          .string()
          .max(49)
          .regex(/^[0-9a-fA-F:.]+\/[0-9]{1,3}$/)
          .meta({ description: "A CIDR, e.g. 10.0.0.0/8." }),
        except: z
          .array(
            z
              .string()
              .max(49)
              .regex(/^[0-9a-fA-F:.]+\/[0-9]{1,3}$/),
          )
          .max(16)
          .optional()
          .meta({ description: "CIDRs inside cidr to leave out." }),
      })
      .optional()
      .meta({ description: "Addresses (for what does not run as pods)." }),
  })
  .meta({
    description: "A NetworkPolicy peer, as in networking.k8s.io/v1.",
    "x-kubernetes-validations": [
      celRule(
        "has(self.ipBlock) != (has(self.podSelector) || has(self.namespaceSelector))",
        "a peer is either an ipBlock or pod/namespace selectors",
      ),
    ],
  });

const NetworkPort = z
  .object({
    protocol: z.enum(["TCP", "UDP", "SCTP"]).default("TCP").meta({ description: "Protocol." }),
    port: z.number().int().min(1).max(65535).meta({ description: "Port (the pod's, after any Service)." }),
    endPort: z.number().int().min(1).max(65535).optional().meta({ description: "Last port of a range." }),
  })
  .meta({ description: "A port, as in networking.k8s.io/v1." });

export const NetworkSpec = z
  .object({
    policies: z.boolean().default(true).meta({
      description:
        "Create default-deny NetworkPolicies for every pod of the pipeline: in, only the API ports and the metrics port; out, only DNS, Kafka, PostgreSQL, Redis and `egress`. Enforced only where the cluster runs a NetworkPolicy enforcer.",
    }),
    apiFrom: z.array(NetworkPeer).max(16).optional().meta({
      description:
        "Who may reach the ingest and query APIs; unset allows any source (the Service and Ingress are the pipeline's front door). Set it to your ingress controller's and your apps' namespaces to narrow it.",
    }),
    metricsFrom: z.array(NetworkPeer).max(16).optional().meta({
      description:
        "Who may scrape the metrics port; unset allows any pod in the cluster, nothing outside it.",
    }),
    egress: z
      .array(
        z
          .object({
            to: z
              .array(NetworkPeer)
              .max(16)
              .optional()
              .meta({ description: "Destinations; unset means any." }),
            ports: z.array(NetworkPort).max(16).optional().meta({ description: "Ports; unset means all." }),
          })
          .meta({ description: "One egress rule, as in networking.k8s.io/v1." }),
      )
      .max(16)
      .default([])
      .meta({
        description:
          "Further destinations every workload may reach: a collector, a registry, or brokers of a Strimzi cluster that are not its pods.",
      }),
  })
  .meta({ description: "The pipeline's NetworkPolicies." });

export const LogPipelineSpec = z
  .object({
    suspend: z
      .boolean()
      .default(false)
      .meta({ description: "Stop reconciling: children are left exactly as they are." }),
    hibernate: z.boolean().default(false).meta({
      description:
        "Scale producer, consumer and query to 0 and remove their autoscalers; data and topics stay.",
    }),
    kafka: KafkaSpec,
    postgres: PostgresSpec.prefault({}),
    redis: RedisSpec.prefault({}),
    producer: ProducerSpec.prefault({}),
    consumer: ConsumerSpec.prefault({}),
    query: QuerySpec.prefault({}),
    network: NetworkSpec.prefault({}),
    images: z
      .object({
        producer: image("the producer"),
        consumer: image("the consumer"),
        query: image("the query API"),
      })
      .prefault({})
      .meta({ description: "Workload image overrides." }),
    autoscaling: z
      .object({
        scaleDownStabilizationSeconds: z
          .number()
          .int()
          .min(0)
          .max(3600)
          .default(300)
          .meta({ description: "How long autoscalers wait before scaling down." }),
      })
      .prefault({})
      .meta({ description: "Settings shared by the autoscalers." }),
    ingress: z
      .object({
        enabled: z
          .boolean()
          .default(false)
          .meta({ description: "Create an Ingress for the ingest and query APIs." }),
        className: objectName("IngressClass to use; unset uses the cluster default.").optional(),
        host: z.string().min(1).max(253).optional().meta({ description: "Host name of the ingest API." }),
        queryHost: z.string().min(1).max(253).optional().meta({
          description:
            "Host name of the query API (its paths overlap the ingest API's, so it needs its own host).",
        }),
        tlsSecret: objectName("kubernetes.io/tls Secret covering host and queryHost.").optional(),
      })
      .prefault({})
      .meta({
        description: "An Ingress for the ingest API (host) and, when queryHost is set, the query API.",
        "x-kubernetes-validations": [
          celRule("!self.enabled || has(self.host)", "ingress.host is required when ingress is enabled"),
        ],
      }),
    reconciliation: z
      .object({
        intervalSeconds: z
          .number()
          .int()
          .min(10)
          .max(86400)
          .default(300)
          .meta({ description: "How often the divergence check runs." }),
        alertAfterMinutes: z
          .number()
          .int()
          .min(1)
          .max(1440)
          .default(10)
          .meta({ description: "Divergence must last this long before its alert fires." }),
      })
      .prefault({})
      .meta({ description: "The Kafka-versus-PostgreSQL divergence check." }),
    monitoring: z
      .object({
        serviceMonitor: z
          .object({
            enabled: z
              .boolean()
              .default(true)
              .meta({ description: "Create a ServiceMonitor (when its CRD exists)." }),
            interval: z
              .string()
              .regex(/^[0-9]+(ms|s|m|h)$/)
              .default("30s")
              .meta({ description: "Scrape interval." }),
            labels: z.record(z.string().max(317), z.string().max(63)).optional().meta({
              description: "Extra labels, e.g. the selector of your Prometheus.",
              maxProperties: 32,
            }),
          })
          .prefault({})
          .meta({ description: "Prometheus Operator ServiceMonitor for the workloads' /metrics." }),
        prometheusRule: z
          .object({
            enabled: z
              .boolean()
              .default(true)
              .meta({ description: "Create a PrometheusRule (when its CRD exists)." }),
          })
          .prefault({})
          .meta({ description: "Alert rules of the pipeline." }),
        dashboards: z
          .object({
            enabled: z
              .boolean()
              .default(false)
              .meta({ description: "Ship the Grafana dashboard as a ConfigMap with the sidecar label." }),
          })
          .prefault({})
          .meta({ description: "Grafana dashboards." }),
      })
      .prefault({})
      .meta({ description: "Metrics, alerts and dashboards." }),
    deletionPolicy: z
      .object({
        topics: z
          .enum(["Retain", "Delete"])
          .default("Retain")
          .meta({ description: "What happens to the Kafka topics when the pipeline is deleted." }),
        postgres: z.enum(["Retain", "Delete"]).default("Retain").meta({
          description:
            "What happens to a managed PostgreSQL's volumes and credentials when the pipeline is deleted.",
        }),
        drainTimeoutSeconds: z.number().int().min(0).max(86400).default(300).meta({
          description:
            "With Delete, how long deletion waits for the consumer lag to drain (annotation logpipeline.io/skip-drain skips the wait).",
        }),
      })
      .prefault({})
      .meta({ description: "What deleting the pipeline does to its data." }),
  })
  .meta({
    description: "Desired state of the log pipeline.",
    "x-kubernetes-validations": [
      celRule(
        "self.consumer.replicas.max <= self.kafka.topic.partitions",
        "consumer.replicas.max must not exceed kafka.topic.partitions (a partition feeds one consumer)",
      ),
    ],
  });

const ReplicaSummary = z
  .object({
    desired: z.number().int().meta({ description: "Replicas wanted." }),
    ready: z.number().int().meta({ description: "Replicas ready." }),
    summary: z.string().meta({ description: "ready/desired, as the printer column shows it." }),
  })
  .meta({ description: "Replica counts of a workload." });

export const ConditionSchema = z
  .object({
    type: z.string().max(316).meta({ description: "Type of condition, in CamelCase." }),
    status: z.enum(["True", "False", "Unknown"]).meta({ description: "Status of the condition." }),
    observedGeneration: z
      .number()
      .int()
      .optional()
      .meta({ description: "The generation the condition was set for." }),
    lastTransitionTime: z.string().meta({ description: "When status last changed.", format: "date-time" }),
    reason: z.string().max(1024).meta({ description: "A CamelCase, machine-readable reason." }),
    message: z.string().max(32768).meta({ description: "A human-readable message." }),
  })
  .meta({ description: "A metav1.Condition." });

const PartitionDelivery = z
  .object({
    partition: z.number().int().meta({ description: "Partition number." }),
    lastStableOffset: z
      .number()
      .int()
      .meta({ description: "Kafka's last stable offset (read_committed end)." }),
    dbNextOffset: z
      .number()
      .int()
      .meta({ description: "Next offset the consumer will store, from the ledger in PostgreSQL." }),
    lag: z.number().int().meta({
      description:
        "Committed records not yet stored: counted exactly when the gap is at most 10000 offsets, else the offset gap (an upper bound: it includes transaction markers).",
    }),
    stalled: z
      .object({
        sqlstate: z.string().meta({ description: "PostgreSQL's SQLSTATE (e.g. 42501, permission denied)." }),
        reason: z.string().meta({ description: "PostgreSQL's message." }),
        since: z.string().meta({ description: "When the partition stalled (RFC 3339)." }),
      })
      .optional()
      .meta({
        description:
          "Set while PostgreSQL refuses this partition's batches for a reason that is not the data's (a permission, the table): the consumer waits and retries, nothing is dead-lettered.",
      }),
  })
  .meta({ description: "Where Kafka and PostgreSQL stand on one partition." });

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
    conditions: z
      .array(ConditionSchema)
      .optional()
      .meta({
        description:
          "Ready, TopicsReady, PostgresReady, RedisReady, ProducerAvailable, ConsumerAvailable, QueryAvailable, DataConsistent, IntegrationsAvailable (optional CRDs such as KEDA or ServiceMonitor), Reconciling, Stalled.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
      }),
    topics: z
      .object({
        main: z.string().meta({ description: "Main topic name." }),
        deadLetter: z.string().optional().meta({ description: "Dead-letter topic name." }),
        consumerGroup: z.string().meta({ description: "Consumer group id." }),
        bootstrapServers: z.string().meta({ description: "Brokers the workloads connect to." }),
        created: z.array(z.string()).optional().meta({
          description:
            "Topics the operator created for this pipeline (mode external), recorded before each creation: the only ones it deletes under deletionPolicy topics: Delete, unless kafka.topic.adopt is set.",
        }),
      })
      .optional()
      .meta({ description: "The Kafka names this pipeline uses." }),
    endpoints: z
      .object({
        ingest: z.string().optional().meta({ description: "In-cluster URL of the ingest API." }),
        query: z.string().optional().meta({ description: "In-cluster URL of the query API." }),
        otlp: z.string().optional().meta({
          description:
            "In-cluster OTLP/HTTP logs URL (an exporter's logs endpoint; through the Ingress: https://<host>/v1/logs). docs/otlp.md.",
        }),
        ingressHost: z
          .string()
          .optional()
          .meta({ description: "External host, when an Ingress is enabled." }),
      })
      .optional()
      .meta({ description: "Where to send and read events." }),
    workloads: z
      .object({
        producer: ReplicaSummary.optional(),
        consumer: ReplicaSummary.optional(),
        query: ReplicaSummary.optional(),
      })
      .optional()
      .meta({ description: "Replica counts of the workloads." }),
    delivery: z
      .object({
        asOf: z.string().meta({ description: "When these figures were read." }),
        partitions: z.array(PartitionDelivery).optional().meta({ description: "One row per partition." }),
        lag: z.number().int().meta({ description: "Total lag of all partitions." }),
        processed: z.number().int().optional().meta({
          description:
            "Events the consumers have taken from the topic so far: stored, skipped as duplicates or dead-lettered.",
        }),
        dlq: z.number().int().meta({ description: "Events dead-lettered so far." }),
        duplicatesSkipped: z
          .number()
          .int()
          .meta({ description: "Events the consumer skipped as duplicates so far." }),
      })
      .optional()
      .meta({ description: "Delivery figures from the operator's own reads of Kafka and the ledger." }),
    capacity: z
      .object({
        asOf: z.string().meta({
          description:
            "When these figures were computed (at most once per resync); figures computed again unchanged keep it, with their window.",
        }),
        windowEnd: z.string().meta({
          description:
            "When the newest delivery read in the window was taken; the window is the windowSeconds before it.",
        }),
        windowSeconds: z.number().int().meta({ description: "The span of the delivery reads it rests on." }),
        samples: z.number().int().meta({ description: "Delivery reads in the window." }),
        ingest: z
          .object({
            meanPerSecond: z
              .number()
              .meta({ description: "Events/s committed to the topic, over the window." }),
            peakPerSecond: z
              .number()
              .meta({ description: "The busiest interval between two reads, events/s." }),
          })
          .meta({ description: "The ingest rate." }),
        consumer: z
          .object({
            perReplicaPerSecond: z.number().meta({ description: "Events/s one consumer replica carries." }),
            source: z.enum(["measured", "assumed"]).meta({
              description:
                "measured: the busiest interval in which events waited for the consumers throughout; assumed: the operator's CAPACITY_CONSUMER_EVENTS_PER_SECOND (no interval saturated them).",
            }),
          })
          .meta({ description: "The consumer's rate per replica." }),
        partitions: z
          .object({
            current: z.number().int().meta({ description: "Partitions of the topic." }),
            needed: z
              .number()
              .int()
              .meta({ description: "Partitions the observed peak needs for the consumers to keep up." }),
          })
          .meta({ description: "Partitions against the observed peak." }),
        kafka: z
          .object({
            bytesPerEvent: z.number().optional().meta({
              description:
                "Mean key + value bytes of the records the last divergence check read (before compression).",
            }),
            bytesPerDay: z.number().optional().meta({
              description:
                "Bytes a day written to Kafka at the mean rate, every replica counted (upper bound).",
            }),
            logBytesPerPartition: z.number().optional().meta({
              description:
                "A bound on one partition replica's log: rate per partition × retention × bytes per event (DescribeLogDirs is not available to the operator).",
            }),
          })
          .meta({ description: "Kafka's disk." }),
        postgres: z
          .object({
            bytesPerEvent: z
              .number()
              .optional()
              .meta({ description: "The events table (indexes and TOAST included) ÷ the events it holds." }),
            databaseBytes: z.number().optional().meta({ description: "pg_database_size of the database." }),
            volumeBytes: z.number().optional().meta({
              description:
                "The managed volume's requested size (local volumes enforce none: the request is the honest bound), or postgres.external.volumeSize.",
            }),
            volumeSource: z
              .enum(["managed", "stated"])
              .optional()
              .meta({ description: "Where volumeBytes comes from." }),
            daysUntilFull: z.number().optional().meta({
              description: "Days until the volume is full at the mean rate; absent when it does not fill.",
            }),
            retentionDaysSupported: z
              .number()
              .optional()
              .meta({ description: "Days of events the volume holds at the mean rate." }),
          })
          .meta({ description: "PostgreSQL's volume." }),
        recommendations: z
          .array(
            z.object({
              subject: z
                .enum(["partitions", "postgresVolume", "kafkaDisk"])
                .meta({ description: "What it is about." }),
              advice: z
                .string()
                .max(512)
                .meta({ description: 'What to do; "none" when nothing needs doing.' }),
              reason: z.string().max(1024).meta({ description: "Why, in one line." }),
              figures: z
                .record(z.string().max(64), z.string().max(128))
                .meta({ description: "The figures the advice came from, rounded." }),
            }),
          )
          .max(8)
          .meta({ description: "One piece of advice per subject, with its figures and reason." }),
      })
      .optional()
      .meta({
        description:
          "Capacity and cost advice from the pipeline's own measurements (docs/capacity.md); CapacityAtRisk says whether to act.",
      }),
    storage: z
      .object({
        partitions: z.number().int().meta({ description: "Hourly partitions of the events table." }),
        oldest: z.string().optional().meta({ description: "Start of the oldest partition (RFC 3339)." }),
        newest: z
          .string()
          .optional()
          .meta({ description: "Start of the newest partition, made ahead of time." }),
        unindexedClosed: z
          .number()
          .int()
          .meta({ description: "Closed partitions still waiting for their full-text index." }),
        indexDelaySeconds: z.number().int().meta({
          description:
            "How long the oldest of them has waited since it closed (0: none waits); searches there scan in bounded slices meanwhile.",
        }),
        upgradeInProgress: z.boolean().meta({
          description: "An upgraded pipeline's unpartitioned table is still being moved into the partitions.",
        }),
      })
      .optional()
      .meta({
        description: "The events table's time partitions (docs/storage.md), as of the last divergence check.",
      }),
    divergence: z
      .object({
        checkedAt: z.string().optional().meta({ description: "When the last check finished." }),
        trigger: z.string().max(256).optional().meta({
          description:
            "The `logpipeline.io/check-now` value when the check behind these figures started: once it equals the value you set, the figures are from a check started after you asked.",
        }),
        summary: z
          .string()
          .optional()
          .meta({ description: "What the DIVERGENCE column shows, e.g. `0` or `3 missing`." }),
        missing: z
          .number()
          .int()
          .optional()
          .meta({ description: "Events committed in Kafka and absent from PostgreSQL." }),
        duplicated: z.number().int().optional().meta({ description: "Events stored more than once." }),
        spurious: z.number().int().optional().meta({ description: "Rows without a committed Kafka record." }),
        expired: z.number().int().optional().meta({
          description:
            "Committed events older than postgres.retentionDays with no row: their hourly partition was dropped by the retention, not missing.",
        }),
        lag: z.number().int().optional().meta({
          description:
            "Offsets between Kafka's last stable offsets and the stored positions, all partitions.",
        }),
        message: z.string().max(1024).optional().meta({ description: "The last check's story in one line." }),
        window: z
          .object({
            offsetsPerPartition: z.number().int().meta({
              description:
                "Offsets each check compares per partition: the latest the consumer has passed, and as many in the sweep window below them.",
            }),
          })
          .optional()
          .meta({ description: "What each check covers." }),
        samples: z
          .object({
            missing: z
              .array(z.string().max(64))
              .max(10)
              .optional()
              .meta({ description: "Event ids missing from PostgreSQL (at most 10)." }),
            duplicated: z
              .array(z.string().max(64))
              .max(10)
              .optional()
              .meta({ description: "Event ids stored more than once (at most 10)." }),
            spurious: z
              .array(z.string().max(64))
              .max(10)
              .optional()
              .meta({ description: "Event ids of rows without a committed record (at most 10)." }),
          })
          .optional()
          .meta({ description: "A bounded sample of what differs, for a first look." }),
        partitions: z
          .array(
            z
              .object({
                partition: z.number().int().meta({ description: "Partition number." }),
                lastStableOffset: z
                  .number()
                  .int()
                  .meta({ description: "Kafka's last stable offset (read_committed)." }),
                storedNextOffset: z
                  .number()
                  .int()
                  .meta({ description: "The consumer's next offset, stored in PostgreSQL with the rows." }),
                groupCommittedOffset: z.number().int().optional().meta({
                  description: "The consumer group's committed offset in Kafka (best effort, for lag tools).",
                }),
                lag: z
                  .number()
                  .int()
                  .meta({ description: "lastStableOffset − storedNextOffset (markers included)." }),
                stuck: z
                  .boolean()
                  .meta({ description: "The stored position stood still while committed work waited." }),
                windowFrom: z.number().int().meta({ description: "First offset compared." }),
                windowTo: z.number().int().meta({ description: "End of the compared offsets (exclusive)." }),
                sweepFrom: z.number().int().optional().meta({
                  description:
                    "First offset of the older window this check swept (each check sweeps the next one down to the log start, then starts again).",
                }),
                sweepTo: z
                  .number()
                  .int()
                  .optional()
                  .meta({ description: "End of the swept window (exclusive)." }),
                kafkaRecords: z
                  .number()
                  .int()
                  .meta({ description: "Committed records Kafka holds in the latest and the swept window." }),
                missing: z.number().int().meta({ description: "Of them, not in PostgreSQL." }),
                duplicated: z.number().int().meta({ description: "Stored more than once." }),
                spurious: z.number().int().meta({ description: "Rows without a committed record." }),
                expired: z
                  .number()
                  .int()
                  .optional()
                  .meta({ description: "Records older than the retention, their rows deleted by it." }),
              })
              .meta({ description: "One partition's figures in the last check." }),
          )
          .max(1000)
          .optional()
          .meta({ description: "One row per partition." }),
        specDifferences: z
          .array(
            z
              .object({
                object: z.string().meta({ description: "kind/name of the child." }),
                field: z.string().meta({ description: "The field that differs." }),
                reason: z.string().meta({ description: "Why it differs." }),
              })
              .meta({
                description: "One difference between what the operator wants and what the cluster has.",
              }),
          )
          .optional()
          .meta({ description: "Differences between the desired and the actual children." }),
      })
      .optional()
      .meta({ description: "The divergence check's findings." }),
  })
  .meta({ description: "Observed state of the log pipeline, written only by the operator." });

/** The spec as the operator uses it: every default applied. */
export type LogPipelineSpec = z.output<typeof LogPipelineSpec>;
export type LogPipelineStatus = z.infer<typeof LogPipelineStatus>;

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  generation?: number;
  resourceVersion?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  creationTimestamp?: string;
}

/** A LogPipeline as read from the API server, spec already parsed (defaults applied). */
export interface LogPipeline {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: LogPipelineSpec;
  status?: LogPipelineStatus;
}

/** Annotations users set on a LogPipeline. */
export const ANNOTATION_SKIP_DRAIN = `${GROUP}/skip-drain`;
/** Any new value runs the divergence check now (e.g. `kubectl annotate lp x logpipeline.io/check-now=$(date +%s) --overwrite`). */
export const ANNOTATION_CHECK_NOW = `${GROUP}/check-now`;
export const FINALIZER = `${GROUP}/finalizer`;
