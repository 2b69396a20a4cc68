import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { type Logger, pino } from "pino";
import { parse } from "yaml";
import { startManager, type Manager, type ManagerConfig } from "../../operator/src/controller/manager.js";
import { afterAll, beforeAll, inject } from "vitest";
import { KubeClient, type KubeObjectLike } from "../../operator/src/kube/client.js";
import { DEFAULT_POLICY } from "../../operator/src/controller/policy.js";
import { type Admin, kafkaClient } from "./kafka.js";
import { eventually } from "./kube.js";
import { repoRoot, type StackInfo } from "./stack.js";

export const LP_API = "logpipeline.io/v1alpha1";

/** The operator's manager, in this test process, watching only the test's namespaces. */
export async function startTestOperator(
  stack: StackInfo,
  namespaces: string[],
  overrides: Partial<ManagerConfig> = {},
  log: Logger = pino({ level: process.env.LP_OPERATOR_LOG ?? "silent" }),
): Promise<Manager> {
  return startManager(
    {
      kubeconfig: stack.kubeconfig,
      watchNamespaces: namespaces,
      concurrency: 2,
      resyncMs: 3_000,
      progressingRequeueMs: 1_000,
      deliveryIntervalMs: 1_000,
      capacity: { windowMs: 3_600_000, assumedPerReplica: 5000 },
      probeConcurrency: 4,
      probeTimeoutMs: 30_000,
      secretRefreshMs: 120_000,
      capabilityRefreshMs: 60_000,
      operatorNamespace: "logpipeline-system",
      images: {
        producer: "logpipeline/producer:test",
        consumer: "logpipeline/consumer:test",
        query: "logpipeline/query:test",
        postgres: "postgres:17-bookworm",
        redis: "redis:7.4-bookworm",
      },
      imagePullPolicy: "IfNotPresent",
      leaderElection: { enabled: false, namespace: "default", name: "unused" },
      // The product's default policy, with the stack's Strimzi namespace allowed.
      policy: { ...DEFAULT_POLICY, strimziNamespaces: [stack.strimzi.namespace] },
      ...overrides,
    },
    log,
  );
}

/** A sample from config/samples as an object, placed in `namespace`, with `spec` merged over. */
export function sampleObject(
  file: string,
  namespace: string,
  name: string,
  spec: (s: Record<string, unknown>) => Record<string, unknown> = (s) => s,
): KubeObjectLike & { spec: Record<string, unknown> } {
  const raw = parse(readFileSync(path.join(repoRoot, "config/samples", file), "utf8")) as {
    spec: Record<string, unknown>;
  };
  return {
    apiVersion: LP_API,
    kind: "LogPipeline",
    metadata: { name, namespace, labels: { "logpipeline.io/pipeline-secret": "true" } },
    spec: spec(structuredClone(raw.spec)),
  };
}

export interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
}
export interface LogPipelineObject extends KubeObjectLike {
  status?: { phase?: string; message?: string; conditions?: Condition[]; observedGeneration?: number };
}

export const getPipeline = (kube: KubeClient, ns: string, name: string) =>
  kube.get<LogPipelineObject>(LP_API, "LogPipeline", ns, name);

export const conditionOf = (lp: LogPipelineObject, type: string) =>
  lp.status?.conditions?.find((c) => c.type === type);

/** Waits until the pipeline's condition `type` has `status` (and `reason`, when given). */
export interface Divergence {
  checkedAt?: string;
  trigger?: string;
  summary?: string;
  missing?: number;
  duplicated?: number;
  spurious?: number;
  lag?: number;
  message?: string;
  samples?: { missing?: string[]; duplicated?: string[]; spurious?: string[] };
  partitions?: {
    partition: number;
    kafkaRecords: number;
    stuck: boolean;
    storedNextOffset?: number;
    groupCommittedOffset?: number;
  }[];
}

let checkRequests = 0;

/**
 * Asks for a divergence check now (the annotation) and waits for its result: the one whose
 * `trigger` is the value set (a periodic check already running when the annotation changed
 * answers with the value before, so its figures are never taken for the requested check's).
 */
