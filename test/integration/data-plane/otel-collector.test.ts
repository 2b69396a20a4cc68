import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Admin, kafkaClient } from "../../support/kafka.js";
import { eventually, pipelineEnv, uniqueSuffix } from "../../support/kube.js";
import { testLedger } from "../../support/pipeline-db.js";
import { pgEnv, startWorkload, type WorkloadProcess } from "../../support/workload-process.js";

/**
 * The OpenTelemetry Collector (lp-otelcol, built from the Go module proxy by the Collector's
 * own builder: hack/otelcol/builder.yaml) tails a log file and ships it over OTLP/HTTP into
 * the pipeline, with the retry and persistent-queue settings docs/otlp.md recommends. The
 * gateway and the consumer run as their own processes, as in a pod. Every line lands once in
 * PostgreSQL through a kill -9 of the Collector, of the gateway and of the consumer (each
 * restarted). Lines carry sequence numbers; the Collector parses each line's
 * timestamp from the line, which is what makes a re-read line the same event.
 */
const stack = inject("stack");
const KEY = "collector-key";
const SERVICE = "billing";
const id = uniqueSuffix();
const topic = `t-otelcol-${id}`;
const port = 24_000 + Math.floor(Math.random() * 5000);
let admin: Admin | undefined;
let db: Awaited<ReturnType<typeof testLedger>> | undefined;
let gateway: WorkloadProcess | undefined;
let consumer: WorkloadProcess | undefined;
let dir: string;
let collector: ChildProcess | undefined;
let main: Shipper;

const LINES = 3000;
/**
 * One line per millisecond from a minute ago (inside the store's late window, so the line's
 * time is the stored time): every line has a time of its own.
 */
const BASE = Date.now() - 60_000;
const line = (i: number) =>
  `${new Date(BASE + i).toISOString()} ${i % 7 === 0 ? "ERROR" : "INFO"} seq=${i} charged order ${i}\n`;

/** One Collector: its folder (config, file, storage, log), its service name, its metrics port. */
interface Shipper {
  dir: string;
  service: string;
  metricsPort: number;
  /**
   * The Collector's defaults instead of docs/otlp.md's settings: the receiver's batching
   * emitter and a batch processor (holding lines 10 s) between the file and the persistent
   * queue. Only the negative control runs it.
   */
  inMemoryBatches?: boolean;
}

function config(s: Shipper): string {
  return `
extensions:
  file_storage:
    directory: ${s.dir}/storage
    create_directory: true
receivers:
  file_log:
    include: [${s.dir}/app.log]
    start_at: beginning
    storage: file_storage
    resource:
      service.name: ${s.service}
    operators:
      - type: regex_parser
        regex: '^(?P<time>\\S+) (?P<sev>\\S+) seq=(?P<seq>\\d+) (?P<msg>.*)$'
        timestamp:
          parse_from: attributes.time
          layout_type: gotime
          layout: '2006-01-02T15:04:05.999999999Z07:00'
        severity:
          parse_from: attributes.sev
${s.inMemoryBatches ? "processors:\n  batch:\n    send_batch_size: 100000\n    timeout: 10s\n" : ""}exporters:
  otlp_http:
    logs_endpoint: http://127.0.0.1:${port}/v1/logs
    headers:
      authorization: Bearer ${KEY}
    compression: gzip
    retry_on_failure:
      enabled: true
      initial_interval: 200ms
      max_interval: 2s
      max_elapsed_time: 0s
    sending_queue:
      enabled: true
      storage: file_storage
      queue_size: 1000
${s.inMemoryBatches ? "" : "      batch:\n        sizer: items\n        min_size: 200\n        max_size: 500\n        flush_timeout: 100ms\n"}service:
  extensions: [file_storage]
  telemetry:
    metrics:
      level: basic
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: ${s.metricsPort}
    logs:
      level: warn
  pipelines:
    logs:
      receivers: [file_log]
${s.inMemoryBatches ? "      processors: [batch]\n" : ""}      exporters: [otlp_http]
`;
}

/** A Collector's folder with its config and an empty file to tail. */
function shipper(s: Omit<Shipper, "dir">, name: string): Shipper {
  const d = path.join(dir, name);
  mkdirSync(d);
  const out = { ...s, dir: d };
  writeFileSync(`${d}/config.yaml`, config(out));
  writeFileSync(`${d}/app.log`, "");
  writeFileSync(`${d}/collector.log`, "");
  return out;
}

/** Lines `from` up to `to` (their sequence numbers), appended to the file a Collector tails. */
function appendLines(s: Shipper, from: number, to: number): void {
  let chunk = "";
  for (let i = from; i < to; i++) chunk += line(i);
  appendFileSync(`${s.dir}/app.log`, chunk);
}

/**
 * The flag docs/otlp.md recommends: the file receiver hands each read to the exporter's
 * (persistent) queue before it saves the file's offset. Without it, lines wait in an in-memory
 * batch after their offset is saved, and a kill -9 loses them (contrib issue 35456).
 */
const COLLECTOR_FLAGS = ["--feature-gates=stanza.synchronousLogEmitter"];

