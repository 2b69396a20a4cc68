/**
 * Many pipelines at once, for `make bench-operator` and the operator's faults-at-scale test:
 * their spec, the operator as a process of its own, and what "converged" means without a node.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { appendFileSync, openSync, readFileSync } from "node:fs";
import path from "node:path";
import type { KubeClient, KubeObjectLike } from "../../operator/src/kube/client.js";
import { repoRoot } from "./stack.js";
import { PARENT_GUARD, parentGuardEnv } from "./workload-process.js";

export const LP_API = "logpipeline.io/v1alpha1";
/** A closed local port: connections are refused at once, so Kafka reads fail fast. */
export const CLOSED_PORT = "127.0.0.1:1";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The spec every fleet pipeline has: kafka.mode strimzi with its KafkaTopics in `kafkaNs`
 * (no topic operator watches it, so they never become Ready), brokers at a closed port,
 * managed PostgreSQL and Redis, data retained on deletion.
 */
export const fleetSpec = (kafkaNs: string) => ({
  kafka: {
    mode: "strimzi",
    clusterRef: { name: "bench", namespace: kafkaNs },
    bootstrapServers: CLOSED_PORT,
    topic: { partitions: 6, replicationFactor: 1 },
  },
  deletionPolicy: { topics: "Retain", postgres: "Retain" },
});
export const fleetName = (i: number) => `p${String(i).padStart(4, "0")}`;

/** Runs `work` over `items` with `n` workers, each taking the next item. */
export async function pool<T>(items: T[], n: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

/** Creates pipelines 0…n-1 in `ns`, eight at a time. */
export async function createFleet(kube: KubeClient, ns: string, n: number, kafkaNs: string): Promise<void> {
  await pool(
    Array.from({ length: n }, (_, i) => i),
    8,
    async (i) => {
      await kube.create({
        apiVersion: LP_API,
        kind: "LogPipeline",
        metadata: { name: fleetName(i), namespace: ns },
        spec: fleetSpec(kafkaNs),
      });
    },
  );
}

interface PipelineStatus extends KubeObjectLike {
  metadata: { name: string; generation?: number };
  status?: {
    observedGeneration?: number;
    phase?: string;
    conditions?: { type: string; status: string; reason: string; observedGeneration?: number }[];
  };
}

/**
 * Pipelines whose status was written for their generation (observedGeneration and the
 * Reconciling condition's both equal it). The status is written after every child was
 * applied, in the same reconcile, so this is "the operator is done with this generation";
 * without a node Reconciling stays True (Progressing: the pods cannot run).
 */
export async function convergedCount(
  kube: KubeClient,
  ns: string,
): Promise<{ done: number; phases: string }> {
  const list = await kube.list<PipelineStatus>(LP_API, "LogPipeline", ns);
  const phases = new Map<string, number>();
  let done = 0;
  for (const p of list.items) {
    const g = p.metadata.generation ?? 0;
    const rec = p.status?.conditions?.find((c) => c.type === "Reconciling");
    if (p.status?.observedGeneration === g && rec?.observedGeneration === g) {
      done++;
      const key = `${p.status.phase ?? "-"} Reconciling=${rec.status}/${rec.reason}`;
      phases.set(key, (phases.get(key) ?? 0) + 1);
    }
  }
  return { done, phases: [...phases].map(([k, v]) => `${v}× ${k}`).join(", ") };
}

/** Waits until all `n` pipelines in `ns` converged; calls `progress` after each look. */
export async function waitConverged(
  kube: KubeClient,
  ns: string,
  n: number,
  timeoutMs: number,
  everyMs = 1_000,
  progress: (done: number, elapsedMs: number) => void = () => undefined,
): Promise<{ ms: number; phases: string }> {
  const t0 = performance.now();
  let last = { done: 0, phases: "" };
  while (last.done < n) {
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`only ${last.done}/${n} pipelines in ${ns} converged within ${timeoutMs / 1000} s`);
    await sleep(everyMs);
    last = await convergedCount(kube, ns);
    progress(last.done, performance.now() - t0);
  }
  return { ms: performance.now() - t0, phases: last.phases };
}

/**
 * Deletes a namespace and waits until it is gone. With `orphaned`, pipelines an earlier,
 * interrupted run left behind lose their finalizer first: no operator runs to finalize them.
 */
