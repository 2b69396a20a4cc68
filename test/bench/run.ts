/**
 * `make bench`: the pipeline under load on the local stack, with its baselines measured in
 * the same run, on the same broker and database. Bounded in count and time; 127.0.0.1 only.
 * Prints a table and writes docs/benchmarks.json and docs/benchmarks.md.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { Consumer as PlatformaticConsumer, Producer as PlatformaticProducer } from "@platformatic/kafka";
import { Kafka as KafkaJs, logLevel as kafkaJsLogLevel } from "kafkajs";
import pg from "pg";
import { NativeProducer } from "../../workloads/common/src/kafka-producer.js";
import { FLOOD, floodPhase, poisonPhase } from "./hostile.js";
import { OTLP_SOURCE_PREFIX, otlpPhase } from "./otlp.js";
import { count202, load } from "./load.js";
import { ledgerDdl, ledgerNames } from "../../workloads/common/src/ledger.js";
import { kafkaClient } from "../support/kafka.js";
import { appliedEvents } from "../support/pipeline-db.js";
import { ensureStack, repoRoot } from "../support/stack.js";
import { pinnedVersions } from "../support/versions.js";
import { compileDist, pgEnv, startWorkload, type WorkloadProcess } from "../support/workload-process.js";
import { pipelineEnv } from "../support/kube.js";

const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 20);
const EVENTS_PER_REQUEST = 100;
const CONNECTIONS = 16;
// A single-event request waits for its transaction's commit: throughput needs concurrency.
const SINGLE_CONNECTIONS = 128;
const started = Date.now();
const step = (s: string) => console.error(`==> ${s} (${Math.round((Date.now() - started) / 1000)}s)`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const versions = pinnedVersions();
const cache = process.env.LP_CACHE ?? path.join(os.homedir(), ".cache/logpipeline");
const kafkaLibs = path.join(cache, `kafka-${versions.KAFKA_VERSION ?? ""}`, "libs/*");

/** A log event of about 300 bytes as JSON, as the gateway receives it. */
const eventBody = (i: number) => ({
  level: i % 10 === 0 ? "ERROR" : "INFO",
  source: `svc-${i % 16}`,
  message: `benchmark event ${i} `.padEnd(180, "x"),
  metadata: { region: "eu-1", pod: `pod-${i % 8}` },
});

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`bench: timed out waiting for ${what}`);
}

function rssMiB(pid: number | undefined): number {
  if (!pid) return 0;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m?.[1] ? Number(m[1]) / 1024 : 0;
}

