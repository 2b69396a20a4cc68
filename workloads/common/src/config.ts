import { readFileSync } from "node:fs";
import { z } from "zod";

/**
 * The environment of each workload, as zod schemas. They are the contract with the
 * operator: its builders import these names to produce each Deployment's env, so a renamed
 * variable breaks the build, not the cluster. Secrets arrive as files (mounted Secrets) or
 * as env from secretKeyRef, never in a ConfigMap.
 */

const int = (min: number, max: number, dflt: number) =>
  z.coerce.number().int().min(min).max(max).default(dflt);
const bool = (dflt: boolean) => z.stringbool().default(dflt);
const csv = z.string().transform((s) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean),
);

export const CommonEnv = z.object({
  PIPELINE_NAME: z.string().min(1).default("logpipeline"),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"),
});

export const HttpEnv = z.object({
  HOST: z.string().default("0.0.0.0"),
  PORT: int(1, 65535, 8080),
  /** Open connections at most; more are closed as they arrive (0: no cap). */
  HTTP_MAX_CONNECTIONS: int(0, 1_000_000, 1024),
  /** /metrics (and /healthz, /readyz) on a port of their own, never the API's public port. */
  METRICS_PORT: int(1, 65535, 9090),
});

/** Bytes a Kafka record may need beside its value (key, headers, record and batch framing). */
export const KAFKA_RECORD_OVERHEAD = 4096;

export const KafkaEnv = z.object({
  KAFKA_BOOTSTRAP_SERVERS: z.string().min(1),
  KAFKA_TOPIC: z.string().min(1).max(249),
  KAFKA_CLIENT_ID: z.string().min(1).optional(),
  KAFKA_SECURITY_PROTOCOL: z.enum(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]).default("PLAINTEXT"),
  KAFKA_SASL_MECHANISM: z.enum(["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]).optional(),
  KAFKA_SASL_USERNAME: z.string().optional(),
  KAFKA_SASL_PASSWORD_FILE: z.string().optional(),
  KAFKA_TLS_CA_FILE: z.string().optional(),
  KAFKA_TLS_CERT_FILE: z.string().optional(),
  KAFKA_TLS_KEY_FILE: z.string().optional(),
});

export const PostgresEnv = z.object({
  PG_HOST: z.string().min(1),
  PG_PORT: int(1, 65535, 5432),
  PG_DATABASE: z.string().min(1).default("logpipeline"),
  PG_USER: z.string().min(1),
  PG_PASSWORD: z.string().optional(),
  PG_PASSWORD_FILE: z.string().optional(),
  PG_SSLMODE: z.enum(["disable", "prefer", "require", "verify-ca", "verify-full"]).default("verify-full"),
  PG_SSL_CA_FILE: z.string().optional(),
  PG_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/)
    .default("public"),
  PG_TABLE: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/)
    .default("logs"),
  PG_POOL_MAX: int(1, 100, 10),
});

export const RedisEnv = z.object({
  /** Unset disables Redis: ingest and queries go on without it (PostgreSQL still deduplicates). */
  REDIS_URL: z.url().optional(),
  REDIS_PASSWORD: z.string().optional(),
  REDIS_PASSWORD_FILE: z.string().optional(),
  /** PEM CA bundle a rediss:// server is verified with (the server is always verified). */
  REDIS_TLS_CA_FILE: z.string().optional(),
  /**
   * Every key this workload writes starts with it: the operator sets `lp:<namespace>:<uid>:`,
   * so pipelines sharing one Redis (same-named ones in two namespaces included) never share an
   * idempotency answer, a rate bucket or a cached count.
   */
  REDIS_KEY_PREFIX: z
    .string()
    .min(1)
    .max(200)
    .regex(/:$/, { message: "must end with ':'" })
    .default("lp:logpipeline:"),
});