function startCollector(s: Shipper): ChildProcess {
  const flags = s.inMemoryBatches ? [] : COLLECTOR_FLAGS;
  const child = spawn("lp-otelcol", ["--config", `${s.dir}/config.yaml`, ...flags], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr.on("data", (b: Buffer) => appendFileSync(`${s.dir}/collector.log`, b));
  return child;
}
const stopCollector = async (c: ChildProcess | undefined, signal: NodeJS.Signals) => {
  if (!c || c.exitCode !== null) return;
  const exited = new Promise((r) => c.once("exit", r));
  c.kill(signal);
  await exited;
};

/** Log records the Collector's file receiver has pushed into its pipeline (its own metric). */
async function accepted(s: Shipper): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${String(s.metricsPort)}/metrics`)
    .then((r) => r.text())
    .catch(() => "");
  const m = /^otelcol_receiver_accepted_log_records(?:_total)?\{[^}]*\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** The sequence numbers not stored, as ranges ("17-41, 900"), for a failure's message. */
async function missing(service: string, from: number, upTo: number): Promise<string> {
  const d = db as NonNullable<typeof db>;
  const r = await d.pool.query<{ seq: string }>(
    `SELECT DISTINCT metadata->>'seq' AS seq FROM ${d.names.events} WHERE source = $1`,
    [service],
  );
  const have = new Set(r.rows.map((x) => Number(x.seq)));
  const ranges: string[] = [];
  for (let i = from; i < upTo; i++) {
    if (have.has(i)) continue;
    let j = i;
    while (j + 1 < upTo && !have.has(j + 1)) j++;
    ranges.push(i === j ? String(i) : `${String(i)}-${String(j)}`);
    i = j;
  }
  return ranges.join(", ") || "none";
}

async function rows(service = SERVICE) {
  const d = db as NonNullable<typeof db>;
  const r = await d.pool.query<{ n: string; seqs: string }>(
    `SELECT count(*) AS n, count(DISTINCT metadata->>'seq') AS seqs FROM ${d.names.events} WHERE source = $1`,
    [service],
  );
  return { rows: Number(r.rows[0]?.n), seqs: Number(r.rows[0]?.seqs) };
}

/** The gateway and the consumer as processes (kill -9 is what a node does to a pod). */
function startGateway(): WorkloadProcess {
  return startWorkload(
    "producer",
    {
      ...pipelineEnv(`otelcol-${id}`),
      KAFKA_BOOTSTRAP_SERVERS: stack.kafkaBootstrap,
      KAFKA_TOPIC: topic,
      TRANSACTIONAL_ID: `otelcol-${id}`,
      API_KEYS_FILE: `${dir}/keys`,
      REDIS_URL: stack.redisUrl,
      HOST: "127.0.0.1",
      PORT: String(port),
      METRICS_PORT: String(port + 1),
      LOG_LEVEL: "warn",
    },
    `${dir}/gateway.log`,
  );
}
function startConsumer(): WorkloadProcess {
  return startWorkload(
    "consumer",
    {
      ...pgEnv(stack.postgresUrl, (db as NonNullable<typeof db>).schema),
      KAFKA_BOOTSTRAP_SERVERS: stack.kafkaBootstrap,
      KAFKA_TOPIC: topic,
      KAFKA_GROUP_ID: `otelcol-${id}`,
      REDIS_URL: stack.redisUrl,
      METRICS_PORT: String(port + 2),
      LOG_LEVEL: "warn",
    },
    `${dir}/consumer.log`,
  );
}
const ready = (what: string, url: string) =>
  eventually(what, async () => ((await fetch(url).catch(() => undefined))?.ok ? true : undefined), 60_000);
const kill9 = async (p: WorkloadProcess | undefined) => {
  if (!p || p.child.exitCode !== null) return;
  p.child.kill("SIGKILL");
  expect((await p.exited).signal).toBe("SIGKILL");
};

beforeAll(async () => {
  try {
    execFileSync("lp-otelcol", ["--version"]);
  } catch {
    throw new Error("lp-otelcol is not on PATH: run make tools (hack/tools/go-tools.sh otelcol)");
  }
  dir = mkdtempSync(path.join(tmpdir(), "lp-otelcol-"));
  writeFileSync(`${dir}/keys`, `collector:${KEY}\n`);
  main = shipper({ service: SERVICE, metricsPort: port + 3 }, "main");
  admin = kafkaClient(stack.kafkaBootstrap).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] });
  db = await testLedger(stack.postgresUrl, "t_otelcol");
  gateway = startGateway();
  consumer = startConsumer();
  await ready("the gateway", `http://127.0.0.1:${port}/readyz`);
  await ready("the consumer", `http://127.0.0.1:${port + 2}/readyz`);
});

