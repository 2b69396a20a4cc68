// The e2e suite's client, run as a pod inside the cluster (so traffic never leaves it), on
// the producer's image (Node 24; no other dependency but the image's own node_modules).
// MODE=load   sends COUNT events in batches with explicit event ids, retrying every batch
//             that is not fully accepted (same ids: the pipeline must deduplicate), and
//             prints progress lines and one result line with the sorted ids' md5.
// MODE=stats  prints the query API's per-source counts.
// MODE=poll   asks the query API for its stats every 250 ms for SECONDS, and prints how many
//             answers were not 200 (an outage seen).
// MODE=explorer loads the explorer's page and script from the query API (status, CSP, sizes),
//             then asks /api/status every second for SECONDS until the operator's completeness
//             answer is known and checked, and prints the page's figures and the last answer.
// MODE=topics prints the Kafka topics (group-less Admin client).
// MODE=connect opens a TCP connection to each host:port of TARGETS (3 s each) and prints,
//             per target, "open" or why not (a NetworkPolicy refuses or times out).
// Each output line is one JSON object; the suite reads them with `kubectl logs`.
import { createHash, randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { connect as tcpConnect } from "node:net";

const env = process.env;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const apiKey = (env.API_KEYS ?? "").split("\n")[0].split(":").slice(1).join(":").trim();
const headers = { "content-type": "application/json", "x-api-key": apiKey };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The LogPipeline's status gives each API's URL up to its collection (…/api/logs).
const base = (url) => url.replace(/\/api\/logs\/?$/, "");

async function load() {
  const count = Number(env.COUNT),
    batch = Number(env.BATCH ?? 100),
    concurrency = Number(env.CONCURRENCY ?? 4);
  const sources = Number(env.SOURCES ?? 32),
    run = env.RUN,
    deadline = Date.now() + Number(env.DEADLINE_S ?? 600) * 1000;
  const ids = Array.from({ length: count }, () => randomUUID());
  const batches = [];
  for (let i = 0; i < count; i += batch) batches.push(i);
  let next = 0,
    done = 0,
    retries = 0,
    duplicates = 0,
    lastProgress = 0;
  const statuses = {};
  const started = Date.now();
  async function send(start) {
    const events = ids.slice(start, start + batch).map((eventId, j) => ({
      eventId,
      level: (start + j) % 50 === 0 ? "ERROR" : "INFO",
      source: `${run}-${(start + j) % sources}`,
      message: `e2e event ${start + j} of ${run}`,
      metadata: { run, index: start + j },
    }));
    for (let attempt = 0; ; attempt++) {
      if (Date.now() > deadline) throw new Error(`deadline passed with batch ${start} unsent`);
      let status;
      try {
        const res = await fetch(`${base(env.INGEST_URL)}/api/logs/batch`, {
          method: "POST",
          headers,
          body: JSON.stringify(events),
          signal: AbortSignal.timeout(30_000),
        });
        status = String(res.status);
        const body = await res.json().catch(() => ({}));
        if (res.status === 202 && body.failed?.length === 0) {
          duplicates += body.duplicates ?? 0;
          return;
        }
        if ([400, 401, 403, 404, 413].includes(res.status)) {
          throw Object.assign(new Error(`refused ${res.status}: ${JSON.stringify(body)}`), { fatal: true });
        }
      } catch (e) {
        if (e.fatal) throw e;
        status = e.name === "TimeoutError" ? "timeout" : "error";
      }
      statuses[status] = (statuses[status] ?? 0) + 1;
      retries++;
      await sleep(Math.min(5000, 200 * 2 ** Math.min(attempt, 5)));
    }
  }
  async function worker() {
    while (next < batches.length) {
      const start = batches[next++];
      await send(start);
      done += Math.min(batch, count - start);
      if (done - lastProgress >= 1000 || done === count) {
        lastProgress = done;
        out({ progress: done, retries });
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const digest = createHash("md5")
    .update([...ids].sort().join(","))
    .digest("hex");
  out({
    result: {
      sent: count,
      retries,
      duplicates,
      failedAttempts: statuses,
      digest,
      seconds: (Date.now() - started) / 1000,
    },
  });
}

async function stats() {
  const res = await fetch(`${base(env.QUERY_URL)}/api/stats?hours=${env.HOURS ?? 24}`, { headers });
  out({ status: res.status, stats: await res.json() });
}

async function poll() {
  const until = Date.now() + Number(env.SECONDS ?? 300) * 1000;
  let ok = 0;
  const failed = {};
  while (Date.now() < until) {
    try {
      const res = await fetch(`${base(env.QUERY_URL)}/api/stats?hours=1`, {
        headers,
        signal: AbortSignal.timeout(5000),
      });
      await res.arrayBuffer();
      if (res.status === 200) ok++;
      else failed[res.status] = (failed[res.status] ?? 0) + 1;
    } catch (e) {
      const k = String(e?.cause?.code ?? e?.name ?? "error");
      failed[k] = (failed[k] ?? 0) + 1;
    }
    if ((ok + Object.values(failed).reduce((a, b) => a + b, 0)) % 20 === 0) out({ progress: ok });
    await sleep(250);
  }
  out({ polled: { ok, failed } });
}

async function topics() {
  const require = createRequire("/app/");
  const { KafkaJS } = require("@confluentinc/kafka-javascript");
  const admin = new KafkaJS.Kafka({
    kafkaJS: { brokers: env.BOOTSTRAP.split(","), logLevel: KafkaJS.logLevel.NOTHING },
  }).admin();
  await admin.connect();
  out({ topics: (await admin.listTopics()).sort() });
  await admin.disconnect();
}

async function connect() {
  const result = {};
  for (const target of env.TARGETS.split(",")) {
    const i = target.lastIndexOf(":");
    result[target] = await new Promise((resolve) => {
      const socket = tcpConnect({ host: target.slice(0, i), port: Number(target.slice(i + 1)) });
      const done = (how) => {
        socket.destroy();
        resolve(how);
      };
      socket.setTimeout(Number(env.TIMEOUT_MS ?? 3000), () => done("timeout"));
      socket.once("connect", () => done("open"));
      socket.once("error", (e) => done(String(e.code ?? e.message)));
    });
  }
  out({ connect: result });
}

async function explorer() {
  const page = await fetch(`${base(env.QUERY_URL)}/`);
  const html = await page.text();
  const script = await fetch(`${base(env.QUERY_URL)}/explorer/app.js`);
  const js = await script.text();
  const until = Date.now() + Number(env.SECONDS ?? 180) * 1000;
  let status = {};
  while (Date.now() < until) {
    const res = await fetch(`${base(env.QUERY_URL)}/api/status`, {
      headers,
      signal: AbortSignal.timeout(5000),
    }).catch((e) => ({ status: 0, json: async () => ({ error: String(e) }) }));
    status = { code: res.status, ...(await res.json().catch(() => ({}))) };
    if (status.source === "known" && status.dataConsistent !== "Unknown") break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  out({
    page: {
      status: page.status,
      csp: page.headers.get("content-security-policy"),
      loadsScript: html.includes("/explorer/app.js"),
      scriptStatus: script.status,
      scriptBytes: js.length,
    },
    completeness: status,
  });
}

const modes = { load, stats, poll, topics, connect, explorer };
try {
  await modes[env.MODE]();
} catch (e) {
  out({ error: String(e?.message ?? e) });
  process.exitCode = 1;
}