export async function requestCheck(kube: KubeClient, ns: string, name: string): Promise<Divergence> {
  const trigger = `${String(Date.now())}-${String(++checkRequests)}`;
  await kube.mergePatch(LP_API, "LogPipeline", ns, name, {
    metadata: { annotations: { "logpipeline.io/check-now": trigger } },
  });
  return eventually(
    `the divergence check asked for (${trigger})`,
    async () => {
      const lp = await getPipeline(kube, ns, name);
      const d = (lp.status as { divergence?: Divergence } | undefined)?.divergence;
      if (d?.trigger === trigger) return d;
      // Not answered yet: what the status says instead ends up in the timeout's message (a
      // check that could not run says so in DataConsistent, and answers no trigger).
      const c = conditionOf(lp, "DataConsistent");
      throw new Error(
        `last answered ${d?.trigger ?? "none"}; DataConsistent ${c?.status ?? "absent"} ${c?.reason ?? ""}: ${c?.message ?? ""}`,
      );
    },
    30_000,
  );
}

/**
 * Creates a LogPipeline and brings it up on the stack without a node: its topics made and its
 * workloads' pods marked Ready through their status (nothing runs them here).
 */
export async function createPipelineUp(
  kube: KubeClient,
  ns: string,
  name: string,
  spec: object,
): Promise<void> {
  await kube.create({ apiVersion: LP_API, kind: "LogPipeline", metadata: { name, namespace: ns }, spec });
  await waitForCondition(kube, ns, name, "TopicsReady", "True");
  await eventually(
    "pods to mark Ready",
    async () => ((await markPodsReady(kube, ns)) >= 2 ? true : undefined),
    60_000,
  );
}

export function waitForCondition(
  kube: KubeClient,
  ns: string,
  name: string,
  type: string,
  status: string,
  reason?: string,
  timeoutMs = 45_000,
): Promise<LogPipelineObject> {
  return eventually(
    `${ns}/${name} ${type}=${status}${reason ? ` (${reason})` : ""}`,
    async () => {
      const lp = await getPipeline(kube, ns, name);
      const c = conditionOf(lp, type);
      return c?.status === status && (!reason || c.reason === reason) ? lp : undefined;
    },
    timeoutMs,
  );
}

/**
 * Without a node no pod runs, so tests make the pods Ready by writing their status, from
 * which the controller manager derives ReplicaSet, Deployment and StatefulSet availability.
 * (The full-node issue proves the same with real pods.)
 */
export async function markPodsReady(kube: KubeClient, ns: string): Promise<number> {
  const pods = await kube.list<{ metadata: { name: string }; status?: { conditions?: Condition[] } }>(
    "v1",
    "Pod",
    ns,
  );
  let n = 0;
  for (const pod of pods.items) {
    if (pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) continue;
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    const cond = (type: string) => ({ type, status: "True", lastTransitionTime: now });
    await kube.request("PATCH", `/api/v1/namespaces/${ns}/pods/${pod.metadata.name}/status`, {
      body: {
        status: {
          phase: "Running",
          conditions: ["PodScheduled", "Initialized", "ContainersReady", "Ready"].map(cond),
        },
      },
      contentType: "application/merge-patch+json",
    });
    n++;
  }
  return n;
}

/** `kubectl` against the stack, as a user would type it. */
export function kubectl(
  stack: Pick<StackInfo, "kubeconfig">,
  args: string[],
  input?: string,
): { code: number; stdout: string; stderr: string } {
  const r = spawnSync("kubectl", ["--kubeconfig", stack.kubeconfig, ...args], {
    encoding: "utf8",
    input,
    timeout: 60_000,
  });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** resourceVersions of every object labelled with the pipeline's uid, by kind/name. */
export async function childVersions(
  kube: KubeClient,
  kinds: [string, string][],
  uid: string,
  namespaces: string[],
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const ns of namespaces)
    for (const [apiVersion, kind] of kinds) {
      const list = await kube.list(apiVersion, kind, ns, {
        labelSelector: `logpipeline.io/pipeline-uid=${uid}`,
      });
      for (const o of list.items)
        out.set(`${kind}/${ns}/${o.metadata?.name ?? ""}`, o.metadata?.resourceVersion ?? "");
    }
  return out;
}

export async function waitGone(
  kube: KubeClient,
  apiVersion: string,
  kind: string,
  ns: string | undefined,
  name: string,
  timeoutMs = 60_000,
) {
  await eventually(
    `${kind} ${ns ?? ""}/${name} to be gone`,
    async () => ((await kube.getOrUndefined(apiVersion, kind, ns, name)) ? undefined : true),
    timeoutMs,
  );
}