export async function deleteNamespace(
  kube: KubeClient,
  name: string,
  opts: { orphaned?: boolean; timeoutMs?: number; wait?: boolean } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 900_000;
  if (opts.orphaned && (await kube.getOrUndefined("v1", "Namespace", undefined, name)))
    for (const p of (await kube.list(LP_API, "LogPipeline", name)).items)
      await kube.request(
        "PATCH",
        `/apis/${LP_API}/namespaces/${name}/logpipelines/${p.metadata?.name ?? ""}`,
        {
          body: { metadata: { finalizers: null } },
          contentType: "application/merge-patch+json",
        },
      );
  await kube.delete("v1", "Namespace", undefined, name).catch(() => undefined);
  if (opts.wait === false) return;
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (!(await kube.getOrUndefined("v1", "Namespace", undefined, name))) return;
    await sleep(1_000);
  }
  throw new Error(`namespace ${name} still there after ${timeoutMs / 1000} s`);
}

export interface OperatorProcess {
  child: ChildProcess;
  healthPort: number;
  metrics(): Promise<string>;
  ready(): Promise<boolean>;
  rssMiB(): number;
  cpuSeconds(): number;
  /** SIGTERM, then SIGKILL after 15 s. */
  stop(): Promise<void>;
}

/**
 * The operator as a process of its own (operator/src/main.ts), with its defaults unless
 * `env` says otherwise; metrics on healthPort + 1.
 */
export function startOperatorProcess(opts: {
  kubeconfig: string;
  namespaces: string[];
  identity: string;
  healthPort: number;
  logFile?: string;
  env?: Record<string, string>;
  /** Node flags before the script (e.g. `--import` of a preload such as skewed-clock.mjs). */
  nodeArgs?: string[];
  /** Compiled JavaScript to run, as the image does (dist/operator/src/main.js); default: the TypeScript source through tsx. */
  compiled?: string;
}): OperatorProcess {
  const node = path.join(repoRoot, "node_modules/.bin/node");
  const out = opts.logFile ? openSync(opts.logFile, "a") : "inherit";
  const args = [
    ...PARENT_GUARD,
    ...(opts.nodeArgs ?? []),
    ...(opts.compiled
      ? ["--enable-source-maps", opts.compiled]
      : ["--import", "tsx", path.join(repoRoot, "operator/src/main.ts")]),
  ];
  const child = spawn(node, args, {
    cwd: repoRoot,
    env: {
      ...process.env,
      KUBECONFIG: opts.kubeconfig,
      WATCH_NAMESPACES: opts.namespaces.join(","),
      // The fleet's Strimzi namespace is one of the watched ones (fleetSpec's kafkaNs).
      POLICY_STRIMZI_NAMESPACES: opts.namespaces.join(","),
      LEADER_ELECT: "true",
      POD_NAME: opts.identity,
      HEALTH_PORT: String(opts.healthPort),
      METRICS_PORT: String(opts.healthPort + 1),
      BIND_ADDRESS: "127.0.0.1",
      LOG_LEVEL: "warn",
      ...parentGuardEnv(),
      ...opts.env,
    },
    stdio: ["ignore", out, out],
  });
  // How it ended, in its log: a process killed by a signal (a native crash) writes nothing itself.
  const logFile = opts.logFile;
  if (logFile)
    child.once("exit", (code, signal) =>
      appendFileSync(
        logFile,
        `${JSON.stringify({ msg: "operator process exited (line written by the test)", pid: child.pid, code, signal })}\n`,
      ),
    );
  const pid = child.pid ?? 0;
  const ticks = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim() || 100);
  return {
    child,
    healthPort: opts.healthPort,
    metrics: async () => (await fetch(`http://127.0.0.1:${opts.healthPort + 1}/metrics`)).text(),
    ready: () =>
      fetch(`http://127.0.0.1:${opts.healthPort}/readyz`)
        .then((r) => r.ok)
        .catch(() => false),
    rssMiB: () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      return Math.round(Number(m?.[1] ?? 0) / 102.4) / 10;
    },
    cpuSeconds: () => {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
      return (Number(fields[11]) + Number(fields[12])) / ticks; // utime + stime
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const done = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
      if (!done) child.kill("SIGKILL");
    },
  };
}

/** Sum of an operator metric's samples (all label sets). */
export async function metricSum(op: OperatorProcess, name: string): Promise<number> {
  let sum = 0;
  for (const line of (await op.metrics()).split("\n")) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+]+)$`).exec(line);
    if (m?.[2]) sum += Number(m[2]);
  }
  return sum;
}

/** A process's state from /proc (for a failure's message): run state, threads, where its main thread waits. */
export function procState(pid: number | undefined): string {
  if (!pid) return "no pid";
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, "m").exec(status)?.[1] ?? "?";
    const wchan = readFileSync(`/proc/${pid}/wchan`, "utf8");
    const cpu = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return `state ${field("State")}, threads ${field("Threads")}, main thread waits in ${wchan || "-"}, cpu ticks ${String(Number(cpu[11]) + Number(cpu[12]))}`;
  } catch (e) {
    return `no /proc entry (${(e as Error).message})`;
  }
}