afterAll(async () => {
  await stopCollector(collector, "SIGTERM");
  await gateway?.stop();
  await consumer?.stop();
  await admin?.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin?.disconnect();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the OpenTelemetry Collector tails a file into the pipeline", () => {
  it(`every one of ${LINES} lines lands once through a kill -9 of the Collector, the gateway and the consumer`, async () => {
    collector = startCollector(main);
    const reached = async (n: number) => {
      try {
        await eventually(
          `${n} lines stored`,
          async () => ((await rows()).seqs >= n ? true : undefined),
          60_000,
        );
      } catch (e) {
        const log = readFileSync(`${main.dir}/collector.log`, "utf8").slice(-3000);
        throw new Error(
          `${(e as Error).message}; ${JSON.stringify(await rows())}; missing below ${String(n)}: ${await missing(SERVICE, 0, n)}; the Collector's log: ${log}`,
          { cause: e },
        );
      }
    };

    // The application writes on while the faults happen: 25 lines every 25 ms.
    const writing = (async () => {
      for (let i = 0; i < LINES; i += 25) {
        appendLines(main, i, i + 25);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    await reached(500);
    // kill -9 mid-stream: the file offset and the queue are on disk (file_storage).
    await stopCollector(collector, "SIGKILL");
    collector = startCollector(main);
    await reached(1200);
    await kill9(gateway);
    gateway = startGateway();
    await ready("the gateway again", `http://127.0.0.1:${port}/readyz`);
    await reached(2000);
    await kill9(consumer);
    consumer = startConsumer();
    await writing;
    await reached(LINES);
    // Barrier for "no more copies": one more line, written last, is stored; everything
    // before it has been shipped by then.
    appendLines(main, LINES, LINES + 1);
    await reached(LINES + 1);
    expect(await rows(), readFileSync(`${main.dir}/collector.log`, "utf8").slice(-2000)).toEqual({
      rows: LINES + 1,
      seqs: LINES + 1,
    });
    // What the line said: its own time, its severity, its service.
    const d = db as NonNullable<typeof db>;
    const r = await d.pool.query<{ ts: Date; level: string; message: string }>(
      `SELECT ts, level, message FROM ${d.names.events} WHERE source = $1 AND metadata->>'seq' = '7'`,
      [SERVICE],
    );
    expect(r.rows[0]?.level).toBe("ERROR");
    expect(r.rows[0]?.ts.toISOString()).toBe(new Date(BASE + 7).toISOString());
    expect(r.rows[0]?.message).toBe(line(7).trimEnd());
  });

  /**
   * The sharpest moment for a Collector to die: its receiver has taken the lines (its own
   * counter says so) and nothing has been sent yet. With docs/otlp.md's settings the lines are
   * in the persistent queue by then; with in-memory batches they are in memory only, after
   * the file offset that would re-read them was saved. Each run has its own Collector, file,
   * storage and service name, and sequence numbers of its own.
   */
  async function killRightAfterTheReceiverTookThem(s: Shipper, first: number) {
    const n = 300;
    const log = () => readFileSync(`${s.dir}/collector.log`, "utf8").slice(-2000);
    let c = startCollector(s);
    try {
      appendLines(s, first, first + n);
      await eventually(`the receiver took ${String(n)} lines`, async () =>
        (await accepted(s)) >= n ? true : undefined,
      );
      // One more line, taken in a later poll: the poll that read the n ended before it, and
      // each poll ends by saving the file's offset.
      appendLines(s, first + n, first + n + 1);
      await eventually("the receiver took one more line, in a later poll", async () =>
        (await accepted(s)) >= n + 1 ? true : undefined,
      );
      await stopCollector(c, "SIGKILL");
      c = startCollector(s);
      // Barrier: a line written after the restart is stored; whatever survived was shipped first
      // (the queue is first in, first out) or re-read before it (the file is read in order).
      appendLines(s, first + n + 1, first + n + 2);
      await eventually(
        "the line written after the restart stored",
        async () => {
          const d = db as NonNullable<typeof db>;
          const r = await d.pool.query(
            `SELECT 1 FROM ${d.names.events} WHERE source = $1 AND metadata->>'seq' = $2`,
            [s.service, String(first + n + 1)],
          );
          return r.rowCount ? true : undefined;
        },
        60_000,
      );
      return {
        ...(await rows(s.service)),
        missing: await missing(s.service, first, first + n),
        log: log(),
      };
    } finally {
      await stopCollector(c, "SIGTERM");
    }
  }

  it("loses none of the lines its receiver had taken when it is killed, with docs/otlp.md's settings", async () => {
    const s = shipper({ service: "billing-sync", metricsPort: port + 4 }, "sync");
    const r = await killRightAfterTheReceiverTookThem(s, 10_000);
    // The n, the later line and the barrier, once each.
    expect(r, r.log).toMatchObject({ rows: 302, seqs: 302, missing: "none" });
  });

  it("(negative control) loses them with the Collector's in-memory batches, and the counts see it", async () => {
    const s = shipper({ service: "billing-batch", metricsPort: port + 5, inMemoryBatches: true }, "batch");
    const r = await killRightAfterTheReceiverTookThem(s, 20_000);
    // Their offset was saved, their batch was in memory: all 300 gone, the barrier stored.
    expect(r.missing, r.log).toBe("20000-20299");
    expect(r.seqs).toBeLessThanOrEqual(2);
  });
});
