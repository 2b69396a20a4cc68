import fp from "fastify-plugin";
import CircuitBreaker from "opossum";
import { type KafkaAdmin, type KafkaClient, kafkaSecurityConfig } from "../../common/src/clients.js";
import type { ProducerEnv } from "../../common/src/config.js";
import { errorText } from "../../common/src/connections.js";
import type { LogEvent } from "../../common/src/event.js";
import { HttpError } from "../../common/src/http.js";
import { NativeProducer, RecordRefused } from "../../common/src/kafka-producer.js";
import type { Logger } from "../../common/src/logger.js";
import { Batcher, BufferFullError, type OutMessage } from "./batcher.js";
import type { GatewayMetrics } from "./metrics.js";
import { choosePartition, type PartitionPlan } from "./partitioner.js";

/**
 * An event's serialized value, made once (what is checked for NUL is what is produced), and
 * what routing needs of the event: its id, source and level.
 */
export interface Prepared {
  event: Pick<LogEvent, "eventId" | "source" | "level">;
  json: string;
}

/** What the routes see of Kafka. */
export interface Ingest {
  /** Produces the events; resolves once their transaction committed. Failures are HttpErrors. */
  produce(events: Prepared[]): Promise<void>;
  /** Throws 503 at once while the circuit is open (before any other work for the request). */
  refuseWhileOpen(): void;
  /** The topic answered its last metadata request and the circuit is not open. */
  ready(): boolean;
  state(): { kafka: "reachable" | "unreachable"; circuit: "open" | "half-open" | "closed" };
}

declare module "fastify" {
  interface FastifyInstance {
    ingest: Ingest;
  }
}

export interface KafkaPluginOptions {
  env: ProducerEnv;
  kafka: KafkaClient;
  log: Logger;
  metrics: GatewayMetrics;
}

/**
 * Kafka for the gateway: the batcher and its transactional producers, the circuit breaker in
 * front of them, and the partition plan (the topic's partition count, refreshed so a grown
 * topic is used). It opens them when registered and closes them when the app closes, after
 * the server has stopped accepting and in-flight requests have finished: what is queued is
 * flushed and committed first.
 */
export const kafkaPlugin = fp<KafkaPluginOptions>(
  async (app, { env, kafka, log, metrics: m }) => {
    const breaker = new CircuitBreaker(<T>(fn: () => Promise<T>) => fn(), {
      timeout: false,
      errorThresholdPercentage: env.CIRCUIT_ERROR_PERCENT,
      rollingCountTimeout: env.CIRCUIT_WINDOW_MS,
      resetTimeout: env.CIRCUIT_RESET_MS,
      volumeThreshold: 3,
      // A record Kafka refuses is the request's fault, not Kafka's: it never opens the circuit.
      errorFilter: (e: unknown) => e instanceof RecordRefused,
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
      "message.max.bytes": env.KAFKA_MESSAGE_MAX_BYTES,
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

    const admin: KafkaAdmin = kafka.admin();
    const plan: PartitionPlan = {
      partitions: 0,
      priorityLevels: new Set(env.PRIORITY_LEVELS),
      reserved: env.PRIORITY_PARTITIONS,
    };
    let reachable = false;
    const refreshPartitions = async () => {
      try {
        const [meta] = await admin.fetchTopicMetadata({ topics: [env.KAFKA_TOPIC] });
        plan.partitions = meta?.partitions.length ?? 0;
        reachable = plan.partitions > 0;
      } catch (e) {
        reachable = false;
        log.warn({ err: errorText(e), topic: env.KAFKA_TOPIC }, "topic metadata unavailable");
      }
    };
    try {
      await admin.connect();
      await refreshPartitions();
      await batcher.connect();
    } catch (e) {
      // Nothing opened here outlives a failed start.
      await batcher.close().catch(() => undefined);
      breaker.shutdown();
      await admin.disconnect().catch(() => undefined);
      throw e;
    }
    const refresher = setInterval(() => void refreshPartitions(), 30_000);

    app.addHook("onClose", async () => {
      clearInterval(refresher);
      await batcher.close(); // flush and commit what is queued
      breaker.shutdown();
      await admin.disconnect().catch(() => undefined);
    });
    m.probes.buffered = () => batcher.bufferedEvents;

    // A topic not seen yet (made just after this gateway started, or metadata not yet
    // propagated) is looked for again at once, at most once a second, not only every 30 s.
    let lastLook = 0;
    let looking: Promise<void> | undefined;
    const lookAgain = async () => {
      if (performance.now() - lastLook < 1000) return looking;
      lastLook = performance.now();
      looking = refreshPartitions();
      return looking;
    };
    const produce = async (events: Prepared[]) => {
      if (plan.partitions === 0) await lookAgain();
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
        if (e instanceof BufferFullError)
          throw new HttpError(429, "ingest buffer is full", ["retry later"], 1, "buffer_full");
        if (e instanceof RecordRefused) {
          m.recordsRefused.inc();
          throw new HttpError(
            413,
            "Kafka refused an event of this request",
            [e.cause.message],
            undefined,
            "record_refused",
          );
        }
        m.failed.inc(events.length);
        if ((e as { code?: string }).code === "EOPENBREAKER")
          throw new HttpError(503, "Kafka is unavailable (circuit open)", undefined, 1);
        log.warn({ err: errorText(e) }, "produce failed");
        throw new HttpError(
          503,
          "events could not be committed to Kafka; retry with the same eventId or Idempotency-Key",
          undefined,
          1,
        );
      }
    };

    app.decorate("ingest", {
      produce,
      refuseWhileOpen: () => {
        if (breaker.opened)
          throw new HttpError(
            503,
            "Kafka is unavailable (circuit open)",
            undefined,
            Math.ceil(env.CIRCUIT_RESET_MS / 1000),
          );
      },
      ready: () => {
        if (!reachable) void lookAgain(); // answered by the next readiness probe
        return reachable && !breaker.opened;
      },
      state: () => ({
        kafka: reachable ? "reachable" : "unreachable",
        circuit: breaker.opened ? "open" : breaker.halfOpen ? "half-open" : "closed",
      }),
    } satisfies Ingest);
  },
  { name: "logpipeline-kafka" },
);
