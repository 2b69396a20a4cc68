import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import CircuitBreaker from "opossum";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { z } from "zod";
import { type KafkaAdmin, type KafkaClient, kafkaSecurityConfig } from "../../common/src/clients.js";
import { NativeProducer } from "../../common/src/kafka-producer.js";
import type { ProducerEnv } from "../../common/src/config.js";
import {
  eventIdFromIdempotencyKey,
  LogEventInput,
  normalizeEvent,
  reasons,
  type LogEvent,
} from "../../common/src/event.js";
import type { Logger } from "../../common/src/logger.js";
import { LATENCY_BUCKETS } from "../../common/src/metrics.js";
import type { ApiKeys } from "../../common/src/auth.js";
import { authenticator, createHttpApp, ErrorBody, HttpError } from "../../common/src/http.js";
import { Batcher, BufferFullError, type OutMessage } from "./batcher.js";
import { choosePartition, type PartitionPlan } from "./partitioner.js";
import { RateLimiter, RedisUnavailable } from "../../common/src/rate-limit.js";
import { IdempotencyKeys } from "./redis-guards.js";

export interface GatewayDeps {
  env: ProducerEnv;
  kafka: KafkaClient;
  redis?: Redis | undefined;
  apiKeys?: ApiKeys | undefined;
  log: Logger;
  registry: Registry;
}

function gatewayMetrics(registry: Registry) {
  const r = [registry];
  return {
    sent: new Counter({
      name: "log_producer_send_success_total",
      help: "Events durably written to Kafka (committed)",
      registers: r,
    }),
    failed: new Counter({
      name: "log_producer_send_failure_total",
      help: "Events whose write to Kafka failed (client got 503)",
      registers: r,
    }),
    aborts: new Counter({
      name: "log_producer_transaction_abort_total",
      help: "Kafka transactions aborted",
      registers: r,
    }),
    idemHits: new Counter({
      name: "idempotency_cache_hit_total",
      help: "Requests answered as duplicates from the idempotency cache",
      registers: r,
    }),
    rateLimited: new Counter({
      name: "log_producer_rate_limited_total",
      help: "Requests refused by the rate limiter",
      labelNames: ["route"],
      registers: r,
    }),
    ack: new Histogram({
      name: "log_producer_ack_duration_seconds",
      help: "Request received to 202 sent",
      labelNames: ["route"],
      buckets: LATENCY_BUCKETS,
      registers: r,
    }),
    batchSize: new Histogram({
      name: "log_producer_batch_size",
      help: "Events per Kafka transaction",
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000],
      registers: r,
    }),
    batchSeconds: new Histogram({
      name: "log_producer_batch_duration_seconds",
      help: "Time to write and commit one batch",
      buckets: LATENCY_BUCKETS,
      registers: r,
    }),
    circuit: new Gauge({
      name: "log_producer_circuit_state",
      help: "Kafka circuit breaker: 0 closed, 1 half-open, 2 open",
      registers: r,
    }),
    buffered: new Gauge({
      name: "log_producer_buffered_events",
      help: "Events waiting for their batch",
      registers: r,
    }),
    redisUp: new Gauge({
      name: "log_producer_redis_available",
      help: "1 when Redis answers; 0 means idempotency and rate limits run degraded",
      registers: r,
    }),
  };
}

const Accepted = z.object({
  eventId: z.string(),
  status: z.enum(["accepted", "duplicate"]),
  timestamp: z.string(),
});
const BatchQuery = z.object({ atomic: z.stringbool().default(false) });

/** An event and its serialized value, made once: what is checked for NUL is what is produced. */
interface Prepared {
  event: LogEvent;
  json: string;
}

/** The event serialized for Kafka, or undefined when a string in it holds NUL (PostgreSQL refuses those). */
function prepare(event: LogEvent): Prepared | undefined {
  const json = JSON.stringify(event);
  return json.includes("\\u0000") ? undefined : { event, json };
}

/**
 * The ingest gateway as a fastify app (the server is a thin shell in main.ts; tests use
 * the app directly). Answers 202 only after the events' Kafka transaction committed.
 */
