import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DataPlane, startDataPlane } from "../../support/data-plane.js";
import { eventually } from "../../support/kube.js";

/**
 * The OpenTelemetry Collector (lp-otelcol, built from the Go module proxy by the Collector's
 * own builder: hack/otelcol/builder.yaml) tails a log file and ships it over OTLP/HTTP into
 * the pipeline, with the retry and persistent-queue settings docs/otlp.md recommends. Every
 * line lands once in PostgreSQL through a Collector kill -9 (and restart), a gateway restart
 * and a consumer restart. Lines carry sequence numbers; the Collector parses each line's
 * timestamp from the line, which is what makes a re-read line the same event.
 */
const stack = inject("stack");
const KEY = "collector-key";
const SERVICE = "billing";
let dp: DataPlane;
let dir: string;
let collector: ChildProcess | undefined;

const LINES = 3000;
/**
 * One line per millisecond from a minute ago (inside the store's late window, so the line's
 * time is the stored time): every line has a time of its own.
 */
const BASE = Date.now() - 60_000;
const line = (i: number) =>
  `${new Date(BASE + i).toISOString()} ${i % 7 === 0 ? "ERROR" : "INFO"} seq=${i} charged order ${i}\n`;

function config(): string {
  return `
extensions:
  file_storage:
    directory: ${dir}/storage
    create_directory: true
receivers:
  file_log:
    include: [${dir}/app.log]
    start_at: beginning
    storage: file_storage
    resource:
      service.name: ${SERVICE}
    operators:
      - type: regex_parser
        regex: '^(?P<time>\\S+) (?P<sev>\\S+) seq=(?P<seq>\\d+) (?P<msg>.*)$'
        timestamp:
          parse_from: attributes.time
          layout_type: gotime
          layout: '2006-01-02T15:04:05.999999999Z07:00'
        severity:
          parse_from: attributes.sev
processors:
  batch:
    send_batch_size: 200
    send_batch_max_size: 500
    timeout: 100ms
exporters:
  otlp_http:
    logs_endpoint: ${dp.gatewayUrl}/v1/logs
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
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
  pipelines:
    logs:
      receivers: [file_log]
      processors: [batch]
      exporters: [otlp_http]
`;
}

function startCollector(): ChildProcess {
  const child = spawn("lp-otelcol", ["--config", `${dir}/config.yaml`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr.on("data", (b: Buffer) => appendFileSync(`${dir}/collector.log`, b));
  return child;
}
const stopCollector = async (c: ChildProcess | undefined, signal: NodeJS.Signals) => {
  if (!c || c.exitCode !== null) return;
  const exited = new Promise((r) => c.once("exit", r));
  c.kill(signal);
  await exited;
};

async function rows() {
  const r = await dp.db.pool.query<{ n: string; seqs: string }>(
    `SELECT count(*) AS n, count(DISTINCT metadata->>'seq') AS seqs FROM ${dp.db.names.events} WHERE source = $1`,
    [SERVICE],
  );
  return { rows: Number(r.rows[0]?.n), seqs: Number(r.rows[0]?.seqs) };
}

beforeAll(async () => {
  try {
    execFileSync("lp-otelcol", ["--version"]);
  } catch {
    throw new Error("lp-otelcol is not on PATH: run make tools (hack/tools/go-tools.sh otelcol)");
  }
  dp = await startDataPlane(stack, {
    name: "collector",
    ingestKeys: `collector:${KEY}\n`,
    queryKeys: "r:collector-read\n",
  });
  dir = mkdtempSync(path.join(tmpdir(), "lp-otelcol-"));
  writeFileSync(`${dir}/config.yaml`, config());
  writeFileSync(`${dir}/app.log`, "");
  writeFileSync(`${dir}/collector.log`, "");
});

afterAll(async () => {
  await stopCollector(collector, "SIGTERM");
  // Undefined when the set-up failed (lp-otelcol missing).
  await (dp as DataPlane | undefined)?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the OpenTelemetry Collector tails a file into the pipeline", () => {
  it(`every one of ${LINES} lines lands once through a Collector kill -9, a gateway restart and a consumer restart`, async () => {
    collector = startCollector();
    const write = (from: number, to: number) => {
      let chunk = "";
      for (let i = from; i < to; i++) chunk += line(i);
      appendFileSync(`${dir}/app.log`, chunk);
    };
    const reached = async (n: number) => {
      try {
        await eventually(
          `${n} lines stored`,
          async () => ((await rows()).seqs >= n ? true : undefined),
          60_000,
        );
      } catch (e) {
        const log = readFileSync(`${dir}/collector.log`, "utf8").slice(-3000);
        throw new Error(
          `${(e as Error).message}; ${JSON.stringify(await rows())}; the Collector's log: ${log}`,
          { cause: e },
        );
      }
    };

    // The application writes on while the faults happen: 25 lines every 25 ms.
    const writing = (async () => {
      for (let i = 0; i < LINES; i += 25) {
        write(i, i + 25);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    await reached(500);
    // kill -9 mid-stream: the file offset and the queue are on disk (file_storage).
    await stopCollector(collector, "SIGKILL");
    collector = startCollector();
    await reached(1200);
    await dp.restartGateway(1000);
    await reached(2000);
    await dp.restartConsumer(500);
    await writing;
    await reached(LINES);
    // Barrier for "no more copies": one more line, written last, is stored; everything
    // before it has been shipped by then.
    appendFileSync(`${dir}/app.log`, line(LINES));
    await reached(LINES + 1);
    expect(await rows(), readFileSync(`${dir}/collector.log`, "utf8").slice(-2000)).toEqual({
      rows: LINES + 1,
      seqs: LINES + 1,
    });
    // What the line said: its own time, its severity, its service.
    const r = await dp.db.pool.query<{ ts: Date; level: string; message: string }>(
      `SELECT ts, level, message FROM ${dp.db.names.events} WHERE source = $1 AND metadata->>'seq' = '7'`,
      [SERVICE],
    );
    expect(r.rows[0]?.level).toBe("ERROR");
    expect(r.rows[0]?.ts.toISOString()).toBe(new Date(BASE + 7).toISOString());
    expect(r.rows[0]?.message).toBe(line(7).trimEnd());
  });
});
