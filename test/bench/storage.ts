/**
 * `make bench-storage`: the partitioned store at scale, every figure beside its baseline from
 * the same run (docs/storage.md; targets from the storage issue).
 *
 *  1. Ingest: one backlog of events in Kafka stored three ways — the consumer into the
 *     partitioned schema (rows, counts, keys), raw COPY of the same rows into the same
 *     schema, and the previous, unpartitioned consumer (a git worktree of the baseline
 *     revision) into its own schema.
 *  2. A data set of BENCH_STORAGE_ROWS (default 10 million) rows over 24 hourly partitions,
 *     loaded with COPY (said in the output) with counts; messages from a template generator
 *     with Zipf-distributed words, a rare term in about 1 row in 100,000 and a frequent term
 *     in over 10 %. Each partition's full-text index is built as the maintainer builds it;
 *     its build time is set against the time its rows took to write.
 *  3. Search over 24 h for the rare and the frequent term, first page, p50/p95, idle and
 *     while the consumer ingests at half its measured rate; stats and histogram over 24 h,
 *     checked against count(*); dropping a partition under ingest (time, WAL, dead tuples,
 *     the longest gap between consumer commits against the same window without a drop);
 *     disk per event. Then the data set is doubled and the first-page search measured again.
 *
 * Writes docs/benchmarks.md (between <!-- storage:start/end -->) and docs/benchmarks.json
 * (storage_* keys). Everything on 127.0.0.1; bounded in count and time.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createWriteStream, existsSync, mkdtempSync, statfsSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { Registry } from "prom-client";
import { parseEnv, QueryEnv } from "../../workloads/common/src/config.js";
import { ledgerDdl, ledgerNames, type LedgerNames } from "../../workloads/common/src/ledger.js";
import { createLogger } from "../../workloads/common/src/logger.js";
import { createRegistry } from "../../workloads/common/src/metrics.js";
import {
  bucketOf,
  dropPartition,
  HOUR_MS,
  listPartitions,
  PARTITION_SPAN_MS,
} from "../../workloads/common/src/storage.js";
import { PARTITION_DEFAULTS, Partitions } from "../../workloads/consumer/src/partitions.js";
import { buildQueryApp } from "../../workloads/query/src/app.js";
import { makeEvent } from "../support/events.js";
import { recordBenchmarks } from "./record.js";
import { kafkaClient, transactionalWriter } from "../support/kafka.js";
import { appliedEvents } from "../support/pipeline-db.js";
import { ensureStack, repoRoot } from "../support/stack.js";
import { pgEnv, startWorkload } from "../support/workload-process.js";
import { pipelineEnv } from "../support/kube.js";

const ROWS = Number(process.env.BENCH_STORAGE_ROWS ?? 10_000_000);
const BACKLOG = Number(process.env.BENCH_STORAGE_BACKLOG ?? 300_000);
const SEARCH_RUNS = Number(process.env.BENCH_STORAGE_SEARCH_RUNS ?? 20);
const BASELINE_REV = process.env.BENCH_STORAGE_BASELINE_REV ?? "e13fa0d";
const KAFKA_PARTITIONS = 6;
const HOURS = 24;
const RARE = "zyxquartzite";
const FREQUENT_RANK = 0;
const started = Date.now();
const step = (s: string) => console.error(`==> ${s} (${Math.round((Date.now() - started) / 1000)}s)`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0) : 0;
};
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

// ---- the message generator: templates over Zipf-distributed words (seeded: repeatable) ----
function mulberry32(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(42);
function zipf(n: number, s = 1.07) {
  const w = Array.from({ length: n }, (_, i) => 1 / (i + 1) ** s);
  const total = w.reduce((a, x) => a + x, 0);
  let acc = 0;
  const cdf = w.map((x) => (acc += x / total));
  return () => {
    const u = rand();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cdf[mid] ?? 1) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}
const VOCAB = Array.from({ length: 5000 }, (_, i) => `w${i.toString(36)}x`);
const word = zipf(VOCAB.length);
const SOURCES = Array.from({ length: 50 }, (_, i) => `svc-${String(i)}`);
const sourceRank = zipf(SOURCES.length, 0.8);
const source = () => SOURCES[sourceRank()] ?? "svc-0";
const TEMPLATES = [
  "request %w %w served in %n ms",
  "user %w %w failed: %w %w",
  "cache %w for %w %w",
  "job %w %w %w done",
];
const LEVELS: [string, number][] = [
  ["DEBUG", 0.15],
  ["INFO", 0.85],
  ["WARN", 0.95],
  ["ERROR", 0.99],
  ["FATAL", 1],
];
const tally = { rows: 0, rare: 0, frequent: 0 };
function message(): string {
  const t = TEMPLATES[Math.floor(rand() * TEMPLATES.length)] ?? "";
  let m = t.replace(/%w/g, () => VOCAB[word()] ?? "").replace("%n", String(Math.floor(rand() * 900)));
  if (rand() < 1 / 100_000) m += ` ${RARE}`;
  tally.rows++;
  if (m.includes(RARE)) tally.rare++;
  if (m.split(" ").includes(VOCAB[FREQUENT_RANK] ?? "")) tally.frequent++;
  return m;
}
const level = () => {
  const u = rand();
  return LEVELS.find(([, c]) => u < c)?.[0] ?? "INFO";
};

// ---- loading with COPY into the partitioned schema, with its counts ----
const offsets = new Map<number, number>();
async function copyRows(
  pool: pg.Pool,
  n: LedgerNames,
  rows: number,
  fromMs: number,
  toMs: number,
): Promise<number> {
  const client = await pool.connect();
  const t0 = performance.now();
  try {
    const chunk = 50_000;
    for (let done = 0; done < rows; done += chunk) {
      const lines: string[] = [];
      for (let i = 0; i < Math.min(chunk, rows - done); i++) {
        const p = (done + i) % KAFKA_PARTITIONS;
        const o = offsets.get(p) ?? 0;
        offsets.set(p, o + 1);
        const ts = new Date(fromMs + rand() * (toMs - fromMs)).toISOString();
        lines.push(
          [
            randomUUID(),
            ts,
            level(),
            source(),
            message(),
            "{}",
            "\\N",
            "\\N",
            "\\N",
            "1",
            ts,
            String(p),
            String(o),
          ].join("\t"),
        );
      }
      await pipeline(
        Readable.from([`${lines.join("\n")}\n`]),
        client.query(
          copyFrom(
            `COPY ${n.events} (event_id, ts, level, source, message, metadata, stack_trace, user_id, trace_id, schema_version, received_at, kafka_partition, kafka_offset) FROM STDIN`,
          ),
        ),
      );
    }
  } finally {
    client.release();
  }
  return performance.now() - t0;
}
async function recount(pool: pg.Pool, n: LedgerNames): Promise<void> {
  const { countsMinute, countsHour } = n.storage.parents;
  for (const [table, width] of [
    [countsMinute.qualified, "1 minute"],
    [countsHour.qualified, "1 hour"],
  ] as const) {
    await pool.query(`TRUNCATE ${table}`);
    await pool.query(
      `INSERT INTO ${table} (t, kafka_partition, level, source, n)
       SELECT date_bin('${width}', ts, 'epoch'::timestamptz), kafka_partition, level, source, count(*) FROM ${n.events} GROUP BY 1, 2, 3, 4`,
    );
  }
}

// ---- ingest: the consumer (new and baseline) and raw COPY on one backlog ----
async function backlogTopic(info: { kafkaBootstrap: string }, events: number) {
  const id = randomUUID().slice(0, 8);
  const topic = `bench-storage-${id}`;
  const kafka = kafkaClient(info.kafkaBootstrap, topic);
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: KAFKA_PARTITIONS, replicationFactor: 1 }] });
  const writer = await transactionalWriter(kafka, `tx-${topic}`);
  const all: string[] = [];
  for (let i = 0; i < events; i += 10_000) {
    const values = Array.from({ length: Math.min(10_000, events - i) }, (_, j) =>
      JSON.stringify({
        ...makeEvent(i + j, { message: message(), source: source() }),
        idOrigin: "gateway",
      }),
    );
    all.push(...values);
    await writer.write(topic, values, { perTxn: 500, partitions: KAFKA_PARTITIONS });
  }
  await writer.close();
  return {
    topic,
    values: all,
    drop: async () => {
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    },
  };
}

function baselineWorktree(): string {
  const dir = path.join(tmpdir(), `lp-bench-baseline-${BASELINE_REV}`);
  if (!existsSync(dir)) {
    execFileSync("git", ["-C", repoRoot, "worktree", "add", "--detach", dir, BASELINE_REV], {
      stdio: "ignore",
    });
    symlinkSync(path.join(repoRoot, "node_modules"), path.join(dir, "node_modules"));
  }
  return dir;
}

async function consumeBacklog(
  info: { kafkaBootstrap: string; postgresUrl: string },
  pool: pg.Pool,
  topic: string,
  events: number,
  which: "new" | "baseline",
  dir: string,
): Promise<number> {
  const schema = `bench_st_${which}_${randomUUID().slice(0, 6)}`;
  const n = ledgerNames(schema, "logs");
  const env = {
    ...pgEnv(info.postgresUrl, schema),
    KAFKA_BOOTSTRAP_SERVERS: info.kafkaBootstrap,
    KAFKA_TOPIC: topic,
    KAFKA_GROUP_ID: `g-${schema}`,
    METRICS_PORT: String(26_000 + Math.floor(Math.random() * 2000)),
    LOG_LEVEL: "warn",
  };
  const log = path.join(dir, `consumer-${which}.log`);
  let stop: () => Promise<void>;
  if (which === "new") stop = startWorkload("consumer", env, log).stop;
  else {
    const root = baselineWorktree();
    const out = createWriteStream(log);
    const child = spawn(
      process.execPath,
      ["--import", "tsx", path.join(root, "workloads/consumer/src/main.ts")],
      {
        cwd: root,
        env: { PATH: process.env.PATH ?? "", ...env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stdout.pipe(out);
    child.stderr.pipe(out);
    const exited = new Promise((r) => child.once("exit", r));
    stop = async () => {
      child.kill("SIGTERM");
      await exited;
    };
  }
  // Timed from the first stored row, so start-up and migrations are not counted.
  const deadline = Date.now() + 600_000;
  const applied = () => appliedEvents(pool, n).catch(() => 0);
  while ((await applied()) === 0) {
    if (Date.now() > deadline) throw new Error(`bench: the ${which} consumer stored nothing (log: ${log})`);
    await sleep(20);
  }
  const t0 = performance.now();
  const first = await applied();
  while ((await applied()) < events) {
    if (Date.now() > deadline) throw new Error(`bench: the ${which} consumer did not finish (log: ${log})`);
    await sleep(50);
  }
  const rate = (events - first) / ((performance.now() - t0) / 1000);
  await stop();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  return Math.round(rate);
}

async function rawCopyRate(pool: pg.Pool, values: string[]): Promise<number> {
  const schema = `bench_st_copy_${randomUUID().slice(0, 6)}`;
  const n = ledgerNames(schema, "logs");
  await pool.query(ledgerDdl(n));
  const parts = new Partitions(pool, n, opts(0), createLogger("bench", "warn"), new Registry());
  await parts.ensureBuckets([bucketOf(Date.now()), bucketOf(Date.now()) + PARTITION_SPAN_MS]);
  const lines = values.map((v, i) => {
    const e = JSON.parse(v) as {
      eventId: string;
      timestamp: string;
      level: string;
      source: string;
      message: string;
      receivedAt: string;
    };
    return [
      e.eventId,
      e.timestamp,
      e.level,
      e.source,
      e.message,
      "{}",
      "\\N",
      "\\N",
      "\\N",
      "1",
      e.receivedAt,
      String(i % KAFKA_PARTITIONS),
      String(i),
    ].join("\t");
  });
  const client = await pool.connect();
  const t0 = performance.now();
  for (let i = 0; i < lines.length; i += 2000)
    await pipeline(
      Readable.from([`${lines.slice(i, i + 2000).join("\n")}\n`]),
      client.query(
        copyFrom(
          `COPY ${n.events} (event_id, ts, level, source, message, metadata, stack_trace, user_id, trace_id, schema_version, received_at, kafka_partition, kafka_offset) FROM STDIN`,
        ),
      ),
    );
  const rate = lines.length / ((performance.now() - t0) / 1000);
  client.release();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  return Math.round(rate);
}

const opts = (retentionDays: number) => ({ ...PARTITION_DEFAULTS, retentionDays, topic: "bench" });

// ---- search, counts ----
type App = Awaited<ReturnType<typeof buildQueryApp>>;
/** First-page latency of a search for `term` over [from, to). */
async function searchLatency(
  app: App,
  term: string,
  runs: number,
  range: { from: number; to: number },
): Promise<{ p50: number; p95: number; items: number; partial: number }> {
  const ms: number[] = [];
  let items = 0;
  let partial = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = await app.inject(
      `/api/logs?q=${encodeURIComponent(term)}&limit=100&from=${new Date(range.from).toISOString()}&to=${new Date(range.to).toISOString()}`,
    );
    ms.push(performance.now() - t0);
    const body = r.json<{ items: unknown[]; partial: unknown }>();
    if (r.statusCode !== 200) throw new Error(`bench: search answered ${String(r.statusCode)}: ${r.body}`);
    items = body.items.length;
    if (body.partial) partial++;
  }
  return { p50: round(pct(ms, 0.5), 1), p95: round(pct(ms, 0.95), 1), items, partial };
}

