import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ApiKeys } from "../../../workloads/common/src/auth.js";
import { parseEnv, ProducerEnv, QueryEnv } from "../../../workloads/common/src/config.js";
import { setFailpoints } from "../../../workloads/common/src/failpoints.js";
import { ledgerNames } from "../../../workloads/common/src/ledger.js";
import { createLogger } from "../../../workloads/common/src/logger.js";
import { createRegistry } from "../../../workloads/common/src/metrics.js";
import {
  AHEAD_MS,
  FUTURE_SKEW_MS,
  HOUR_MS,
  LATE_WINDOW_MS,
  legacyExists,
  listPartitions,
} from "../../../workloads/common/src/storage.js";
import { applyBatch } from "../../../workloads/consumer/src/sink.js";
import { buildGateway } from "../../../workloads/producer/src/app.js";
import { buildQueryApp } from "../../../workloads/query/src/app.js";
import { makeEvent } from "../../support/events.js";
import {
  type Admin,
  kafkaClient,
  readAll,
  transactionalWriter,
  workloadKafkaClient,
} from "../../support/kafka.js";
import { eventually, uniqueSuffix, pipelineEnv } from "../../support/kube.js";
import { legacyEventsDdl } from "../../support/legacy-ledger.js";
import {
  countMismatches,
  duplicateCounts,
  exactlyOnceAudit,
  ledgerCounts,
  testBatchOptions,
  testLedger,
  testPartitions,
} from "../../support/pipeline-db.js";
import { startSink } from "../../support/sink.js";
import { pgEnv, startWorkload } from "../../support/workload-process.js";

/**
 * The partitioned store against the real PostgreSQL, Kafka and consumer: partitions ahead of
 * time, the out-of-range rule, deduplication with Redis down, the audit's own negative
 * controls, the live tail's commit-only view, and an upgrade that moves an unpartitioned
 * table's rows under ingest, exactly once.
 */
const stack = inject("stack");
const kafka = kafkaClient(stack.kafkaBootstrap, "t-storage");
const KEY = "storage-key";
let admin: Admin;

beforeAll(async () => {
  admin = kafka.admin();
  await admin.connect();
});
afterAll(async () => {
  await admin.disconnect();
});

const records = (events: object[], from = 0) =>
  events.map((e, i) => ({ offset: String(from + i), value: Buffer.from(JSON.stringify(e)) }));

