import type { LogPipeline } from "../api/logpipeline.js";
import { LABEL_METRICS, pipelineLabels, pipelineNames, selectorLabels } from "./names.js";
import { type BuildOptions, childMeta, type KubeObject } from "./options.js";

export const MONITORING_API_VERSION = "monitoring.coreos.com/v1";

/** Scrapes the producer, consumer and query Services (they carry the metrics label, valued by port name). */
export function serviceMonitor(p: LogPipeline, opts: BuildOptions): KubeObject | undefined {
  const sm = p.spec.monitoring.serviceMonitor;
  if (!sm.enabled || !opts.capabilities.serviceMonitor) return undefined;
  const labels = { ...pipelineLabels(p, "monitoring"), ...sm.labels };
  const instance = selectorLabels(p, "monitoring")["app.kubernetes.io/instance"] ?? "";
  return {
    apiVersion: MONITORING_API_VERSION,
    kind: "ServiceMonitor",
    metadata: childMeta(p, pipelineNames(p).monitoring, labels),
    spec: {
      selector: {
        matchLabels: { "app.kubernetes.io/name": "logpipeline", "app.kubernetes.io/instance": instance },
        matchExpressions: [{ key: LABEL_METRICS, operator: "Exists" }],
      },
      endpoints: [{ port: "metrics", path: "/metrics", interval: sm.interval }],
    },
  };
}

/**
 * The pipeline's alerts, scoped to its own series by the `pipeline` label the workloads
 * export (PIPELINE_NAME) and the namespace Prometheus adds.
 */
export function prometheusRule(p: LogPipeline, opts: BuildOptions): KubeObject | undefined {
  if (!p.spec.monitoring.prometheusRule.enabled || !opts.capabilities.prometheusRule) return undefined;
  const sel = `namespace="${p.metadata.namespace}",pipeline="${p.metadata.name}"`;
  // The operator's own series name the pipeline in labels of their own (its scrape target's
  // namespace is the operator's).
  const op = `pipeline_namespace="${p.metadata.namespace}",pipeline="${p.metadata.name}"`;
  const after = `${p.spec.reconciliation.alertAfterMinutes}m`;
  const runbook = (anchor: string) =>
    `https://github.com/logpipeline/logpipeline-operator/blob/main/docs/runbooks.md#${anchor}`;
  const labels = { severity: "warning", pipeline: p.metadata.name };
  return {
    apiVersion: MONITORING_API_VERSION,
    kind: "PrometheusRule",
    metadata: childMeta(p, pipelineNames(p).monitoring, pipelineLabels(p, "monitoring")),
    spec: {
      groups: [
        {
          name: `logpipeline.${p.metadata.namespace}.${p.metadata.name}`,
          rules: [
            {
              alert: "LogPipelineDataDivergence",
              expr: `sum(logpipeline_divergence_events{${op}}) > 0`,
              for: after,
              labels: { ...labels, severity: "critical" },
              annotations: {
                summary:
                  "PostgreSQL does not hold exactly what Kafka committed: events missing, duplicated or spurious.",
                runbook_url: runbook("logpipelinedatadivergence"),
              },
            },
            {
              alert: "LogPipelineConsumerStuck",
              expr: `max(logpipeline_consumer_stuck_partitions{${op}}) > 0`,
              for: after,
              labels: { ...labels, severity: "critical" },
              annotations: {
                summary: "The consumer's stored position stands still while committed events wait.",
                runbook_url: runbook("logpipelineconsumerstuck"),
              },
            },
            {
              alert: "LogPipelineDivergenceCheckFailing",
              expr: `sum(increase(logpipeline_divergence_check_failures_total{${op}}[15m])) > 0`,
              for: after,
              labels,
              annotations: {
                summary:
                  "The divergence check cannot read Kafka or PostgreSQL: whether the data is complete is unknown.",
                runbook_url: runbook("logpipelinedivergencecheckfailing"),
              },
            },
            {
              alert: "LogPipelineReconcileErrors",
              expr: `sum(increase(logpipeline_reconcile_errors_total{${op}}[10m])) > 0`,
              for: "10m",
              labels,
              annotations: {
                summary: "The operator keeps failing to reconcile this pipeline.",
                runbook_url: runbook("logpipelinereconcileerrors"),
              },
            },
            {
              alert: "LogPipelineProducerCircuitOpen",
              expr: `max(log_producer_circuit_state{${sel}}) >= 2`,
              for: "2m",
              labels: { ...labels, severity: "critical" },
              annotations: {
                summary: "The ingest gateway's circuit to Kafka is open: new events get 503.",
                runbook_url: runbook("logpipelineproducercircuitopen"),
              },
            },
            {
              alert: "LogPipelineDeadLettersGrowing",
              expr: `sum(increase(log_consumer_dead_letters_total{${sel}}[15m])) > 0`,
              for: "5m",
              labels,
              annotations: {
                summary: "Events are being dead-lettered: they could not be stored.",
                runbook_url: runbook("logpipelinedeadlettersgrowing"),
              },
            },
            {
              alert: "LogPipelineConsumerStalled",
              expr: `max(log_consumer_partition_stalled{${sel}}) > 0`,
              for: "2m",
              labels: { ...labels, severity: "critical" },
              annotations: {
                summary:
                  "PostgreSQL refuses the consumer's batches for a reason that is not the data's (a permission, the table): a partition is stalled.",
                runbook_url: runbook("logpipelineconsumerstalled"),
              },
            },
            {
              alert: "LogPipelineCapacityAtRisk",
              // The advice is recomputed at most once per resync: an hour of it is a trend.
              expr: `max(logpipeline_capacity_at_risk{${op}}) > 0`,
              for: "1h",
              labels,
              annotations: {
                summary:
                  "The partitions cannot carry the observed peak, or the PostgreSQL volume fills before the retention horizon (status.capacity says what to change).",
                runbook_url: runbook("logpipelinecapacityatrisk"),
              },
            },
            {
              alert: "LogPipelineConsumerLagHigh",
              expr: `sum(log_consumer_lag{${sel}}) > ${p.spec.consumer.lagTarget * Math.max(1, p.spec.consumer.replicas.max)}`,
              for: after,
              labels,
              annotations: {
                summary: "The consumer is falling behind Kafka beyond what its replicas can absorb.",
                runbook_url: runbook("logpipelineconsumerlaghigh"),
              },
            },
          ],
        },
      ],
    },
  };
}
