import { kafkaClient, pgPool, redisClient } from "../../common/src/clients.js";
import { ConsumerEnv, parseEnv } from "../../common/src/config.js";
import { ledgerDdl, ledgerNames } from "../../common/src/ledger.js";
import { createLogger } from "../../common/src/logger.js";
import { createRegistry } from "../../common/src/metrics.js";
import { runMain, serveOps } from "../../common/src/process.js";
import { Sink } from "./consumer.js";
import { RetentionJob } from "./retention.js";

runMain("consumer", async () => {
  const env = parseEnv(ConsumerEnv);
  const log = createLogger("consumer", env.LOG_LEVEL);
  const registry = createRegistry("consumer", env.PIPELINE_NAME);
  const names = ledgerNames(env.PG_SCHEMA, env.PG_TABLE);
  const pool = pgPool(env, `logpipeline-consumer-${env.PIPELINE_NAME}`);
  pool.on("error", (e) => log.warn({ err: e.message }, "idle PostgreSQL connection failed"));
  await pool.query(ledgerDdl(names));
  const redis = redisClient(env);
  redis?.on("error", (e: Error) => log.debug({ err: e.message }, "redis"));
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
    },
    { kafka: kafkaClient(env, "logpipeline-consumer", log), pool, redis, names, log, registry },
  );
  const retention = new RetentionJob(
    pool,
    names,
    {
      days: env.RETENTION_DAYS,
      intervalMs: env.RETENTION_INTERVAL_SECONDS * 1000,
      batchRows: env.RETENTION_BATCH_ROWS,
    },
    log,
    registry,
  );
  const ops = await serveOps(env.METRICS_PORT, "0.0.0.0", registry, () => sink.ready);
  await sink.start();
  retention.start();
  return {
    log,
    stop: async () => {
      await retention.stop();
      await sink.stop();
      ops.close();
      redis?.disconnect();
      await pool.end();
    },
  };
});
