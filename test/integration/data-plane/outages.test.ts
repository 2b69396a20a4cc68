import { randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ApiKeys } from "../../../workloads/common/src/auth.js";
import { parseEnv, ProducerEnv } from "../../../workloads/common/src/config.js";
import { createLogger } from "../../../workloads/common/src/logger.js";
import { createRegistry } from "../../../workloads/common/src/metrics.js";
import { Sink } from "../../../workloads/consumer/src/consumer.js";
import { buildGateway } from "../../../workloads/producer/src/app.js";
import { makeEvent } from "../../support/events.js";
import { isolatedStack, type IsolatedStack } from "../../support/isolated-stack.js";
import { kafkaClient, workloadKafkaClient, transactionalWriter } from "../../support/kafka.js";
import { eventually, uniqueSuffix, pipelineEnv } from "../../support/kube.js";
import { exactlyOnceAudit, ledgerCounts, testLedger } from "../../support/pipeline-db.js";

/**
 * Components stopped for OUTAGE seconds mid-run, on a stack instance of this file's own
 * (Kafka, PostgreSQL, Redis), while the pipeline runs against it.
 */
const shared = inject("stack");
const OUTAGE_MS = Number(process.env.LP_OUTAGE_SECONDS ?? 30) * 1000;
const KEY = "outage-key";
let iso: IsolatedStack;
let started = false; // a failed start has cleaned up after itself (isolatedStack)

beforeAll(async () => {
  iso = isolatedStack({
    portOffset: 4000,
    bridge: "lp4",
    bridgeIp: "10.249.0.1",
    components: ["kafka", "postgres", "redis"],
  });
  started = true;
  // A new broker creates its transaction log on the first transactional producer, which can
  // take longer than the gateways' short delivery bounds below: a transactional producer
  // first, again until the coordinator has loaded ("Coordinator load in progress").
  await eventually(
    "a transactional producer on the isolated Kafka",
    async () => {
      const warm = await transactionalWriter(kafkaClient(iso.info.kafkaBootstrap), "t-outage-warm-up");
      await warm.close();
      return true;
    },
    120_000,
  );
}, 240_000);
afterAll(() => {
  if (started) iso.down();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const wk = (bootstrap: string, topic: string) => workloadKafkaClient(bootstrap, topic, "t");

async function pipeline(opts: {
  kafka: string;
  redis: string;
  postgres: string;
  topic: string;
  env?: Record<string, string>;
}) {
  const admin = kafkaClient(opts.kafka).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: opts.topic, numPartitions: 2, replicationFactor: 1 }] });
  await admin.disconnect();
  const db = await testLedger(opts.postgres, "t_outage");
  const redis = new Redis(opts.redis, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 200,
  });
  redis.on("error", () => undefined);
  const registry = createRegistry("producer", "t");
  const gateway = await buildGateway({
    env: parseEnv(ProducerEnv, {
      ...pipelineEnv(`o-${uniqueSuffix()}`),
      KAFKA_BOOTSTRAP_SERVERS: opts.kafka,
      KAFKA_TOPIC: opts.topic,
      TRANSACTIONAL_ID: `o-${opts.topic}`,
      API_KEYS_FILE: "/dev/null",
      REDIS_URL: opts.redis,
      ...opts.env,
    }),
    kafka: wk(opts.kafka, opts.topic),
    redis,
    apiKeys: new ApiKeys(`t:${KEY}`),
    log: createLogger("gateway", "error"),
    registry,
  });
  const sinkRegistry = createRegistry("consumer", "t");
  const sink = new Sink(
    {
      topic: opts.topic,
      groupId: `g-${opts.topic}`,
      batchMaxEvents: 500,
      backoffMs: 100,
      backoffMaxMs: 2000,
      pipeline: "t",
    },
    {
      kafka: wk(opts.kafka, opts.topic),
      pool: db.pool,
      names: db.names,
      log: createLogger("consumer", "error"),
      registry: sinkRegistry,
    },
  );
  await sink.start();
  return {
    app: gateway.app,
    registry,
    db,
    sink,
    sinkRegistry,
    close: async () => {
      await gateway.close();
      await sink.stop();
      redis.disconnect();
      await db.drop();
    },
  };
}