export const ProducerEnv = CommonEnv.extend({
  ...HttpEnv.shape,
  ...KafkaEnv.shape,
  ...RedisEnv.shape,
  /** File with one API key per line, `name:key` (a mounted Secret). */
  API_KEYS_FILE: z.string().optional(),
  AUTH_DISABLED: bool(false),
  DELIVERY: z.enum(["exactlyOnce", "atLeastOnce"]).default("exactlyOnce"),
  TRANSACTIONAL_ID: z
    .string()
    .optional()
    .transform((v) => (v === "" ? undefined : v)),
  /**
   * Kafka transactions in flight at once (each lane is a producer with id TRANSACTIONAL_ID-<n>).
   * Two: one commit can wait on the broker while the next batch fills; a third only added
   * broker CPU (5,300 against 7,100 single-event req/s with the broker on the same two cores).
   */
  PRODUCER_LANES: int(1, 32, 2),
  KAFKA_COMPRESSION: z.enum(["none", "gzip", "snappy", "lz4", "zstd"]).default("lz4"),
  BATCH_MAX_EVENTS: int(1, 100_000, 2000),
  /** How long a batch may wait for Kafka before it fails (and its requests get 503). */
  KAFKA_DELIVERY_TIMEOUT_MS: int(1000, 300_000, 10_000),
  BATCH_LINGER_MS: int(0, 10_000, 5),
  REQUEST_MAX_EVENTS: int(1, 100_000, 1000),
  /** Body size at most, after decompression (gzip and deflate are accepted). */
  REQUEST_MAX_BYTES: int(1024, 64 * 1024 * 1024, 1024 * 1024),
  /**
   * librdkafka's message.max.bytes: the largest record the producer sends. The operator sets
   * it from the topic's max.message.bytes when the spec sets that lower.
   */
  KAFKA_MESSAGE_MAX_BYTES: int(8192, 100_000_000, 1_000_000),
  /**
   * One event, serialized, at most (413 above it, or a failed item in a batch). Below
   * KAFKA_MESSAGE_MAX_BYTES, so Kafka never refuses an accepted event and no event can fail
   * the transaction it shares with other clients' events.
   */
  EVENT_MAX_BYTES: int(1024, 100_000_000, 256 * 1024),
  /** Ingest requests in progress at once in this replica, and per client; more get 429. */
  INGEST_MAX_IN_FLIGHT: int(1, 1_000_000, 2048),
  INGEST_MAX_IN_FLIGHT_PER_CLIENT: int(1, 1_000_000, 256),
  BUFFER_MAX_EVENTS: int(1, 10_000_000, 100_000),
  PRIORITY_LEVELS: csv.default(["ERROR", "FATAL"]),
  PRIORITY_PARTITIONS: int(0, 1000, 1),
  IDEMPOTENCY_TTL_SECONDS: int(1, 30 * 86_400, 86_400),
  RATE_LIMIT_PER_SECOND: int(0, 10_000_000, 0),
  RATE_LIMIT_BURST: int(0, 10_000_000, 0),
  REDIS_FAILURE_MODE: z.enum(["open", "closed"]).default("open"),
  CIRCUIT_ERROR_PERCENT: int(1, 100, 50),
  CIRCUIT_WINDOW_MS: int(1000, 600_000, 10_000),
  CIRCUIT_RESET_MS: int(100, 600_000, 5_000),
  SHUTDOWN_GRACE_MS: int(0, 600_000, 20_000),
}).superRefine((env, ctx) => {
  if (!env.AUTH_DISABLED && !env.API_KEYS_FILE)
    ctx.addIssue({ code: "custom", path: ["API_KEYS_FILE"], message: "required unless AUTH_DISABLED=true" });
  if (env.EVENT_MAX_BYTES + KAFKA_RECORD_OVERHEAD > env.KAFKA_MESSAGE_MAX_BYTES)
    ctx.addIssue({
      code: "custom",
      path: ["EVENT_MAX_BYTES"],
      message: `must be at most KAFKA_MESSAGE_MAX_BYTES - ${KAFKA_RECORD_OVERHEAD} (${env.KAFKA_MESSAGE_MAX_BYTES - KAFKA_RECORD_OVERHEAD})`,
    });
  if (env.DELIVERY === "exactlyOnce" && !env.TRANSACTIONAL_ID)
    ctx.addIssue({
      code: "custom",
      path: ["TRANSACTIONAL_ID"],
      message: "required when DELIVERY=exactlyOnce",
    });
});
export type ProducerEnv = z.infer<typeof ProducerEnv>;