export async function buildGateway(
  deps: GatewayDeps,
): Promise<{ app: FastifyInstance; close: () => Promise<void>; ready: () => boolean }> {
  const { env, kafka, redis, log } = deps;
  const m = gatewayMetrics(deps.registry);
  const idem = new IdempotencyKeys(redis, `lp:${env.PIPELINE_NAME}:idem:`, env.IDEMPOTENCY_TTL_SECONDS);
  const limiter = new RateLimiter(redis, `lp:${env.PIPELINE_NAME}:rl:`);

  const breaker = new CircuitBreaker(<T>(fn: () => Promise<T>) => fn(), {
    timeout: false,
    errorThresholdPercentage: env.CIRCUIT_ERROR_PERCENT,
    rollingCountTimeout: env.CIRCUIT_WINDOW_MS,
    resetTimeout: env.CIRCUIT_RESET_MS,
    volumeThreshold: 3,
  });
  breaker.on("open", () => m.circuit.set(2));
  breaker.on("halfOpen", () => m.circuit.set(1));
  breaker.on("close", () => m.circuit.set(0));
  m.circuit.set(0);

  const producerConfig = {
    ...kafkaSecurityConfig(env),
    "bootstrap.servers": env.KAFKA_BOOTSTRAP_SERVERS,
    "client.id": env.KAFKA_CLIENT_ID ?? "logpipeline-producer",
    "linger.ms": 1,
    "compression.codec": env.KAFKA_COMPRESSION,
  };
  const batcher = new Batcher(
    (transactionalId) =>
      new NativeProducer({
        config: producerConfig,
        transactionalId,
        timeoutMs: env.KAFKA_DELIVERY_TIMEOUT_MS,
      }),
    {
      topic: env.KAFKA_TOPIC,
      delivery: env.DELIVERY,
      transactionalId: env.TRANSACTIONAL_ID,
      lanes: env.PRODUCER_LANES,
      maxBatchEvents: env.BATCH_MAX_EVENTS,
      lingerMs: env.BATCH_LINGER_MS,
      bufferMaxEvents: env.BUFFER_MAX_EVENTS,
      deliveryTimeoutMs: env.KAFKA_DELIVERY_TIMEOUT_MS,
    },
    {
      guard: (fn) => breaker.fire(fn) as Promise<Awaited<ReturnType<typeof fn>>>,
      onBatch: (n, s) => {
        m.batchSize.observe(n);
        m.batchSeconds.observe(s);
      },
      onAbort: () => m.aborts.inc(),
    },
    log,
  );

  // The topic's partition count, for the partitioner; refreshed so a grown topic is used.
  const admin: KafkaAdmin = kafka.admin();
  const plan: PartitionPlan = {
    partitions: 0,
    priorityLevels: new Set(env.PRIORITY_LEVELS),
    reserved: env.PRIORITY_PARTITIONS,
  };
  let kafkaReachable = false;
  const refreshPartitions = async () => {
    try {
      const [meta] = await admin.fetchTopicMetadata({ topics: [env.KAFKA_TOPIC] });
      plan.partitions = meta?.partitions.length ?? 0;
      kafkaReachable = plan.partitions > 0;
    } catch (e) {
      kafkaReachable = false;
      log.warn({ err: (e as Error).message, topic: env.KAFKA_TOPIC }, "topic metadata unavailable");
    }
  };
  await admin.connect();
  await refreshPartitions();
  await batcher.connect();
  const refresher = setInterval(() => void refreshPartitions(), 30_000);

  const redisState = () => {
    const up = redis?.status === "ready";
    m.redisUp.set(up ? 1 : 0);
    return redis ? (up ? "up" : "down") : "disabled";
  };

  const app = await createHttpApp({
    title: "LogPipeline ingest API",
    description: "Exactly-once log ingest: 202 means the event is committed to Kafka.",
    bodyLimit: env.REQUEST_MAX_BYTES,
    registry: deps.registry,
    log,
    metricsPrefix: "log_producer_http",
  });
  app.addHook("onResponse", (req, reply, done) => {
    if (reply.statusCode === 202)
      m.ack.observe({ route: req.routeOptions.url ?? "unmatched" }, reply.elapsedTime / 1000);
    done();
  });

  const authenticate = authenticator(deps.apiKeys, env.AUTH_DISABLED);

  const rateLimit = async (client: string, route: "single" | "batch", cost: number) => {
    const perSecond = route === "single" ? env.RATE_LIMIT_PER_SECOND : env.RATE_LIMIT_BATCH_PER_SECOND;
    try {
      const r = await limiter.take(
        client,
        route,
        perSecond,
        env.RATE_LIMIT_BURST,
        route === "single" ? 1 : cost > 0 ? 1 : 0,
      );
      if (!r.allowed) {
        m.rateLimited.inc({ route });
        throw new HttpError(
          429,
          "rate limit exceeded",
          [`limit ${perSecond}/s for ${client}`],
          Math.max(1, Math.ceil(r.retryAfterMs / 1000)),
        );
      }
    } catch (e) {
      if (!(e instanceof RedisUnavailable)) throw e;
      redisState();
      if (env.REDIS_FAILURE_MODE === "closed")
        throw new HttpError(503, "rate limiter unavailable (redis down, fail-closed)", undefined, 1);
    }
  };

  const refuseWhileOpen = () => {
    if (breaker.opened)
      throw new HttpError(
        503,
        "Kafka is unavailable (circuit open)",
        undefined,
        Math.ceil(env.CIRCUIT_RESET_MS / 1000),
      );
  };

  /** Produces the events; resolves once committed. Maps failures to the right status. */
  const produce = async (events: Prepared[]) => {
    if (plan.partitions === 0)
      throw new HttpError(
        503,
        `topic ${env.KAFKA_TOPIC} is not available`,
        ["the topic does not exist or Kafka is unreachable"],
        5,
      );
    const messages: OutMessage[] = events.map(({ event, json }) => ({
      key: event.source,
      value: Buffer.from(json),
      partition: choosePartition(event, plan),
    }));
    try {
      await batcher.submit(messages);
      m.sent.inc(events.length);
    } catch (e) {
      if (e instanceof BufferFullError) throw new HttpError(429, "ingest buffer is full", ["retry later"], 1);
      m.failed.inc(events.length);
      if ((e as { code?: string }).code === "EOPENBREAKER")
        throw new HttpError(503, "Kafka is unavailable (circuit open)", undefined, 1);
      log.warn({ err: (e as Error).message }, "produce failed");
      throw new HttpError(
        503,
        "events could not be committed to Kafka; retry with the same eventId or Idempotency-Key",
        undefined,
        1,
      );
    }
  };

  /**
   * Reserves idempotency keys for the events a client named (its eventId or an
   * Idempotency-Key): only those can be retried as the same event. Events the gateway
   * named itself are new by construction and skip Redis.
   */
  const reserve = async (events: Prepared[], clientNamed: ReadonlySet<string>) => {
    const named = events.filter((e) => clientNamed.has(e.event.eventId));
    const fresh = events.filter((e) => !clientNamed.has(e.event.eventId));
    const none = { toProduce: events, duplicates: new Set<string>(), reserved: [] as string[] };
    if (named.length === 0) return none;
    try {
      const r = await idem.reserveMany(named.map((e) => e.event.eventId));
      if (r.inFlight.length > 0) {
        await idem.release(r.reserved);
        throw new HttpError(409, "an event with this id is being written", r.inFlight, 1);
      }
      m.idemHits.inc(r.duplicates.length);
      const duplicates = new Set(r.duplicates);
      return {
        toProduce: [...fresh, ...named.filter((e) => !duplicates.has(e.event.eventId))],
        duplicates,
        reserved: r.reserved,
      };
    } catch (err) {
      if (!(err instanceof RedisUnavailable)) throw err;
      redisState();
      if (env.REDIS_FAILURE_MODE === "closed")
        throw new HttpError(503, "idempotency store unavailable (redis down, fail-closed)", undefined, 1);
      return none; // fail-open: PostgreSQL's unique key still deduplicates
    }
  };

  /**
   * Produces, then confirms the reserved keys (or releases them if the commit failed). Only
   * the keys reserved go to Redis: events the gateway named itself never have one (writing
   * one per event would fill Redis with a key per event for the whole TTL).
   */
  const commitAndAnswer = async (toProduce: Prepared[], reserved: string[]) => {
    try {
      if (toProduce.length > 0) await produce(toProduce);
    } catch (e) {
      await idem.release(reserved);
      throw e;
    }
    await idem.confirm(reserved);
  };

  const idempotencyKey = (req: FastifyRequest) => {
    const k = req.headers["idempotency-key"];
    return typeof k === "string" && k.length > 0 ? k : undefined;
  };

  app.post(
    "/api/logs",
    {
      schema: {
        summary: "Ingest one log event",
        body: LogEventInput,
        headers: z.object({ "idempotency-key": z.string().max(256).optional() }).loose(),
        response: {
          202: Accepted,
          400: ErrorBody,
          401: ErrorBody,
          409: ErrorBody,
          429: ErrorBody,
          503: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      const client = authenticate(req);
      refuseWhileOpen();
      await rateLimit(client, "single", 1);
      const key = idempotencyKey(req);
      const event = normalizeEvent(req.body, {
        now: new Date(),
        idempotencyEventId: key && eventIdFromIdempotencyKey(client, key),
      });
      const prepared = prepare(event);
      if (!prepared)
        throw new HttpError(400, "invalid event", ["strings must not contain NUL (\\u0000) characters"]);
      const { toProduce, duplicates, reserved } = await reserve(
        [prepared],
        new Set(req.body.eventId !== undefined || key ? [event.eventId] : []),
      );
      await commitAndAnswer(toProduce, reserved);
      return reply.status(202).send({
        eventId: event.eventId,
        status: duplicates.size > 0 ? "duplicate" : "accepted",
        timestamp: event.receivedAt,
      });
    },
  );

  app.post(
    "/api/logs/batch",
    {
      schema: {
        summary:
          "Ingest an array of log events; invalid items are reported, valid ones accepted (unless ?atomic=true)",
        querystring: BatchQuery,
        body: z.array(z.unknown()).min(1).max(env.REQUEST_MAX_EVENTS),
        response: {
          202: z.object({
            accepted: z.number(),
            duplicates: z.number(),
            failed: z.array(z.object({ index: z.number(), reasons: z.array(z.string()) })),
            eventIds: z.array(z.string().nullable()),
          }),
          400: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      const client = authenticate(req);
      refuseWhileOpen();
      await rateLimit(client, "batch", req.body.length);
      const now = new Date();
      const receivedAt = now.toISOString();
      const failed: { index: number; reasons: string[] }[] = [];
      const eventIds: (string | null)[] = [];
      const events: Prepared[] = [];
      const clientNamed = new Set<string>();
      req.body.forEach((item, index) => {
        const parsed = LogEventInput.safeParse(item);
        if (!parsed.success) {
          failed.push({ index, reasons: reasons(parsed.error) });
          eventIds.push(null);
          return;
        }
        const event = normalizeEvent(parsed.data, { now, receivedAt });
        const prepared = prepare(event);
        if (!prepared) {
          failed.push({ index, reasons: ["strings must not contain NUL (\\u0000) characters"] });
          eventIds.push(null);
          return;
        }
        events.push(prepared);
        eventIds.push(event.eventId);
        if (parsed.data.eventId !== undefined) clientNamed.add(event.eventId);
      });
      if (req.query.atomic && failed.length > 0) {
        throw new HttpError(
          400,
          "atomic batch refused: some events are invalid",
          failed.flatMap((f) => f.reasons.map((r) => `[${f.index}] ${r}`)),
        );
      }
      const { toProduce, duplicates, reserved } = await reserve(events, clientNamed);
      await commitAndAnswer(toProduce, reserved);
      return reply
        .status(202)
        .send({ accepted: events.length, duplicates: duplicates.size, failed, eventIds });
    },
  );

  const ready = () => kafkaReachable && !breaker.opened;
  app.get("/readyz", { schema: { hide: true } }, (_req, reply) => {
    const body = {
      kafka: kafkaReachable ? "reachable" : "unreachable",
      circuit: breaker.opened ? "open" : breaker.halfOpen ? "half-open" : "closed",
      redis: redisState(),
      redisFailureMode: env.REDIS_FAILURE_MODE,
    };
    return reply.status(ready() ? 200 : 503).send(body);
  });
  app.addHook("onRequest", (req, _reply, done) => {
    if (req.url === "/metrics") {
      m.buffered.set(batcher.bufferedEvents);
      redisState();
    }
    done();
  });

  await app.ready();
  return {
    app,
    ready,
    close: async () => {
      clearInterval(refresher);
      await app.close(); // stop accepting; in-flight requests finish
      await batcher.close(); // flush and commit what is queued
      breaker.shutdown();
      await admin.disconnect().catch(() => undefined);
    },
  };
}
