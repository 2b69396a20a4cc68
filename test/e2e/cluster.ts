import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { KubeClient } from "../../operator/src/kube/client.js";
import { eventually } from "../support/kube.js";
import { kubectl as kubectlOn } from "../support/operator.js";
import { repoRoot } from "../support/stack.js";

/**
 * What the e2e suite knows of its cluster: a kubeconfig and a few names, all from the
 * environment, so the same suite runs on the local node (hack/e2e.sh) and on kind
 * (hack/kind/e2e.sh).
 */
export const e2e = {
  kubeconfig: required("LP_E2E_KUBECONFIG"),
  values: process.env.LP_E2E_VALUES ?? "",
  kafkaCluster: process.env.LP_E2E_KAFKA_CLUSTER ?? "local",
  kafkaNamespace: process.env.LP_E2E_KAFKA_NAMESPACE ?? "kafka",
  /**
   * `spec.network.egress` of the suite's pipelines: where the brokers are when they are not
   * the Strimzi cluster's pods (the local stack's Kafka is a host process on its bridge).
   */
  networkEgress: JSON.parse(process.env.LP_E2E_NETWORK_EGRESS || "[]") as object[],
  events: Number(process.env.LP_E2E_EVENTS ?? 10_000),
  clientImage: process.env.LP_E2E_CLIENT_IMAGE ?? "logpipeline/producer:0.1.0",
  /** The OpenTelemetry Collector's image (lp-otelcol, hack/otelcol) for the OTLP sidecar. */
  collectorImage: required("LP_E2E_COLLECTOR_IMAGE"),
  chart: path.join(repoRoot, "charts/logpipeline-operator"),
};

function required(name: string): string {
  const v = process.env[name];
  if (!v)
    throw new Error(`${name} is not set: run the e2e suite through make test-e2e (or hack/kind/e2e.sh)`);
  return v;
}

export const kube = () => KubeClient.fromEnvironment(e2e.kubeconfig);

export function kubectl(args: string[], input?: string) {
  return kubectlOn({ kubeconfig: e2e.kubeconfig }, args, input);
}

/** kubectl that must succeed; returns stdout. */
export function kubectlOk(args: string[], input?: string): string {
  const r = kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

export function helm(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync("helm", [...args, "--kubeconfig", e2e.kubeconfig], {
    encoding: "utf8",
    timeout: 600_000,
  });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

export const loadgenScript = () => readFileSync(path.join(repoRoot, "test/e2e/loadgen.mjs"), "utf8");

/** One JSON object per line of a client pod's log. */
export type ClientLine = {
  progress?: number;
  retries?: number;
  result?: {
    sent: number;
    retries: number;
    duplicates: number;
    digest: string;
    seconds: number;
    failedAttempts: Record<string, number>;
  };
  stats?: { total: number; bySource: { source: string; count: number }[] };
  status?: number;
  topics?: string[];
  polled?: { ok: number; failed: Record<string, number> };
  /** MODE=connect: per host:port, "open" or why not ("timeout", "ECONNREFUSED"). */
  connect?: Record<string, string>;
  /** MODE=explorer: the page as the query API serves it, and its last /api/status answer. */
  page?: {
    status: number;
    csp: string | null;
    loadsScript: boolean;
    scriptStatus: number;
    scriptBytes: number;
  };
  completeness?: { code: number; source?: string; dataConsistent?: string; reason?: string };
  error?: string;
};

/**
 * The suite's client as a pod in `ns` (traffic stays in the cluster), on the producer's
 * image, with the pipeline's API key from its Secret. Restricted like every pod we make.
 */
export async function startClient(
  k: KubeClient,
  ns: string,
  name: string,
  env: Record<string, string>,
  apiKeysSecret?: string,
): Promise<void> {
  await k.apply({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "e2e-client", namespace: ns },
    data: { "loadgen.mjs": loadgenScript() },
  });
  await k.create({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: ns, labels: { "app.kubernetes.io/name": "e2e-client" } },
    spec: {
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } },
      containers: [
        {
          name: "client",
          image: e2e.clientImage,
          imagePullPolicy: "IfNotPresent",
          args: ["/scripts/loadgen.mjs"],
          env: [
            ...Object.entries(env).map(([n, value]) => ({ name: n, value })),
            ...(apiKeysSecret
              ? [{ name: "API_KEYS", valueFrom: { secretKeyRef: { name: apiKeysSecret, key: "api-keys" } } }]
              : []),
          ],
          resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "512Mi" } },
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ["ALL"] },
          },
          volumeMounts: [{ name: "scripts", mountPath: "/scripts" }],
        },
      ],
      volumes: [{ name: "scripts", configMap: { name: "e2e-client" } }],
    },
  });
}

export function clientLines(ns: string, name: string): ClientLine[] {
  const r = kubectl(["logs", "-n", ns, name]);
  if (r.code !== 0) return [];
  return r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as ClientLine);
}

type PodPhase = {
  status?: {
    phase?: string;
    containerStatuses?: {
      state?: { terminated?: { reason?: string; exitCode?: number; message?: string } };
    }[];
  };
};

/** Waits for the client pod to finish; returns its lines (throws on failure, with them). */
export async function clientResult(k: KubeClient, ns: string, name: string, timeoutMs: number) {
  const pod = await eventually(
    `client pod ${name} to finish`,
    async () => {
      const p = await k.get<PodPhase>("v1", "Pod", ns, name);
      return p.status?.phase === "Succeeded" || p.status?.phase === "Failed" ? p : undefined;
    },
    timeoutMs,
  );
  const lines = clientLines(ns, name);
  if (pod.status?.phase !== "Succeeded") {
    // Why it ended (OOMKilled, an exit code) and what it wrote that was not a JSON line (a crash).
    const ended = pod.status?.containerStatuses?.[0]?.state?.terminated;
    const log = kubectl(["logs", "-n", ns, name]);
    const other = log.stdout
      .split("\n")
      .filter((l) => l.trim() && !l.startsWith("{"))
      .slice(-8);
    throw new Error(
      `client pod ${name} failed (${JSON.stringify(ended)}): ${lines.find((l) => l.error)?.error ?? "no error line"}; last lines ${JSON.stringify(lines.slice(-3))} ${other.join(" | ")}`,
    );
  }
  await k.delete("v1", "Pod", ns, name);
  return lines;
}

/** Runs the client to completion. */
export async function runClient(
  k: KubeClient,
  ns: string,
  name: string,
  env: Record<string, string>,
  apiKeysSecret?: string,
  timeoutMs = 180_000,
): Promise<ClientLine[]> {
  await startClient(k, ns, name, env, apiKeysSecret);
  return clientResult(k, ns, name, timeoutMs);
}

/** psql in the managed PostgreSQL pod (local connections, as in the official image). */
export function psql(ns: string, pod: string, sql: string): string {
  return kubectlOk([
    "exec",
    "-n",
    ns,
    pod,
    "-c",
    "postgres",
    "--",
    "psql",
    "-h",
    "/var/run/postgresql",
    "-U",
    "logpipeline",
    "-d",
    "logpipeline",
    "-tA",
    "-F",
    " ",
    "-c",
    sql,
  ]).trim();
}
