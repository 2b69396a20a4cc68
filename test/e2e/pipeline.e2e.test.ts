import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STRIMZI_API_VERSION } from "../../operator/src/builders/kafka-topics.js";
import type { KubeClient } from "../../operator/src/kube/client.js";
import { eventually, uniqueSuffix } from "../support/kube.js";
import { conditionOf, getPipeline, LP_API, type LogPipelineObject, waitGone } from "../support/operator.js";
import {
  type ClientLine,
  clientLines,
  clientResult,
  e2e,
  helm,
  kube,
  kubectl,
  kubectlOk,
  psql,
  runClient,
  startClient,
} from "./cluster.js";

/**
 * The product as a user meets it: `helm install` the operator, `kubectl apply` a LogPipeline,
 * send events through its ingest Service from a pod, and read them back — on whichever
 * cluster LP_E2E_KUBECONFIG names (the local node, or kind). Sequential: each step builds on
 * the one before, as a user's session would.
 */
const release = "logpipeline-operator";
const opNs = "logpipeline-system";
const ns = "lp-e2e";
const name = "e2e";
const pgPod = `${name}-postgres-0`;
const topic = `${ns}.${name}.logs`;
// Runs are named per suite run: events of an earlier run never count in this one.
const suite = uniqueSuffix();
let k: KubeClient;

type Hpa = { spec: { maxReplicas: number }; status?: { currentReplicas?: number; desiredReplicas?: number } };
type Deploy = { spec: { replicas?: number }; status?: { readyReplicas?: number; replicas?: number } };
type KafkaTopic = {
  spec: { partitions: number };
  status?: { conditions?: { type: string; status: string }[] };
};

function pipeline(deletion: "Retain" | "Delete", partitions = 6, consumerMax = 2): object {
  return {
    apiVersion: LP_API,
    kind: "LogPipeline",
    metadata: { name, namespace: ns },
    spec: {
      kafka: {
        mode: "strimzi",
        clusterRef: { name: e2e.kafkaCluster, namespace: e2e.kafkaNamespace },
        topic: { partitions, replicationFactor: 1 },
      },
      // Small requests: the local node has two cores for everything.
      producer: {
        replicas: { min: 1, max: 3 },
        targetCPUUtilization: 50,
        resources: { requests: { cpu: "100m", memory: "192Mi" } },
      },
      consumer: {
        replicas: { min: 1, max: consumerMax },
        resources: { requests: { cpu: "100m", memory: "192Mi" } },
      },
      query: { cacheTtlSeconds: 0 },
      network: { egress: e2e.networkEgress },
      autoscaling: { scaleDownStabilizationSeconds: 15 },
      deletionPolicy: { topics: deletion, postgres: deletion, drainTimeoutSeconds: 60 },
    },
  };
}

const applyPipeline = (obj: object) =>
  kubectlOk(
    ["apply", "--server-side", "--field-manager", "e2e", "--force-conflicts", "-f", "-"],
    JSON.stringify(obj),
  );

async function waitReady(timeoutMs: number): Promise<LogPipelineObject> {
  return eventually(
    "the LogPipeline to be Ready",
    async () => {
      const lp = await getPipeline(k, ns, name);
      return conditionOf(lp, "Ready")?.status === "True" &&
        lp.status?.observedGeneration === lp.metadata?.generation
        ? lp
        : undefined;
    },
    timeoutMs,
  );
}

const ingestUrl = (lp: LogPipelineObject) =>
  (lp.status as { endpoints: { ingest: string } }).endpoints.ingest;
const queryUrl = (lp: LogPipelineObject) => (lp.status as { endpoints: { query: string } }).endpoints.query;
const bootstrap = () => `${e2e.kafkaCluster}-kafka-bootstrap.${e2e.kafkaNamespace}.svc:9092`;

/**
 * Duplicates counted three ways, each able to see one the others miss: by the client's
 * sequence number (metadata.index, set by the load client; a retry that got a new event id
 * shows here), by Kafka position (a record applied twice), and by event id.
 */
const duplicatesSql = (relation: string) => `
  (SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) AS c FROM ${relation}
     GROUP BY metadata->>'index' HAVING count(*) > 1) s),
  (SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) AS c FROM ${relation}
     GROUP BY kafka_partition, kafka_offset HAVING count(*) > 1) p),
  (SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) AS c FROM ${relation}
     GROUP BY event_id HAVING count(*) > 1) i)`;

