/**
 * `make bench-operator`: the operator at 100, 300 and 1,000 LogPipelines, against the
 * stack's real API server and without a node (pods stay Pending), each figure next to a
 * baseline measured in the same run:
 *
 * - baseline: the time the API server takes to server-side apply the objects N pipelines
 *   own (the operator's own builders make them; owner references removed, in a namespace of
 *   their own), from one client with the operator's reconcile concurrency;
 * - convergence: N pipelines created at once → every pipeline's status written for its
 *   generation (the status is written after all its children were applied, in the same
 *   reconcile) and every child present, ÷ the baseline;
 * - the operator's RSS and CPU after convergence, and the RSS slope per pipeline;
 * - at the largest N, a steady state of STEADY_MINUTES (default 10): the operator's API
 *   requests per pipeline per minute by verb and resource, from the API server's audit log
 *   (the operator runs as its ServiceAccount, the audit policy logs only that user), Lease
 *   renewals apart, and its reconciles per minute, minute by minute;
 * - one spec edit on one pipeline among N: the time until its child changes.
 *
 * Set-up, printed with the output: kafka.mode strimzi with the KafkaTopic CRD installed and
 * no topic operator watching the clusterRef namespace (its KafkaTopics never become Ready);
 * bootstrapServers 127.0.0.1:1, a closed local port that refuses at once, so delivery reads
 * fail fast; managed PostgreSQL and Redis whose pods never run. The operator is a process of
 * its own (node operator/src/main.ts) with its default intervals.
 *
 *   BENCH_OPERATOR_SIZES=100,300,1000 STEADY_MINUTES=10 node --import tsx test/bench/operator-scale.ts
 */
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parsePipeline } from "../../operator/src/api/parse.js";
import { desiredState, type KubeObject } from "../../operator/src/builders/index.js";
import { STRIMZI_API_VERSION } from "../../operator/src/builders/kafka-topics.js";
import { pipelineNames } from "../../operator/src/builders/names.js";
import { managerConfig, OperatorEnv } from "../../operator/src/config.js";
import { KubeClient } from "../../operator/src/kube/client.js";
import {
  CLOSED_PORT,
  createFleet,
  deleteNamespace,
  fleetName,
  fleetSpec,
  metricSum,
  type OperatorProcess,
  pool,
  startOperatorProcess,
  waitConverged,
} from "../support/fleet.js";
import { ensureStack, repoRoot, type StackInfo } from "../support/stack.js";
import { compileDist } from "../support/workload-process.js";
import { recordBenchmarks } from "./record.js";

const SIZES = (process.env.BENCH_OPERATOR_SIZES ?? "100,300,1000").split(",").map(Number);
const STEADY_MINUTES = Number(process.env.STEADY_MINUTES ?? 10);
const CONCURRENCY = 4; // the operator's default reconcile workers (operator/src/config.ts)
const SA = { namespace: "logpipeline-system", name: "logpipeline-operator" };
const SA_USER = `system:serviceaccount:${SA.namespace}:${SA.name}`;
const KAFKA_NS = "lp-bench-kafka";
const HEALTH_PORT = 18980;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, ok: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(500);
  }
}
const seconds = (ms: number) => Math.round(ms / 100) / 10;
const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

