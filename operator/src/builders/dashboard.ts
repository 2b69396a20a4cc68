import type { LogPipeline } from "../api/logpipeline.js";
import { pipelineLabels, pipelineNames } from "./names.js";
import { type BuildOptions, childMeta, type KubeObject } from "./options.js";

/** The label Grafana's dashboard sidecar looks for (kube-prometheus-stack's default). */
export const GRAFANA_DASHBOARD_LABEL = "grafana_dashboard";

interface Panel {
  title: string;
  type: "timeseries" | "stat";
  unit?: string;
  targets: { expr: string; legendFormat: string }[];
  description: string;
}

/**
 * The pipeline's Grafana dashboard: ingest rate, end-to-end latency, lag per partition,
 * divergence, dead letters, replicas, capacity. Workload series carry `namespace` and `pipeline`
 * (PIPELINE_NAME); the operator's carry `pipeline_namespace` and `pipeline`.
 */
export function dashboardPanels(): Panel[] {
  const wl = 'namespace="$namespace",pipeline="$pipeline"';
  const op = 'pipeline_namespace="$namespace",pipeline="$pipeline"';
  return [
    {
      title: "Ingest rate (events/s committed to Kafka)",
      type: "timeseries",
      unit: "ops",
      description: "Events the ingest gateway committed to Kafka, per second.",
      targets: [{ expr: `sum(rate(log_producer_send_success_total{${wl}}[5m]))`, legendFormat: "committed" }],
    },
    {
      title: "Rejected and failed requests",
      type: "timeseries",
      unit: "ops",
      description: "Rate-limited requests and failed sends: clients retry these.",
      targets: [
        { expr: `sum(rate(log_producer_rate_limited_total{${wl}}[5m]))`, legendFormat: "rate limited" },
        { expr: `sum(rate(log_producer_send_failure_total{${wl}}[5m]))`, legendFormat: "send failures" },
      ],
    },
    {
      title: "End-to-end latency (request → PostgreSQL), p50 / p99",
      type: "timeseries",
      unit: "s",
      description: "From the event's acceptance to its row's commit.",
      targets: [0.5, 0.99].map((q) => ({
        expr: `histogram_quantile(${q}, sum by (le) (rate(log_consumer_end_to_end_seconds_bucket{${wl}}[5m])))`,
        legendFormat: `p${q * 100}`,
      })),
    },
    {
      title: "Consumer lag per partition (committed records)",
      type: "timeseries",
      description: "From the operator's divergence check: committed records beyond the stored position.",
      targets: [
        {
          expr: `max by (partition) (logpipeline_consumer_lag{${op}})`,
          legendFormat: "partition {{partition}}",
        },
      ],
    },
    {
      title: "Divergence (events missing, duplicated, spurious)",
      type: "stat",
      description: "The last divergence check's findings; all must be 0.",
      targets: [{ expr: `max by (kind) (logpipeline_divergence_events{${op}})`, legendFormat: "{{kind}}" }],
    },
    {
      title: "Stuck partitions",
      type: "stat",
      description: "Partitions whose stored position stood still while events waited.",
      targets: [{ expr: `max(logpipeline_consumer_stuck_partitions{${op}})`, legendFormat: "stuck" }],
    },
    {
      title: "Dead letters (per 15 min)",
      type: "timeseries",
      description: "Events the consumer could not store, isolated to the dead-letter topic.",
      targets: [
        { expr: `sum(increase(log_consumer_dead_letters_total{${wl}}[15m]))`, legendFormat: "dead-lettered" },
      ],
    },
    {
      title: "Replicas (autoscalers)",
      type: "timeseries",
      description: "Ready replicas of each workload, as the operator observes them.",
      targets: [
        {
          expr: `max by (component) (logpipeline_workload_replicas{${op},state="ready"})`,
          legendFormat: "{{component}} ready",
        },
        {
          expr: `max by (component) (logpipeline_workload_replicas{${op},state="desired"})`,
          legendFormat: "{{component}} desired",
        },
      ],
    },
    {
      title: "Capacity: partitions needed for the observed peak, against the topic's",
      type: "timeseries",
      description:
        "From the capacity advice (status.capacity): partitions the observed ingest peak needs, and 1 while CapacityAtRisk is True.",
      targets: [
        { expr: `max(logpipeline_capacity_partitions_needed{${op}})`, legendFormat: "partitions needed" },
        { expr: `max(logpipeline_capacity_at_risk{${op}})`, legendFormat: "at risk" },
      ],
    },
    {
      title: "Capacity: days until the PostgreSQL volume is full",
      type: "stat",
      unit: "d",
      description:
        "At the mean ingest rate over the capacity window (no value: the volume does not fill within the retention).",
      targets: [{ expr: `min(logpipeline_postgres_days_until_full{${op}})`, legendFormat: "days" }],
    },
  ];
}

/** Grafana's dashboard JSON model (schemaVersion 39), variables preset to this pipeline. */
export function dashboardJson(p: LogPipeline): object {
  const panels = dashboardPanels().map((panel, i) => ({
    id: i + 1,
    title: panel.title,
    description: panel.description,
    type: panel.type,
    datasource: { type: "prometheus", uid: "${datasource}" },
    gridPos: { x: (i % 2) * 12, y: Math.floor(i / 2) * 8, w: 12, h: 8 },
    fieldConfig: { defaults: { ...(panel.unit ? { unit: panel.unit } : {}) }, overrides: [] },
    targets: panel.targets.map((t, j) => ({ refId: String.fromCharCode(65 + j), ...t })),
  }));
  const variable = (name: string, value: string) => ({
    name,
    type: "textbox",
    query: value,
    current: { text: value, value },
  });
  return {
    uid: `logpipeline-${pipelineNames(p).monitoring}`.slice(0, 40),
    title: `LogPipeline ${p.metadata.namespace}/${p.metadata.name}`,
    tags: ["logpipeline"],
    schemaVersion: 39,
    refresh: "30s",
    time: { from: "now-1h", to: "now" },
    templating: {
      list: [
        { name: "datasource", type: "datasource", query: "prometheus" },
        variable("namespace", p.metadata.namespace),
        variable("pipeline", p.metadata.name),
      ],
    },
    panels,
  };
}

/** The dashboard as a ConfigMap Grafana's sidecar picks up (monitoring.dashboards.enabled). */
export function dashboardConfigMap(p: LogPipeline, _opts: BuildOptions): KubeObject | undefined {
  if (!p.spec.monitoring.dashboards.enabled) return undefined;
  const name = `${pipelineNames(p).monitoring}-dashboard`;
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: childMeta(p, name, { ...pipelineLabels(p, "monitoring"), [GRAFANA_DASHBOARD_LABEL]: "1" }),
    data: { [`${name}.json`]: JSON.stringify(dashboardJson(p), null, 2) },
  };
}
