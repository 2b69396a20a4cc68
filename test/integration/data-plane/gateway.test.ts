import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseEnv, ProducerEnv } from "../../../workloads/common/src/config.js";
import { createLogger } from "../../../workloads/common/src/logger.js";
import { createRegistry } from "../../../workloads/common/src/metrics.js";
import { setFailpoints } from "../../../workloads/common/src/failpoints.js";
import { Sink } from "../../../workloads/consumer/src/consumer.js";
import { buildGateway } from "../../../workloads/producer/src/app.js";
import { Batcher } from "../../../workloads/producer/src/batcher.js";
import { NativeProducer, RecordRefused } from "../../../workloads/common/src/kafka-producer.js";
import { normalizeEvent } from "../../../workloads/common/src/event.js";
import { ApiKeys } from "../../../workloads/common/src/auth.js";
import { type Admin, kafkaClient, workloadKafkaClient } from "../../support/kafka.js";
import { eventually, uniqueSuffix, pipelineEnv } from "../../support/kube.js";
import { exactlyOnceAudit, ledgerCounts, testLedger } from "../../support/pipeline-db.js";
import { startSink } from "../../support/sink.js";
import { promtoolCheckMetrics } from "../../support/promtool.js";

const stack = inject("stack");
const id = uniqueSuffix();
const topic = `t-gateway-${id}`;
const KEY = "secret-ingest-key";
let admin: Admin;
let db: Awaited<ReturnType<typeof testLedger>>;
let sink: Sink;
let gateway: Awaited<ReturnType<typeof buildGateway>>;
let app: FastifyInstance;
let redis: Redis;
const registry = createRegistry("producer", "t");

const env = (over: Record<string, string> = {}) =>
  parseEnv(ProducerEnv, {
    ...pipelineEnv(`t-${id}`),
    KAFKA_BOOTSTRAP_SERVERS: stack.kafkaBootstrap,
    KAFKA_TOPIC: topic,
    TRANSACTIONAL_ID: `gw-${id}`,
    AUTH_DISABLED: "false",
    API_KEYS_FILE: "/dev/null",
    REDIS_URL: stack.redisUrl,
    RATE_LIMIT_PER_SECOND: "1000",
    RATE_LIMIT_BURST: "1000",
    ...over,
  });

const headers = { "x-api-key": KEY, "content-type": "application/json" };
const post = (url: string, body: unknown, extra: Record<string, string> = {}) =>
  app.inject({
    method: "POST",
    url,
    headers: { ...headers, ...extra },
    payload: typeof body === "string" ? body : JSON.stringify(body),
  });

beforeAll(async () => {
  const k = kafkaClient(stack.kafkaBootstrap);
  admin = k.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }] });
  db = await testLedger(stack.postgresUrl, "t_gateway");
  redis = new Redis(stack.redisUrl);
  const wk = workloadKafkaClient(stack.kafkaBootstrap, topic, "t");
  gateway = await buildGateway({
    env: env(),
    kafka: wk,
    redis,
    apiKeys: new ApiKeys(`tests:${KEY}`),
    log: createLogger("gateway-test", "warn"),
    registry,
  });
  app = gateway.app;
  sink = await startSink({ kafka: wk, db, topic, groupId: `g-${id}` });
});

afterAll(async () => {
  await gateway.close();
  await sink.stop();
  redis.disconnect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
  await db.drop();
});

const event = (i: number, extra: Record<string, unknown> = {}) => ({
  level: "INFO",
  source: `svc-${i % 3}`,
  message: `hello ${i}`,
  ...extra,
});

