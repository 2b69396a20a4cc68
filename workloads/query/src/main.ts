import { ApiKeys } from "../../common/src/auth.js";
import { pgPool, redisClient } from "../../common/src/clients.js";
import { parseEnv, QueryEnv } from "../../common/src/config.js";
import { ledgerNames } from "../../common/src/ledger.js";
import { createLogger } from "../../common/src/logger.js";
import { createRegistry } from "../../common/src/metrics.js";
import { runMain, serveOps } from "../../common/src/process.js";
import { buildQueryApp } from "./app.js";
import { fileReader } from "./completeness.js";
import { errorText } from "../../common/src/connections.js";
import { closeGracefully, DRAIN_MS } from "../../common/src/http.js";

runMain("query", async () => {
  const env = parseEnv(QueryEnv);
  const log = createLogger("query", env.LOG_LEVEL);
  const registry = createRegistry("query", env.PIPELINE_NAME);
  // A ceiling for every statement; searches set their own, from their budget, below it.
  const pool = pgPool(env, `logpipeline-query-${env.PIPELINE_NAME}`, {
    statementTimeoutMs: env.QUERY_BUDGET_MAX_MS,
  });
  pool.on("error", (e) => log.warn({ err: errorText(e) }, "idle PostgreSQL connection failed"));
  const redis = redisClient(env);
  redis?.on("error", (e: Error) => log.debug({ err: errorText(e) }, "redis"));
  const apiKeys = env.AUTH_DISABLED || !env.API_KEYS_FILE ? undefined : ApiKeys.fromFile(env.API_KEYS_FILE);
  const app = await buildQueryApp({
    env,
    pool,
    redis,
    names: ledgerNames(env.PG_SCHEMA, env.PG_TABLE),
    apiKeys,
    log,
    registry,
    readCompleteness: env.COMPLETENESS_FILE ? fileReader(env.COMPLETENESS_FILE) : undefined,
  });
  await app.listen({ host: env.HOST, port: env.PORT });
  // Readiness stays on the public port's /readyz (PostgreSQL answered), where the probes look.
  const ops = await serveOps(env.METRICS_PORT, env.HOST, registry);
  log.info({ port: env.PORT, metricsPort: env.METRICS_PORT }, "query API listening");
  return {
    log,
    stop: async () => {
      ops.close();
      const left = await closeGracefully(app, DRAIN_MS);
      log.info({ openConnections: left }, "connections drained");
      redis?.disconnect();
      await pool.end();
    },
  };
});