async function main() {
  const { info, release } = ensureStack();
  const dir = mkdtempSync(path.join(tmpdir(), "lp-bench-storage-"));
  const pool = new pg.Pool({ connectionString: info.postgresUrl, max: 6 });
  const figures: Record<string, number | string> = {};
  const lines: string[] = [];
  const row = (figure: string, value: string, target = "") => {
    lines.push(`| ${figure} | ${value} | ${target} |`);
    console.error(`    ${figure}: ${value}${target ? ` (target ${target})` : ""}`);
  };
  try {
    // Disk: about 420 bytes per row with indexes and counts; twice the doubled set is needed.
    const estimate = ROWS * 2 * 420;
    const fs = statfsSync("/var/tmp");
    const free = fs.bavail * fs.bsize;
    step(
      `disk: ${round(free / 1e9, 1)} GB free, ${round(estimate / 1e9, 1)} GB estimated for ${ROWS * 2} rows`,
    );
    if (free < 2 * estimate)
      throw new Error(`bench: ${round(free / 1e9, 1)} GB free, under twice the estimate`);

    // 1. Ingest
    step(`ingest: ${BACKLOG} events into Kafka`);
    const backlog = await backlogTopic(info, BACKLOG);
    step("ingest: the consumer into the partitioned schema");
    const consumerNew = await consumeBacklog(info, pool, backlog.topic, BACKLOG, "new", dir);
    step(`ingest: the baseline consumer (${BASELINE_REV}, unpartitioned)`);
    const consumerOld = await consumeBacklog(info, pool, backlog.topic, BACKLOG, "baseline", dir);
    step("ingest: raw COPY of the same rows into the partitioned schema");
    const copy = await rawCopyRate(pool, backlog.values);
    await backlog.drop();
    if (process.env.BENCH_STORAGE_ONLY === "ingest") {
      console.log(JSON.stringify({ consumerNew, consumerOld, copy }));
      return;
    }
    Object.assign(figures, {
      storage_consumer_events_per_s: consumerNew,
      storage_copy_rows_per_s: copy,
      storage_baseline_consumer_events_per_s: consumerOld,
      storage_consumer_ratio_vs_copy: round(consumerNew / copy, 3),
      storage_baseline_ratio_vs_copy: round(consumerOld / copy, 3),
      storage_consumer_ratio_vs_baseline: round(consumerNew / consumerOld, 3),
    });
    row("consumer into the partitioned schema (rows, counts, keys), events/s", String(consumerNew));
    row("raw COPY of the same rows into the same schema, rows/s", String(copy));
    row(`previous unpartitioned consumer (${BASELINE_REV}), events/s`, String(consumerOld));
    row(
      "consumer ÷ COPY (partitioned) vs previous consumer ÷ COPY",
      `${figures.storage_consumer_ratio_vs_copy} vs ${figures.storage_baseline_ratio_vs_copy}`,
      "no regression (0.7× COPY stays make bench's open target)",
    );

    // 2. The data set
    const schema = `bench_st_data_${randomUUID().slice(0, 6)}`;
    const n = ledgerNames(schema, "logs");
    await pool.query(ledgerDdl(n));
    const topHour = bucketOf(Date.now()) - HOUR_MS; // the data ends an hour before the open partition
    const from = topHour - HOURS * HOUR_MS;
    const parts = new Partitions(pool, n, opts(0), createLogger("bench", "warn"), new Registry());
    const buckets = Array.from({ length: HOURS }, (_, i) => from + i * HOUR_MS);
    await parts.ensureBuckets(buckets);
    step(`data set: ${ROWS} rows over ${HOURS} hourly partitions, loaded with COPY, partition by partition`);
    const writeMs: number[] = [];
    for (const b of buckets) writeMs.push(await copyRows(pool, n, ROWS / HOURS, b, b + HOUR_MS));
    await recount(pool, n);
    step(
      `rare term ${RARE}: ${tally.rare} of ${tally.rows} rows; frequent term ${VOCAB[FREQUENT_RANK] ?? ""}: ${tally.frequent}`,
    );
    step("full-text indexes: the maintainer's pass over the closed partitions, timed per partition");
    const indexMs: number[] = [];
    for (const p of (await listPartitions(pool, n.storage)).filter(
      (x) => x.table === "events" && x.to <= topHour + HOUR_MS,
    )) {
      const t0 = performance.now();
      await pool.query(
        `CREATE INDEX CONCURRENTLY "${p.name}_fts" ON ${n.schema}."${p.name}" USING gin (to_tsvector('simple', message))`,
      );
      indexMs.push(performance.now() - t0);
    }
    await pool.query(`VACUUM ANALYZE ${n.events}`);
    Object.assign(figures, {
      storage_rows: ROWS,
      storage_partitions: HOURS,
      storage_rare_term_rows: tally.rare,
      storage_frequent_term_fraction: round(tally.frequent / tally.rows, 3),
      storage_index_build_s_p50: round(pct(indexMs, 0.5) / 1000, 1),
      storage_partition_write_s_p50: round(pct(writeMs, 0.5) / 1000, 1),
      storage_index_vs_write_ratio: round(pct(indexMs, 0.5) / pct(writeMs, 0.5), 2),
    });
    row("data set", `${ROWS} rows, ${HOURS} hourly partitions, loaded with COPY (not through the consumer)`);
    row(
      "rare term rows / frequent term share",
      `${tally.rare} (1 in ${Math.round(tally.rows / Math.max(1, tally.rare))}) / ${round((100 * tally.frequent) / tally.rows, 1)} %`,
      "~1 in 100,000 / ≥ 10 %",
    );
    row(
      "partition close → index usable (build time, p50) vs the partition's write time (p50)",
      `${figures.storage_index_build_s_p50} s vs ${figures.storage_partition_write_s_p50} s (${figures.storage_index_vs_write_ratio}×)`,
    );

    // 3. Search, counts, drop, disk
    const env = parseEnv(QueryEnv, {
      ...pipelineEnv("bench"),
      PG_HOST: "x",
      PG_USER: "x",
      AUTH_DISABLED: "true",
      MAX_PAGE_SIZE: "100",
      QUERY_RATE_PER_SECOND: "0",
    });
    const app = await buildQueryApp({
      env,
      pool,
      names: n,
      log: createLogger("bench", "warn"),
      registry: createRegistry("query", "bench"),
    });
    const frequent = VOCAB[FREQUENT_RANK] ?? "";
    // The 24 hours of closed, indexed partitions (the target's range), and the last hour with
    // the partition taking writes (no full-text index: searched in bounded slices).
    const indexed = { from, to: topHour };
    const lastHour = () => ({ from: Date.now() - HOUR_MS, to: Date.now() });
    step("search, idle");
    const idleRare = await searchLatency(app, RARE, SEARCH_RUNS, indexed);
    const idleFrequent = await searchLatency(app, frequent, SEARCH_RUNS, indexed);
    step("counts over 24 h");
    const statsMs: number[] = [];
    const histMs: number[] = [];
    for (let i = 0; i < SEARCH_RUNS; i++) {
      let t0 = performance.now();
      await app.inject(
        `/api/stats?from=${new Date(from).toISOString()}&to=${new Date(topHour).toISOString()}`,
      );
      statsMs.push(performance.now() - t0);
      t0 = performance.now();
      await app.inject(
        `/api/histogram?from=${new Date(from).toISOString()}&to=${new Date(topHour).toISOString()}&buckets=96&by=source`,
      );
      histMs.push(performance.now() - t0);
    }
    const statsTotal = (
      await app.inject(
        `/api/stats?from=${new Date(from).toISOString()}&to=${new Date(topHour).toISOString()}`,
      )
    ).json<{ total: number }>().total;
    const counted = Number(
      (
        await pool.query<{ c: string }>(`SELECT count(*) AS c FROM ${n.events} WHERE ts >= $1 AND ts < $2`, [
          new Date(from),
          new Date(topHour),
        ])
      ).rows[0]?.c,
    );

    step("lookup by id: all partitions (the API) against one index probe (the id's own partition)");
    const sample = (
      await pool.query<{ event_id: string; part: string }>(
        `SELECT event_id, tableoid::regclass::text AS part FROM ${n.events} TABLESAMPLE SYSTEM (0.05) LIMIT 50`,
      )
    ).rows;
    const apiMs: number[] = [];
    const probeMs: number[] = [];
    for (const x of sample) {
      let t = performance.now();
      const r = await app.inject(`/api/logs/${x.event_id}`);
      apiMs.push(performance.now() - t);
      if (r.statusCode !== 200) throw new Error(`bench: by-id answered ${String(r.statusCode)}`);
      t = performance.now();
      await pool.query(`SELECT * FROM ${x.part} WHERE event_id = $1`, [x.event_id]);
      probeMs.push(performance.now() - t);
    }
    Object.assign(figures, {
      storage_by_id_p50_ms: round(pct(apiMs, 0.5), 1),
      storage_by_id_p95_ms: round(pct(apiMs, 0.95), 1),
      storage_by_id_one_probe_p50_ms: round(pct(probeMs, 0.5), 1),
    });
    row(
      `lookup by id through the API (${String(HOURS)} partitions: one id-index probe each) p50 / p95, vs one probe p50`,
      `${figures.storage_by_id_p50_ms} / ${figures.storage_by_id_p95_ms} ms vs ${figures.storage_by_id_one_probe_p50_ms} ms`,
      "grows with the number of partitions (one probe each), not with rows",
    );

    step("search under ingest at half the consumer's rate");
    const ingest = await startIngest(info, pool, n, Math.round(consumerNew / 2), dir);
    const busyRare = await searchLatency(app, RARE, SEARCH_RUNS, indexed);
    const busyFrequent = await searchLatency(app, frequent, SEARCH_RUNS, indexed);
    const openRare = await searchLatency(app, RARE, SEARCH_RUNS, lastHour());
    const openFrequent = await searchLatency(app, frequent, SEARCH_RUNS, lastHour());
    step("drop one partition under ingest");
    const quiet = await commitGaps(pool, n, 10_000);
    const oldest = (await listPartitions(pool, n.storage)).find((p) => p.table === "events");
    const wal0 =
      (await pool.query<{ l: string }>("SELECT pg_current_wal_lsn()::text AS l")).rows[0]?.l ?? "0/0";
    const dropStart = Date.now();
    const t0 = performance.now();
    const session = await pool.connect();
    try {
      if (oldest) await dropPartition(session, n.storage, oldest);
    } finally {
      session.release();
    }
    const dropMs = performance.now() - t0;
    const walBytes = Number(
      (
        await pool.query<{ b: string }>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn) AS b", [
          wal0,
        ])
      ).rows[0]?.b,
    );
    const during = await commitGaps(
      pool,
      n,
      Math.max(10_000, Date.now() - dropStart + 5000),
      dropStart - 5000,
    );
    await ingest.stop();
    const dead = Number(
      (
        await pool.query<{ d: string }>(
          `SELECT coalesce(sum(n_dead_tup), 0) AS d FROM pg_stat_user_tables WHERE schemaname = $1 AND relname LIKE 'logs_p%'`,
          [schema],
        )
      ).rows[0]?.d,
    );
    const size = (
      await pool.query<{ b: string; r: string }>(
        `SELECT sum(pg_total_relation_size(c.oid)) AS b, (SELECT count(*) FROM ${n.events}) AS r FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`,
        [n.events],
      )
    ).rows[0];
    const bytesPerEvent = Math.round(Number(size?.b) / Number(size?.r));

    Object.assign(figures, {
      storage_search_rare_idle_p50_ms: idleRare.p50,
      storage_search_rare_idle_p95_ms: idleRare.p95,
      storage_search_frequent_idle_p50_ms: idleFrequent.p50,
      storage_search_frequent_idle_p95_ms: idleFrequent.p95,
      storage_search_rare_ingest_p50_ms: busyRare.p50,
      storage_search_rare_ingest_p95_ms: busyRare.p95,
      storage_search_frequent_ingest_p50_ms: busyFrequent.p50,
      storage_search_frequent_ingest_p95_ms: busyFrequent.p95,
      storage_search_open_rare_p95_ms: openRare.p95,
      storage_search_open_frequent_p95_ms: openFrequent.p95,
      storage_ingest_during_search_events_per_s: ingest.rate(),
      storage_stats_24h_p95_ms: round(pct(statsMs, 0.95), 1),
      storage_histogram_24h_p95_ms: round(pct(histMs, 0.95), 1),
      storage_stats_equals_count: statsTotal === counted ? 1 : 0,
      storage_drop_ms: round(dropMs, 1),
      storage_drop_wal_bytes: walBytes,
      storage_drop_dead_tuples: dead,
      storage_commit_gap_ms_without_drop: quiet,
      storage_commit_gap_ms_with_drop: during,
      storage_commit_gap_ratio: round(during / Math.max(1, quiet), 2),
      storage_bytes_per_event: bytesPerEvent,
    });
    row(
      "search 24 h of indexed partitions, rare term, first page p50 / p95 (idle)",
      `${idleRare.p50} / ${idleRare.p95} ms (${idleRare.items} items)`,
      "p95 < 500 ms",
    );
    row(
      "search 24 h of indexed partitions, frequent term, first page p50 / p95 (idle)",
      `${idleFrequent.p50} / ${idleFrequent.p95} ms (${idleFrequent.items} items)`,
      "p95 < 500 ms",
    );
    row(
      `search 24 h of indexed partitions, rare term, under ingest at ${figures.storage_ingest_during_search_events_per_s} events/s`,
      `${busyRare.p50} / ${busyRare.p95} ms (${busyRare.partial} partial)`,
      "p95 < 500 ms",
    );
    row(
      "search 24 h of indexed partitions, frequent term, under ingest",
      `${busyFrequent.p50} / ${busyFrequent.p95} ms (${busyFrequent.partial} partial)`,
      "p95 < 500 ms",
    );
    row(
      "search the last hour (the partition taking writes, unindexed: bounded slices), rare / frequent p50 / p95",
      `${openRare.p50} / ${openRare.p95} ms (${openRare.partial} partial) / ${openFrequent.p50} / ${openFrequent.p95} ms`,
      "no target: bounded by the budget (partial answers with a cursor)",
    );
    row(
      "stats over 24 h p95 / histogram (96 buckets by source) p95",
      `${figures.storage_stats_24h_p95_ms} / ${figures.storage_histogram_24h_p95_ms} ms; total ${statsTotal} vs count(*) ${counted}`,
      "< 50 ms, equal",
    );
    row(
      "drop one partition under ingest: time, WAL, dead tuples",
      `${figures.storage_drop_ms} ms, ${walBytes} bytes, ${dead}`,
      "< 1 s, 0 dead tuples",
    );
    row(
      "longest gap between consumer commits: with the drop ÷ without",
      `${during} ÷ ${quiet} ms = ${figures.storage_commit_gap_ratio}`,
      "< 2",
    );
    row("disk per event (table + indexes)", `${bytesPerEvent} bytes`);

    // Doubled
    step(`doubling: ${ROWS} more rows over the same hours (indexes dropped, rows loaded, indexes rebuilt)`);
    // A maintainer of its own: the first one still believes in the partition dropped above.
    await new Partitions(pool, n, opts(0), createLogger("bench", "warn"), new Registry()).ensureBuckets(
      buckets,
    );
    for (const p of (await listPartitions(pool, n.storage)).filter((x) => x.table === "events"))
      await pool.query(`DROP INDEX IF EXISTS ${n.schema}."${p.name}_fts"`);
    for (const b of buckets) await copyRows(pool, n, ROWS / HOURS, b, b + HOUR_MS);
    for (const p of (await listPartitions(pool, n.storage)).filter(
      (x) => x.table === "events" && x.to <= topHour + HOUR_MS,
    ))
      await pool.query(
        `CREATE INDEX "${p.name}_fts" ON ${n.schema}."${p.name}" USING gin (to_tsvector('simple', message))`,
      );
    await pool.query(`VACUUM ANALYZE ${n.events}`);
    const doubledRows = Number(
      (await pool.query<{ c: string }>(`SELECT count(*) AS c FROM ${n.events}`)).rows[0]?.c,
    );
    const dRare = await searchLatency(app, RARE, SEARCH_RUNS, indexed);
    const dFrequent = await searchLatency(app, frequent, SEARCH_RUNS, indexed);
    Object.assign(figures, {
      storage_search_rare_doubled_p95_ms: dRare.p95,
      storage_search_frequent_doubled_p95_ms: dFrequent.p95,
      storage_search_growth_rare: round(dRare.p95 / idleRare.p95, 2),
      storage_search_growth_frequent: round(dFrequent.p95 / idleFrequent.p95, 2),
      storage_doubled_rows: doubledRows,
    });
    row(
      `first page with the data doubled (${doubledRows} rows), p95 rare / frequent (growth)`,
      `${dRare.p95} ms (${figures.storage_search_growth_rare}×) / ${dFrequent.p95} ms (${figures.storage_search_growth_frequent}×)`,
      "< 1.5×",
    );
    await app.close();
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);

    const table = ["| figure | measured | target |", "| --- | --- | --- |", ...lines].join("\n");
    console.log(`\n${table}\n`);
    figures.storage_measured_at = new Date().toISOString();
    recordBenchmarks({
      key: "storage",
      heading: "Storage at scale",
      body: `Last run: ${figures.storage_measured_at}, everything co-located on 2 cores (PostgreSQL, Kafka, the consumer, the bench).\nCommand: \`make bench-storage\` (BENCH_STORAGE_ROWS=${ROWS}, BENCH_STORAGE_BACKLOG=${BACKLOG}).\n\n${table}`,
      figures,
    });
  } finally {
    await pool.end();
    release();
  }
}

