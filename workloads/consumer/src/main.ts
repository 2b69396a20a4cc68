import { kafkaClient, pgPool } from "../../common/src/clients.js";
import { ConsumerEnv, parseEnv, secretFrom } from "../../common/src/config.js";
import { ledgerDdl, ledgerNames } from "../../common/src/ledger.js";
import { createLogger } from "../../common/src/logger.js";
import { createRegistry } from "../../common/src/metrics.js";
import { runMain, serveOps } from "../../common/src/process.js";
import { Sink } from "./consumer.js";
import { errorHandling } from "./sink.js";
import { Partitions } from "./partitions.js";
import { errorText } from "../../common/src/connections.js";

runMain("consumer", async () => {
  const env = parseEnv(ConsumerEnv);
  const log = createLogger("consumer", env.LOG_LEVEL);
  const registry = createRegistry("consumer", env.PIPELINE_NAME);
  const names = ledgerNames(env.PG_SCHEMA, env.PG_TABLE);
  const pool = pgPool(env, `logpipeline-consumer-${env.PIPELINE_NAME}`);
  pool.on("error", (e) => log.warn({ err: errorText(e) }, "idle PostgreSQL connection failed"));
  // DDL, partitions and retention as the schema owner; rows as PG_USER (the writer).
  const ownerPool = env.PG_OWNER_USER
    ? pgPool(env, `logpipeline-consumer-owner-${env.PIPELINE_NAME}`, {
        login: {
          user: env.PG_OWNER_USER,
          password: secretFrom(undefined, env.PG_OWNER_PASSWORD_FILE),
          role: env.PG_OWNER_ROLE,
          max: 2,
        },
      })
    : pool;
  if (ownerPool !== pool)
    ownerPool.on("error", (e) => log.warn({ err: errorText(e) }, "idle PostgreSQL connection failed"));
  // Health at once; ready once the sink runs. The server may still be starting, or its roles
  // still being made by the operator: the DDL is retried until it goes through.
  const started: { sink?: Sink } = {};
  const ops = await serveOps(env.METRICS_PORT, "0.0.0.0", registry, () => started.sink?.ready ?? false);
  for (let attempt = 1; ; attempt++) {
    try {
      await ownerPool.query(ledgerDdl(names));
      break;
    } catch (e) {
      const code = (e as { code?: string }).code ?? "";
      if (errorHandling(e) !== "retry" && !code.startsWith("28") && code !== "3D000") throw e;
      const wait = Math.min(env.RETRY_BACKOFF_MAX_MS, env.RETRY_BACKOFF_MS * 2 ** Math.min(attempt - 1, 10));
      log.warn(
        { attempt, retryInMs: wait, err: errorText(e) },
        "PostgreSQL not usable yet; retrying the migration",
      );
      await new Promise((r) => setTimeout(r, wait));
    }
  }
  const partitions = new Partitions(
    ownerPool,
    names,
    {
      retentionDays: env.RETENTION_DAYS,
      dedupWindowHours: env.DEDUP_WINDOW_HOURS,
      intervalMs: env.PARTITION_MAINTENANCE_SECONDS * 1000,
      moveBatchRows: env.UPGRADE_MOVE_BATCH_ROWS,
      topic: env.KAFKA_TOPIC,
    },
    log,
    registry,
  );
  const sink = new Sink(
    {
      topic: env.KAFKA_TOPIC,
      groupId: env.KAFKA_GROUP_ID,
      dlqTopic: env.KAFKA_DLQ_TOPIC,
      dlqTransactionalId: env.DLQ_TRANSACTIONAL_ID,
      batchMaxEvents: env.BATCH_MAX_EVENTS,
      sessionTimeoutMs: env.KAFKA_SESSION_TIMEOUT_MS,
      backoffMs: env.RETRY_BACKOFF_MS,
      backoffMaxMs: env.RETRY_BACKOFF_MAX_MS,
      pipeline: env.PIPELINE_NAME,
      retentionDays: env.RETENTION_DAYS,
    },
    { kafka: kafkaClient(env, "logpipeline-consumer", log), pool, names, partitions, log, registry },
  );
  partitions.start();
  started.sink = sink;
  await sink.start();
  return {
    log,
    stop: async () => {
      await partitions.stop();
      await sink.stop();
      ops.close();
      await pool.end();
      if (ownerPool !== pool) await ownerPool.end();
    },
  };
});