/** Rows of a run in PostgreSQL: count, duplicates, md5 of the sorted ids, partitions used. */
function rowsOf(run: string) {
  const [count, bySeq, byPosition, byId, digest, partitions] = psql(
    ns,
    pgPod,
    `SELECT count(*), ${duplicatesSql(`public.logs WHERE source LIKE '${run}-%'`)},
            coalesce(md5(string_agg(event_id::text, ',' ORDER BY event_id::text)), '-'),
            count(DISTINCT kafka_partition)
       FROM public.logs WHERE source LIKE '${run}-%'`,
  ).split(" ");
  return {
    count: Number(count),
    duplicated: { bySeq: Number(bySeq), byPosition: Number(byPosition), byId: Number(byId) },
    digest,
    partitions: Number(partitions),
  };
}

/**
 * The negative control of the duplicate counts: on a temporary copy of a run's rows (the
 * pipeline's tables are not touched), one row stored twice at its own position and one
 * event sent again under a new id at a new position. The counts must see both.
 */
function plantedDuplicates(run: string) {
  const [bySeq, byPosition, byId] =
    psql(
      ns,
      pgPod,
      `CREATE TEMP TABLE planted AS SELECT * FROM public.logs WHERE source LIKE '${run}-%';
     INSERT INTO planted SELECT * FROM planted ORDER BY kafka_offset LIMIT 1;
     INSERT INTO planted SELECT (jsonb_populate_record(p, jsonb_build_object(
         'event_id', gen_random_uuid(), 'kafka_offset', p.kafka_offset + 1000000000))).*
       FROM planted p ORDER BY kafka_offset DESC LIMIT 1;
     SELECT ${duplicatesSql("planted")}`,
    )
      .trim()
      .split("\n")
      .at(-1) // psql prints each statement's result; the counts are the last line
      ?.split(" ") ?? [];
  return { bySeq: Number(bySeq), byPosition: Number(byPosition), byId: Number(byId) };
}

type LoadResult = NonNullable<ClientLine["result"]>;

function resultOf(lines: ClientLine[]): LoadResult {
  const r = lines.find((l) => l.result)?.result;
  if (!r) throw new Error(`the client printed no result: ${JSON.stringify(lines.slice(-3))}`);
  return r;
}

async function expectExactlyOnce(run: string, result: LoadResult) {
  const rows = await eventually(
    `all ${result.sent} events of ${run} in PostgreSQL`,
    () => {
      const r = rowsOf(run);
      return r.count >= result.sent ? r : undefined;
    },
    180_000,
  );
  // Lost, duplicated and spurious all zero: the same count, no duplicate by any of the three
  // counts, the same id set.
  expect(rows.count).toBe(result.sent);
  expect(rows.duplicated).toEqual({ bySeq: 0, byPosition: 0, byId: 0 });
  expect(rows.digest).toBe(result.digest);
  return rows;
}

async function statsTotal(lp: LogPipelineObject, run: string): Promise<number> {
  const lines = await runClient(
    k,
    ns,
    `stats-${Date.now() % 100000}`,
    { MODE: "stats", QUERY_URL: queryUrl(lp) },
    `${name}-query-keys`, // the query API takes query keys only
  );
  const s = lines.find((l) => l.stats);
  expect(s?.status).toBe(200);
  return (s?.stats?.bySource ?? [])
    .filter((b) => b.source.startsWith(`${run}-`))
    .reduce((a, b) => a + b.count, 0);
}

type Divergence = {
  checkedAt?: string;
  trigger?: string;
  missing?: number;
  duplicated?: number;
  spurious?: number;
  samples?: { missing?: string[] };
  partitions?: { kafkaRecords: number }[];
};
const divergenceOf = (lp: LogPipelineObject): Divergence =>
  (lp.status as { divergence?: Divergence } | undefined)?.divergence ?? {};

async function topics(): Promise<string[]> {
  const lines = await runClient(k, ns, `topics-${Date.now() % 100000}`, {
    MODE: "topics",
    BOOTSTRAP: bootstrap(),
  });
  return lines.find((l) => l.topics)?.topics ?? [];
}

const loadEnv = (lp: LogPipelineObject, run: string, count: number, extra: Record<string, string> = {}) => ({
  MODE: "load",
  INGEST_URL: ingestUrl(lp),
  RUN: run,
  COUNT: String(count),
  BATCH: "100",
  CONCURRENCY: "4",
  SOURCES: "32",
  DEADLINE_S: "600",
  ...extra,
});