export const ConsumerEnv = CommonEnv.extend({
  ...KafkaEnv.shape,
  ...PostgresEnv.shape,
  /**
   * The schema owner's login, for DDL, partition maintenance and retention (the rows go in as
   * PG_USER). Unset: PG_USER does both (an external server with one role). PG_OWNER_ROLE is
   * the role it acts as (SET ROLE), so what it creates belongs to the role, not the login.
   */
  PG_OWNER_USER: z.string().min(1).optional(),
  PG_OWNER_PASSWORD_FILE: z.string().optional(),
  PG_OWNER_ROLE: z.string().min(1).max(63).optional(),
  KAFKA_GROUP_ID: z.string().min(1),
  KAFKA_DLQ_TOPIC: z.string().min(1).max(249).optional(),
  DLQ_TRANSACTIONAL_ID: z.string().min(1).optional(),
  BATCH_MAX_EVENTS: int(1, 100_000, 2000),
  KAFKA_SESSION_TIMEOUT_MS: int(6000, 300_000, 10_000),
  /** Transient errors: retried after 1 s, 2 s, 4 s, then every 4 s by default (with jitter), never skipped. */
  RETRY_BACKOFF_MS: int(1, 600_000, 1000),
  RETRY_BACKOFF_MAX_MS: int(1, 3_600_000, 4000),
  METRICS_PORT: int(1, 65535, 9090),
  /** Days events are kept in PostgreSQL, by their stored time; whole hourly partitions are dropped. 0 keeps them for ever. */
  RETENTION_DAYS: int(0, 36_500, 0),
  /** Time between partition maintenance passes (make ahead, drop, index, move an upgrade's rows). */
  PARTITION_MAINTENANCE_SECONDS: int(1, 3600, 60),
  /** How long the deduplication keys of client-named events are kept: at least the gateway's IDEMPOTENCY_TTL_SECONDS. */
  DEDUP_WINDOW_HOURS: int(1, 24 * 31, 48),
  /** Rows per transaction when an upgrade moves an unpartitioned table's rows into the partitions. */
  UPGRADE_MOVE_BATCH_ROWS: int(1, 100_000, 5000),
});
export type ConsumerEnv = z.infer<typeof ConsumerEnv>;

export const QueryEnv = CommonEnv.extend({
  ...HttpEnv.shape,
  ...PostgresEnv.shape,
  ...RedisEnv.shape,
  API_KEYS_FILE: z.string().optional(),
  AUTH_DISABLED: bool(false),
  CACHE_TTL_SECONDS: int(0, 86_400, 10),
  MAX_PAGE_SIZE: int(1, 10_000, 500),
  MAX_RANGE_HOURS: int(1, 24 * 366, 24 * 31),
  /** A search's time budget by default; a request may ask for up to QUERY_BUDGET_MAX_MS. */
  QUERY_BUDGET_MS: int(10, 60_000, 3000),
  QUERY_BUDGET_MAX_MS: int(10, 300_000, 30_000),
  /** Per API key: reads per second and burst (token bucket in Redis; 0 disables). */
  QUERY_RATE_PER_SECOND: int(0, 100_000, 20),
  QUERY_RATE_BURST: int(1, 100_000, 40),
  /** Reads running at once in this replica; more are refused with 429 (PostgreSQL stays free for ingest). */
  QUERY_CONCURRENCY: int(1, 1000, 8),
  /** Live tails open at once in this replica. */
  MAX_TAILS: int(0, 10_000, 16),
  /** The explorer's built page (index.html, app.js, app.css); default: dist/explorer beside the code. */
  EXPLORER_DIR: z.string().min(1).optional(),
  /**
   * A link from a trace id to an external tracing UI, `{traceId}` replaced by the id (URL-encoded);
   * http(s) only. Unset: the explorer only filters to the trace.
   */
  TRACE_URL_TEMPLATE: z
    .string()
    .max(2048)
    .refine((s) => /^https?:\/\/[^\s]+$/.test(s) && s.includes("{traceId}"), {
      message: "an http(s) URL containing {traceId}",
    })
    .optional(),
  /**
   * The completeness banner's source: the file the operator's `<pipeline>-completeness`
   * ConfigMap is mounted as (workloads/common/src/completeness.ts). Unset: the banner says "unknown".
   */
  COMPLETENESS_FILE: z.string().min(1).optional(),
  /** How often the file is read again, and the page asks for it. */
  STATUS_REFRESH_SECONDS: int(1, 3600, 10),
});
export type QueryEnv = z.infer<typeof QueryEnv>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Parses the environment; a bad or missing variable throws a ConfigError naming it. */
export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const r = schema.safeParse(env);
  if (r.success) return r.data;
  throw new ConfigError(
    r.error.issues.map((i) => {
      const name = String(i.path[0] ?? "environment");
      const value = env[name];
      if (value === undefined) return `${name}: ${i.code === "invalid_type" ? "required" : i.message}`;
      const shown = /PASSWORD|SECRET|TOKEN|KEY$/.test(name) ? "<redacted>" : `"${value}"`;
      return `${name}: ${i.message} (got ${shown})`;
    }),
  );
}

/** A secret given either inline (env from a secretKeyRef) or as a mounted file. */
export function secretFrom(inline: string | undefined, file: string | undefined): string | undefined {
  if (inline !== undefined) return inline;
  if (file === undefined) return undefined;
  return readFileSync(file, "utf8").trim();
}
