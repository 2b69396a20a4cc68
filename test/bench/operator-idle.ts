/**
 * The operator's idle cost on a running cluster. The operator's manager (from the source
 * tree in OPERATOR_ROOT, default this one) runs in this process against KUBECONFIG,
 * watching WATCH_NAMESPACES, with the settings the in-cluster operator was given
 * (OPERATOR_DEPLOYMENT's env through operator/src/config.ts: the same images, so its
 * children are the same objects, and the same intervals). After a warm-up, its counters are read twice,
 * IDLE_MINUTES apart: reconciles, child applies by result, status writes, and its API
 * requests by verb and resource (the client's own count), per pipeline per minute.
 * Run it on a node where the pipelines are Ready (`make dev`) with the in-cluster operator
 * scaled to 0, once per revision to compare: the same cluster, the same pipelines.
 *   OPERATOR_ROOT=/path/to/tree node --import tsx test/bench/operator-idle.ts
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { pino } from "pino";
import { managerConfig, OperatorEnv } from "../../operator/src/config.js";
import { repoRoot } from "../support/stack.js";

const root = process.env.OPERATOR_ROOT ?? repoRoot;
const warmupS = Number(process.env.WARMUP_SECONDS ?? 60);
const minutes = Number(process.env.IDLE_MINUTES ?? 5);
const namespaces = (process.env.WATCH_NAMESPACES ?? "logpipeline-dev").split(",");
const deployment = process.env.OPERATOR_DEPLOYMENT ?? "logpipeline-system/logpipeline-operator";

interface ManagerLike {
  registry: { metrics(): Promise<string> };
  kube: { calls: Map<string, number> };
  stop(): Promise<void>;
}

/** The in-cluster operator's env, for the same images and namespaces. */
function deployedEnv(): Record<string, string> {
  const [ns, name] = deployment.split("/");
  const r = spawnSync(
    "kubectl",
    [
      "get",
      "deployment",
      "-n",
      ns ?? "",
      name ?? "",
      "-o",
      "jsonpath={.spec.template.spec.containers[0].env}",
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`kubectl get deployment ${deployment}: ${r.stderr}`);
  const env = JSON.parse(r.stdout || "[]") as { name: string; value?: string }[];
  return Object.fromEntries(env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value ?? ""]));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function snapshot(m: ManagerLike): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await m.registry.metrics()).split("\n")) {
    const match =
      /^logpipeline_operator_(reconcile_total|apply_total|status_writes_total)(\{[^}]*\})? ([0-9.e+]+)$/.exec(
        line,
      );
    if (match?.[1] && match[3]) out.set(`${match[1]}${match[2] ?? ""}`, Number(match[3]));
  }
  for (const [k, v] of m.kube.calls) out.set(`request ${k}`, v);
  return out;
}

const env = deployedEnv();
const { startManager } = (await import(path.join(root, "operator/src/controller/manager.ts"))) as {
  startManager: (config: Record<string, unknown>, log: unknown) => Promise<ManagerLike>;
};
// The in-cluster operator's settings (this tree's config module: the same variables in both
// revisions), here without leader election and watching only the measured namespaces.
const config = managerConfig(
  OperatorEnv.parse({
    ...env,
    KUBECONFIG: process.env.KUBECONFIG,
    WATCH_NAMESPACES: namespaces.join(","),
    LEADER_ELECT: "false",
  }),
);
const manager = await startManager(config as unknown as Record<string, unknown>, pino({ level: "warn" }));
try {
  console.log(
    `operator from ${root}, namespaces ${namespaces.join(",")}: warm-up ${warmupS} s, then ${minutes} min`,
  );
  await sleep(warmupS * 1000);
  const a = await snapshot(manager);
  for (let i = 1; i <= minutes; i++) {
    await sleep(60_000);
    console.log(`  ${i}/${minutes} min`);
  }
  const b = await snapshot(manager);
  const perMinute: Record<string, number> = {};
  for (const k of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const d = (b.get(k) ?? 0) - (a.get(k) ?? 0);
    if (d > 0) perMinute[k] = Math.round((d / minutes / namespaces.length) * 10) / 10;
  }
  console.log(
    JSON.stringify({ root, minutes, pipelines: namespaces.length, perPipelinePerMinute: perMinute }, null, 2),
  );
} finally {
  await manager.stop();
}
