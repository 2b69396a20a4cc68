import { kafkaClient, redisClient } from "../../common/src/clients.js";
import { parseEnv, ProducerEnv } from "../../common/src/config.js";
import { createLogger } from "../../common/src/logger.js";
import { createRegistry } from "../../common/src/metrics.js";
import { runMain, serveOps } from "../../common/src/process.js";
import { buildGateway } from "./app.js";
import { ApiKeys } from "../../common/src/auth.js";
import { errorText } from "../../common/src/connections.js";
import { DRAIN_MS } from "../../common/src/http.js";

runMain("producer", async () => {
  const env = parseEnv(ProducerEnv);
  const log = createLogger("producer", env.LOG_LEVEL);
  const registry = createRegistry("producer", env.PIPELINE_NAME);
  const redis = redisClient(env);
  redis?.on("error", (e: Error) => log.debug({ err: errorText(e) }, "redis"));
  const apiKeys = env.AUTH_DISABLED || !env.API_KEYS_FILE ? undefined : ApiKeys.fromFile(env.API_KEYS_FILE);
  if (env.AUTH_DISABLED) log.warn("API-key authentication is disabled (AUTH_DISABLED=true)");
  const gateway = await buildGateway({
    env,
    kafka: kafkaClient(env, "logpipeline-producer", log),
    redis,
    apiKeys,
    log,
    registry,
  });
  await gateway.app.listen({ host: env.HOST, port: env.PORT });
  const ops = await serveOps(env.METRICS_PORT, env.HOST, registry, gateway.ready);
  log.info(
    { port: env.PORT, metricsPort: env.METRICS_PORT, topic: env.KAFKA_TOPIC, delivery: env.DELIVERY },
    "ingest gateway listening",
  );
  return {
    log,
    // Graceful: clients move to another replica, in-flight requests finish, flush and commit, exit.
    stop: async () => {
      const timer = setTimeout(() => {
        log.error("graceful shutdown timed out");
        process.exit(1);
      }, env.SHUTDOWN_GRACE_MS);
      const left = await gateway.close(DRAIN_MS);
      log.info({ openConnections: left }, "connections drained");
      ops.close();
      redis?.disconnect();
      clearTimeout(timer);
    },
  };
});
