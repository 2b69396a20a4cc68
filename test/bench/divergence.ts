/**
 * `make bench-divergence`: what the divergence check costs the pipeline. The consumer (its
 * own process) stores the same pre-written backlog twice on the local stack: once alone (the
 * baseline), once while the operator's check runs back to back against the same topic and
 * database — far more often than its default of one check per 5 minutes. Prints the
 * consumer's rows/s in both runs and the checks' durations, and writes them into
 * docs/benchmarks.md. Bounded in count and time; 127.0.0.1 only.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { checkDivergence, type CheckMemory } from "../../operator/src/divergence/check.js";
import { TopicAdmin } from "../../operator/src/kafka/topic-admin.js";
import { ledgerDdl, ledgerNames } from "../../workloads/common/src/ledger.js";
import { makeEvent } from "../support/events.js";
import { kafkaClient, transactionalWriter } from "../support/kafka.js";
import { appliedEvents, postgresConnection } from "../support/pipeline-db.js";
import { recordBenchmarks } from "./record.js";
import { ensureStack } from "../support/stack.js";
import { pgEnv, startWorkload } from "../support/workload-process.js";

const EVENTS = Number(process.env.BENCH_DIVERGENCE_EVENTS ?? 300_000);
const PARTITIONS = 6;
const started = Date.now();
const step = (s: string) => console.error(`==> ${s} (${Math.round((Date.now() - started) / 1000)}s)`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  rowsPerS: number;
  checks: number[];
  found: number;
}

async function run(
  withChecks: boolean,
  info: ReturnType<typeof ensureStack>["info"],
  dir: string,
): Promise<Run> {
  const id = randomUUID().slice(0, 8);
  const topic = `bench-div-${id}`;
  const schema = `bench_div_${id}`;
  const pool = new pg.Pool({ connectionString: info.postgresUrl, max: 2 });
  const kafka = kafkaClient(info.kafkaBootstrap, `bench-div-${id}`);
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }] });
  const names = ledgerNames(schema, "logs");
  await pool.query(ledgerDdl(names));
  step(`${withChecks ? "with" : "without"} checks: write ${EVENTS} events (transactions of 500) to ${topic}`);
  const writer = await transactionalWriter(kafka, `bench-div-${id}`);
  for (let i = 0; i < EVENTS; i += 10_000)
    await writer.write(
      topic,
      Array.from({ length: Math.min(10_000, EVENTS - i) }, (_, j) => JSON.stringify(makeEvent(i + j))),
      { perTxn: 500, partitions: PARTITIONS },
    );
  await writer.close();

  const checks: number[] = [];
  let found = 0;
  const rows = () => appliedEvents(pool, names);
  const connection = { bootstrapServers: info.kafkaBootstrap, security: { protocol: "PLAINTEXT" as const } };
  const topicAdmin = withChecks ? await TopicAdmin.connect(connection) : undefined;
  const memory: CheckMemory = { marks: new Map(), sweep: new Map() };
  let checking = withChecks;
  const checker = (async () => {
    while (checking && topicAdmin) {
      const r = await checkDivergence(
        {
          topic,
          consumerGroup: `bench-div-${id}`,
          schema,
          table: "logs",
          windowOffsets: 10_000,
          retentionDays: 0,
        },
        { offsets: topicAdmin, connection },
        postgresConnection(info.postgresUrl),
        memory,
        60_000,
        () => new Date(),
      );
      checks.push(r.durationMs);
      found += r.missing + r.duplicated + r.spurious;
    }
  })();

  step(`${withChecks ? "with" : "without"} checks: the consumer stores the backlog`);
  const consumer = startWorkload(
    "consumer",
    {
      ...pgEnv(info.postgresUrl, schema),
      KAFKA_BOOTSTRAP_SERVERS: info.kafkaBootstrap,
      KAFKA_TOPIC: topic,
      KAFKA_GROUP_ID: `bench-div-${id}`,
      METRICS_PORT: String(25_000 + Math.floor(Math.random() * 2000)),
      LOG_LEVEL: "warn",
    },
    path.join(dir, `consumer-${withChecks ? "checks" : "alone"}.log`),
  );
  const t0 = Date.now();
  const deadline = t0 + 300_000;
  while ((await rows()) < EVENTS) {
    if (Date.now() > deadline)
      throw new Error("bench: the consumer did not store the backlog within 5 minutes");
    await sleep(100);
  }
  const seconds = (Date.now() - t0) / 1000;
  checking = false;
  await checker;
  await consumer.stop();
  await topicAdmin?.close();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
  return { rowsPerS: Math.round(EVENTS / seconds), checks, found };
}

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0) : 0;
};

async function main() {
  const { info, release } = ensureStack();
  const dir = mkdtempSync(path.join(tmpdir(), "lp-bench-div-"));
  try {
    const alone = await run(false, info, dir);
    const checked = await run(true, info, dir);
    const cost = Math.round((1 - checked.rowsPerS / alone.rowsPerS) * 1000) / 10;
    const table = [
      "| figure | measured |",
      "| --- | --- |",
      `| consumer rows/s, no check running (baseline) | ${alone.rowsPerS} |`,
      `| consumer rows/s, checks back to back | ${checked.rowsPerS} |`,
      `| throughput cost of back-to-back checks | ${cost} % |`,
      `| checks run during the backlog | ${checked.checks.length} |`,
      `| check duration p50 / max (6 partitions, the latest and a sweep window of 10,000 offsets each) | ${pct(checked.checks, 0.5)} ms / ${Math.max(0, ...checked.checks)} ms |`,
      `| divergence found (must be 0) | ${checked.found} |`,
    ].join("\n");
    console.log(`\n${table}\n`);
    if (checked.found !== 0)
      throw new Error(`bench: the check found ${checked.found} differences in a clean run`);
    recordBenchmarks({
      key: "divergence",
      heading: "The divergence check's cost",
      body: `Last run: ${new Date().toISOString()}, ${EVENTS} events over ${PARTITIONS} partitions, everything co-located on 2 cores.\nCommand: \`make bench-divergence\`.\n\n${table}`,
      figures: {},
    });
  } finally {
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