function kubectl(stack: StackInfo, args: string[]): string {
  const r = spawnSync("kubectl", ["--kubeconfig", stack.kubeconfig, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** A bench pipeline as the operator sees it: parsed, with its defaults. */
function parsedPipeline(name: string, namespace: string) {
  const parsed = parsePipeline({
    apiVersion: "logpipeline.io/v1alpha1",
    kind: "LogPipeline",
    metadata: { name, namespace, uid: randomUUID(), generation: 1 },
    spec: fleetSpec(KAFKA_NS),
  });
  if (!parsed.ok) throw new Error(`bench spec does not parse: ${parsed.message}`);
  return parsed.pipeline;
}

/** The objects the operator makes for one pipeline, from its own builders. */
function ownedObjects(name: string, namespace: string): KubeObject[] {
  const config = managerConfig(OperatorEnv.parse({}));
  const state = desiredState(
    parsedPipeline(name, namespace),
    {
      ...config,
      capabilities: { strimzi: true, keda: false, serviceMonitor: false, prometheusRule: false },
      secretHashes: {},
    },
    {
      postgresPassword: "x".repeat(32),
      redisPassword: "y".repeat(32),
      apiKey: "z".repeat(32),
      queryKey: "q".repeat(32),
      postgresRolePasswords: { owner: "o".repeat(32), writer: "w".repeat(32), reader: "r".repeat(32) },
    },
  );
  return [...state.createOnce, ...state.apply];
}

async function ensureNamespace(kube: KubeClient, name: string): Promise<void> {
  await kube.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
}

/** Baseline: the API server applying the objects of n pipelines from one client. */
async function baseline(kube: KubeClient, n: number): Promise<{ ms: number; objects: number }> {
  const ns = `lp-bench-base-${n}`;
  await deleteNamespace(kube, ns);
  await ensureNamespace(kube, ns);
  const objects = Array.from({ length: n }, (_, i) => ownedObjects(fleetName(i), ns)).flatMap((objs) =>
    objs.map((o): KubeObject => ({ ...o, metadata: { ...o.metadata, ownerReferences: [] } })),
  );
  // KafkaTopics go to the clusterRef namespace, as the operator writes them.
  const t0 = performance.now();
  await pool(objects, CONCURRENCY, async (o) => {
    await kube.apply(o.kind === "KafkaTopic" ? o : { ...o, metadata: { ...o.metadata, namespace: ns } });
  });
  const ms = performance.now() - t0;
  await deleteNamespace(kube, ns);
  for (const o of objects.filter((x) => x.kind === "KafkaTopic"))
    await kube.delete(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name).catch(() => undefined);
  return { ms, objects: objects.length };
}

/** A kubeconfig for the operator's ServiceAccount (config/rbac), from a TokenRequest. */
async function serviceAccountKubeconfig(stack: StackInfo, admin: KubeClient): Promise<string> {
  if (!(await admin.getOrUndefined("v1", "Namespace", undefined, SA.namespace)))
    kubectl(stack, ["create", "namespace", SA.namespace]);
  kubectl(stack, ["apply", "--server-side", "--force-conflicts", "-k", path.join(repoRoot, "config/rbac")]);
  const tr = await admin.request<{ status: { token: string } }>(
    "POST",
    `/api/v1/namespaces/${SA.namespace}/serviceaccounts/${SA.name}/token`,
    {
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 4 * 3600 },
      },
    },
  );
  const file = path.join(mkdtempSync(path.join(tmpdir(), "lp-bench-op-")), "kubeconfig");
  const ca = path.join(stack.runDir, "pki/ca.crt");
  writeFileSync(
    file,
    [
      "apiVersion: v1",
      "kind: Config",
      `clusters: [{name: local, cluster: {server: "${stack.apiServer}", certificate-authority: "${ca}"}}]`,
      `users: [{name: operator, user: {token: "${tr.status.token}"}}]`,
      "contexts: [{name: local, context: {cluster: local, user: operator}}]",
      "current-context: local",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  return file;
}

/** Children present, by kind, against what the builders say n pipelines own. */
async function childCount(
  kube: KubeClient,
  ns: string,
  n: number,
): Promise<{ found: number; expected: number }> {
  const one = ownedObjects("x", ns);
  const kinds = new Map(one.map((o) => [`${o.apiVersion} ${o.kind}`, o]));
  let found = 0;
  for (const o of kinds.values())
    found += (await kube.list(o.apiVersion, o.kind, o.metadata.namespace)).items.length;
  const expected = one.length * n;
  return { found, expected };
}

/** Audit-log lines written since `offset`: the operator's requests by verb and resource. */
function auditCounts(file: string, offset: number): Map<string, number> {
  const size = statSync(file).size;
  const buf = Buffer.alloc(size - offset);
  const fd = openSync(file, "r");
  readSync(fd, buf, 0, buf.length, offset);
  closeSync(fd);
  const byRequest = new Map<string, number>();
  for (const line of buf.toString("utf8").split("\n")) {
    if (!line) continue;
    const e = JSON.parse(line) as {
      stage: string;
      verb: string;
      user: { username: string };
      objectRef?: { resource?: string; subresource?: string };
    };
    if (e.user.username !== SA_USER || e.stage !== "ResponseComplete") continue;
    const res = e.objectRef?.resource ?? "-";
    const key = `${e.verb} ${res}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ""}`;
    byRequest.set(key, (byRequest.get(key) ?? 0) + 1);
  }
  return byRequest;
}

async function specEditLatency(kube: KubeClient, ns: string, name: string, edits: number): Promise<number[]> {
  const out: number[] = [];
  const deployment = pipelineNames(parsedPipeline(name, ns)).query;
  for (let i = 0; i < edits; i++) {
    const replicas = 2 + (i % 2);
    const t0 = performance.now();
    await kube.request("PATCH", `/apis/logpipeline.io/v1alpha1/namespaces/${ns}/logpipelines/${name}`, {
      body: { spec: { query: { replicas } } },
      contentType: "application/merge-patch+json",
    });
    // A child that has not changed after 120 s is recorded as such (Infinity), not an abort:
    // the figures measured before it are kept.
    const until = Date.now() + 120_000;
    let ms = Infinity;
    for (;;) {
      const d = await kube.get<{ spec: { replicas: number } }>("apps/v1", "Deployment", ns, deployment);
      if (d.spec.replicas === replicas) {
        ms = performance.now() - t0;
        break;
      }
      if (Date.now() > until) break;
      await sleep(20);
    }
    out.push(ms);
    if (ms === Infinity) break;
    await sleep(1_000);
  }
  return out;
}

const { info: stack, release } = ensureStack();
const admin = await KubeClient.fromEnvironment(stack.kubeconfig);
const results: Record<string, number | string> = {};
const rows: string[] = [];
const setup: string[] = [];
let op: OperatorProcess | undefined;
try {
  if (
    !(await admin.getOrUndefined(
      "apiextensions.k8s.io/v1",
      "CustomResourceDefinition",
      undefined,
      "kafkatopics.kafka.strimzi.io",
    ))
  )
    throw new Error("the KafkaTopic CRD is not installed: run the stack with Strimzi (make stack-up)");
  const kubeconfig = await serviceAccountKubeconfig(stack, admin);
  // The operator runs as its image runs it: compiled JavaScript (tsx would add its own memory).
  log("compiling the operator (tsc -p tsconfig.build.json → dist/)");
  compileDist();
  const compiled = path.join(repoRoot, "dist/operator/src/main.js");
  await ensureNamespace(admin, KAFKA_NS);
  setup.push(
    `set-up: the stack's API server ${stack.apiServer}, no node (pods stay Pending);`,
    `  kafka.mode strimzi, clusterRef ${KAFKA_NS}/bench (KafkaTopic CRD installed, no topic operator watches ${KAFKA_NS});`,
    `  bootstrapServers ${CLOSED_PORT} (refuses at once); managed PostgreSQL and Redis;`,
    `  operator: node dist/operator/src/main.js (compiled, as in the image) as ${SA_USER} (config/rbac), default settings, leader election on;`,
    `  baseline: the same objects server-side applied from one client, ${CONCURRENCY} at a time;`,
    `  sizes ${SIZES.join(", ")}; steady state ${STEADY_MINUTES} min at ${Math.max(...SIZES)}; audit log ${stack.auditLog}`,
  );
  console.log(setup.join("\n"));
  const rss: Record<number, number> = {};
  for (const n of SIZES) {
    log(`N=${n}: baseline`);
    const base = await baseline(admin, n);
    log(`N=${n}: baseline ${base.objects} objects in ${seconds(base.ms)} s`);
    const ns = `lp-bench-${n}`;
    await deleteNamespace(admin, ns, { orphaned: true });
    await ensureNamespace(admin, ns);
    // Topics a former round retained (deletionPolicy Retain) would count as this round's.
    for (const t of (await admin.list(STRIMZI_API_VERSION, "KafkaTopic", KAFKA_NS)).items)
      await admin.delete(STRIMZI_API_VERSION, "KafkaTopic", KAFKA_NS, t.metadata?.name ?? "");
    op = startOperatorProcess({
      compiled,
      kubeconfig,
      namespaces: [ns, KAFKA_NS],
      identity: "bench-operator",
      healthPort: HEALTH_PORT,
    });
    await waitFor("the operator ready", () => op?.ready() ?? Promise.resolve(false), 120_000);
    const t0 = performance.now();
    const auditAtCreate = statSync(stack.auditLog).size;
    await createFleet(admin, ns, n, KAFKA_NS);
    log(`N=${n}: ${n} pipelines created in ${seconds(performance.now() - t0)} s`);
    let lastLog = 0;
    const last = await waitConverged(admin, ns, n, 30 * 60_000, 2_000, (done, ms) => {
      if (ms - lastLog < 10_000 && done < n) return;
      lastLog = ms;
      log(`N=${n}: ${done}/${n} converged (${seconds(performance.now() - t0)} s)`);
    });
    const convergeMs = performance.now() - t0;
    const children = await childCount(admin, ns, n);
    if (children.found < children.expected)
      throw new Error(`N=${n}: ${children.found} children, the builders say ${children.expected}`);
    const ratio = convergeMs / base.ms;
    log(`N=${n}: converged in ${seconds(convergeMs)} s = ${ratio.toFixed(2)}× baseline; ${last.phases}`);
    // What converging cost the API server, per pipeline (the baseline sends one apply per child).
    const converging = auditCounts(stack.auditLog, auditAtCreate);
    const convergeRequests = [...converging.values()].reduce((a, b) => a + b, 0) / n;
    log(
      `N=${n}: ${convergeRequests.toFixed(1)} operator requests per pipeline while converging (baseline ${(base.objects / n).toFixed(0)}): ` +
        [...converging]
          .sort((a, b) => b[1] - a[1])
          .filter(([, v]) => v / n >= 0.05)
          .map(([k, v]) => `${k} ${(v / n).toFixed(2)}`)
          .join(", "),
    );
    await sleep(30_000);
    const cpu0 = op.cpuSeconds();
    await sleep(60_000);
    const cpuShare = (op.cpuSeconds() - cpu0) / 60;
    rss[n] = op.rssMiB();
    log(`N=${n}: RSS ${rss[n]} MiB, CPU ${(cpuShare * 100).toFixed(1)}% of a core at rest`);
    Object.assign(results, {
      [`operator_scale_${n}_baseline_seconds`]: seconds(base.ms),
      [`operator_scale_${n}_children`]: children.found,
      [`operator_scale_${n}_converge_seconds`]: seconds(convergeMs),
      [`operator_scale_${n}_converge_vs_baseline`]: Math.round(ratio * 100) / 100,
      [`operator_scale_${n}_converge_requests_per_pipeline`]: Math.round(convergeRequests * 10) / 10,
      [`operator_scale_${n}_rss_mib`]: rss[n],
      [`operator_scale_${n}_cpu_cores_idle`]: Math.round(cpuShare * 1000) / 1000,
    });
    rows.push(
      `| ${n} | ${children.found} | ${seconds(base.ms)} | ${seconds(convergeMs)} | **${ratio.toFixed(2)}×** | ${convergeRequests.toFixed(1)} | ${rss[n]} | ${(cpuShare * 100).toFixed(1)}% |`,
    );

    if (n === Math.max(...SIZES)) {
      log(`N=${n}: steady state, ${STEADY_MINUTES} min`);
      const start = statSync(stack.auditLog).size;
      const perMinute: number[] = [];
      let before = await metricSum(op, "logpipeline_operator_reconcile_total");
      for (let m = 1; m <= STEADY_MINUTES; m++) {
        await sleep(60_000);
        const now = await metricSum(op, "logpipeline_operator_reconcile_total");
        perMinute.push(now - before);
        log(`  minute ${m}: ${now - before} reconciles`);
        before = now;
      }
      const byRequest = auditCounts(stack.auditLog, start);
      const rates = [...byRequest]
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => ({ k, v: v / STEADY_MINUTES / n }));
      console.log("operator requests per pipeline per minute (audit log):");
      for (const r of rates) console.log(`  ${r.k.padEnd(48)} ${r.v.toFixed(3)}`);
      const childWrites = rates
        .filter((r) => /^(create|patch|update|delete) /.test(r.k) && !/logpipelines|leases|events/.test(r.k))
        .reduce((s, r) => s + r.v, 0);
      const statusWrites = rates
        .filter((r) => r.k.includes("logpipelines/status"))
        .reduce((s, r) => s + r.v, 0);
      const leases = rates.filter((r) => r.k.includes("leases")).reduce((s, r) => s + r.v * n, 0);
      const total = rates.filter((r) => !r.k.includes("leases")).reduce((s, r) => s + r.v, 0);
      const firstHalf = perMinute.slice(0, Math.floor(perMinute.length / 2));
      const secondHalf = perMinute.slice(Math.floor(perMinute.length / 2));
      const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
      Object.assign(results, {
        operator_scale_steady_requests_per_pipeline_minute: Math.round(total * 1000) / 1000,
        operator_scale_steady_child_writes_per_pipeline_minute: Math.round(childWrites * 1000) / 1000,
        operator_scale_steady_status_writes_per_pipeline_minute: Math.round(statusWrites * 1000) / 1000,
        operator_scale_steady_lease_requests_per_minute: Math.round(leases * 10) / 10,
        operator_scale_steady_reconciles_per_pipeline_minute: Math.round((mean(perMinute) / n) * 1000) / 1000,
        operator_scale_steady_reconcile_rate_second_half_vs_first:
          Math.round((mean(secondHalf) / mean(firstHalf)) * 100) / 100,
      });
      rows.push(
        "",
        `Steady state at ${n} pipelines over ${STEADY_MINUTES} min (audit log, operator's ServiceAccount only), per pipeline per minute:`,
        "",
        "| request | per pipeline per minute |",
        "|---|---|",
        ...rates.map((r) => `| ${r.k} | ${r.v.toFixed(3)} |`),
        "",
        `Lease requests (whole operator): ${leases.toFixed(1)}/min. Reconciles per minute, minute by minute: ${perMinute.join(", ")}.`,
      );

      log(`N=${n}: spec edit latency`);
      const lat = await specEditLatency(admin, ns, fleetName(Math.floor(n / 2)), 5);
      const sorted = [...lat].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
      // JSON has no Infinity: a child that never changed is recorded as -1.
      results[`operator_scale_${n}_spec_edit_seconds`] = Number.isFinite(median)
        ? Math.round(median) / 1000
        : -1;
      rows.push(
        "",
        `One spec edit among ${n}: child changed after ${sorted.map((x) => Math.round(x)).join(", ")} ms (median ${Math.round(median)} ms).`,
      );
      log(`N=${n}: spec edit → child: ${sorted.map((x) => Math.round(x)).join(", ")} ms`);
    }

    await op.stop();
    op = undefined;
    // The last round's 20,000-odd objects go while the figures are recorded: nothing is
    // measured after them (a later run waits for what is left at its start).
    const lastRound = n === Math.max(...SIZES);
    log(`N=${n}: deleting${lastRound ? " (in the background)" : ""}`);
    await deleteNamespace(admin, ns, { orphaned: true, wait: !lastRound });
  }
  const small = Math.min(...SIZES);
  const large = Math.max(...SIZES);
  if (large > small && rss[large] !== undefined && rss[small] !== undefined)
    results.operator_scale_rss_kib_per_pipeline = Math.round(
      ((rss[large] - rss[small]) * 1024) / (large - small),
    );
  console.log(JSON.stringify(results, null, 2));
  results.operator_scale_measured_at = new Date().toISOString();
  recordBenchmarks({
    key: "operator-scale",
    heading: "The operator at scale",
    body: [
      `Last run: ${new Date().toISOString()}, the stack's API server and etcd, the operator and the bench co-located on 2 cores, no node.`,
      `Command: \`make bench-operator\` (BENCH_OPERATOR_SIZES=${SIZES.join(",")}, STEADY_MINUTES=${STEADY_MINUTES}). Set-up:`,
      "",
      ...setup.map((l) => `    ${l}`),
      "",
      "Targets: convergence ≤ 2× the baseline; RSS < 200 MiB at 1,000; 0 child writes at steady state; status writes at most one per delivery interval plus one per divergence check; a flat reconcile rate; a spec edit reaches its child in < 2 s.",
      "",
      "| pipelines | children | baseline apply (s) | operator converged (s) | ratio | requests per pipeline while converging | RSS (MiB) | CPU at rest |",
      "|---|---|---|---|---|---|---|---|",
      ...rows,
    ].join("\n"),
    figures: results,
  });
} finally {
  await op?.stop();
  await admin.close();
  release();
}