describe("partitions and the out-of-range rule", () => {
  let db: Awaited<ReturnType<typeof testLedger>>;
  beforeAll(async () => {
    db = await testLedger(stack.postgresUrl, "t_storage_parts");
  });
  afterAll(async () => db.drop());

  it("makes the events, count and key partitions ahead of time", async () => {
    const now = Date.now();
    const pass = await testPartitions(db).runOnce();
    expect(pass.created).toBeGreaterThan(0);
    const parts = await listPartitions(db.pool, db.names.storage);
    const starts = (t: string) => new Set(parts.filter((p) => p.table === t).map((p) => p.from));
    const hour = (ms: number) => Math.floor(ms / HOUR_MS) * HOUR_MS;
    for (let b = hour(now - LATE_WINDOW_MS); b <= hour(now + AHEAD_MS); b += HOUR_MS)
      for (const t of ["events", "countsMinute", "countsHour"])
        expect(starts(t).has(b), `${t} ${String(b)}`).toBe(true);
    const day = Math.floor(now / 86_400_000) * 86_400_000;
    expect(starts("keys").has(day + 86_400_000)).toBe(true);
    // A second pass has nothing to make.
    expect((await testPartitions(db).runOnce()).created).toBe(0);
  });

  it("clamps times outside the late window or the skew (keeping the event's own), and dead-letters events past the retention", async () => {
    const now = Date.now();
    const iso = (ms: number) => new Date(ms).toISOString();
    const received = iso(now);
    const past = makeEvent(1, { timestamp: "2001-01-01T00:00:00.000Z", receivedAt: received });
    const future = makeEvent(2, { timestamp: iso(now + 7 * 86_400_000), receivedAt: received });
    const onTime = makeEvent(3, { timestamp: iso(now - 60_000), receivedAt: received });
    // A backlog: received ten days ago, past a seven-day retention.
    const expired = makeEvent(4, {
      timestamp: iso(now - 10 * 86_400_000),
      receivedAt: iso(now - 10 * 86_400_000),
    });
    const client = await db.pool.connect();
    try {
      const o = await applyBatch(
        client,
        db.names,
        "t",
        0,
        records([past, future, onTime, expired]),
        testBatchOptions(db, "t", 7),
      );
      expect(o).toMatchObject({ applied: 3, clamped: 2, duplicates: 0 });
      expect(o.deadLettered.map((d) => [d.eventId, d.errorClass])).toEqual([[expired.eventId, "expired"]]);
      expect(o.deadLettered[0]?.reason).toMatch(/older than the retention \(7 days\)/);
    } finally {
      client.release();
    }
    const rows = await db.pool.query<{ event_id: string; ts: Date; ts_original: Date | null }>(
      `SELECT event_id, ts, ts_original FROM ${db.names.events} WHERE event_id = ANY($1::uuid[])`,
      [[past.eventId, future.eventId, onTime.eventId]],
    );
    const by = new Map(rows.rows.map((r) => [r.event_id, r]));
    expect(by.get(past.eventId)?.ts.getTime()).toBe(now - LATE_WINDOW_MS);
    expect(by.get(past.eventId)?.ts_original?.toISOString()).toBe(past.timestamp);
    expect(by.get(future.eventId)?.ts.getTime()).toBe(now + FUTURE_SKEW_MS);
    expect(by.get(future.eventId)?.ts_original?.toISOString()).toBe(future.timestamp);
    expect(by.get(onTime.eventId)?.ts.toISOString()).toBe(onTime.timestamp);
    expect(by.get(onTime.eventId)?.ts_original).toBeNull();
  });

  it("the audit counts planted duplicates, each kind by the count that can see it, and a row written without its counts (negative controls)", async () => {
    const ids = (
      await db.pool.query<{ event_id: string }>(`SELECT event_id FROM ${db.names.events}`)
    ).rows.map((r) => r.event_id);
    expect(await exactlyOnceAudit(db.pool, db.names, ids)).toMatchObject({
      lost: 0,
      duplicated: 0,
      spurious: 0,
    });
    expect(await duplicateCounts(db.pool, db.names.events)).toEqual({ bySeq: 0, byPosition: 0, byId: 0 });
    expect(await countMismatches(db.pool, db.names)).toEqual([]);
    const copy = (eventId: string, offset: string, metadata: string) =>
      db.pool.query(
        `INSERT INTO ${db.names.events} (event_id, ts, level, source, message, metadata, schema_version, received_at, kafka_partition, kafka_offset)
         SELECT ${eventId}, ts, level, source, message, ${metadata}, schema_version, received_at, kafka_partition, ${offset}
           FROM ${db.names.events} WHERE event_id = $1 ORDER BY kafka_offset LIMIT 1`,
        [ids[0]],
      ); // (the stored row, lowest offset: not an earlier copy)
    // The same event stored again at another Kafka position, as a broken deduplication would.
    await copy("event_id", "kafka_offset + 1000", "metadata");
    // The client's event again under a new id (a retry the gateway named anew): only its
    // sequence number shows it.
    await copy("gen_random_uuid()", "kafka_offset + 2000", "metadata");
    // A second row at one Kafka position (a record applied twice), with nothing else shared.
    await copy("gen_random_uuid()", "kafka_offset", "'{}'::jsonb");
    expect(await duplicateCounts(db.pool, db.names.events)).toEqual({ bySeq: 2, byPosition: 1, byId: 1 });
    expect(await exactlyOnceAudit(db.pool, db.names, ids)).toMatchObject({
      lost: 0,
      duplicated: 2,
      spurious: 2,
    });
    const mismatches = await countMismatches(db.pool, db.names);
    expect(mismatches).toHaveLength(2); // its minute and its hour
    expect(mismatches[0]).toMatch(/rows, \d+ counted/);
  });
});