async function main() {
  const { info, release } = ensureStack();
  const id = randomUUID().slice(0, 8);
  const dir = mkdtempSync(path.join(tmpdir(), "lp-bench-"));
  const pool = new pg.Pool({ connectionString: info.postgresUrl, max: 4 });
  const kafka = kafkaClient(info.kafkaBootstrap);
  const admin = kafka.admin();
  const procs: WorkloadProcess[] = [];
  const results: Record<string, number> = {};
  try {
    await admin.connect();
    const topic = `bench-${id}`;
    const schema = `bench_${id}`;
    await admin.createTopics({ topics: [{ topic, numPartitions: 6, replicationFactor: 1 }] });
    const names = ledgerNames(schema, "logs");
    await pool.query(ledgerDdl(names));
    writeFileSync(path.join(dir, "keys"), "bench:bench-key\n");
    const port = 23_000 + Math.floor(Math.random() * 2000);
    const headers = { "content-type": "application/json", "x-api-key": "bench-key" };

    // The workloads run as their images run them: compiled JavaScript (tsx would transform
    // the source at load and add esbuild's helpers to hot paths).
    step("compile the workloads (tsc -p tsconfig.build.json → dist/)");
    compileDist();
    step("start the gateway and the consumer");
    const gateway = startWorkload(
      "producer",
      {
        ...pipelineEnv(`bench-${id}`),
        KAFKA_BOOTSTRAP_SERVERS: info.kafkaBootstrap,
        KAFKA_TOPIC: topic,
        TRANSACTIONAL_ID: `bench-${id}`,
        API_KEYS_FILE: path.join(dir, "keys"),
        REDIS_URL: info.redisUrl,
        HOST: "127.0.0.1",
        PORT: String(port),
        METRICS_PORT: String(port + 2),
        LOG_LEVEL: "warn",
      },
      path.join(dir, "gateway.log"),
      { compiled: true },
    );
    const consumerEnv = {
      ...pgEnv(info.postgresUrl, schema),
      KAFKA_BOOTSTRAP_SERVERS: info.kafkaBootstrap,
      KAFKA_TOPIC: topic,
      KAFKA_GROUP_ID: `bench-${id}`,
      REDIS_URL: info.redisUrl,
      METRICS_PORT: String(port + 1),
      LOG_LEVEL: "warn",
    };
    const consumer = startWorkload("consumer", consumerEnv, path.join(dir, "consumer.log"), {
      compiled: true,
    });
    procs.push(gateway, consumer);
    await waitFor("the gateway", async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 60_000);
    await waitFor(
      "the consumer",
      async () => (await fetch(`http://127.0.0.1:${port + 1}/readyz`)).ok,
      60_000,
    );
    const rows = () => appliedEvents(pool, names);

    step(
      `full load: ${LOAD_SECONDS}s of batches of ${EVENTS_PER_REQUEST} events, ${CONNECTIONS} connections`,
    );
    const batch = JSON.stringify(Array.from({ length: EVENTS_PER_REQUEST }, (_, i) => eventBody(i)));
    /** Batch requests for `seconds`, as fast as they are answered or at `rate` requests/s. */
    const loadBatches = (seconds: number, rate?: number) =>
      load({
        url: `http://127.0.0.1:${port}/api/logs/batch`,
        method: "POST",
        headers,
        body: batch,
        connections: CONNECTIONS,
        duration: seconds,
        ...(rate !== undefined ? { overallRate: rate } : {}),
      });
    let rssMax = 0;
    const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssMiB(gateway.child.pid))), 250);
    const t0 = Date.now();
    const full = await loadBatches(LOAD_SECONDS);
    clearInterval(sampler);
    const fullAccepted = count202(full) * EVENTS_PER_REQUEST;
    await waitFor("every accepted event in PostgreSQL", async () => (await rows()) >= fullAccepted, 300_000);
    const lastRow =
      (await pool.query<{ t: Date }>(`SELECT max(stored_at) AS t FROM ${names.events}`)).rows[0]?.t ??
      new Date();
    results.e2e_events_per_s = Math.round(fullAccepted / ((lastRow.getTime() - t0) / 1000));
    results.gateway_events_per_s = Math.round(fullAccepted / LOAD_SECONDS);
    results.gateway_rss_mib = Math.round(rssMax);
    results.full_load_p99_ack_ms = full.latency.p99;

    step(`single-event requests: 10s, ${SINGLE_CONNECTIONS} connections`);
    const single = await load({
      url: `http://127.0.0.1:${port}/api/logs`,
      method: "POST",
      headers,
      body: JSON.stringify(eventBody(1)),
      connections: SINGLE_CONNECTIONS,
      duration: 10,
    });
    results.single_event_req_per_s = Math.round(count202(single) / 10);

    const halfRate = Math.max(1, Math.round(results.e2e_events_per_s / 2 / EVENTS_PER_REQUEST));
    step(`half load: ${halfRate} requests/s (${halfRate * EVENTS_PER_REQUEST} events/s) for 15s`);
    const beforeHalf = await rows();
    const halfStart = new Date();
    const half = await loadBatches(15, halfRate);
    const expected = beforeHalf + count202(half) * EVENTS_PER_REQUEST;
    await waitFor("the half-load events in PostgreSQL", async () => (await rows()) >= expected, 120_000);
    results.p99_ack_ms_half_load = half.latency.p99;
    const ackToRow = await pool.query<{ p99: number }>(
      `SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - received_at)) * 1000 AS p99 FROM ${names.events} WHERE received_at >= $1`,
      [halfStart],
    );
    results.p99_ack_to_row_ms_half_load = Math.round(ackToRow.rows[0]?.p99 ?? -1);
    Object.assign(
      results,
      await floodPhase({
        port,
        headers,
        batch,
        eventsPerRequest: EVENTS_PER_REQUEST,
        connections: CONNECTIONS,
        rate: halfRate,
        seconds: 15,
        step,
      }),
    );
    Object.assign(results, await poisonPhase({ postgresUrl: info.postgresUrl, schema, step }));
    await consumer.stop();
    const backlog = await rows();

    // The produce path on its own, as ProducerPerformance is measured: the consumer and
    // PostgreSQL are not competing for the two cores. Its events stay in the topic for the
    // solo consumer below.
    step(`gateway alone: ${LOAD_SECONDS}s of batches of ${EVENTS_PER_REQUEST} events, consumer stopped`);
    const alone = await loadBatches(LOAD_SECONDS);
    const aloneAccepted = count202(alone) * EVENTS_PER_REQUEST;
    results.gateway_alone_events_per_s = Math.round(aloneAccepted / LOAD_SECONDS);
    // OTLP against the native batch API, the gateway alone as above; the solo consumer below
    // stores these too, and its wait checks that every accepted record is stored.
    const otlp = await otlpPhase({
      port,
      key: "bench-key",
      nativeEvent: eventBody,
      seconds: 10,
      connections: CONNECTIONS,
      step,
    });
    Object.assign(results, otlp.figures);
    await gateway.stop();

    step("baseline: Kafka's ProducerPerformance with transactions (1,000,000 × 300 B)");
    await admin.createTopics({
      topics: [{ topic: `bench-pp-${id}`, numPartitions: 6, replicationFactor: 1 }],
    });
    const pp = execFileSync(
      "java",
      [
        "-Xmx512m",
        "-cp",
        kafkaLibs,
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        `bench-pp-${id}`,
        "--num-records",
        "1000000",
        "--record-size",
        "300",
        "--throughput",
        "-1",
        "--transactional-id",
        `bench-pp-${id}`,
        "--transaction-duration-ms",
        "100",
        "--producer-props",
        `bootstrap.servers=${info.kafkaBootstrap}`,
        "acks=all",
        "compression.type=lz4",
        "linger.ms=5",
      ],
      { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
    );
    const ppRate = Number(
      /records sent, ([\d.]+) records\/sec/.exec(pp.trim().split("\n").at(-1) ?? "")?.[1] ?? 0,
    );
    results.producer_perf_txn_events_per_s = Math.round(ppRate);
    results.produce_ratio_vs_producer_perf = Number((results.gateway_alone_events_per_s / ppRate).toFixed(3));

    step("our consumer alone, over the backlog of the run");
    const soloSchema = `${schema}_solo`;
    const soloNames = ledgerNames(soloSchema, "logs");
    await pool.query(ledgerDdl(soloNames));
    const tSolo = Date.now();
    const solo = startWorkload(
      "consumer",
      { ...consumerEnv, ...pgEnv(info.postgresUrl, soloSchema), KAFKA_GROUP_ID: `bench-solo-${id}` },
      path.join(dir, "consumer-solo.log"),
      { compiled: true },
    );
    procs.push(solo);
    const soloRows = () => appliedEvents(pool, soloNames);
    const soloBacklog = backlog + aloneAccepted + otlp.accepted + otlp.nativeAccepted;
    // Every accepted OTLP record stored: the OTLP source's stored count reaches the records
    // answered 200 (the totals are lower bounds: requests still in flight when a load run ended
    // are committed by the gateway but not counted by the load generator, so the total alone
    // could be reached before the last records are in). Two records given one id would be
    // stored once and never let it reach them.
    const otlpStored = async () =>
      Number(
        (
          await pool.query<{ n: string }>(
            `SELECT count(*) AS n FROM ${soloNames.events} WHERE source LIKE '${OTLP_SOURCE_PREFIX}%'`,
          )
        ).rows[0]?.n,
      );
    await waitFor(
      `the solo consumer (${soloBacklog} events, of which ${otlp.accepted} OTLP records)`,
      async () => (await soloRows()) >= soloBacklog && (await otlpStored()) >= otlp.accepted,
      // The backlog grows with the gateway's speed: at least 10,000 events/s, 5 minutes at least.
      Math.max(300_000, soloBacklog / 10),
    );
    await solo.stop();
    results.otlp_records_accepted = otlp.accepted;
    results.otlp_records_stored = await otlpStored();
    // Steady state, as the baselines are measured: from the first stored row to the last
    // (stored_at is each batch's transaction start); process start and the group join apart.
    const span = (
      await pool.query<{ n: string; first: Date; last: Date }>(
        `SELECT count(*) AS n, min(stored_at) AS first, max(stored_at) AS last FROM ${soloNames.events}`,
      )
    ).rows[0];
    const soloCount = Number(span?.n);
    const lastMs = span?.last.getTime() ?? Date.now();
    results.consumer_events_per_s = Math.round(soloCount / ((lastMs - (span?.first.getTime() ?? 0)) / 1000));
    results.consumer_events_per_s_with_start = Math.round(soloCount / ((lastMs - tSolo) / 1000));

    step("baseline: raw COPY of the same rows into the same schema");
    await pool.query(`CREATE TABLE ${schema}.copy_target (LIKE ${names.events} INCLUDING ALL)`);
    const csv = path.join(dir, "rows.csv");
    execFileSync("psql", [
      info.postgresUrl,
      "-q",
      "-c",
      `\\copy (SELECT * FROM ${names.events} LIMIT 200000) TO '${csv}' CSV`,
    ]);
    const copyRows = Math.min(backlog, 200_000);
    const tCopy = process.hrtime.bigint();
    execFileSync("psql", [info.postgresUrl, "-q", "-c", `\\copy ${schema}.copy_target FROM '${csv}' CSV`]);
    const copyRate = copyRows / (Number(process.hrtime.bigint() - tCopy) / 1e9);
    results.copy_rows_per_s = Math.round(copyRate);
    results.consumer_ratio_vs_copy = Number((results.consumer_events_per_s / copyRate).toFixed(3));

    // Where the full-text index lives is a write-path decision: the same COPY into a table
    // that also has a GIN index on to_tsvector('simple', message), against a search without
    // any such index (the query API's: a time range through the ts index, then the match).
    step("full-text search: COPY with a GIN index on the message, and a search without one");
    await pool.query(`CREATE TABLE ${schema}.copy_fts (LIKE ${names.events} INCLUDING ALL)`);
    await pool.query(
      `CREATE INDEX ON ${schema}.copy_fts USING gin (to_tsvector('simple', message)) WITH (fastupdate = on)`,
    );
    const tFts = process.hrtime.bigint();
    execFileSync("psql", [info.postgresUrl, "-q", "-c", `\\copy ${schema}.copy_fts FROM '${csv}' CSV`]);
    results.copy_rows_per_s_with_fts_index = Math.round(
      copyRows / (Number(process.hrtime.bigint() - tFts) / 1e9),
    );
    const searchMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t1 = process.hrtime.bigint();
      await pool.query(
        `SELECT event_id FROM ${names.events} WHERE ts >= now() - interval '1 hour'
           AND to_tsvector('simple', message) @@ websearch_to_tsquery('simple', $1) ORDER BY ts DESC LIMIT 100`,
        [`"benchmark event ${10 + i}"`],
      );
      searchMs.push(Number(process.hrtime.bigint() - t1) / 1e6);
    }
    results.fts_search_rows = backlog;
    results.fts_search_no_index_ms = Math.round(searchMs.sort((a, b) => a - b)[2] ?? -1);

    // kafkajs cannot read lz4 (the gateway's compression) without a third-party codec, so
    // the kafkajs-based baselines, and the client comparison, read an uncompressed copy of
    // the same events, written in transactions like the gateway's.
    step("an uncompressed copy of the run's events for the kafkajs-based baselines");
    const plain = `bench-plain-${id}`;
    const plainCount = Math.min(backlog, 300_000);
    await admin.createTopics({ topics: [{ topic: plain, numPartitions: 6, replicationFactor: 1 }] });
    const copier = kafka.producer({
      kafkaJS: { transactionalId: `bench-copy-${id}`, idempotent: true, maxInFlightRequests: 1 },
      "compression.type": "none",
      "linger.ms": 5,
    });
    await copier.connect();
    for (let offset = 0; offset < plainCount; offset += 5000) {
      const { rows: events } = await pool.query<{ e: unknown }>(
        `SELECT json_build_object('eventId', event_id, 'timestamp', ts, 'level', level, 'source', source, 'message', message, 'metadata', metadata, 'schemaVersion', schema_version, 'receivedAt', received_at) AS e
         FROM ${names.events} ORDER BY event_id OFFSET $1 LIMIT $2`,
        [offset, Math.min(5000, plainCount - offset)],
      );
      const tx = await copier.transaction();
      await tx.send({ topic: plain, messages: events.map((r) => ({ value: JSON.stringify(r.e) })) });
      await tx.commit();
    }
    await copier.disconnect();

    step("baseline: naive consumer (kafkajs eachMessage + one INSERT per event), 20s");
    await pool.query(`CREATE TABLE ${schema}.naive (LIKE ${names.events} INCLUDING ALL)`);
    const kjs = new KafkaJs({ brokers: [info.kafkaBootstrap], logLevel: kafkaJsLogLevel.NOTHING });
    const naive = kjs.consumer({ groupId: `bench-naive-${id}`, readUncommitted: false });
    let naiveCount = 0;
    await naive.connect();
    await naive.subscribe({ topic: plain, fromBeginning: true });
    let tNaive = 0; // from its first message, as our consumer is measured
    await naive.run({
      eachMessage: async ({ message, partition }) => {
        tNaive ||= Date.now();
        const e = JSON.parse(message.value?.toString() ?? "{}") as Record<string, unknown>;
        await pool.query(
          `INSERT INTO ${schema}.naive (event_id, ts, level, source, message, metadata, schema_version, received_at, kafka_partition, kafka_offset) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT DO NOTHING`,
          [
            e.eventId,
            e.timestamp,
            e.level,
            e.source,
            e.message,
            JSON.stringify(e.metadata),
            e.schemaVersion,
            e.receivedAt,
            partition,
            message.offset,
          ],
        );
        naiveCount++;
      },
    });
    await sleep(20_000);
    await naive.disconnect();
    const naiveRate = naiveCount / ((Date.now() - tNaive) / 1000);
    results.naive_consumer_events_per_s = Math.round(naiveRate);
    results.consumer_ratio_vs_naive = Number((results.consumer_events_per_s / naiveRate).toFixed(2));

    step("Kafka clients: sequential transactions of 1,000 × 300 B, and a read_committed read of the copy");
    const value = "x".repeat(300);
    const txns = 30;
    const clientTopic = `bench-clients-${id}`;
    await admin.createTopics({ topics: [{ topic: clientTopic, numPartitions: 6, replicationFactor: 1 }] });
    const messages = Array.from({ length: 1000 }, (_, i) => ({ key: `k${i % 16}`, value }));
    const confluentProducer = kafka.producer({
      kafkaJS: { transactionalId: `bench-cf-${id}`, idempotent: true, maxInFlightRequests: 1 },
      "linger.ms": 5,
      "compression.type": "lz4",
    });
    await confluentProducer.connect();
    let t = Date.now();
    for (let i = 0; i < txns; i++) {
      const tx = await confluentProducer.transaction();
      await tx.send({ topic: clientTopic, messages });
      await tx.commit();
    }
    results.client_confluent_txn_msgs_per_s = Math.round((txns * 1000) / ((Date.now() - t) / 1000));
    await confluentProducer.disconnect();
    const native = new NativeProducer({
      config: { "bootstrap.servers": info.kafkaBootstrap, "linger.ms": 1, "compression.codec": "lz4" },
      transactionalId: `bench-native-${id}`,
      timeoutMs: 10_000,
    });
    await native.connect();
    const nativeMessages = messages.map((m, i) => ({
      partition: i % 6,
      key: m.key,
      value: Buffer.from(m.value),
    }));
    t = Date.now();
    for (let i = 0; i < txns; i++) await native.sendTransaction(clientTopic, nativeMessages);
    results.client_native_txn_msgs_per_s = Math.round((txns * 1000) / ((Date.now() - t) / 1000));
    // The floor of an exactly-once ack: a transaction of one event, begin to commit, nothing
    // else in flight (the gateway answers 202 only after such a commit).
    const commits: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t1 = process.hrtime.bigint();
      await native.sendTransaction(clientTopic, [nativeMessages[0] as (typeof nativeMessages)[number]]);
      commits.push(Number(process.hrtime.bigint() - t1) / 1e6);
    }
    commits.sort((a, b) => a - b);
    results.kafka_txn_commit_p50_ms = Number((commits[Math.floor(commits.length * 0.5)] ?? -1).toFixed(1));
    results.kafka_txn_commit_p99_ms = Number((commits[Math.floor(commits.length * 0.99)] ?? -1).toFixed(1));
    await native.disconnect();
    // @platformatic/kafka, as its README sets it up (Buffers in, Buffers out).
    const plat = new PlatformaticProducer({
      clientId: "bench",
      bootstrapBrokers: [info.kafkaBootstrap],
      idempotent: true,
      transactionalId: `bench-plat-${id}`,
      acks: -1,
    });
    const platMessages = messages.map((m, i) => ({
      topic: clientTopic,
      partition: i % 6,
      key: Buffer.from(m.key),
      value: Buffer.from(m.value),
    }));
    t = Date.now();
    for (let i = 0; i < txns; i++) {
      const tx = await plat.beginTransaction();
      await tx.send({ messages: platMessages });
      await tx.commit();
    }
    results.client_platformatic_txn_msgs_per_s = Math.round((txns * 1000) / ((Date.now() - t) / 1000));
    await plat.close();
    const kjsProducer = kjs.producer({
      transactionalId: `bench-kjs-${id}`,
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await kjsProducer.connect();
    t = Date.now();
    for (let i = 0; i < txns; i++) {
      const tx = await kjsProducer.transaction();
      await tx.send({ topic: clientTopic, messages });
      await tx.commit();
    }
    results.client_kafkajs_txn_msgs_per_s = Math.round((txns * 1000) / ((Date.now() - t) / 1000));
    await kjsProducer.disconnect();
    const total = plainCount;
    const readAllWith = async (run: (onMessage: () => void) => Promise<() => Promise<void>>) => {
      let n = 0;
      const t1 = Date.now();
      const stop = await run(() => n++);
      await waitFor("a full read", () => Promise.resolve(n >= total), 120_000);
      const rate = Math.round(n / ((Date.now() - t1) / 1000));
      await stop();
      return rate;
    };
    results.client_confluent_read_committed_msgs_per_s = await readAllWith(async (on) => {
      const c = kafka.consumer({
        kafkaJS: { groupId: `bench-cf-read-${id}`, fromBeginning: true, autoCommit: false },
        "isolation.level": "read_committed",
      });
      await c.connect();
      await c.subscribe({ topics: [plain] });
      void c.run({
        eachBatch: ({ batch }) => {
          for (let i = 0; i < batch.messages.length; i++) on();
          return Promise.resolve();
        },
      });
      return () => c.disconnect();
    });
    results.client_kafkajs_read_committed_msgs_per_s = await readAllWith(async (on) => {
      const c = kjs.consumer({ groupId: `bench-kjs-read-${id}`, readUncommitted: false });
      await c.connect();
      await c.subscribe({ topic: plain, fromBeginning: true });
      void c.run({
        eachBatch: ({ batch }) => {
          for (let i = 0; i < batch.messages.length; i++) on();
          return Promise.resolve();
        },
      });
      return () => c.disconnect();
    });
    results.client_platformatic_read_committed_msgs_per_s = await readAllWith(async (on) => {
      const c = new PlatformaticConsumer({
        groupId: `bench-plat-read-${id}`,
        clientId: "bench",
        bootstrapBrokers: [info.kafkaBootstrap],
      });
      const stream = await c.consume({
        topics: [plain],
        mode: "earliest",
        isolationLevel: 1,
        autocommit: false,
      });
      stream.on("data", () => on());
      return async () => {
        await stream.close();
        await c.close();
      };
    });
    report(results, new Date().toISOString());
    await admin
      .deleteTopics({ topics: [topic, `bench-pp-${id}`, clientTopic, plain] })
      .catch(() => undefined);
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; DROP SCHEMA IF EXISTS ${soloSchema} CASCADE`);
  } finally {
    for (const p of procs) await p.stop();
    await admin.disconnect().catch(() => undefined);
    await pool.end();
    release();
  }
}

function report(figures: Record<string, number>, measuredAt: string) {
  const r: Record<string, number | string> = { ...figures, measured_at: measuredAt };
  const machine = `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.versions.node}, Kafka ${versions.KAFKA_VERSION ?? "?"}, PostgreSQL ${spawnSync("psql", ["--version"], { encoding: "utf8" }).stdout.trim().split(" ").at(-1) ?? "?"}`;
  const rows: [string, string, string][] = [
    ["sustained end to end (202 → row), events/s", String(r.e2e_events_per_s), "≥ 40,000"],
    ["gateway accepted at full load (consumer running), events/s", String(r.gateway_events_per_s), ""],
    [
      "Kafka ProducerPerformance with transactions, events/s",
      String(r.producer_perf_txn_events_per_s),
      "baseline",
    ],
    ["gateway alone (consumer stopped) at full load, events/s", String(r.gateway_alone_events_per_s), ""],
    ["gateway alone ÷ ProducerPerformance", String(r.produce_ratio_vs_producer_perf), "≥ 0.5"],
    ["consumer alone over the backlog, first row to last, events/s", String(r.consumer_events_per_s), ""],
    [
      "consumer alone, process start and group join included, events/s",
      String(r.consumer_events_per_s_with_start),
      "",
    ],
    ["raw COPY into the same schema, rows/s", String(r.copy_rows_per_s), "baseline"],
    [
      "naive consumer (kafkajs + INSERT per event), events/s",
      String(r.naive_consumer_events_per_s),
      "baseline",
    ],
    ["consumer ÷ naive", String(r.consumer_ratio_vs_naive), "≥ 10"],
    ["consumer ÷ COPY", String(r.consumer_ratio_vs_copy), "≥ 0.7"],
    [
      "raw COPY with a GIN full-text index on the message too, rows/s",
      String(r.copy_rows_per_s_with_fts_index),
      "baseline",
    ],
    [
      `full-text search without an index, last hour of ${String(r.fts_search_rows)} rows, median ms`,
      String(r.fts_search_no_index_ms),
      "",
    ],
    ["p99 ack at half load, ms", String(r.p99_ack_ms_half_load), "< 20"],
    [
      "one-event Kafka transaction, begin → commit, p50 / p99 ms (the floor of an exactly-once ack)",
      `${String(r.kafka_txn_commit_p50_ms)} / ${String(r.kafka_txn_commit_p99_ms)}`,
      "baseline",
    ],
    ["p99 ack → row at half load, ms", String(r.p99_ack_to_row_ms_half_load), "< 250"],
    ["p99 ack at full load, ms", String(r.full_load_p99_ack_ms), ""],
    ["single-event requests, req/s", String(r.single_event_req_per_s), "≥ 20,000"],
    [
      `half load beside an unauthenticated flood (${String(FLOOD.rate)} req/s, ${String(FLOOD.connections)} connections, ${String(FLOOD.bodyBytes / 1024)} KiB bodies, its own process): accepted events/s, flood ÷ alone`,
      `${String(r.flood_events_per_s)} ÷ ${String(r.flood_baseline_events_per_s)} = ${String(r.flood_events_ratio)}`,
      "≥ 0.8",
    ],
    [
      "the same: p99 ack ms, flood ÷ alone",
      `${String(r.flood_p99_ack_ms)} ÷ ${String(r.flood_baseline_p99_ack_ms)} = ${String(r.flood_p99_ratio)}`,
      "≤ 1.5",
    ],
    [
      "the flood: 401s per second (answers other than 401)",
      `${String(r.flood_unauthenticated_per_s)} (${String(r.flood_unauthenticated_other_answers)})`,
      "",
    ],
    [
      "consumer transaction, batches of 2,000: one refused value per batch ÷ clean, events/s",
      `${String(r.poison_one_per_batch_events_per_s)} ÷ ${String(r.poison_clean_events_per_s)} = ${String(r.poison_ratio)}`,
      "",
    ],
    ...[100, 1000].map((n): [string, string, string] => [
      `OTLP/HTTP protobuf ÷ native batch API, batches of ${n.toLocaleString("en")} from 16 services, gateway alone, 3 alternating rounds of 5 s each, events/s (rounds' ratios min–max; non-200 answers)`,
      `${String(r[`otlp_batch_${n}_events_per_s`])} ÷ ${String(r[`otlp_native_batch_${n}_events_per_s`])} = ${String(r[`otlp_batch_${n}_ratio_vs_native`])} (${String(r[`otlp_batch_${n}_ratio_min`])}–${String(r[`otlp_batch_${n}_ratio_max`])}; ${String(r[`otlp_batch_${n}_non_200`])})`,
      "≥ 0.8",
    ]),
    [
      "OTLP records answered 200 → stored by the consumer (each distinct; more only by requests in flight when a run ended)",
      `${String(r.otlp_records_accepted)} → ${String(r.otlp_records_stored)}`,
      "stored ≥ answered",
    ],
    ["gateway RSS at full load, MiB", String(r.gateway_rss_mib), "< 300"],
    [
      "Kafka client: @confluentinc/kafka-javascript, transactional produce msg/s",
      String(r.client_confluent_txn_msgs_per_s),
      "",
    ],
    [
      "Kafka client: @confluentinc/kafka-javascript, librdkafka's own API (the gateway's path), transactional produce msg/s",
      String(r.client_native_txn_msgs_per_s),
      "",
    ],
    ["Kafka client: kafkajs, transactional produce msg/s", String(r.client_kafkajs_txn_msgs_per_s), ""],
    [
      "Kafka client: @platformatic/kafka, transactional produce msg/s",
      String(r.client_platformatic_txn_msgs_per_s),
      "",
    ],
    [
      "Kafka client: @confluentinc/kafka-javascript, read_committed read msg/s",
      String(r.client_confluent_read_committed_msgs_per_s),
      "",
    ],
    [
      "Kafka client: kafkajs, read_committed read msg/s",
      String(r.client_kafkajs_read_committed_msgs_per_s),
      "",
    ],
  ];
  const table = [
    "| figure | measured | target |",
    "| --- | --- | --- |",
    ...rows.map(([a, b, c]) => `| ${a} | ${b} | ${c} |`),
  ].join("\n");
  console.log(`\n${table}\n`);
  // Merged: the other benchmarks' figures (make bench-storage …) stay under their keys.
  const jsonPath = path.join(repoRoot, "docs/benchmarks.json");
  const previous = JSON.parse(readFileSync(jsonPath, "utf8")) as Record<string, unknown>;
  writeFileSync(jsonPath, `${JSON.stringify({ ...previous, ...r }, null, 2)}\n`);
  const md = path.join(repoRoot, "docs/benchmarks.md");
  const text = readFileSync(md, "utf8");
  const section = `<!-- bench:start -->\nLast run: ${String(r.measured_at)} on ${machine}, everything co-located (stack, gateway, consumer, load generator); the workloads compiled, run as their images run them.\nCommand: \`make bench\` (\`BENCH_LOAD_SECONDS=${LOAD_SECONDS}\`).\n\n${table}\n<!-- bench:end -->`;
  writeFileSync(md, text.replace(/<!-- bench:start -->[\s\S]*<!-- bench:end -->/, section));
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