describe("ingest gateway → Kafka → consumer → PostgreSQL", () => {
  it("answers 202 with an event id and the event lands in PostgreSQL once", async () => {
    const r = await post("/api/logs", event(1, { metadata: { user: "u1" } }));
    expect(r.statusCode, r.body).toBe(202);
    const body = r.json<{ eventId: string; status: string }>();
    expect(body.status).toBe("accepted");
    const row = await eventually("the row", async () => {
      const q = await db.pool.query<{ message: string; metadata: unknown }>(
        `SELECT message, metadata FROM ${db.names.events} WHERE event_id = $1`,
        [body.eventId],
      );
      return q.rows[0];
    });
    expect(row).toEqual({ message: "hello 1", metadata: { user: "u1" } });
  });

  it("deduplicates a client retry by eventId and by Idempotency-Key: same id, status duplicate, one row", async () => {
    const eventId = "01890000-0000-7000-8000-000000000001";
    const a = await post("/api/logs", event(2, { eventId }));
    const b = await post("/api/logs", event(2, { eventId }));
    expect([a.statusCode, b.statusCode]).toEqual([202, 202]);
    expect(b.json()).toMatchObject({ eventId, status: "duplicate" });

    const c = await post("/api/logs", event(3), { "idempotency-key": "order-42" });
    const d = await post("/api/logs", event(3), { "idempotency-key": "order-42" });
    expect(d.json<{ eventId: string }>().eventId).toBe(c.json<{ eventId: string }>().eventId);
    expect(d.json()).toMatchObject({ status: "duplicate" });
    // Redis holds keys for client-named events only: one the gateway named has none.
    expect(await redis.get(`lp:t-${id}:idem:${eventId}`)).toBe("done");
    const named = await post("/api/logs", event(4));
    expect(named.statusCode).toBe(202);
    expect(await redis.exists(`lp:t-${id}:idem:${named.json<{ eventId: string }>().eventId}`)).toBe(0);

    // Without Redis's answer (key forgotten), the database's unique key still holds.
    await redis.del(`lp:t-${id}:idem:${c.json<{ eventId: string }>().eventId}`);
    const e = await post("/api/logs", event(3), { "idempotency-key": "order-42" });
    expect(e.statusCode).toBe(202);
    const ids = [eventId, c.json<{ eventId: string }>().eventId];
    await eventually("both rows", async () =>
      (await exactlyOnceAudit(db.pool, db.names, ids)).lost === 0 ? true : undefined,
    );
    await eventually("the retry counted as a duplicate", async () =>
      (await ledgerCounts(db.pool, db.names)).duplicates >= 1 ? true : undefined,
    );
    const q = await db.pool.query(`SELECT 1 FROM ${db.names.events} WHERE event_id = ANY($1::uuid[])`, [ids]);
    expect(q.rowCount).toBe(2);
  });

  it("answers 503 when the commit fails, and the client's retry lands (not a false duplicate)", async () => {
    const eventId = "01890000-0000-7000-8000-0000000000c1";
    setFailpoints("before-kafka-commit=error@1");
    try {
      const failed = await post("/api/logs", event(5, { eventId }));
      expect(failed.statusCode).toBe(503);
      expect(failed.headers["retry-after"]).toBeDefined();
    } finally {
      setFailpoints("");
    }
    const retry = await post("/api/logs", event(5, { eventId }));
    expect(retry.statusCode).toBe(202);
    expect(retry.json()).toMatchObject({ eventId, status: "accepted" });
    await eventually("the retried event's row", async () =>
      (await exactlyOnceAudit(db.pool, db.names, [eventId])).lost === 0 ? true : undefined,
    );
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/log_producer_transaction_abort_total\{[^}]*\} [1-9]/);
  });

  it("accepts the valid items of a batch and reports the invalid ones by index", async () => {
    const r = await post("/api/logs/batch", [
      event(10),
      { level: "LOUD", source: "x", message: "m" },
      event(11),
      { source: "x" },
    ]);
    expect(r.statusCode, r.body).toBe(202);
    const body = r.json<{
      accepted: number;
      failed: { index: number; reasons: string[] }[];
      eventIds: (string | null)[];
    }>();
    expect(body.accepted).toBe(2);
    expect(body.failed.map((f) => f.index)).toEqual([1, 3]);
    expect(body.failed[0]?.reasons.join()).toContain("level");
    expect(body.eventIds[1]).toBeNull();
    const ids = body.eventIds.filter((x): x is string => x !== null);
    await eventually("the batch's rows", async () =>
      (await exactlyOnceAudit(db.pool, db.names, ids)).lost === 0 ? true : undefined,
    );
  });

  it("refuses an atomic batch with an invalid item, and writes nothing", async () => {
    const before = (await ledgerCounts(db.pool, db.names)).applied;
    const r = await post("/api/logs/batch?atomic=true", [event(20), { level: "INFO" }]);
    expect(r.statusCode).toBe(400);
    expect(r.json<{ reasons: string[] }>().reasons.join()).toMatch(/\[1\] source/);
    // The barrier: a sentinel from the same source (so the same Kafka partition, behind
    // anything the refused batch could have produced) is stored; then nothing else was.
    const sentinel = await post("/api/logs", event(20, { message: "sentinel after the refused batch" }));
    expect(sentinel.statusCode).toBe(202);
    const id = sentinel.json<{ eventId: string }>().eventId;
    await eventually("the sentinel stored", async () =>
      (await exactlyOnceAudit(db.pool, db.names, [id])).lost === 0 ? true : undefined,
    );
    expect((await ledgerCounts(db.pool, db.names)).applied).toBeGreaterThanOrEqual(before + 1);
    const refused = await db.pool.query(`SELECT 1 FROM ${db.names.events} WHERE message = 'hello 20'`);
    expect(refused.rows).toHaveLength(0);
  });

  it.each([
    ["malformed JSON", 400, "{not json", /json/i],
    ["wrong types", 400, { level: "INFO", source: 42, message: "m" }, /source/],
    ["an unknown level", 400, { level: "LOUD", source: "s", message: "m" }, /level/],
    ["an unknown field", 400, { level: "INFO", source: "s", message: "m", sevrity: 1 }, /sevrity/],
    ["a NUL character", 400, { level: "INFO", source: "s", message: "a\u0000b" }, /NUL/],
    [
      "an oversize body",
      413,
      { level: "INFO", source: "s", message: "x".repeat(2 * 1024 * 1024) },
      /too large/i,
    ],
  ] as const)("answers %s with %i and a reason", async (_what, status, body, reason) => {
    const r = await post("/api/logs", body);
    expect(r.statusCode).toBe(status);
    expect(r.body).toMatch(reason);
  });

  it("requires an API key", async () => {
    const r = await app.inject({
      method: "POST",
      url: "/api/logs",
      headers: { "content-type": "application/json" },
      payload: JSON.stringify(event(30)),
    });
    expect(r.statusCode).toBe(401);
    const wrong = await post("/api/logs", event(30), { "x-api-key": "nope" });
    expect(wrong.statusCode).toBe(401);
  });

  it("serves health, readiness with detail, OpenAPI and metrics with the original names", async () => {
    expect((await app.inject("/healthz")).statusCode).toBe(200);
    const ready = await app.inject("/readyz");
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({ kafka: "reachable", circuit: "closed", redis: "up" });
    const docs = await app.inject("/docs/json");
    expect(Object.keys(docs.json<{ paths: object }>().paths)).toEqual(
      expect.arrayContaining(["/api/logs", "/api/logs/batch"]),
    );
    const metrics = await registry.metrics();
    for (const name of [
      "log_producer_send_success_total",
      "log_producer_transaction_abort_total",
      "idempotency_cache_hit_total",
    ])
      expect(metrics).toContain(name);
    expect(promtoolCheckMetrics(metrics)).toEqual({ status: 0, findings: "" });
  });
});

