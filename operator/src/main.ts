/**
 * The operator's composition root: configuration from env and flags, the manager
 * (informers, work queue, leader election, reconcile), /healthz, /readyz, /metrics and a
 * graceful shutdown on SIGTERM.
 */
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { errorText } from "../../workloads/common/src/connections.js";
import { createLogger } from "../../workloads/common/src/logger.js";
import { managerConfig, OperatorEnv } from "./config.js";
import { startManager } from "./controller/manager.js";

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
  const manager = await startManager(managerConfig(env), log);

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
  // Lost leadership (or workers that could not start): exit now. Another replica may lead
  // already once the lease runs out, so what is under way is not waited for.
  void manager.lostLeadership.then(() => {
    log.error("lost leadership, or the workers could not start; exiting");
    process.exit(1);
  });
}

void main().catch((e: unknown) => {
  console.error(errorText(e, { stack: true }));
  process.exit(1);
});