/** A producer at `rate` events/s into a topic the consumer stores into the data set's schema. */
async function startIngest(
  info: { kafkaBootstrap: string; postgresUrl: string },
  pool: pg.Pool,
  n: LedgerNames,
  rate: number,
  dir: string,
) {
  const topic = `bench-storage-live-${randomUUID().slice(0, 8)}`;
  const kafka = kafkaClient(info.kafkaBootstrap, topic);
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: KAFKA_PARTITIONS, replicationFactor: 1 }] });
  const consumer = startWorkload(
    "consumer",
    {
      ...pgEnv(info.postgresUrl, n.schemaBare),
      KAFKA_BOOTSTRAP_SERVERS: info.kafkaBootstrap,
      KAFKA_TOPIC: topic,
      KAFKA_GROUP_ID: `g-${topic}`,
      METRICS_PORT: String(28_000 + Math.floor(Math.random() * 1000)),
      PARTITION_MAINTENANCE_SECONDS: "3600",
      LOG_LEVEL: "warn",
    },
    path.join(dir, "consumer-live.log"),
  );
  const writer = await transactionalWriter(kafka, `tx-${topic}`);
  const state = { running: true };
  const t0 = Date.now();
  let sent = 0;
  const loop = (async () => {
    // Bounded: at most 15 minutes of load.
    while (state.running && Date.now() - t0 < 900_000) {
      const due = Math.floor(((Date.now() - t0) / 1000) * rate) - sent;
      if (due < 500) {
        await sleep(20);
        continue;
      }
      const values = Array.from({ length: due }, (_, i) =>
        JSON.stringify({
          ...makeEvent(sent + i, { message: message(), source: source() }),
          idOrigin: "gateway",
        }),
      );
      await writer.write(topic, values, { perTxn: 500, partitions: KAFKA_PARTITIONS });
      sent += due;
    }
  })();
  const startApplied = await appliedEvents(pool, n);
  await sleep(5000);
  return {
    rate: () => Math.round(sent / ((Date.now() - t0) / 1000)),
    stop: async () => {
      state.running = false;
      await loop;
      await writer.close();
      const deadline = Date.now() + 120_000;
      while ((await appliedEvents(pool, n)) - startApplied < sent && Date.now() < deadline) await sleep(100);
      await consumer.stop();
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    },
  };
}

/** The longest gap (ms) between consecutive consumer transactions (their stored_at) in a window. */
async function commitGaps(pool: pg.Pool, n: LedgerNames, windowMs: number, fromMs?: number): Promise<number> {
  const start = fromMs ?? Date.now();
  await sleep(Math.max(0, start + windowMs - Date.now()));
  const r = await pool.query<{ g: number | null }>(
    `SELECT max(extract(epoch FROM gap) * 1000)::float8 AS g FROM (
       SELECT s - lag(s) OVER (ORDER BY s) AS gap FROM (SELECT DISTINCT stored_at AS s FROM ${n.events}
        WHERE ts >= $3 AND stored_at >= $1 AND stored_at < $2) x) y`,
    [new Date(start), new Date(start + windowMs), new Date(bucketOf(start) - HOUR_MS)],
  );
  return round(r.rows[0]?.g ?? 0, 1);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