describe("deduplication with Redis down", () => {
  it("stores a client-named event once when it is retried, with and without a timestamp, by id or Idempotency-Key", async () => {
    const topic = `t-storage-dedup-${uniqueSuffix()}`;
    await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }] });
    const db = await testLedger(stack.postgresUrl, "t_storage_dedup");
    // Nothing listens on port 1: the gateway's Redis never becomes ready (fail-open).
    const redis = new Redis("redis://127.0.0.1:1", {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => 1000,
      lazyConnect: true,
    });
    redis.on("error", () => undefined);
    const gateway = await buildGateway({
      env: parseEnv(ProducerEnv, {
        ...pipelineEnv(`d-${uniqueSuffix()}`),
        KAFKA_BOOTSTRAP_SERVERS: stack.kafkaBootstrap,
        KAFKA_TOPIC: topic,
        TRANSACTIONAL_ID: `d-${topic}`,
        API_KEYS_FILE: "/dev/null",
        REDIS_URL: "redis://127.0.0.1:1",
      }),
      kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "t"),
      redis,
      apiKeys: new ApiKeys(`t:${KEY}`),
      log: createLogger("gateway", "error"),
      registry: createRegistry("producer", "t"),
    });
    const sink = await startSink({
      kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "t"),
      db,
      topic,
      groupId: `g-${topic}`,
    });
    try {
      // Barrier: the gateway has seen the topic (metadata can lag its creation by a moment).
      await eventually("the gateway ready", async () =>
        (await gateway.app.inject("/readyz")).statusCode === 200 ? true : undefined,
      );
      const post = async (body: object, headers: Record<string, string> = {}) => {
        const r = await gateway.app.inject({
          method: "POST",
          url: "/api/logs",
          headers: { "x-api-key": KEY, "content-type": "application/json", ...headers },
          payload: JSON.stringify(body),
        });
        expect(r.statusCode, r.body).toBe(202);
        return r.json<{ eventId: string }>().eventId;
      };
      const withTime = randomUUID();
      const withoutTime = randomUUID();
      const ts = new Date().toISOString();
      // Each retried in another level, so a retry can land in another Kafka partition too.
      const sent: string[] = [];
      for (const level of ["INFO", "ERROR"]) {
        sent.push(await post({ eventId: withTime, timestamp: ts, level, source: "a", message: "with time" }));
        sent.push(await post({ eventId: withoutTime, level, source: "b", message: "without time" }));
        sent.push(await post({ level, source: "c", message: "by key" }, { "idempotency-key": "order-42" }));
        await new Promise((r) => setTimeout(r, 20)); // a later receipt: the retries' times differ
      }
      const named = [...new Set(sent)];
      expect(named).toHaveLength(3);
      const counts = await eventually(
        "the six records accounted for",
        async () => {
          const c = await ledgerCounts(db.pool, db.names);
          return c.applied + c.duplicates >= 6 ? c : undefined;
        },
        30_000,
      );
      expect(counts).toMatchObject({ applied: 3, rows: 3, duplicates: 3 });
      expect(await exactlyOnceAudit(db.pool, db.names, named)).toEqual({
        lost: 0,
        duplicated: 0,
        spurious: 0,
        rows: 3,
      });
      expect(await countMismatches(db.pool, db.names)).toEqual([]);
    } finally {
      await sink.stop();
      await gateway.close();
      redis.disconnect();
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await db.drop();
    }
  });
});

