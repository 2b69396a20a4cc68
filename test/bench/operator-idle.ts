/**
 * The operator's idle cost on a running cluster: the operator (from the source tree in
 * OPERATOR_ROOT, default this one) runs as a local process against KUBECONFIG, watching
 * WATCH_NAMESPACES, with the production defaults; after a warm-up, its own counters are read
 * twice, IDLE_MINUTES apart: reconciles, child applies by result and status writes, per
 * minute. Run it on a node where pipelines are Ready (`make dev`, with the in-cluster
 * operator scaled to 0) once per revision to compare: the same cluster, the same pipelines.
 *   OPERATOR_ROOT=/path/to/tree WATCH_NAMESPACES=logpipeline-dev node --import tsx test/bench/operator-idle.ts
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { repoRoot } from "../support/stack.js";

const root = process.env.OPERATOR_ROOT ?? repoRoot;
const warmupS = Number(process.env.WARMUP_SECONDS ?? 60);
const minutes = Number(process.env.IDLE_MINUTES ?? 5);
const port = Number(process.env.METRICS_PORT ?? 18480);
const namespaces = process.env.WATCH_NAMESPACES ?? "logpipeline-dev";

const op = spawn(
  path.join(repoRoot, "node_modules/.bin/tsx"),
  [path.join(root, "operator/src/main.ts"), "--leader-elect=false", `--watch-namespaces=${namespaces}`],
  {
    env: {
      ...process.env,
      METRICS_PORT: String(port),
      HEALTH_PORT: String(port + 1),
      BIND_ADDRESS: "127.0.0.1",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "inherit", "inherit"],
  },
);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function counters(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match =
      /^(logpipeline_operator_(?:reconcile_total|apply_total|status_writes_total)(?:\{[^}]*\})?) ([0-9.e+]+)$/.exec(
        line,
      );
    if (match?.[1] && match[2]) m.set(match[1], Number(match[2]));
  }
  return m;
}

try {
  console.log(
    `operator from ${root}, namespaces ${namespaces}: warm-up ${warmupS} s, then ${minutes} min measured`,
  );
  await sleep(warmupS * 1000);
  const a = await counters();
  for (let i = 1; i <= minutes; i++) {
    await sleep(60_000);
    console.log(`  ${i}/${minutes} min`);
  }
  const b = await counters();
  const rows = [...new Set([...a.keys(), ...b.keys()])].sort();
  const perMinute: Record<string, number> = {};
  for (const k of rows) perMinute[k] = Math.round((((b.get(k) ?? 0) - (a.get(k) ?? 0)) / minutes) * 10) / 10;
  console.log(JSON.stringify({ root, minutes, perMinute }, null, 2));
} finally {
  op.kill("SIGTERM");
}