const postBatch = (app: FastifyInstance, events: object[], headers: Record<string, string> = {}) =>
  app.inject({
    method: "POST",
    url: "/api/logs/batch",
    headers: { "x-api-key": KEY, "content-type": "application/json", ...headers },
    payload: JSON.stringify(events),
  });

describe("outages", () => {
  it(
    "Kafka stopped mid-run: 503/429 while it is down, bounded memory, no acknowledged event lost",
    async () => {
      const topic = `t-kafka-outage-${uniqueSuffix()}`;
      const p = await pipeline({
        kafka: iso.info.kafkaBootstrap,
        redis: shared.redisUrl,
        postgres: shared.postgresUrl,
        topic,
        env: { KAFKA_DELIVERY_TIMEOUT_MS: "5000", CIRCUIT_RESET_MS: "2000", BUFFER_MAX_EVENTS: "5000" },
      });
      try {
        const acked = new Set<string>();
        const sent = new Set<string>();
        const duringOutage: number[] = [];
        let phase: "before" | "down" | "after" = "before";
        let stop = false;
        const rss: number[] = [];
        const sampler = setInterval(() => rss.push(process.memoryUsage().rss), 500);
        const client = async () => {
          for (let i = 0; i < 5000 && !stop; i++) {
            const events = Array.from({ length: 20 }, (_, j) => ({
              eventId: randomUUID(),
              level: "INFO",
              source: `s${j % 3}`,
              message: `m${i}`,
            }));
            for (const e of events) sent.add(e.eventId);
            const startedIn = phase;
            const r = await postBatch(p.app, events);
            if (r.statusCode === 202) for (const e of events) acked.add(e.eventId);
            if (startedIn === "down" && phase === "down") duringOutage.push(r.statusCode);
            if (r.statusCode !== 202) await sleep(50);
          }
        };
        const clients = Promise.all([client(), client()]);
        await sleep(3000);
        const ackedBefore = acked.size;
        iso.stop("kafka");
        phase = "down";
        await sleep(OUTAGE_MS);
        phase = "after";
        iso.start("kafka");
        await eventually(
          "202s again after Kafka returned",
          async () =>
            (await postBatch(p.app, [{ level: "INFO", source: "probe", message: "p" }])).statusCode === 202
              ? true
              : undefined,
          60_000,
        );
        const ackedAtRecovery = acked.size;
        await sleep(3000);
        stop = true;
        await clients;
        clearInterval(sampler);

        expect(ackedBefore).toBeGreaterThan(0);
        expect(acked.size).toBeGreaterThan(ackedAtRecovery);
        expect(duringOutage.length).toBeGreaterThan(0);
        expect(duringOutage.filter((c) => c !== 503 && c !== 429)).toEqual([]);
        const growthMiB = (Math.max(...rss) - (rss[0] ?? 0)) / 2 ** 20;
        expect(growthMiB).toBeLessThan(300);

        await eventually(
          "every acknowledged event stored",
          async () => {
            const q = await p.db.pool.query<{ c: string }>(
              `SELECT count(*) AS c FROM ${p.db.names.events} WHERE event_id = ANY($1::uuid[])`,
              [[...acked]],
            );
            return Number(q.rows[0]?.c) === acked.size ? true : undefined;
          },
          90_000,
        );
        const stored = (
          await p.db.pool.query<{ event_id: string }>(
            `SELECT event_id FROM ${p.db.names.events} WHERE source <> 'probe'`,
          )
        ).rows.map((r) => r.event_id);
        expect(stored.filter((e) => !sent.has(e))).toEqual([]);
        expect((await ledgerCounts(p.db.pool, p.db.names)).duplicates).toBe(0);
      } finally {
        await p.close();
      }
    },
    OUTAGE_MS + 180_000,
  );

  it(
    "PostgreSQL stopped mid-run: the consumer backs off and resumes; counts stay exact",
    async () => {
      const topic = `t-pg-outage-${uniqueSuffix()}`;
      const p = await pipeline({
        kafka: shared.kafkaBootstrap,
        redis: shared.redisUrl,
        postgres: iso.info.postgresUrl,
        topic,
      });
      try {
        const events = Array.from({ length: 10_000 }, (_, i) => makeEvent(i));
        const writer = await transactionalWriter(kafkaClient(shared.kafkaBootstrap), `tx-${topic}`);
        const produce = (from: number, to: number) =>
          writer.write(
            topic,
            events.slice(from, to).map((e) => JSON.stringify(e)),
            { perTxn: 1000, partitions: 2 },
          );
        await produce(0, 5000);
        await eventually(
          "half applied",
          async () => ((await ledgerCounts(p.db.pool, p.db.names)).applied >= 5000 ? true : undefined),
          60_000,
        );
        iso.stop("postgres");
        await produce(5000, 10_000);
        await sleep(OUTAGE_MS);
        iso.start("postgres");
        await eventually(
          "all applied after PostgreSQL returned",
          async () => ((await ledgerCounts(p.db.pool, p.db.names)).applied >= 10_000 ? true : undefined),
          90_000,
        );
        await writer.close();
        expect(
          await exactlyOnceAudit(
            p.db.pool,
            p.db.names,
            events.map((e) => e.eventId),
          ),
        ).toEqual({ lost: 0, duplicated: 0, spurious: 0, rows: 10_000 });
        expect((await ledgerCounts(p.db.pool, p.db.names)).duplicates).toBe(0);
        expect(await p.sinkRegistry.getSingleMetricAsString("log_consumer_batch_retries_total")).toMatch(
          /log_consumer_batch_retries_total\{[^}]*\} [1-9]/,
        );
      } finally {
        await p.close();
      }
    },
    OUTAGE_MS + 180_000,
  );

  it("Redis stopped mid-run: ingest goes on (fail-open), PostgreSQL deduplicates retries, counts stay exact", async () => {
    const topic = `t-redis-outage-${uniqueSuffix()}`;
    const p = await pipeline({
      kafka: shared.kafkaBootstrap,
      redis: iso.info.redisUrl,
      postgres: shared.postgresUrl,
      topic,
    });
    try {
      const batch = (n: number, tag: string) =>
        Array.from({ length: n }, (_, i) => ({
          eventId: randomUUID(),
          level: "INFO",
          source: tag,
          message: `${tag} ${i}`,
        }));
      const first = batch(200, "before");
      expect((await postBatch(p.app, first)).statusCode).toBe(202);
      iso.stop("redis");
      await eventually("readiness to report redis down", async () => {
        const r = await p.app.inject("/readyz");
        return r.statusCode === 200 && r.json<{ redis: string }>().redis === "down" ? true : undefined;
      });
      const second = batch(200, "during");
      const during = await postBatch(p.app, second);
      expect(during.statusCode).toBe(202);
      // A client retry of events already stored: no Redis to answer it, PostgreSQL's key does.
      const retried = await postBatch(p.app, first.slice(0, 50));
      expect(retried.statusCode).toBe(202);
      expect(await p.registry.metrics()).toMatch(/log_producer_redis_available\{[^}]*\} 0/);
      iso.start("redis");
      const third = batch(100, "after");
      expect((await postBatch(p.app, third)).statusCode).toBe(202);
      const all = [...first, ...second, ...third].map((e) => e.eventId);
      await eventually(
        "every event and the retried ones accounted for",
        async () => {
          const c = await ledgerCounts(p.db.pool, p.db.names);
          return c.applied === all.length && c.duplicates === 50 ? true : undefined;
        },
        60_000,
      );
      expect(await exactlyOnceAudit(p.db.pool, p.db.names, all)).toEqual({
        lost: 0,
        duplicated: 0,
        spurious: 0,
        rows: all.length,
      });
    } finally {
      await p.close();
    }
  }, 120_000);
});