describe("live tail", () => {
  it("streams committed events only: never an aborted Kafka transaction's, never a rolled-back batch's twice", async () => {
    const topic = `t-storage-tail-${uniqueSuffix()}`;
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] });
    const db = await testLedger(stack.postgresUrl, "t_storage_tail");
    const app = await buildQueryApp({
      env: parseEnv(QueryEnv, {
        ...pipelineEnv(`tail-${uniqueSuffix()}`),
        PG_HOST: "unused",
        PG_USER: "unused",
        API_KEYS_FILE: "/dev/null",
        MAX_TAILS: "1",
      }),
      pool: db.pool,
      names: db.names,
      apiKeys: new ApiKeys(`reader:${KEY}`),
      log: createLogger("query-test", "warn"),
      registry: createRegistry("query", "t"),
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    const received: { eventId: string; message: string }[] = [];
    let listening!: () => void;
    const ready = new Promise<void>((r) => (listening = r));
    const req = http.get(
      { host: "127.0.0.1", port, path: "/api/tail?source=tailed", headers: { "x-api-key": KEY } },
      (res) => {
        expect(res.statusCode).toBe(200);
        let buf = "";
        res.on("data", (chunk: Buffer) => {
          buf += chunk.toString("utf8");
          for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (frame.startsWith(": listening")) listening();
            const data = /^data: (.*)$/m.exec(frame)?.[1];
            if (data) received.push(JSON.parse(data) as { eventId: string; message: string });
          }
        });
      },
    );
    req.on("error", () => undefined);
    let sink: Awaited<ReturnType<typeof startSink>> | undefined;
    try {
      await ready;
      // A second tail is over this replica's bound.
      const second = await app.inject({ url: "/api/tail", headers: { "x-api-key": KEY } });
      expect(second.statusCode).toBe(429);

      const aborted = makeEvent(1, { source: "tailed", message: "aborted" });
      const rolledBack = makeEvent(2, { source: "tailed", message: "rolled back once, then committed" });
      const other = makeEvent(3, { source: "elsewhere", message: "not matching" });
      const sentinel = makeEvent(4, { source: "tailed", message: "sentinel" });
      const producer = kafka.producer({
        kafkaJS: { transactionalId: `tx-${topic}`, idempotent: true, maxInFlightRequests: 1 },
      });
      await producer.connect();
      const send = async (events: object[], commit: boolean) => {
        const tx = await producer.transaction();
        await tx.send({ topic, messages: events.map((e) => ({ value: JSON.stringify(e), partition: 0 })) });
        await (commit ? tx.commit() : tx.abort());
      };
      await send([aborted], false);
      await send([rolledBack, other], true);
      // The first batch the sink applies fails just before its PostgreSQL commit (rolled back), then is retried.
      setFailpoints("before-pg-commit=error@1");
      sink = await startSink({
        kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "t"),
        db,
        topic,
        groupId: `g-${topic}`,
      });
      await eventually("the first batch stored", async () =>
        (await ledgerCounts(db.pool, db.names)).applied >= 2 ? true : undefined,
      );
      // The barrier: a later event in the same Kafka partition; once it is in the tail, every
      // earlier one has been read (the tail reads each partition in offset order).
      await send([sentinel], true);
      await producer.disconnect();
      await eventually("the sentinel in the tail", () =>
        Promise.resolve(received.some((r) => r.eventId === sentinel.eventId) ? true : undefined),
      );
      expect(received.map((r) => r.message)).toEqual(["rolled back once, then committed", "sentinel"]);
    } finally {
      setFailpoints("");
      req.destroy();
      await sink?.stop();
      await app.close();
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await db.drop();
    }
  });
});

