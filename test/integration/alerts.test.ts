import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { parsePipeline } from "../../operator/src/api/parse.js";
import type { BuildOptions } from "../../operator/src/builders/index.js";
import { prometheusRule } from "../../operator/src/builders/monitoring.js";
import { repoRoot } from "../support/stack.js";

/**
 * The alerts the operator applies for a pipeline, evaluated by Prometheus's own rule engine
 * (`promtool test rules`) against series written here: each fires when its condition has
 * lasted its `for`, not before, and names a runbook section that exists.
 */
const opts: BuildOptions = {
  images: { producer: "p", consumer: "c", query: "q", postgres: "pg", redis: "r" },
  imagePullPolicy: "IfNotPresent",
  capabilities: { strimzi: false, keda: false, serviceMonitor: true, prometheusRule: true },
  secretHashes: {},
  operatorNamespace: "logpipeline-system",
};
const parsed = parsePipeline({
  metadata: { name: "orders", namespace: "shop", uid: "0f1e2d3c-0000-4000-8000-000000000009" },
  spec: {
    kafka: { mode: "external", bootstrapServers: "kafka:9092" },
    reconciliation: { intervalSeconds: 60, alertAfterMinutes: 10 },
  },
});
if (!parsed.ok) throw new Error(parsed.message);
const rule = prometheusRule(parsed.pipeline, opts) as unknown as {
  spec: {
    groups: {
      rules: {
        alert: string;
        for?: string;
        labels: Record<string, string>;
        annotations: Record<string, string>;
      }[];
    }[];
  };
};
const rules = rule.spec.groups.flatMap((g) => g.rules);
const dir = mkdtempSync(path.join(tmpdir(), "lp-alerts-"));
writeFileSync(path.join(dir, "rules.yaml"), stringify({ groups: rule.spec.groups }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const op = 'pipeline_namespace="shop",pipeline="orders"';
const wl = 'namespace="shop",pipeline="orders"';

/** One promtool test: series, and for each alert the evaluation times it must (not) fire at. */
interface Case {
  alert: string;
  series: { series: string; values: string }[];
  firesAt: string;
  silentAt: string;
}
const cases: Case[] = [
  {
    alert: "LogPipelineDataDivergence",
    series: [
      { series: `logpipeline_divergence_events{${op},kind="missing"}`, values: "0 0 3x30" },
      { series: `logpipeline_divergence_events{${op},kind="duplicated"}`, values: "0x32" },
    ],
    firesAt: "14m",
    silentAt: "8m",
  },
  {
    alert: "LogPipelineCapacityAtRisk",
    series: [{ series: `logpipeline_capacity_at_risk{${op}}`, values: "0x10 1x80" }],
    firesAt: "75m",
    silentAt: "50m",
  },
  {
    alert: "LogPipelineConsumerStuck",
    series: [{ series: `logpipeline_consumer_stuck_partitions{${op}}`, values: "0 0 2x30" }],
    firesAt: "14m",
    silentAt: "8m",
  },
  {
    alert: "LogPipelineDivergenceCheckFailing",
    series: [{ series: `logpipeline_divergence_check_failures_total{${op}}`, values: "0+1x40" }],
    firesAt: "20m",
    silentAt: "3m",
  },
  {
    alert: "LogPipelineReconcileErrors",
    series: [{ series: `logpipeline_reconcile_errors_total{${op}}`, values: "0+1x40" }],
    firesAt: "20m",
    silentAt: "3m",
  },
  {
    alert: "LogPipelineProducerCircuitOpen",
    series: [{ series: `log_producer_circuit_state{${wl},pod="a"}`, values: "0 0 2x10" }],
    firesAt: "6m",
    silentAt: "2m",
  },
  {
    // lagTarget 10,000 × consumer.replicas.max 6 (the defaults).
    alert: "LogPipelineConsumerLagHigh",
    series: [{ series: `log_consumer_lag{${wl},partition="0"}`, values: "0 0 70000x30" }],
    firesAt: "14m",
    silentAt: "8m",
  },
  {
    alert: "LogPipelineConsumerStalled",
    series: [{ series: `log_consumer_partition_stalled{${wl},pod="a",partition="1"}`, values: "0 0 1x10" }],
    firesAt: "6m",
    silentAt: "3m",
  },
  {
    alert: "LogPipelineDeadLettersGrowing",
    series: [{ series: `log_consumer_dead_letters_total{${wl},pod="a"}`, values: "0 0 0 0+5x30" }],
    firesAt: "15m",
    silentAt: "2m",
  },
];

function promtoolTest(tests: object[]): { status: number | null; out: string } {
  const file = path.join(dir, `tests-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify({ rule_files: ["rules.yaml"], evaluation_interval: "1m", tests }));
  const r = spawnSync("promtool", ["test", "rules", file], { encoding: "utf8", cwd: dir });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const expected = (alert: string) => {
  const r = rules.find((x) => x.alert === alert);
  if (!r) throw new Error(`no rule ${alert}`);
  return { exp_labels: r.labels, exp_annotations: r.annotations };
};

describe("the pipeline's alerts (promtool test rules)", () => {
  it("are all covered here, each with a runbook section in docs/runbooks.md", () => {
    expect(rules.map((r) => r.alert).sort()).toEqual(cases.map((c) => c.alert).sort());
    const runbooks = readFileSync(path.join(repoRoot, "docs/runbooks.md"), "utf8");
    for (const r of rules) {
      const anchor = r.annotations.runbook_url?.split("#")[1] ?? "";
      expect(runbooks.toLowerCase(), r.alert).toContain(`## ${anchor}`);
    }
  });

  it.each(cases)("$alert fires when its condition lasts, and not before", (c) => {
    const r = promtoolTest([
      {
        interval: "1m",
        input_series: c.series,
        alert_rule_test: [
          { eval_time: c.silentAt, alertname: c.alert, exp_alerts: [] },
          { eval_time: c.firesAt, alertname: c.alert, exp_alerts: [expected(c.alert)] },
        ],
      },
    ]);
    expect(r.out).toContain("SUCCESS");
    expect(r.status, r.out).toBe(0);
  });

  it("fails when an alert that should stay silent is expected to fire (the check can fail)", () => {
    const r = promtoolTest([
      {
        interval: "1m",
        input_series: [{ series: `logpipeline_divergence_events{${op},kind="missing"}`, values: "0x30" }],
        alert_rule_test: [
          {
            eval_time: "20m",
            alertname: "LogPipelineDataDivergence",
            exp_alerts: [expected("LogPipelineDataDivergence")],
          },
        ],
      },
    ]);
    expect(r.status).not.toBe(0);
  });
});
