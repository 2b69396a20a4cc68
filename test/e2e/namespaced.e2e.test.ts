import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeClient } from "../../operator/src/kube/client.js";
import { eventually, uniqueSuffix } from "../support/kube.js";
import { conditionOf, getPipeline, LP_API, type LogPipelineObject, waitGone } from "../support/operator.js";
import { clientResult, e2e, helm, kube, kubectl, kubectlOk, runClient, startClient } from "./cluster.js";

/**
 * The namespaced install on a real node (issue: an operator safe to share): `helm install
 * --set installMode=namespaced` with one watched namespace; a pipeline there runs (Ready,
 * events in and counted out), one in another namespace is ignored with a log line and never
 * touched. The e2e files run one at a time, each uninstalling its release when it ends: a
 * cluster-mode operator of pipeline.e2e.test.ts never runs beside this one.
 */
const release = "lp-namespaced";
const opNs = "lp-namespaced-system";
const watched = "lp-e2e-watched";
const other = "lp-e2e-other";
const name = "ns";
const suite = uniqueSuffix();
let k: KubeClient;

const pipeline = (namespace: string, pipelineName: string) => ({
  apiVersion: LP_API,
  kind: "LogPipeline",
  metadata: { name: pipelineName, namespace },
  spec: {
    kafka: {
      mode: "strimzi",
      clusterRef: { name: e2e.kafkaCluster, namespace: e2e.kafkaNamespace },
      topic: { partitions: 2, replicationFactor: 1 },
    },
    producer: { replicas: { min: 1, max: 1 }, resources: { requests: { cpu: "50m", memory: "192Mi" } } },
    consumer: { replicas: { min: 1, max: 1 }, resources: { requests: { cpu: "50m", memory: "192Mi" } } },
    query: { cacheTtlSeconds: 0 },
    network: { egress: e2e.networkEgress },
    deletionPolicy: { topics: "Delete", postgres: "Delete", drainTimeoutSeconds: 30 },
  },
});

const cleanUp = async () => {
  helm("uninstall", release, "-n", opNs, "--ignore-not-found", "--wait");
  for (const n of [watched, other]) {
    for (const p of [name, "theirs"])
      kubectl(["patch", "lp", p, "-n", n, "--type=merge", "-p", '{"metadata":{"finalizers":null}}']);
    kubectl(["delete", "ns", n, "--ignore-not-found", "--wait=false"]);
  }
  kubectl(["delete", "ns", opNs, "--ignore-not-found", "--wait=false"]);
  kubectl([
    "delete",
    "kafkatopic",
    "-n",
    e2e.kafkaNamespace,
    `${watched}.${name}.logs`,
    `${watched}.${name}.dlq`,
    "--ignore-not-found",
  ]);
  for (const n of [watched, other, opNs])
    await eventually(
      `namespace ${n} gone`,
      async () => ((await k.getOrUndefined("v1", "Namespace", undefined, n)) ? undefined : true),
      180_000,
    );
};

beforeAll(async () => {
  k = await kube();
  await cleanUp(); // what an interrupted earlier run left
}, 400_000);

afterAll(async () => {
  await cleanUp();
  await k.close();
}, 400_000);