describe("upgrade from an unpartitioned table", () => {
  it("moves every row into the partitions while the consumer ingests: lost = duplicated = spurious = 0", async () => {
    const id = uniqueSuffix();
    const topic = `t-storage-upgrade-${id}`;
    await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }] });
    const schema = `t_storage_upgrade_${id}`;
    const db = await testLedger(stack.postgresUrl, "t_storage_unused");
    const names = ledgerNames(schema, "logs");
    const logs = mkdtempSync(path.join(tmpdir(), "lp-storage-upgrade-"));
    // Before: 3,000 events committed to Kafka and stored by the old consumer in the old
    // table, at their real positions, some of them hours old.
    const old = Array.from({ length: 3000 }, (_, i) => {
      const t = new Date(Date.now() - (i % 300) * 60_000).toISOString();
      return makeEvent(i, { timestamp: t, receivedAt: t });
    });
    const writer = await transactionalWriter(kafka, `tx-${topic}`);
    await writer.write(
      topic,
      old.map((e) => JSON.stringify(e)),
      { perTxn: 300, partitions: 3 },
    );
    const written = await readAll(kafka, topic, {
      groupId: `r-${id}`,
      readCommitted: true,
      expected: 3000,
      idleMs: 500,
    });
    expect(written).toHaveLength(3000);
    await db.pool.query(legacyEventsDdl(names));
    await db.pool.query(
      `INSERT INTO ${names.events} (event_id, ts, level, source, message, metadata, schema_version, received_at, kafka_partition, kafka_offset)
       SELECT (e->>'eventId')::uuid, (e->>'timestamp')::timestamptz, e->>'level', e->>'source', e->>'message', e->'metadata',
              (e->>'schemaVersion')::int, (e->>'receivedAt')::timestamptz, p, o
         FROM unnest($1::jsonb[], $2::int[], $3::bigint[]) AS x(e, p, o)`,
      [written.map((r) => r.value), written.map((r) => r.partition), written.map((r) => r.offset)],
    );
    // The old consumer's stored positions: one past each partition's last record.
    const next = new Map<number, number>();
    for (const r of written)
      next.set(r.partition, Math.max(next.get(r.partition) ?? 0, Number(r.offset) + 1));
    for (const [p, o] of next)
      await db.pool.query(
        `INSERT INTO ${names.offsets} (topic, partition, next_offset, applied) VALUES ($1, $2, $3, 0)`,
        [topic, p, o],
      );

    // Ingest goes on during the upgrade: 3,000 new events, and 60 of the old ones retried by clients.
    const fresh = Array.from({ length: 3000 }, (_, i) => makeEvent(10_000 + i));
    const retried = old.slice(0, 60);
    const load = (async () => {
      for (let i = 0; i < fresh.length; i += 300) {
        await writer.write(
          topic,
          [...fresh.slice(i, i + 300), ...(i === 1500 ? retried : [])].map((e) => JSON.stringify(e)),
          { perTxn: 400, partitions: 3 },
        );
      }
    })();
    const env = {
      ...pgEnv(stack.postgresUrl, schema),
      KAFKA_BOOTSTRAP_SERVERS: stack.kafkaBootstrap,
      KAFKA_TOPIC: topic,
      KAFKA_GROUP_ID: `g-${topic}`,
      BATCH_MAX_EVENTS: "200",
      METRICS_PORT: String(20_000 + Math.floor(Math.random() * 20_000)),
      PARTITION_MAINTENANCE_SECONDS: "1",
      UPGRADE_MOVE_BATCH_ROWS: "100",
      LOG_LEVEL: "info",
    };
    const consumer = startWorkload("consumer", env, path.join(logs, "consumer.log"));
    try {
      await load;
      await writer.close();
      await eventually(
        "the old table emptied and dropped, and every new record accounted for",
        async () => {
          if (await legacyExists(db.pool, names.storage)) return undefined;
          const c = await ledgerCounts(db.pool, names);
          return c.applied + c.duplicates >= fresh.length + retried.length ? c : undefined;
        },
        120_000,
      );
    } finally {
      await consumer.stop();
    }
    const all = [...old, ...fresh].map((e) => e.eventId);
    expect(await exactlyOnceAudit(db.pool, names, all)).toEqual({
      lost: 0,
      duplicated: 0,
      spurious: 0,
      rows: 6000,
    });
    const counts = await ledgerCounts(db.pool, names);
    expect(counts).toMatchObject({ applied: 3000, duplicates: 60 });
    expect(await countMismatches(db.pool, names)).toEqual([]);
    await db.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await db.drop();
  }, 240_000);
});