describe("a record Kafka refuses inside a shared transaction", () => {
  it("fails only the request it came from: the others in the same transaction commit, once", async () => {
    const logger = createLogger("batcher-test", "error");
    const batches: number[] = [];
    let aborts = 0;
    const batcher = new Batcher(
      (txid) =>
        new NativeProducer({
          // librdkafka refuses, as it is handed over, any record above 10,000 bytes.
          config: { "bootstrap.servers": stack.kafkaBootstrap, "message.max.bytes": 10_000 },
          transactionalId: txid,
          timeoutMs: 10_000,
        }),
      {
        topic,
        delivery: "exactlyOnce",
        transactionalId: `iso-${id}`,
        lanes: 1,
        maxBatchEvents: 100,
        lingerMs: 200, // the three requests below share one transaction
        bufferMaxEvents: 1000,
        deliveryTimeoutMs: 10_000,
      },
      { guard: (fn) => fn(), onBatch: (n) => batches.push(n), onAbort: () => aborts++ },
      logger,
    );
    await batcher.connect();
    const now = new Date();
    const msg = (message: string) => {
      const e = normalizeEvent({ level: "INFO", source: "iso", message }, { now });
      return { id: e.eventId, m: { key: e.source, value: Buffer.from(JSON.stringify(e)), partition: 0 } };
    };
    const a = msg("first");
    const big = [msg("ok part of the refused request"), msg("x".repeat(20_000))];
    const c = [msg("third 1"), msg("third 2")];
    const results = await Promise.allSettled([
      batcher.submit([a.m]),
      batcher.submit(big.map((x) => x.m)),
      batcher.submit(c.map((x) => x.m)),
    ]);
    await batcher.close();
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    const refused = (results[1] as PromiseRejectedResult).reason as RecordRefused;
    expect(refused).toBeInstanceOf(RecordRefused);
    expect(refused.cause.message).toMatch(/too large|size/i);
    // One abort, then one commit of the three events of the other two requests.
    expect(aborts).toBe(1);
    expect(batches).toEqual([3]);
    const wanted = [a.id, ...c.map((x) => x.id)];
    const audit = await eventually("the other requests' rows", async () => {
      const r = await exactlyOnceAudit(db.pool, db.names, wanted);
      return r.lost === 0 ? r : undefined;
    });
    expect(audit.duplicated).toBe(0);
    // Nothing of the refused request is stored, not even its small event (same request, same fate).
    const q = await db.pool.query(`SELECT 1 FROM ${db.names.events} WHERE event_id = ANY($1::uuid[])`, [
      big.map((x) => x.id),
    ]);
    expect(q.rowCount).toBe(0);
  });
});

