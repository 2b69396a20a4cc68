import { kafkaClient, pgPool } from "../../common/src/clients.js";
import { ConsumerEnv, parseEnv } from "../../common/src/config.js";
import { ledgerDdl, ledgerNames } from "../../common/src/ledger.js";
import { createLogger } from "../../common/src/logger.js";
import { createRegistry } from "../../common/src/metrics.js";
import { runMain, serveOps } from "../../common/src/process.js";
import { Sink } from "./consumer.js";
import { Partitions } from "./partitions.js";
import { errorText } from "../../common/src/connections.js";

runMain("consumer", async () => {
  const env = parseEnv(ConsumerEnv);
  const log = createLogger("consumer", env.LOG_LEVEL);
  const registry = createRegistry("consumer", env.PIPELINE_NAME);
  const names = ledgerNames(env.PG_SCHEMA, env.PG_TABLE);
  const pool = pgPool(env, `logpipeline-consumer-${env.PIPELINE_NAME}`);
  pool.on("error", (e) => log.warn({ err: errorText(e) }, "idle PostgreSQL connection failed"));
  await pool.query(ledgerDdl(names));
  const partitions = new Partitions(
    pool,
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
  const ops = await serveOps(env.METRICS_PORT, "0.0.0.0", registry, () => sink.ready);
  partitions.start();
  await sink.start();
  return {
    log,
    stop: async () => {
      await partitions.stop();
      await sink.stop();
      ops.close();
      await pool.end();
    },
  };
});
