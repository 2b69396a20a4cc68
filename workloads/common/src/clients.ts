import { readFileSync } from "node:fs";
import confluent from "@confluentinc/kafka-javascript";
import { Redis } from "ioredis";
import pg from "pg";
import type { z } from "zod";
import { secretFrom, type KafkaEnv, type PostgresEnv, type RedisEnv } from "./config.js";
import { librdkafkaSecurity, postgresSsl } from "./connections.js";
import type { Logger } from "./logger.js";

/**
 * Clients built from the validated environment. The Kafka client sits behind these few
 * functions (one small interface), so a switch of library costs one file.
 */
export const { Kafka, logLevel: KafkaLogLevel } = confluent.KafkaJS;
export type KafkaClient = InstanceType<typeof Kafka>;
export type KafkaProducer = ReturnType<KafkaClient["producer"]>;
export type KafkaConsumer = ReturnType<KafkaClient["consumer"]>;
export type KafkaAdmin = ReturnType<KafkaClient["admin"]>;

/** librdkafka settings for TLS and SASL/SCRAM, from files the operator mounts from Secrets. */
export function kafkaSecurityConfig(env: z.infer<typeof KafkaEnv>): Record<string, string> {
  const file = (f: string | undefined) => (f ? { file: f } : undefined);
  return librdkafkaSecurity({
    protocol: env.KAFKA_SECURITY_PROTOCOL,
    sasl: {
      mechanism: env.KAFKA_SASL_MECHANISM ?? "SCRAM-SHA-512",
      username: env.KAFKA_SASL_USERNAME ?? "",
      password: secretFrom(undefined, env.KAFKA_SASL_PASSWORD_FILE) ?? "",
    },
    tls: {
      ca: file(env.KAFKA_TLS_CA_FILE),
      cert: file(env.KAFKA_TLS_CERT_FILE),
      key: file(env.KAFKA_TLS_KEY_FILE),
    },
  });
}

/** The Kafka client's own log lines, into the workload's JSON log (not the console). */
function kafkaLogger(log: Logger): confluent.KafkaJS.Logger {
  const child = log.child({ component: "kafka" });
  const adapter: confluent.KafkaJS.Logger = {
    info: (message, extra) => child.info(extra ?? {}, message),
    // librdkafka reports every lost connection as an error; while a broker is away these are
    // expected and repeat many times a second, so they are warnings.
    error: (message, extra) =>
      /all broker connections are down|broker transport failure|Connection refused/.test(message)
        ? child.warn(extra ?? {}, message)
        : child.error(extra ?? {}, message),
    warn: (message, extra) => child.warn(extra ?? {}, message),
    debug: (message, extra) => child.debug(extra ?? {}, message),
    namespace: () => adapter,
    setLogLevel: () => undefined,
  };
  return adapter;
}

export function kafkaClient(env: z.infer<typeof KafkaEnv>, clientId: string, log: Logger): KafkaClient {
  return new Kafka({
    kafkaJS: {
      brokers: env.KAFKA_BOOTSTRAP_SERVERS.split(","),
      clientId: env.KAFKA_CLIENT_ID ?? clientId,
      logLevel: KafkaLogLevel.WARN,
      logger: kafkaLogger(log),
    },
    ...kafkaSecurityConfig(env),
  });
}

export function pgPool(
  env: z.infer<typeof PostgresEnv>,
  applicationName: string,
  opts: {
    statementTimeoutMs?: number;
    /** Another login than PG_USER (the consumer's schema owner), and the role it acts as. */
    login?: { user: string; password: string | undefined; role?: string | undefined; max: number };
  } = {},
): pg.Pool {
  const ssl = postgresSsl(env.PG_SSLMODE, env.PG_SSL_CA_FILE && readFileSync(env.PG_SSL_CA_FILE, "utf8"));
  const password = opts.login ? opts.login.password : secretFrom(env.PG_PASSWORD, env.PG_PASSWORD_FILE);
  const pool = new pg.Pool({
    host: env.PG_HOST,
    port: env.PG_PORT,
    database: env.PG_DATABASE,
    user: opts.login?.user ?? env.PG_USER,
    ...(password !== undefined && { password }),
    ssl,
    max: opts.login?.max ?? env.PG_POOL_MAX,
    application_name: applicationName,
    connectionTimeoutMillis: 5000,
    ...(opts.statementTimeoutMs !== undefined && { statement_timeout: opts.statementTimeoutMs }),
  });
  const role = opts.login?.role;
  // Objects it creates belong to the group role, whichever of its logins made them.
  if (role)
    pool.on("connect", (c) => void c.query(`SET ROLE ${pg.escapeIdentifier(role)}`).catch(() => undefined));
  return pool;
}

/** A Redis client, or undefined when Redis is not configured. Never blocks start-up. */
export function redisClient(env: z.infer<typeof RedisEnv>): Redis | undefined {
  if (!env.REDIS_URL) return undefined;
  const password = secretFrom(env.REDIS_PASSWORD, env.REDIS_PASSWORD_FILE);
  // rediss://: verified against the given CA, else the system's (never unverified).
  const tls = env.REDIS_URL.startsWith("rediss://")
    ? { tls: { ...(env.REDIS_TLS_CA_FILE ? { ca: readFileSync(env.REDIS_TLS_CA_FILE, "utf8") } : {}) } }
    : {};
  return new Redis(env.REDIS_URL, {
    ...(password !== undefined && { password }),
    ...tls,
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: 1000,
    retryStrategy: (times) => Math.min(times * 200, 5000),
  });
}
