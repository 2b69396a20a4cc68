import { ANNOTATION_CHECK_NOW, type LogPipeline, type LogPipelineStatus } from "../api/logpipeline.js";
import { type ConditionReason, Reason } from "../status/reasons.js";
import { pipelineNames } from "../builders/names.js";
import { checkDivergence, summary } from "../divergence/check.js";
import type { KafkaConnection, TopicAdmin } from "../kafka/topic-admin.js";
import { readSizes, readStorage } from "../divergence/delivery.js";
import { errorText } from "../../../workloads/common/src/connections.js";
import { postgresConnectionAs } from "./postgres-roles.js";
import type { ControllerDeps, DivergenceState } from "./deps.js";

/** Offsets per partition each check compares: bounded reads of Kafka and PostgreSQL. */
export const DIVERGENCE_WINDOW_OFFSETS = 10_000;

/** A pipeline's divergence checks, kept by the operator between passes. */

/**
 * A check is due every `reconciliation.intervalSeconds` once the pipeline is Ready (while it
 * is still coming up there is nothing to compare), or at once when the check-now annotation
 * changes. None while hibernating (nothing consumes; standing still is wanted).
 */
export function divergenceDue(key: string, p: LogPipeline, deps: ControllerDeps): boolean {
  if (p.spec.hibernate) return false;
  const s = deps.divergence.get(key);
  const trigger = p.metadata.annotations?.[ANNOTATION_CHECK_NOW];
  if (trigger !== undefined && trigger !== s?.trigger) return true;
  const ready = p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
  if (!ready) return false;
  return !s || deps.now().getTime() - s.at >= p.spec.reconciliation.intervalSeconds * 1000;
}

/**
 * Runs one check and keeps its result (or why it failed) for the status and the metrics; its
 * reads also give status.delivery, so a pass that checks does not read delivery again.
 */
export async function runDivergenceCheck(
  key: string,
  p: LogPipeline,
  deps: ControllerDeps,
  kafka: {
    admin?: TopicAdmin | undefined;
    connection?: KafkaConnection | undefined;
    error?: string | undefined;
  },
): Promise<void> {
  const prev = deps.divergence.get(key);
  const state: DivergenceState = {
    at: deps.now().getTime(),
    trigger: p.metadata.annotations?.[ANNOTATION_CHECK_NOW],
    memory: prev?.memory ?? { marks: new Map(), sweep: sweepFromStatus(p.status) },
    ...(prev?.result ? { result: prev.result, answered: prev.answered } : {}),
    ...(prev?.storage ? { storage: prev.storage } : {}),
    ...(prev?.sizes ? { sizes: prev.sizes } : {}),
  };
  const names = pipelineNames(p);
  const labels = { pipeline_namespace: p.metadata.namespace, pipeline: p.metadata.name };
  try {
    if (!kafka.admin || !kafka.connection)
      throw new Error(`Kafka is not reachable: ${kafka.error ?? "no connection"}`);
    const pg = await postgresConnectionAs(p, deps, "reader");
    const result = await checkDivergence(
      {
        topic: names.topic,
        consumerGroup: names.consumerGroup,
        schema: p.spec.postgres.schema,
        table: p.spec.postgres.table,
        windowOffsets: DIVERGENCE_WINDOW_OFFSETS,
        retentionDays: p.spec.postgres.retentionDays,
      },
      { offsets: kafka.admin, connection: kafka.connection },
      pg,
      state.memory,
      p.spec.reconciliation.intervalSeconds * 1000,
      deps.now,
    );
    state.result = result;
    state.answered = state.trigger;
    state.storage = await readStorage(
      pg,
      p.spec.postgres.schema,
      p.spec.postgres.table,
      deps.now().getTime(),
    );
    if (state.storage) deps.metrics.ftsIndexDelay.set(labels, state.storage.indexDelaySeconds);
    // Sizes for the capacity advice: a failed read keeps the last ones (the check stands).
    const sizes = await readSizes(pg, p.spec.postgres.schema, p.spec.postgres.table).catch((e: unknown) => {
      deps.log.debug({ pipeline: key, err: errorText(e) }, "PostgreSQL sizes not readable");
      return undefined;
    });
    if (sizes) state.sizes = sizes;
    deps.deliveryReads.set(key, { at: state.at, delivery: result.delivery, readAt: result.deliveryReadAt });
    deps.metrics.divergenceChecks.observe(result.durationMs / 1000);
    for (const kind of ["missing", "duplicated", "spurious"] as const)
      deps.metrics.divergenceEvents.set({ ...labels, kind }, result[kind]);
    deps.metrics.stuckPartitions.set(labels, result.stuckPartitions.length);
    for (const row of result.partitions)
      deps.metrics.consumerLag.set({ ...labels, partition: String(row.partition) }, row.lag);
    deps.log.info(
      {
        pipeline: key,
        reason: result.reason,
        missing: result.missing,
        duplicated: result.duplicated,
        spurious: result.spurious,
        lag: result.lag,
        ms: result.durationMs,
      },
      "divergence check",
    );
  } catch (e) {
    state.error = errorText(e);
    deps.metrics.divergenceCheckFailures.inc(labels);
    deps.log.warn({ pipeline: key, err: state.error }, "divergence check failed");
  }
  deps.divergence.set(key, state);
}

/**
 * Where the sweep stood in the last check the status records (by partition), so that an
 * operator restart or a new leader goes on from there instead of from the top.
 */
export function sweepFromStatus(status: LogPipelineStatus | undefined): Map<number, number> {
  const out = new Map<number, number>();
  for (const row of status?.divergence?.partitions ?? [])
    if (row.sweepFrom !== undefined) out.set(row.partition, row.sweepFrom);
  return out;
}

/** What status.divergence says of the last check. */
export function divergenceStatus(
  s: DivergenceState | undefined,
): LogPipelineStatus["divergence"] | undefined {
  const r = s?.result;
  if (!r) return undefined;
  return {
    checkedAt: r.checkedAt,
    // Tells whoever set the annotation that this result is from a check started after it.
    ...(s.answered !== undefined ? { trigger: s.answered.slice(0, 256) } : {}),
    summary: summary(r),
    missing: r.missing,
    duplicated: r.duplicated,
    spurious: r.spurious,
    ...(r.expired ? { expired: r.expired } : {}),
    lag: r.lag,
    message: r.message,
    window: { offsetsPerPartition: r.windowOffsets },
    samples: r.samples,
    partitions: r.partitions,
  };
}

/**
 * The DataConsistent condition's status, reason and message, from the last check. A check
 * that could not run says Unknown (CheckFailed): the data may be fine, it is not known —
 * PostgresReady or TopicsReady say what is unreachable, and the alert on check failures
 * fires if it lasts.
 */
export function dataConsistency(
  s: DivergenceState | undefined,
): { status: "True" | "False" | "Unknown"; reason: ConditionReason; message: string } | undefined {
  if (!s) return undefined;
  if (s.error)
    return {
      status: "Unknown",
      reason: Reason.CheckFailed,
      message: `the divergence check could not run: ${s.error}`,
    };
  if (!s.result) return undefined;
  return {
    status: s.result.reason === "Consistent" ? "True" : "False",
    reason: s.result.reason,
    message: s.result.message,
  };
}