/** Creates a test namespace (labelled as the tests' own). */
export async function createNamespace(kube: KubeClient, ns: string): Promise<void> {
  await kube.create({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: ns, labels: { "logpipeline.io/test": "true" } },
  });
}

/**
 * Deletes a test namespace and waits until it is gone — while the operator still runs, so
 * the pipelines' finalizers are carried out (a namespace deleted after the operator stopped
 * would wait for ever, as it would in a cluster whose operator was removed first).
 */
export async function removeNamespace(kube: KubeClient, ns: string, timeoutMs = 90_000): Promise<void> {
  await kube.delete("v1", "Namespace", undefined, ns);
  await waitGone(kube, "v1", "Namespace", undefined, ns, timeoutMs);
}

/**
 * The spec of a pipeline on the stack's Kafka (external mode, 3 partitions, no DLQ) writing
 * to the stack's PostgreSQL in `schema` with the credentials Secret `credentialsSecret`: the
 * shape the tests that read the ledger (delivery, divergence) share.
 */
export function ledgerPipelineSpec(stack: StackInfo, schema: string, credentialsSecret: string) {
  const pgUrl = new URL(stack.postgresUrl);
  return {
    kafka: {
      mode: "external",
      bootstrapServers: stack.kafkaBootstrap,
      topic: { partitions: 3 },
      deadLetter: { enabled: false },
    },
    postgres: {
      mode: "external",
      schema,
      external: {
        host: pgUrl.hostname,
        port: Number(pgUrl.port),
        database: pgUrl.pathname.slice(1),
        credentialsSecret,
        sslMode: "disable",
      },
    },
    redis: { mode: "disabled" },
    consumer: { replicas: { min: 1, max: 3 } },
  };
}

/** A Secret with the stack's PostgreSQL user and its password (or the one given). */
export async function createPostgresSecret(
  kube: KubeClient,
  stack: StackInfo,
  namespace: string,
  name: string,
  password?: string,
): Promise<void> {
  const pgUrl = new URL(stack.postgresUrl);
  await kube.create({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace, labels: { "logpipeline.io/pipeline-secret": "true" } },
    stringData: {
      username: decodeURIComponent(pgUrl.username),
      password: password ?? decodeURIComponent(pgUrl.password),
    },
  });
}

export interface OperatorTestBed {
  kube: KubeClient;
  op: Manager;
  admin: Admin;
}

/**
 * The set-up the operator's integration tests share, as vitest hooks: a client of the
 * stack's API server, the test's namespaces, an operator watching only them and a Kafka
 * admin client; `topics` are deleted from Kafka afterwards (whatever the test left).
 * The fields are set once the file's beforeAll has run.
 */
export function operatorTestBed(opts: {
  namespaces: string[];
  clientId: string;
  topics?: () => string[];
  /** Settings of the operator other than the tests' defaults. */
  config?: Partial<ManagerConfig>;
  setUp?: (bed: OperatorTestBed) => Promise<void>;
  tearDown?: (bed: OperatorTestBed) => Promise<void>;
}): OperatorTestBed {
  const stack = inject("stack");
  const bed = {} as OperatorTestBed;
  beforeAll(async () => {
    bed.kube = await KubeClient.fromEnvironment(stack.kubeconfig);
    for (const n of opts.namespaces) await createNamespace(bed.kube, n);
    await opts.setUp?.(bed);
    bed.op = await startTestOperator(stack, opts.namespaces, opts.config);
    bed.admin = kafkaClient(stack.kafkaBootstrap, opts.clientId).admin();
    await bed.admin.connect();
  });
  afterAll(async () => {
    await opts.tearDown?.(bed);
    for (const n of opts.namespaces)
      if (await bed.kube.getOrUndefined("v1", "Namespace", undefined, n)) await removeNamespace(bed.kube, n);
    await bed.op.stop();
    const topics = opts.topics?.() ?? [];
    if (topics.length > 0) await bed.admin.deleteTopics({ topics }).catch(() => undefined);
    await bed.admin.disconnect();
    await bed.kube.close();
  }, 200_000);
  return bed;
}