describe("e2e: the namespaced install (installMode=namespaced)", () => {
  it("installs with Roles in the watched namespace only", () => {
    for (const n of [watched, other]) kubectlOk(["create", "namespace", n]);
    const values = e2e.values ? ["-f", e2e.values] : [];
    const r = helm(
      "install",
      release,
      e2e.chart,
      "-n",
      opNs,
      "--create-namespace",
      ...values,
      "--set",
      "installMode=namespaced",
      "--set",
      `watchNamespaces[0]=${watched}`,
      "--set",
      `policy.strimziNamespaces[0]=${e2e.kafkaNamespace}`,
      "--set",
      "replicas=1",
      "--wait",
      "--timeout",
      "5m",
    );
    expect(r.code, r.stderr).toBe(0);
    const bindings = kubectlOk([
      "get",
      "rolebindings",
      "-A",
      "-l",
      `app.kubernetes.io/instance=${release}`,
      "-o",
      "name",
    ]);
    expect(kubectlOk(["get", "rolebinding", "-n", other, "-o", "name"])).not.toContain(release);
    expect(bindings).toContain(release);
    const cluster = kubectlOk([
      "get",
      "clusterrole",
      `${release}-logpipeline-operator`,
      "-o",
      "jsonpath={.rules}",
    ]);
    expect(JSON.parse(cluster)).toEqual([
      { apiGroups: ["apiextensions.k8s.io"], resources: ["customresourcedefinitions"], verbs: ["get"] },
      { apiGroups: ["logpipeline.io"], resources: ["logpipelines"], verbs: ["list", "watch", "patch"] },
    ]);
  });

  it("runs a pipeline in the watched namespace: Ready, and events in and out", async () => {
    // The other namespace's first: by the time the watched one is Ready, it has been seen.
    kubectlOk(["apply", "--server-side", "-f", "-"], JSON.stringify(pipeline(other, "theirs")));
    kubectlOk(["apply", "--server-side", "-f", "-"], JSON.stringify(pipeline(watched, name)));
    const lp = await eventually(
      "the watched namespace's LogPipeline to be Ready",
      async () => {
        const p = await getPipeline(k, watched, name);
        return conditionOf(p, "Ready")?.status === "True" ? p : undefined;
      },
      420_000,
    );
    const run = `ns${suite}`;
    const count = 500;
    const ingest = (lp.status as { endpoints: { ingest: string } }).endpoints.ingest;
    await startClient(
      k,
      watched,
      "load-ns",
      {
        MODE: "load",
        INGEST_URL: ingest,
        RUN: run,
        COUNT: String(count),
        BATCH: "50",
        CONCURRENCY: "2",
        SOURCES: "4",
        DEADLINE_S: "300",
      },
      `${name}-api-keys`,
    );
    const lines = await clientResult(k, watched, "load-ns", 360_000);
    expect(lines.find((l) => l.result)?.result?.sent).toBe(count);
    await eventually(
      "every event counted by the query API",
      async () => {
        const out = await runClient(
          k,
          watched,
          `stats-${Date.now() % 100000}`,
          { MODE: "stats", QUERY_URL: (lp.status as { endpoints: { query: string } }).endpoints.query },
          `${name}-query-keys`, // the query API takes query keys only
        );
        const total = (out.find((l) => l.stats)?.stats?.bySource ?? [])
          .filter((b) => b.source.startsWith(`${run}-`))
          .reduce((a, b) => a + b.count, 0);
        return total === count ? total : undefined;
      },
      180_000,
    );
  });

  it("ignores a pipeline outside the watched namespace, with a log line", async () => {
    const logs = await eventually(
      "the operator's log line for the ignored pipeline",
      () => {
        const out = kubectl(["logs", "-n", opNs, `deploy/${release}-logpipeline-operator`]).stdout;
        return out.includes("LogPipeline ignored") && out.includes(`${other}/theirs`) ? out : undefined;
      },
      60_000,
    );
    expect(logs).toMatch(/LogPipeline ignored: its namespace is not one this operator watches/);
    const theirs: LogPipelineObject = await getPipeline(k, other, "theirs");
    expect(theirs.status).toBeUndefined();
    expect(theirs.metadata?.finalizers ?? []).toEqual([]);
    expect(kubectlOk(["get", "deploy,sts,svc,secret", "-n", other, "-o", "name"]).trim()).toBe("");
  });

  it("deletes the pipeline through its Role, carrying out deletionPolicy", async () => {
    await k.delete(LP_API, "LogPipeline", watched, name);
    await waitGone(k, LP_API, "LogPipeline", watched, name, 180_000);
    const left = kubectl([
      "get",
      "kafkatopic",
      "-n",
      e2e.kafkaNamespace,
      `${watched}.${name}.logs`,
      "-o",
      "name",
    ]);
    expect(left.stdout.trim()).toBe("");
  });
});
