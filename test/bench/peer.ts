/**
 * `make bench-peer`: this project's exactly-once consumer against the tool a team would
 * otherwise pick for Kafka → PostgreSQL — Kafka Connect (standalone, at the stack's Kafka
 * version) with Debezium's JDBC sink connector, which is at-least-once with upserts — over the
 * same backlog into the same PostgreSQL, in the same run. Each reads the events in its own
 * format: ours the event JSON the gateway writes; the peer Connect's JsonConverter with
 * schemas (the same fields, each record carrying its schema). Both are measured as the other
 * baselines are: rows ÷ (last stored row − first stored row), and from process start.
 * Bounded in count and time; 127.0.0.1 only.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { closeSync, mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { ledgerDdl, ledgerNames } from "../../workloads/common/src/ledger.js";
import { makeEvent } from "../support/events.js";
import { kafkaClient, transactionalWriter } from "../support/kafka.js";
import { appliedEvents } from "../support/pipeline-db.js";
import { ensureStack } from "../support/stack.js";
import { pinnedVersions } from "../support/versions.js";
import { pgEnv, startWorkload } from "../support/workload-process.js";
import { recordBenchmarks } from "./record.js";

const EVENTS = Number(process.env.BENCH_PEER_EVENTS ?? 300_000);
const PARTITIONS = 3;
/** The peer's batch: Debezium's `batch.size` and the Connect consumer's `max.poll.records`. */
const PEER_BATCH = Number(process.env.BENCH_PEER_BATCH ?? 5000);
const started = Date.now();
const step = (s: string) => console.error(`==> ${s} (${Math.round((Date.now() - started) / 1000)}s)`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const versions = pinnedVersions();
const cache = process.env.LP_CACHE ?? path.join(process.env.HOME ?? "/root", ".cache/logpipeline");
const peerHome = path.join(
  cache,
  `connect-peer-${versions.KAFKA_VERSION ?? ""}-debezium-jdbc-${versions.DEBEZIUM_JDBC_VERSION ?? ""}`,
);

/** Connect's JsonConverter envelope: the record's schema, then its payload. */
const PEER_SCHEMA = {
  type: "struct",
  name: "logpipeline.Event",
  optional: false,
  fields: [
    { field: "event_id", type: "string", optional: false },
    { field: "ts", type: "string", optional: false, name: "io.debezium.time.ZonedTimestamp" },
    { field: "level", type: "string", optional: false },
    { field: "source", type: "string", optional: false },
    { field: "message", type: "string", optional: false },
    { field: "metadata", type: "string", optional: true },
    { field: "received_at", type: "string", optional: false, name: "io.debezium.time.ZonedTimestamp" },
  ],
};

const ratioText = (ours: number, theirs: number) => (ours / theirs).toFixed(2);

/** Rows/s from the first stored row to the last, and from the process start to the last. */
async function rates(pool: pg.Pool, table: string, t0: number) {
  const r = (
    await pool.query<{ n: string; first: Date; last: Date }>(
      `SELECT count(*) AS n, min(stored_at) AS first, max(stored_at) AS last FROM ${table}`,
    )
  ).rows[0];
  const n = Number(r?.n);
  const last = r?.last.getTime() ?? Date.now();
  return {
    rows: n,
    perS: Math.round(n / ((last - (r?.first.getTime() ?? 0)) / 1000)),
    withStartPerS: Math.round(n / ((last - t0) / 1000)),
  };
}

async function waitRows(what: string, count: () => Promise<number>, proc?: ChildProcess) {
  const deadline = Date.now() + 600_000;
  for (;;) {
    const n = await count();
    if (n >= EVENTS) return;
    if (proc && proc.exitCode !== null)
      throw new Error(`bench: ${what} exited (${proc.exitCode}) at ${n} rows`);
    if (Date.now() > deadline)
      throw new Error(`bench: ${what} stored ${n} of ${EVENTS} rows within 10 minutes`);
    await sleep(200);
  }
}

async function main() {
  const { info, release } = ensureStack();
  const dir = mkdtempSync(path.join(tmpdir(), "lp-bench-peer-"));
  const id = randomUUID().slice(0, 8);
  const ours = `bench-peer-ours-${id}`;
  const theirs = `bench-peer-connect-${id}`;
  const schema = `bench_peer_${id}`;
  const pool = new pg.Pool({ connectionString: info.postgresUrl, max: 2 });
  const kafka = kafkaClient(info.kafkaBootstrap, `bench-peer-${id}`);
  const admin = kafka.admin();
  let connect: ChildProcess | undefined;
  try {
    await admin.connect();
    await admin.createTopics({
      topics: [ours, theirs].map((topic) => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 })),
    });
    step(
      `write the same ${EVENTS} events to ${ours} (event JSON) and ${theirs} (JsonConverter with schemas)`,
    );
    const writer = await transactionalWriter(kafka, `bench-peer-${id}`);
    let oursBytes = 0;
    let theirsBytes = 0;
    for (let i = 0; i < EVENTS; i += 10_000) {
      const events = Array.from({ length: Math.min(10_000, EVENTS - i) }, (_, j) => makeEvent(i + j));
      const a = events.map((e) => JSON.stringify(e));
      const b = events.map((e) =>
        JSON.stringify({
          schema: PEER_SCHEMA,
          payload: {
            event_id: e.eventId,
            ts: e.timestamp,
            level: e.level,
            source: e.source,
            message: e.message,
            metadata: JSON.stringify(e.metadata),
            received_at: e.receivedAt,
          },
        }),
      );
      for (const s of a) oursBytes += Buffer.byteLength(s);
      for (const s of b) theirsBytes += Buffer.byteLength(s);
      await writer.write(ours, a, { perTxn: 500, partitions: PARTITIONS });
      await writer.write(theirs, b, { perTxn: 500, partitions: PARTITIONS });
    }
    await writer.close();

    step("ours: the exactly-once consumer stores its backlog");
    const names = ledgerNames(schema, "logs");
    await pool.query(ledgerDdl(names));
    const t0 = Date.now();
    const consumer = startWorkload(
      "consumer",
      {
        ...pgEnv(info.postgresUrl, schema),
        KAFKA_BOOTSTRAP_SERVERS: info.kafkaBootstrap,
        KAFKA_TOPIC: ours,
        KAFKA_GROUP_ID: `bench-peer-${id}`,
        METRICS_PORT: String(25_000 + Math.floor(Math.random() * 2000)),
        LOG_LEVEL: "warn",
      },
      path.join(dir, "consumer.log"),
    );
    await waitRows("our consumer", () => appliedEvents(pool, names));
    await consumer.stop();
    const oursRate = await rates(pool, names.events, t0);

    const pgUrl = new URL(info.postgresUrl);
    const props = (o: Record<string, string | number>) =>
      Object.entries(o)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join("\n");
    /**
     * One run of the peer over its whole topic into a table of its own (a fresh worker: its
     * offsets file and connector name are the run's), made beforehand (schema.evolution=none)
     * with the same stored_at; `indexes` are added to it first.
     */
    const peerRun = async (run: string, indexes: string[]) => {
      step(
        `the peer (${run}): Kafka Connect standalone + Debezium JDBC sink (upsert, batch ${PEER_BATCH}, ${PARTITIONS} tasks)`,
      );
      const table = `${schema}.peer_${run}`;
      await pool.query(`CREATE TABLE ${table} (
        event_id text PRIMARY KEY, ts timestamptz NOT NULL, level text NOT NULL, source text NOT NULL,
        message text NOT NULL, metadata jsonb, received_at timestamptz NOT NULL,
        stored_at timestamptz NOT NULL DEFAULT clock_timestamp())`);
      for (const cols of indexes) await pool.query(`CREATE INDEX ON ${table} ${cols}`);
      const restPort = 28_000 + Math.floor(Math.random() * 1000);
      const file = (f: string) => path.join(dir, `${run}-${f}`);
      writeFileSync(
        file("worker.properties"),
        props({
          "bootstrap.servers": info.kafkaBootstrap,
          "key.converter": "org.apache.kafka.connect.storage.StringConverter",
          "value.converter": "org.apache.kafka.connect.json.JsonConverter",
          "value.converter.schemas.enable": "true",
          "offset.storage.file.filename": file("connect.offsets"),
          "offset.flush.interval.ms": 1000,
          "plugin.path": path.join(peerHome, "plugins"),
          "connector.client.config.override.policy": "All",
          // Its REST API on loopback only (the default listens on every interface).
          listeners: `http://127.0.0.1:${restPort}`,
        }),
      );
      writeFileSync(
        file("sink.properties"),
        props({
          name: `peer-${run}-${id}`,
          "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
          "tasks.max": PARTITIONS,
          topics: theirs,
          // pgjdbc's documented setting for batched inserts; strings bound as untyped (jsonb, timestamptz).
          "connection.url": `jdbc:postgresql://${pgUrl.hostname}:${pgUrl.port}${pgUrl.pathname}?reWriteBatchedInserts=true&stringtype=unspecified`,
          "connection.username": decodeURIComponent(pgUrl.username),
          "connection.password": decodeURIComponent(pgUrl.password),
          "insert.mode": "upsert",
          "primary.key.mode": "record_value",
          "primary.key.fields": "event_id",
          "schema.evolution": "none",
          "collection.name.format": table,
          "batch.size": PEER_BATCH,
          "consumer.override.max.poll.records": PEER_BATCH,
          "consumer.override.fetch.max.bytes": 52_428_800,
        }),
      );
      writeFileSync(
        file("log4j2.properties"),
        [
          "status = warn",
          "appender.f.type = File",
          "appender.f.name = F",
          `appender.f.fileName = ${file("connect.log")}`,
          "appender.f.layout.type = PatternLayout",
          "appender.f.layout.pattern = %d %p %c{1} %m%n",
          "rootLogger.level = info",
          "rootLogger.appenderRef.f.ref = F",
        ].join("\n"),
      );
      const out = openSync(file("connect.out"), "w");
      const t1 = Date.now();
      connect = spawn(
        "java",
        [
          "-Xms1g",
          "-Xmx1g",
          `-Dlog4j2.configurationFile=${file("log4j2.properties")}`,
          "-cp",
          path.join(peerHome, "libs/*"),
          "org.apache.kafka.connect.cli.ConnectStandalone",
          file("worker.properties"),
          file("sink.properties"),
        ],
        { stdio: ["ignore", out, out] },
      );
      closeSync(out);
      const peerRows = async () =>
        Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n);
      await waitRows(`the peer (logs in ${dir})`, peerRows, connect);
      const rate = await rates(pool, table, t1);
      const proc = connect;
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
      return rate;
    };
    // Its best case: a table with its primary key alone.
    const theirsRate = await peerRun("bare", []);
    // Like for like: the indexes our events table keeps for the query API (time, source).
    const indexedRate = await peerRun("indexed", ["(ts, event_id)", "(source, ts)"]);

    const ratio = Number((oursRate.perS / theirsRate.perS).toFixed(2));
    const figures = {
      peer_events: EVENTS,
      peer_ours_events_per_s: oursRate.perS,
      peer_ours_events_per_s_with_start: oursRate.withStartPerS,
      peer_connect_events_per_s: theirsRate.perS,
      peer_connect_events_per_s_with_start: theirsRate.withStartPerS,
      peer_connect_indexed_events_per_s: indexedRate.perS,
      peer_ratio_vs_indexed: Number((oursRate.perS / indexedRate.perS).toFixed(2)),
      peer_ratio: ratio,
      peer_ours_bytes_per_event: Math.round(oursBytes / EVENTS),
      peer_connect_bytes_per_event: Math.round(theirsBytes / EVENTS),
    };
    const table_ = [
      "| figure | measured | target |",
      "| --- | --- | --- |",
      `| this project's exactly-once consumer, events/s (first → last stored row; from process start) | ${oursRate.perS} (${oursRate.withStartPerS}) | |`,
      `| Kafka Connect ${versions.KAFKA_VERSION} + Debezium JDBC sink ${versions.DEBEZIUM_JDBC_VERSION}, upsert, events/s (same; from JVM start) | ${theirsRate.perS} (${theirsRate.withStartPerS}) | |`,
      `| the same peer into a table with the indexes ours keeps for queries, (ts, event_id) and (source, ts), events/s | ${indexedRate.perS} (${indexedRate.withStartPerS}) | |`,
      `| ours ÷ the peer (its bare table; the indexed table) | ${ratio}; ${ratioText(oursRate.perS, indexedRate.perS)} | ≥ 1.5 |`,
      `| bytes per record on Kafka: ours (event JSON) / the peer's (JsonConverter with schemas) | ${figures.peer_ours_bytes_per_event} / ${figures.peer_connect_bytes_per_event} | |`,
    ].join("\n");
    console.log(`\n${table_}\n`);
    recordBenchmarks({
      key: "peer",
      heading: "Against a peer: Kafka Connect with Debezium's JDBC sink",
      body: [
        `Last run: ${new Date().toISOString()}, ${EVENTS} events over ${PARTITIONS} partitions, everything co-located on 2 cores.`,
        "Command: `make bench-peer`.",
        "",
        `The peer's settings: \`insert.mode=upsert\`, \`primary.key.mode=record_value\` (\`event_id\`), \`batch.size=${PEER_BATCH}\` with \`consumer.override.max.poll.records=${PEER_BATCH}\` (Debezium's advice: the consumer must hand it batches that large), \`tasks.max=${PARTITIONS}\` (one per partition), \`reWriteBatchedInserts=true\` on the JDBC URL (pgjdbc's advice for batches), \`schema.evolution=none\` on a table made beforehand with the same \`stored_at\` column; JsonConverter with schemas (Confluent's AvroConverter is not on Maven Central). It stores each event at least once and makes a redelivery an upsert; ours stores each exactly once with its position, counts and dedup keys in the same transaction.`,
        "",
        table_,
      ].join("\n"),
      figures,
    });
  } finally {
    if (connect && connect.exitCode === null && connect.signalCode === null) {
      connect.kill("SIGTERM");
      await new Promise((r) => connect?.once("exit", r));
    }
    await admin.deleteTopics({ topics: [ours, theirs] }).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await pool.end();
    release();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