describe("rate limiting", () => {
  it("answers 429 with Retry-After once a client's bucket is empty", async () => {
    const limited = await buildGateway({
      env: env({
        TRANSACTIONAL_ID: `gw-rl-${id}`,
        RATE_LIMIT_PER_SECOND: "2",
        RATE_LIMIT_BURST: "2",
        ...pipelineEnv(`rl-${id}`),
      }),
      kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "rl"),
      redis,
      apiKeys: new ApiKeys(`tests:${KEY}`),
      log: createLogger("gateway-test", "warn"),
      registry: createRegistry("producer", "rl"),
    });
    try {
      const codes: number[] = [];
      let retryAfter: string | undefined;
      for (let i = 0; i < 4; i++) {
        const r = await limited.app.inject({
          method: "POST",
          url: "/api/logs",
          headers,
          payload: JSON.stringify(event(40 + i)),
        });
        codes.push(r.statusCode);
        if (r.statusCode === 429) retryAfter = r.headers["retry-after"];
      }
      expect(codes.slice(0, 2)).toEqual([202, 202]);
      expect(codes).toContain(429);
      expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    } finally {
      await limited.close();
    }
  });

  it("charges a batch per event, from the same bucket as single events: the batch route is no way around the limit", async () => {
    const limited = await buildGateway({
      env: env({
        TRANSACTIONAL_ID: `gw-rlb-${id}`,
        RATE_LIMIT_PER_SECOND: "1",
        RATE_LIMIT_BURST: "3",
        ...pipelineEnv(`rlb-${id}`),
      }),
      kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "rlb"),
      redis,
      apiKeys: new ApiKeys(`tests:${KEY}`),
      log: createLogger("gateway-test", "warn"),
      registry: createRegistry("producer", "rlb"),
    });
    try {
      const single = await limited.app.inject({
        method: "POST",
        url: "/api/logs",
        headers,
        payload: JSON.stringify(event(60)),
      });
      expect(single.statusCode).toBe(202);
      // Two tokens left of three: a batch of three events is refused, as three singles would be.
      const batch = await limited.app.inject({
        method: "POST",
        url: "/api/logs/batch",
        headers,
        payload: JSON.stringify([event(61), event(62), event(63)]),
      });
      expect(batch.statusCode).toBe(429);
      expect(batch.json<{ reasons?: string[] }>().reasons?.[0]).toMatch(
        /limit 1 events\/s for key:tests; this request has 3/,
      );
      // A batch within what is left passes.
      const small = await limited.app.inject({
        method: "POST",
        url: "/api/logs/batch",
        headers,
        payload: JSON.stringify([event(64), event(65)]),
      });
      expect(small.statusCode, small.body).toBe(202);
    } finally {
      await limited.close();
    }
  });
});

describe("gateway settings", () => {
  const build = async (over: Record<string, string>, redisClient?: Redis) =>
    buildGateway({
      env: env({ ...pipelineEnv(`s-${uniqueSuffix()}`), ...over }),
      kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "settings"),
      redis: redisClient,
      apiKeys: new ApiKeys(`tests:${KEY}`),
      log: createLogger("gateway-test", "error"),
      registry: createRegistry("producer", "settings"),
    });

  it("delivers with atLeastOnce (idempotent producer, no transactions)", async () => {
    const g = await build({ DELIVERY: "atLeastOnce", TRANSACTIONAL_ID: "" });
    try {
      const r = await g.app.inject({
        method: "POST",
        url: "/api/logs/batch",
        headers,
        payload: JSON.stringify([event(50), event(51)]),
      });
      expect(r.statusCode, r.body).toBe(202);
      const ids = r.json<{ eventIds: string[] }>().eventIds;
      await eventually("the atLeastOnce rows", async () =>
        (await exactlyOnceAudit(db.pool, db.names, ids)).lost === 0 ? true : undefined,
      );
    } finally {
      await g.close();
    }
  });

  it("with Redis unreachable and REDIS_FAILURE_MODE=closed, refuses client-named events with 503", async () => {
    const dead = new Redis("redis://127.0.0.1:1", {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    dead.on("error", () => undefined);
    const g = await build({ REDIS_FAILURE_MODE: "closed", TRANSACTIONAL_ID: `gw-closed-${id}` }, dead);
    try {
      const named = await g.app.inject({
        method: "POST",
        url: "/api/logs",
        headers,
        payload: JSON.stringify(event(60, { eventId: "01890000-0000-7000-8000-0000000000f1" })),
      });
      expect(named.statusCode).toBe(503);
      expect(named.body).toMatch(/fail-closed/);
      const ready = await g.app.inject("/readyz");
      expect(ready.json()).toMatchObject({ redis: "down", redisFailureMode: "closed" });
    } finally {
      await g.close();
      dead.disconnect();
    }
  });
});