beforeAll(async () => {
  k = await kube();
  // What an interrupted earlier run left: its release first (its operator would put the
  // pipeline's finalizer back), then its pipeline's namespace.
  helm("uninstall", release, "-n", opNs, "--ignore-not-found", "--wait");
  kubectl(["patch", "lp", name, "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}']);
  kubectl(["delete", "ns", ns, "--ignore-not-found", "--wait=false"]);
  // A namespace of an earlier, interrupted run must be gone before it is made again.
  for (const n of [opNs, ns])
    await eventually(
      `namespace ${n} not terminating`,
      async () => {
        const o = await k.getOrUndefined<{ status?: { phase?: string } }>("v1", "Namespace", undefined, n);
        return o?.status?.phase === "Terminating" ? undefined : true;
      },
      180_000,
    );
  // Topics an interrupted run left (Retain) would be read again by a new consumer.
  kubectl([
    "delete",
    "kafkatopic",
    "-n",
    e2e.kafkaNamespace,
    topic,
    `${ns}.${name}.dlq`,
    "--ignore-not-found",
    "--wait=true",
  ]);
}, 240_000);

afterAll(async () => {
  // Whatever a failed step left: the namespaces go (the operator is gone by then if the
  // last step ran; a pipeline's finalizer is dropped so the namespace can go).
  kubectl(["patch", "lp", name, "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}']);
  kubectl(["delete", "ns", ns, "--wait=false", "--ignore-not-found"]);
  helm("uninstall", release, "-n", opNs, "--wait");
  kubectl(["delete", "ns", opNs, "--wait=false", "--ignore-not-found"]);
  await k.close();
}, 180_000);

describe("e2e: helm install → LogPipeline → events through the cluster", () => {
  it("installs the operator with Helm; one replica leads", async () => {
    const values = e2e.values ? ["-f", e2e.values] : [];
    const r = helm(
      "install",
      release,
      e2e.chart,
      "-n",
      opNs,
      "--create-namespace",
      ...values,
      "--wait",
      "--timeout",
      "5m",
    );
    expect(r.code, r.stderr).toBe(0);
    const lease = await eventually(
      "the operator's Lease to have a holder",
      async () => {
        const l = await k.getOrUndefined<{ spec?: { holderIdentity?: string } }>(
          "coordination.k8s.io/v1",
          "Lease",
          opNs,
          "logpipeline-operator",
        );
        return l?.spec?.holderIdentity ? l.spec.holderIdentity : undefined;
      },
      60_000,
    );
    expect(lease).toMatch(/^logpipeline-operator-/);
  });

  it("applies a LogPipeline; it becomes Ready with every workload running", async () => {
    kubectlOk(["create", "namespace", ns]);
    applyPipeline(pipeline("Retain"));
    const lp = await waitReady(420_000);
    expect(ingestUrl(lp)).toContain(`.${ns}.svc`);
    const t = await k.get<KafkaTopic>(STRIMZI_API_VERSION, "KafkaTopic", e2e.kafkaNamespace, topic);
    expect(t.spec.partitions).toBe(6);
  });

  it(`delivers ${e2e.events} events exactly once while a consumer and a producer pod are deleted mid-load`, async () => {
    const lp = await getPipeline(k, ns, name);
    const run = `r1${suite}`;
    await startClient(k, ns, "load-r1", loadEnv(lp, run, e2e.events), `${name}-api-keys`);
    const progressed = (n: number) =>
      eventually(
        `the client to pass ${n} events`,
        () => {
          const p = clientLines(ns, "load-r1").findLast((l) => l.progress !== undefined);
          return (p?.progress ?? 0) >= n ? p : undefined;
        },
        240_000,
      );
    await progressed(Math.floor(e2e.events * 0.3));
    kubectlOk(["delete", "pod", "-n", ns, "-l", "app.kubernetes.io/component=consumer", "--wait=false"]);
    await progressed(Math.floor(e2e.events * 0.6));
    kubectlOk(["delete", "pod", "-n", ns, "-l", "app.kubernetes.io/component=producer", "--wait=false"]);
    const lines = await clientResult(k, ns, "load-r1", 600_000);
    const result = resultOf(lines);
    expect(result.sent).toBe(e2e.events);
    console.log(
      `r1: ${e2e.events} events in ${result.seconds} s, ${result.retries} retried batches`,
      result.failedAttempts,
    );
    const rows = await expectExactlyOnce(run, result);
    expect(rows.partitions).toBeGreaterThan(1);
    // The duplicate counts can see a duplicate (negative control, on a copy of the rows).
    expect(plantedDuplicates(run)).toEqual({ bySeq: 2, byPosition: 1, byId: 1 });
    // The query API counts the same.
    expect(await statsTotal(lp, run)).toBe(e2e.events);
    // And the status: nothing left to consume.
    await eventually(
      "status.delivery.lag to reach 0",
      async () => {
        const p = await getPipeline(k, ns, name);
        const d = (p.status as { delivery?: { lag: number } }).delivery;
        return d && d.lag === 0 ? d : undefined;
      },
      120_000,
    );
  });

  it("default-deny NetworkPolicies hold on the node: a pod outside the pipeline reaches its ingest API, not its PostgreSQL or Redis; without the policies it does (control)", async () => {
    const svc = (c: string, port: number) => `${name}-${c}.${ns}.svc:${port}`;
    const pgPodIp = (await k.get<{ status: { podIP: string } }>("v1", "Pod", ns, pgPod)).status.podIP;
    // Through the Services (routed by the node) and straight to the server pod (bridged).
    const targets = [svc("producer", 80), svc("postgres", 5432), svc("redis", 6379), `${pgPodIp}:5432`];
    let probes = 0;
    const probe = async (probeNs: string) =>
      (
        await runClient(k, probeNs, `netprobe-${++probes}`, { MODE: "connect", TARGETS: targets.join(",") })
      ).find((l) => l.connect)?.connect ?? {};
    type Labelled = { metadata: { labels?: Record<string, string> } };
    const policyCount = async () =>
      ((await k.list("networking.k8s.io/v1", "NetworkPolicy", ns)).items as Labelled[]).filter(
        (p) => p.metadata.labels?.["app.kubernetes.io/instance"] === name,
      ).length;
    // Reached or not: a denied connection is refused (kube-router rejects) or times out (an
    // enforcer that drops); the control below tells a policy's refusal from a closed port.
    const reach = (seen: Record<string, string>) =>
      JSON.stringify(Object.fromEntries(targets.map((t) => [t, seen[t] === "open"])));
    const blocked = JSON.stringify(Object.fromEntries(targets.map((t, i) => [t, i === 0])));
    const open = JSON.stringify(Object.fromEntries(targets.map((t) => [t, true])));
    /** Probes from `probeNs` until it sees `want` (the enforcer programs a change within seconds). */
    const probeUntil = (what: string, probeNs: string, want: string) =>
      eventually(
        what,
        async () => {
          const seen = await probe(probeNs);
          if (reach(seen) !== want) throw new Error(`the probe saw ${JSON.stringify(seen)}`);
          return seen;
        },
        90_000,
      );

    expect(await policyCount()).toBe(5); // producer, consumer, query, postgres, redis
    // The pipeline's namespace (a neighbour of its pods) and another namespace. The enforcer
    // programs a policy within seconds of its change: asked again until then.
    kubectlOk(["create", "namespace", `${ns}-other`]);
    try {
      for (const probeNs of [ns, `${ns}-other`])
        await probeUntil(`${probeNs}: PostgreSQL and Redis out of reach`, probeNs, blocked);
    } finally {
      kubectl(["delete", "namespace", `${ns}-other`, "--wait=false"]);
    }
    // Control: the same probe reaches both servers once the pipeline has no policies, so the
    // timeouts above are the policies' doing, not an unreachable server.
    applyPipeline({
      ...pipeline("Retain"),
      spec: {
        ...(pipeline("Retain") as { spec: object }).spec,
        network: { policies: false, egress: e2e.networkEgress },
      },
    });
    await eventually(
      "the NetworkPolicies removed",
      async () => ((await policyCount()) === 0 ? true : undefined),
      60_000,
    );
    await probeUntil("PostgreSQL and Redis reachable without policies", ns, open);
    applyPipeline(pipeline("Retain"));
    await eventually(
      "the NetworkPolicies back",
      async () => ((await policyCount()) === 5 ? true : undefined),
      60_000,
    );
    await probeUntil("PostgreSQL and Redis out of reach again", ns, blocked);
    // The workloads still do their job under the policies: the rotation below runs under load
    // with them in place, and every later step too.
    await waitReady(120_000);
  });

  it("serves the explorer on the query API, and its completeness banner from the operator's ConfigMap through the pod's volume", async () => {
    const lp = await getPipeline(k, ns, name);
    const started = Date.now();
    const lines = await runClient(
      k,
      ns,
      `explorer-${Date.now() % 100000}`,
      // The kubelet refreshes a ConfigMap volume within about a minute: up to 180 s.
      { MODE: "explorer", QUERY_URL: queryUrl(lp), SECONDS: "180" },
      `${name}-query-keys`,
    );
    const r = lines.find((l) => l.page);
    console.log(
      `explorer in the cluster: completeness known after ${String(Math.round((Date.now() - started) / 1000))} s`,
      r,
    );
    expect(r?.page).toMatchObject({ status: 200, loadsScript: true, scriptStatus: 200 });
    expect(r?.page?.csp).toContain("script-src 'self'");
    expect(r?.page?.scriptBytes).toBeGreaterThan(5000);
    // The operator's answer, read by the query pod from its mounted ConfigMap: the pipeline's own.
    const condition = conditionOf(await getPipeline(k, ns, name), "DataConsistent");
    expect(r?.completeness).toMatchObject({ code: 200, source: "known", dataConsistent: condition?.status });
  });

  it("rotates the managed PostgreSQL passwords under load: the query API answers throughout, every event is stored once", async () => {
    const lp = await getPipeline(k, ns, name);
    const run = `rot${suite}`;
    const roles = ["owner", "writer", "reader"].map((r) => `${name}-postgres-${r}`);
    const secretOf = (n: string) =>
      k.get<{ data: Record<string, string>; metadata: { annotations?: Record<string, string> } }>(
        "v1",
        "Secret",
        ns,
        n,
      );
    const user = async (n: string) =>
      Buffer.from((await secretOf(n)).data.username ?? "", "base64").toString();
    const before = await Promise.all(roles.map(user));
    // The workloads log in as their own roles, never as the server's superuser.
    expect(before).toEqual(["lp_owner_a", "lp_writer_a", "lp_reader_a"]);
    const POLL_SECONDS = 150;
    await startClient(
      k,
      ns,
      "poll-rot",
      { MODE: "poll", QUERY_URL: queryUrl(lp), SECONDS: String(POLL_SECONDS) },
      `${name}-query-keys`,
    );
    await eventually(
      "the poller answered",
      () => (clientLines(ns, "poll-rot").some((l) => (l.progress ?? 0) > 0) ? true : undefined),
      120_000,
    );
    const pollStarted = Date.now();
    const count = Math.min(e2e.events, 20_000);
    // The Deployments' generations before: the rollout below must be a new one (the Secrets
    // change a moment before the Deployments do, and the old pods are all available then).
    const generationBefore = async (c: string) =>
      (await k.get<{ metadata: { generation: number } }>("apps/v1", "Deployment", ns, `${name}-${c}`))
        .metadata.generation;
    const generations: Record<string, number> = {
      consumer: await generationBefore("consumer"),
      query: await generationBefore("query"),
    };
    await startClient(k, ns, "load-rot", loadEnv(lp, run, count), `${name}-api-keys`);
    await k.mergePatch(LP_API, "LogPipeline", ns, name, {
      metadata: { annotations: { "logpipeline.io/rotate-postgres-credentials": run } },
    });
    await eventually(
      "each role Secret to name its other login",
      async () => {
        const s = await Promise.all(roles.map(secretOf));
        return s.every((x) => x.metadata.annotations?.["logpipeline.io/rotated-for"] === run)
          ? true
          : undefined;
      },
      120_000,
    );
    expect(await Promise.all(roles.map(user))).toEqual(["lp_owner_b", "lp_writer_b", "lp_reader_b"]);
    type Deploy = {
      metadata: { generation: number };
      spec: { replicas?: number };
      status?: {
        observedGeneration?: number;
        updatedReplicas?: number;
        availableReplicas?: number;
        replicas?: number;
      };
    };
    await eventually(
      "the consumer and the query API rolled onto the new logins",
      async () => {
        for (const c of ["consumer", "query"]) {
          const d = await k.get<Deploy>("apps/v1", "Deployment", ns, `${name}-${c}`);
          const st = d.status ?? {};
          const want = d.spec.replicas ?? 1;
          if (d.metadata.generation <= (generations[c] ?? 0)) return undefined;
          if ((st.observedGeneration ?? 0) < d.metadata.generation) return undefined;
          if (st.updatedReplicas !== want || st.availableReplicas !== want || st.replicas !== want)
            return undefined;
        }
        return true;
      },
      180_000,
    );
    // The poll window covered the rotation and the rollout.
    const rotatedIn = Date.now() - pollStarted;
    console.log(`rotation and rollout: ${Math.round(rotatedIn / 1000)} s`);
    expect(rotatedIn).toBeLessThan(POLL_SECONDS * 1000);
    const result = resultOf(await clientResult(k, ns, "load-rot", 600_000));
    expect(result.sent).toBe(count);
    await expectExactlyOnce(run, result);
    const polled = (await clientResult(k, ns, "poll-rot", (POLL_SECONDS + 60) * 1000)).find(
      (l) => l.polled,
    )?.polled;
    expect(polled?.ok).toBeGreaterThan(100);
    expect(polled?.failed).toEqual({});
    // Every session from a pod is one of the pipeline's logins: the superuser is the operator's alone.
    const users = psql(
      ns,
      pgPod,
      "SELECT DISTINCT usename FROM pg_stat_activity WHERE backend_type = 'client backend' AND client_addr IS NOT NULL AND application_name <> 'logpipeline-operator' ORDER BY 1",
    )
      .split("\n")
      .map((u) => u.trim())
      .filter(Boolean);
    expect(users.length).toBeGreaterThan(0);
    for (const u of users) expect(u).toMatch(/^lp_(owner|writer|reader)_[ab]$/);
  });

  it("an OpenTelemetry Collector sidecar ships a container's log file over OTLP: every line once, found by service.name (the divergence check below covers them)", async () => {
    const lp = await getPipeline(k, ns, name);
    const otlp = (lp.status as { endpoints: { otlp: string } }).endpoints.otlp;
    expect(otlp).toBe(`http://${name}-producer.${ns}.svc:80/v1/logs`);
    const run = `otel${suite}`;
    const service = `${run}-sidecar`;
    const lines = 2000;
    // The Collector takes the raw key: one of the pipeline's ingest keys, in a Secret of its own.
    const secret = await k.get<{ data: Record<string, string> }>("v1", "Secret", ns, `${name}-api-keys`);
    const keys = Buffer.from(secret.data["api-keys"] ?? "", "base64").toString("utf8");
    const key = keys.split("\n")[0]?.split(":").slice(1).join(":").trim() ?? "";
    expect(key.length).toBeGreaterThan(0);
    await k.apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "otel-sidecar-key", namespace: ns },
      stringData: { key },
    });
    // The settings docs/otlp.md recommends: offsets and queue on disk, lines handed to the
    // queue before their offset is saved, batches made after the queue, retries without end,
    // the line's own time parsed.
    const config = `
extensions:
  file_storage: { directory: /var/lib/otelcol, create_directory: true }
receivers:
  file_log:
    include: [/logs/app.log]
    start_at: beginning
    storage: file_storage
    resource: { service.name: ${service} }
    operators:
      - type: regex_parser
        regex: '^(?P<time>\\S+) (?P<sev>\\S+) seq=(?P<seq>\\d+) (?P<msg>.*)$'
        timestamp: { parse_from: attributes.time, layout_type: gotime, layout: '2006-01-02T15:04:05.999999999Z07:00' }
        severity: { parse_from: attributes.sev }
exporters:
  otlp_http:
    logs_endpoint: ${otlp}
    headers: { authorization: "Bearer \${env:LOGPIPELINE_KEY}" }
    compression: gzip
    retry_on_failure: { enabled: true, initial_interval: 200ms, max_interval: 5s, max_elapsed_time: 0s }
    sending_queue:
      enabled: true
      storage: file_storage
      queue_size: 1000
      batch: { sizer: items, min_size: 200, max_size: 500, flush_timeout: 200ms }
service:
  extensions: [file_storage]
  telemetry: { metrics: { level: none }, logs: { level: warn } }
  pipelines:
    logs: { receivers: [file_log], exporters: [otlp_http] }
`;
    await k.apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "otel-sidecar", namespace: ns },
      data: { "config.yaml": config },
    });
    // The application: writes its lines (one per millisecond of the last minutes) to a file
    // on the emptyDir it shares with the Collector, then idles.
    const app = `const fs=require("fs");const base=Date.now()-120000;let s="";
for(let i=0;i<${lines};i++)s+=new Date(base+i).toISOString()+(i%7?" INFO":" ERROR")+" seq="+i+" order "+i+" paid\\n";
fs.appendFileSync("/logs/app.log",s);setInterval(()=>{},1e9);`;
    const restricted = {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    };
    await k.create({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "otel-sidecar", namespace: ns, labels: { "app.kubernetes.io/name": "otel-sidecar" } },
      spec: {
        automountServiceAccountToken: false,
        securityContext: {
          runAsNonRoot: true,
          runAsUser: 10001,
          fsGroup: 10001,
          seccompProfile: { type: "RuntimeDefault" },
        },
        containers: [
          {
            name: "app",
            image: e2e.clientImage,
            imagePullPolicy: "IfNotPresent",
            args: ["-e", app],
            resources: { requests: { cpu: "20m", memory: "64Mi" }, limits: { memory: "256Mi" } },
            securityContext: restricted,
            volumeMounts: [{ name: "logs", mountPath: "/logs" }],
          },
          {
            name: "otelcol",
            image: e2e.collectorImage,
            imagePullPolicy: "IfNotPresent",
            args: ["--config", "/conf/config.yaml", "--feature-gates=stanza.synchronousLogEmitter"],
            env: [
              {
                name: "LOGPIPELINE_KEY",
                valueFrom: { secretKeyRef: { name: "otel-sidecar-key", key: "key" } },
              },
            ],
            resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "256Mi" } },
            securityContext: restricted,
            volumeMounts: [
              { name: "logs", mountPath: "/logs", readOnly: true },
              { name: "state", mountPath: "/var/lib/otelcol" },
              { name: "conf", mountPath: "/conf" },
            ],
          },
        ],
        volumes: [
          { name: "logs", emptyDir: {} },
          { name: "state", emptyDir: {} },
          { name: "conf", configMap: { name: "otel-sidecar" } },
        ],
      },
    });
    const stored = await eventually(
      `${lines} sidecar lines in PostgreSQL`,
      () => {
        const [n, seqs] = psql(
          ns,
          pgPod,
          `SELECT count(*), count(DISTINCT metadata->>'seq') FROM public.logs WHERE source = '${service}'`,
        ).split(" ");
        return Number(n) >= lines ? { rows: Number(n), seqs: Number(seqs) } : undefined;
      },
      240_000,
    );
    expect(stored).toEqual({ rows: lines, seqs: lines });
    // The query API finds them by service.name (the source).
    expect(await statsTotal(lp, run)).toBe(lines);
    await k.delete("v1", "Pod", ns, "otel-sidecar");
  });

  it("the divergence check: consistent after the run; rows deleted in PostgreSQL turn DataConsistent False (EventsMissing), restored they turn it True", async () => {
    let trigger = 0;
    // As a user would (docs/divergence.md): set the annotation, wait with kubectl for the
    // status to answer that very value.
    const checkNow = async () => {
      const value = `e2e-${suite}-${++trigger}`;
      kubectlOk(["annotate", "lp", name, "-n", ns, `logpipeline.io/check-now=${value}`, "--overwrite"]);
      kubectlOk([
        "wait",
        `lp/${name}`,
        "-n",
        ns,
        `--for=jsonpath={.status.divergence.trigger}=${value}`,
        "--timeout=90s",
      ]);
      const lp = await getPipeline(k, ns, name);
      return { d: divergenceOf(lp), lp };
    };
    const first = await checkNow();
    expect({ missing: first.d.missing, duplicated: first.d.duplicated, spurious: first.d.spurious }).toEqual({
      missing: 0,
      duplicated: 0,
      spurious: 0,
    });
    expect(first.d.partitions?.reduce((a, p) => a + p.kafkaRecords, 0)).toBeGreaterThan(0);
    expect(conditionOf(first.lp, "DataConsistent")).toMatchObject({ status: "True", reason: "Consistent" });
    // Three rows go (kept aside to be put back), as a faulty job or a person might do.
    psql(
      ns,
      pgPod,
      `CREATE TABLE public.e2e_victims AS SELECT * FROM public.logs ORDER BY stored_at DESC LIMIT 3;
       DELETE FROM public.logs WHERE event_id IN (SELECT event_id FROM public.e2e_victims);`,
    );
    const victims = psql(ns, pgPod, "SELECT event_id FROM public.e2e_victims ORDER BY 1").split("\n");
    const broken = await checkNow();
    expect(broken.d.missing).toBe(3);
    expect([...(broken.d.samples?.missing ?? [])].sort()).toEqual(victims);
    expect(conditionOf(broken.lp, "DataConsistent")).toMatchObject({
      status: "False",
      reason: "EventsMissing",
    });
    expect(broken.lp.status?.phase).toBe("Degraded");
    expect(kubectlOk(["get", "lp", name, "-n", ns, "-o", "wide"])).toMatch(/3 missing/);
    psql(
      ns,
      pgPod,
      "INSERT INTO public.logs SELECT * FROM public.e2e_victims; DROP TABLE public.e2e_victims;",
    );
    const repaired = await checkNow();
    expect(repaired.d.missing).toBe(0);
    expect(conditionOf(repaired.lp, "DataConsistent")).toMatchObject({ status: "True" });
    const reasons = ((await k.list("v1", "Event", ns)).items as { reason?: string }[]).map((e) => e.reason);
    expect(reasons).toContain("DataConsistentEventsMissing");
  });

  it("scales the producer out under a load burst (metrics-server CPU) and back in", async () => {
    const lp = await getPipeline(k, ns, name);
    await startClient(
      k,
      ns,
      "burst",
      loadEnv(lp, `burst${suite}`, 300_000, { CONCURRENCY: "8", BATCH: "200", DEADLINE_S: "300" }),
      `${name}-api-keys`,
    );
    const out = await eventually(
      "the producer HPA to want more than one replica",
      async () => {
        const h = await k.get<Hpa>("autoscaling/v2", "HorizontalPodAutoscaler", ns, `${name}-producer`);
        const want = h.status?.desiredReplicas ?? 0;
        return want > 1 ? want : undefined;
      },
      240_000,
    );
    expect(out).toBeGreaterThan(1);
    await eventually(
      "the producer Deployment to scale out",
      async () => {
        const d = await k.get<Deploy>("apps/v1", "Deployment", ns, `${name}-producer`);
        return (d.spec.replicas ?? 0) > 1 ? true : undefined;
      },
      60_000,
    );
    kubectlOk(["delete", "pod", "-n", ns, "burst", "--grace-period=1"]);
    await eventually(
      "the producer Deployment to scale back in to 1",
      async () => {
        const d = await k.get<Deploy>("apps/v1", "Deployment", ns, `${name}-producer`);
        return d.spec.replicas === 1 ? true : undefined;
      },
      300_000,
    );
  });

  it("grows partitions 6 → 12 and consumer max replicas; the new partitions are consumed with no loss", async () => {
    applyPipeline(pipeline("Retain", 12, 4));
    await eventually(
      "the KafkaTopic to have 12 partitions, Ready",
      async () => {
        const t = await k.get<KafkaTopic>(STRIMZI_API_VERSION, "KafkaTopic", e2e.kafkaNamespace, topic);
        return t.spec.partitions === 12 &&
          t.status?.conditions?.find((c) => c.type === "Ready")?.status === "True"
          ? t
          : undefined;
      },
      120_000,
    );
    // The operator applies the HPA in the same pass as the topic, but Strimzi may be quicker.
    const max = await eventually(
      "the consumer HPA's maxReplicas 4",
      async () => {
        const h = await k.get<Hpa>("autoscaling/v2", "HorizontalPodAutoscaler", ns, `${name}-consumer`);
        return h.spec.maxReplicas === 4 ? h.spec.maxReplicas : undefined;
      },
      60_000,
    );
    expect(max).toBe(4);
    const lp = await waitReady(180_000);
    await eventually(
      "status.delivery to list 12 partitions",
      async () => {
        const p = await getPipeline(k, ns, name);
        const d = (p.status as { delivery?: { partitions?: unknown[] } }).delivery;
        return d?.partitions?.length === 12 ? true : undefined;
      },
      120_000,
    );
    // The producer's partitioner and the consumer re-read the topic's metadata every 30 s.
    await new Promise((r) => setTimeout(r, 35_000));
    const count = Math.max(1000, Math.floor(e2e.events / 2));
    const r2 = `r2${suite}`;
    const lines = await runClient(k, ns, "load-r2", loadEnv(lp, r2, count), `${name}-api-keys`, 600_000);
    const rows = await expectExactlyOnce(r2, resultOf(lines));
    // 32 sources hashed over 12 partitions (2 reserved for ERROR/FATAL) reach beyond the first 6.
    const high = Number(
      psql(
        ns,
        pgPod,
        `SELECT count(*) FROM public.logs WHERE source LIKE '${r2}-%' AND kafka_partition >= 6`,
      ),
    );
    expect(high).toBeGreaterThan(0);
    expect(rows.partitions).toBeGreaterThan(6);
    expect(rowsOf(`r1${suite}`).count).toBe(e2e.events);
  });

  it("deleting the LogPipeline with Retain keeps the topics and the database", async () => {
    kubectlOk(["delete", "lp", name, "-n", ns, "--wait=false"]);
    await waitGone(k, LP_API, "LogPipeline", ns, name, 180_000);
    await waitGone(k, "v1", "Pod", ns, pgPod, 120_000);
    expect(await topics()).toContain(topic);
    const pvc = kubectl(["get", "pvc", "-n", ns, `data-${name}-postgres-0`]);
    expect(pvc.code, pvc.stderr).toBe(0);
    // The same pipeline again finds its data where it left it.
    applyPipeline(pipeline("Delete", 12, 4));
    await waitReady(420_000);
    expect(rowsOf(`r1${suite}`).count).toBe(e2e.events);
  });

  it("deleting the LogPipeline with Delete removes the topics and the database", async () => {
    kubectlOk(["delete", "lp", name, "-n", ns, "--wait=false"]);
    await waitGone(k, LP_API, "LogPipeline", ns, name, 240_000);
    await eventually(
      "the PVC to be gone",
      () => (kubectl(["get", "pvc", "-n", ns, `data-${name}-postgres-0`]).code !== 0 ? true : undefined),
      120_000,
    );
    await eventually(
      "the topics to be gone from Kafka",
      async () => {
        const t = await topics();
        return t.some((x) => x.startsWith(`${ns}.${name}.`)) ? undefined : t;
      },
      120_000,
    );
  });

  it("helm uninstall leaves no operator object behind (the CRD stays, by policy)", async () => {
    const r = helm("uninstall", release, "-n", opNs, "--wait", "--timeout", "3m");
    expect(r.code, r.stderr).toBe(0);
    const selector = `app.kubernetes.io/instance=${release}`;
    for (const kind of [
      "deployment",
      "service",
      "serviceaccount",
      "role",
      "rolebinding",
      "configmap",
      "secret",
    ]) {
      expect(kubectlOk(["get", kind, "-n", opNs, "-l", selector, "-o", "name"]).trim(), kind).toBe("");
    }
    for (const kind of ["clusterrole", "clusterrolebinding"]) {
      expect(kubectlOk(["get", kind, "-l", selector, "-o", "name"]).trim(), kind).toBe("");
    }
    expect(kubectl(["get", "crd", "logpipelines.logpipeline.io"]).code).toBe(0);
    await eventually(
      "the operator pods to be gone",
      () => (kubectlOk(["get", "pods", "-n", opNs, "-o", "name"]).trim() === "" ? true : undefined),
      120_000,
    );
  });
});
