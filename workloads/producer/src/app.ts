import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type { Registry } from "prom-client";
import type { ApiKeys } from "../../common/src/auth.js";
import type { KafkaClient } from "../../common/src/clients.js";
import type { ProducerEnv } from "../../common/src/config.js";
import { closeGracefully, createHttpApp } from "../../common/src/http.js";
import type { Logger } from "../../common/src/logger.js";
import { guardsPlugin } from "./guards.js";
import { kafkaPlugin } from "./kafka.js";
import { gatewayMetrics } from "./metrics.js";
import { otlpRoutes } from "./otlp-route.js";
import { ingestRoutes } from "./routes.js";

export interface GatewayDeps {
  env: ProducerEnv;
  kafka: KafkaClient;
  redis?: Redis | undefined;
  apiKeys?: ApiKeys | undefined;
  log: Logger;
  registry: Registry;
}

/**
 * The ingest gateway as a fastify app (the server is a thin shell in main.ts; tests use the
 * app directly), composed of plugins: Kafka (batcher, breaker, partition plan), guards
 * (authentication, rate limits, idempotency keys), the native routes and OTLP/HTTP
 * (POST /v1/logs). Each plugin closes what it
 * opens when the app closes. Answers 202 only after the events' Kafka transaction committed.
 */
export async function buildGateway(
  deps: GatewayDeps,
): Promise<{ app: FastifyInstance; close: (drainMs?: number) => Promise<number>; ready: () => boolean }> {
  const { env, log } = deps;
  const metrics = gatewayMetrics(deps.registry);
  const app = await createHttpApp({
    title: "LogPipeline ingest API",
    description: "Exactly-once log ingest: 202 means the event is committed to Kafka.",
    bodyLimit: env.REQUEST_MAX_BYTES,
    registry: deps.registry,
    log,
    metricsPrefix: "log_producer_http",
    maxConnections: env.HTTP_MAX_CONNECTIONS,
  });
  try {
    await app.register(kafkaPlugin, { env, kafka: deps.kafka, log, metrics });
    await app.register(guardsPlugin, { env, redis: deps.redis, apiKeys: deps.apiKeys, metrics });
    await app.register(ingestRoutes, { env, metrics });
    await app.register(otlpRoutes, { env, metrics });
    await app.ready();
  } catch (e) {
    await app.close().catch(() => undefined);
    throw e;
  }
  return {
    app,
    ready: () => app.ingest.ready(),
    // Let keep-alive clients move to another replica (drainMs), stop accepting, let in-flight
    // requests finish, then each plugin closes what it opened (Kafka flushes and commits
    // what is queued).
    close: (drainMs = 0) => closeGracefully(app, drainMs),
  };
}
