import http from "node:http";
import type { Registry } from "prom-client";
import { ConfigError } from "./config.js";
import type { Logger } from "./logger.js";
import { errorText } from "./connections.js";

/**
 * Runs a workload's main: a bad configuration prints the variables at fault and exits 1
 * (no stack trace); SIGTERM/SIGINT run `stop` once, then exit.
 */
export function runMain(name: string, main: () => Promise<{ stop: () => Promise<void>; log: Logger }>): void {
  main().then(
    ({ stop, log }) => {
      let stopping = false;
      const shutdown = (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, "shutting down");
        stop().then(
          () => process.exit(0),
          (e: unknown) => {
            log.error({ err: errorText(e) }, "shutdown failed");
            process.exit(1);
          },
        );
      };
      process.on("SIGTERM", () => shutdown("SIGTERM"));
      process.on("SIGINT", () => shutdown("SIGINT"));
    },
    (e: unknown) => {
      if (e instanceof ConfigError) process.stderr.write(`${name}: ${e.message}\n`);
      else process.stderr.write(`${name}: failed to start: ${errorText(e, { stack: true })}\n`);
      process.exit(1);
    },
  );
}

/**
 * /metrics, /healthz and /readyz on a port of their own: every workload's, so metrics are
 * never on an API's public port (the Service and NetworkPolicy keep this port in-cluster).
 */
export function serveOps(
  port: number,
  host: string,
  registry: Registry,
  /** Absent: /readyz is the API's own (on its public port). */
  ready?: () => boolean,
): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.url === "/metrics") {
      registry.metrics().then(
        (body) => res.writeHead(200, { "content-type": registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    } else if (req.url === "/healthz") res.writeHead(200).end("ok");
    else if (req.url === "/readyz" && ready)
      res.writeHead(ready() ? 200 : 503).end(ready() ? "ready" : "not ready");
    else res.writeHead(404).end();
  });
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
}
