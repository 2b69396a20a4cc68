import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parsePipeline } from "../../operator/src/api/parse.js";
import {
  dashboardConfigMap,
  dashboardJson,
  GRAFANA_DASHBOARD_LABEL,
} from "../../operator/src/builders/dashboard.js";
import type { BuildOptions } from "../../operator/src/builders/index.js";
import { repoRoot } from "../support/stack.js";

/**
 * The Grafana dashboard: valid JSON in a ConfigMap with the sidecar label when asked for,
 * and every panel's query names only metrics the code exports (found by reading the
 * workloads' and the operator's metric definitions), so a renamed metric breaks this test
 * instead of a panel.
 */
const opts = {} as BuildOptions;
const pipeline = (dashboards: boolean) => {
  const r = parsePipeline({
    metadata: { name: "orders", namespace: "shop", uid: "0f1e2d3c-0000-4000-8000-000000000010" },
    spec: {
      kafka: { mode: "external", bootstrapServers: "k:9092" },
      monitoring: { dashboards: { enabled: dashboards } },
    },
  });
  if (!r.ok) throw new Error(r.message);
  return r.pipeline;
};

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith(".ts") && !p.endsWith(".test.ts") ? [p] : [];
  });
}

/** Metric names defined in the code: `name: "…"` of prom-client metrics, and the HTTP metrics' prefixes. */
function exportedMetrics(): Set<string> {
  const names = new Set<string>();
  for (const file of [
    ...sources(path.join(repoRoot, "workloads")),
    ...sources(path.join(repoRoot, "operator/src")),
  ]) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/new (?:Counter|Gauge|Histogram|Summary)\(\{\s*name: "([a-z_:]+)"/g))
      names.add(m[1] ?? "");
  }
  return names;
}

type Dashboard = {
  panels: { id: number; title: string; targets: { expr: string; refId: string }[] }[];
  templating: { list: { name: string }[] };
};

describe("the Grafana dashboard", () => {
  it("ships only when monitoring.dashboards is on, as a ConfigMap with the sidecar label and valid JSON", () => {
    expect(dashboardConfigMap(pipeline(false), opts)).toBeUndefined();
    const cm = dashboardConfigMap(pipeline(true), opts) as unknown as {
      metadata: { labels: Record<string, string> };
      data: Record<string, string>;
    };
    expect(cm.metadata.labels[GRAFANA_DASHBOARD_LABEL]).toBe("1");
    const [json] = Object.values(cm.data);
    const d = JSON.parse(json ?? "") as Dashboard;
    expect(d.panels.length).toBeGreaterThanOrEqual(6);
    expect(new Set(d.panels.map((p) => p.id)).size).toBe(d.panels.length);
    expect(d.templating.list.map((v) => v.name)).toEqual(["datasource", "namespace", "pipeline"]);
  });

  it("queries only metrics the code exports, each panel scoped to the pipeline", () => {
    const exported = exportedMetrics();
    expect(exported.has("log_producer_send_success_total")).toBe(true); // the scan itself works
    const d = dashboardJson(pipeline(true)) as Dashboard;
    const used: string[] = [];
    for (const panel of d.panels) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const t of panel.targets) {
        expect(t.expr, panel.title).toMatch(/pipeline="\$pipeline"/);
        for (const m of t.expr.matchAll(/([a-z_:]+)\{/g)) {
          const metric = (m[1] ?? "").replace(/_(bucket|sum|count)$/, "");
          used.push(metric);
          expect(exported, `${panel.title}: ${metric}`).toContain(metric);
        }
      }
    }
    // What the issue asks for: ingest rate, latency, lag, divergence, DLQ, replicas.
    for (const m of [
      "log_producer_send_success_total",
      "log_consumer_end_to_end_seconds",
      "logpipeline_consumer_lag",
      "logpipeline_divergence_events",
      "log_consumer_dead_letters_total",
      "logpipeline_workload_replicas",
    ])
      expect(used).toContain(m);
  });
});
