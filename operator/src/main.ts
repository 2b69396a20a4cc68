/**
 * The operator's composition root: configuration from env and flags, the manager
 * (informers, work queue, leader election, reconcile), /healthz, /readyz, /metrics and a
 * graceful shutdown on SIGTERM.
 */
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { z } from "zod";
import { errorText } from "../../workloads/common/src/connections.js";
import { createLogger } from "../../workloads/common/src/logger.js";
import { startManager } from "./controller/manager.js";

const csv = z.string().transform((s) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean),
);
const bool = (d: boolean) => z.stringbool().default(d);
const int = (min: number, max: number, d: number) => z.coerce.number().int().min(min).max(max).default(d);

export const OperatorEnv = z.object({
  KUBECONFIG: z.string().optional(),
  WATCH_NAMESPACES: csv.default([]),
  RESYNC_SECONDS: int(5, 86_400, 300),
  PROGRESSING_REQUEUE_SECONDS: int(1, 3600, 10),
  DELIVERY_INTERVAL_SECONDS: int(1, 3600, 15),
  PROBE_CONCURRENCY: int(1, 64, 4),
  PROBE_TIMEOUT_SECONDS: int(1, 600, 30),
  CONCURRENCY: int(1, 64, 4),
  LEADER_ELECT: bool(true),
  LEASE_NAMESPACE: z.string().min(1).default("logpipeline-system"),
  LEASE_NAME: z.string().min(1).default("logpipeline-operator"),
  POD_NAME: z.string().optional(),
  OPERATOR_NAMESPACE: z.string().min(1).default("logpipeline-system"),
  HEALTH_PORT: int(1, 65535, 8081),
  METRICS_PORT: int(1, 65535, 8080),
  BIND_ADDRESS: z.string().default("0.0.0.0"),
  PRODUCER_IMAGE: z.string().min(1).default("logpipeline/producer:0.1.0"),
  CONSUMER_IMAGE: z.string().min(1).default("logpipeline/consumer:0.1.0"),
  QUERY_IMAGE: z.string().min(1).default("logpipeline/query:0.1.0"),
  POSTGRES_IMAGE: z.string().min(1).default("postgres:17-bookworm"),
  REDIS_IMAGE: z.string().min(1).default("redis:7.4-bookworm"),
  IMAGE_PULL_POLICY: z.enum(["Always", "IfNotPresent", "Never"]).default("IfNotPresent"),
  CAPABILITY_REFRESH_SECONDS: int(5, 3600, 60),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"),
});

/** Flags override env: --watch-namespaces=a,b --resync-seconds=60 --leader-elect=false … */
function flagsAsEnv(argv: string[]): Record<string, string> {
  const { values } = parseArgs({ args: argv, strict: false, allowPositionals: false });
  return Object.fromEntries(
    Object.entries(values)
      .filter((e): e is [string, string] => typeof e[1] === "string")
      .map(([k, v]) => [k.toUpperCase().replace(/-/g, "_"), v]),
  );
}

async function main(): Promise<void> {
  const parsed = OperatorEnv.safeParse({ ...process.env, ...flagsAsEnv(process.argv.slice(2)) });
  if (!parsed.success) {
    for (const i of parsed.error.issues)
      console.error(`invalid configuration: ${i.path.join(".")}: ${i.message}`);
    process.exit(2);
  }
  const env = parsed.data;
  const log = createLogger("logpipeline-operator", env.LOG_LEVEL);
  const manager = await startManager(
    {
      kubeconfig: env.KUBECONFIG,
      watchNamespaces: env.WATCH_NAMESPACES,
      concurrency: env.CONCURRENCY,
      resyncMs: env.RESYNC_SECONDS * 1000,
      progressingRequeueMs: env.PROGRESSING_REQUEUE_SECONDS * 1000,
      deliveryIntervalMs: env.DELIVERY_INTERVAL_SECONDS * 1000,
      probeConcurrency: env.PROBE_CONCURRENCY,
      probeTimeoutMs: env.PROBE_TIMEOUT_SECONDS * 1000,
      capabilityRefreshMs: env.CAPABILITY_REFRESH_SECONDS * 1000,
      operatorNamespace: env.OPERATOR_NAMESPACE,
      images: {
        producer: env.PRODUCER_IMAGE,
        consumer: env.CONSUMER_IMAGE,
        query: env.QUERY_IMAGE,
        postgres: env.POSTGRES_IMAGE,
        redis: env.REDIS_IMAGE,
      },
      imagePullPolicy: env.IMAGE_PULL_POLICY,
      leaderElection: {
        enabled: env.LEADER_ELECT,
        namespace: env.LEASE_NAMESPACE,
        name: env.LEASE_NAME,
        identity: env.POD_NAME,
      },
    },
    log,
  );

  const health = createServer((req, res) => {
    if (req.url === "/healthz") res.writeHead(200).end("ok");
    else if (req.url === "/readyz") {
      const ok = manager.ready();
      res.writeHead(ok ? 200 : 503).end(ok ? "ready" : "informers not synced or stale");
    } else res.writeHead(404).end();
  }).listen(env.HEALTH_PORT, env.BIND_ADDRESS);
  const metrics = createServer((req, res) => {
    if (req.url !== "/metrics") return void res.writeHead(404).end();
    manager.registry
      .metrics()
      .then((body) => res.writeHead(200, { "content-type": manager.registry.contentType }).end(body))
      .catch(() => res.writeHead(500).end());
  }).listen(env.METRICS_PORT, env.BIND_ADDRESS);
  log.info(
    { health: env.HEALTH_PORT, metrics: env.METRICS_PORT, namespaces: env.WATCH_NAMESPACES },
    "operator started",
  );

  let stopping = false;
  const shutdown = async (why: string, code: number) => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, "shutting down");
    health.close();
    metrics.close();
    await manager.stop().catch((e: unknown) => log.error({ err: errorText(e) }, "shutdown error"));
    process.exit(code);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM", 0));
  process.on("SIGINT", () => void shutdown("SIGINT", 0));
  void manager.lostLeadership.then(() => shutdown("lost leadership, or the workers could not start", 1));
}

void main().catch((e: unknown) => {
  console.error(errorText(e, { stack: true }));
  process.exit(1);
});
