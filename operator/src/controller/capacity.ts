import type { LogPipeline, LogPipelineStatus } from "../api/logpipeline.js";
import { quantityBytes } from "../builders/data-services.js";
import { adviseCapacity } from "../status/capacity.js";
import type { Observation } from "../status/compute.js";
import { rfc3339Seconds } from "../time.js";
import type { CapacityState, ControllerDeps } from "./deps.js";

/** What the planning horizon is when PostgreSQL keeps events for ever (docs/capacity.md). */
export const PLANNING_DAYS = 30;
/** Flow samples kept per pipeline: the window's reads, thinned to this many. */
export const MAX_SAMPLES = 120;
/** The share of a consumer replica's measured rate the partition advice plans the peak at. */
export const UTILISATION = 0.8;

/** How far a window's span may move before figures measured over it are stamped anew. */
export const WINDOW_TOLERANCE = 0.05;

type Advice = Omit<NonNullable<LogPipelineStatus["capacity"]>, "asOf">;

/** Whether `next` says something `shown` does not: a figure, or a window of another size. */
export function changedAdvice(shown: Advice, next: Advice): boolean {
  const figures = (a: Advice) =>
    JSON.stringify({
      ...a,
      asOf: undefined,
      windowEnd: undefined,
      windowSeconds: undefined,
      samples: undefined,
    });
  if (figures(shown) !== figures(next)) return true;
  return Math.abs(next.windowSeconds - shown.windowSeconds) > WINDOW_TOLERANCE * shown.windowSeconds;
}

/**
 * Step: the capacity advice. Every new delivery read becomes a flow sample (the window keeps
 * `capacity.windowMs` of them); the advice is recomputed from the samples, the last divergence
 * check's sizes and record bytes at most once per resync, and the status carries the last one.
 */
export function adviseCapacityStep(
  key: string,
  p: LogPipeline,
  observation: Observation,
  deps: ControllerDeps,
): void {
  const state: CapacityState = deps.capacity.get(key) ?? { samples: [] };
  deps.capacity.set(key, state);
  const now = deps.now().getTime();
  const read = deps.deliveryReads.get(key);
  const d = read?.delivery;
  if (d?.processed !== undefined) {
    // Stamped with when the figures were read, to the millisecond (a rate between reads a
    // second apart is off by half when stamped to the second): a failed read that kept them
    // adds no sample. At most MAX_SAMPLES over the window (memory stays flat with a thousand
    // pipelines).
    const at = read?.readAt ?? Date.parse(d.asOf);
    const last = state.samples[state.samples.length - 1];
    if (!last || at - last.at >= deps.config.capacity.windowMs / MAX_SAMPLES)
      state.samples.push({
        at,
        processed: d.processed,
        lag: d.lag,
        consumers: observation.consumer?.ready ?? 0,
      });
    const from = now - deps.config.capacity.windowMs;
    while (state.samples.length > 2 && (state.samples[0]?.at ?? now) < from) state.samples.shift();
  }
  if (state.at === undefined || now - state.at >= deps.config.resyncMs) {
    const check = deps.divergence.get(key);
    const sizes = check?.sizes;
    const rb = check?.result?.recordBytes;
    const pg = p.spec.postgres;
    const volume =
      pg.mode === "managed"
        ? { volumeBytes: quantityBytes(pg.managed.storage.size), volumeSource: "managed" as const }
        : pg.external?.volumeSize
          ? { volumeBytes: quantityBytes(pg.external.volumeSize), volumeSource: "stated" as const }
          : {};
    const advice = adviseCapacity({
      now,
      samples: state.samples,
      partitions: p.spec.kafka.topic.partitions,
      kafka: {
        retentionHours: p.spec.kafka.topic.retentionHours,
        replicationFactor: p.spec.kafka.topic.replicationFactor,
        bytesPerEvent: rb && rb.records > 0 ? rb.bytes / rb.records : undefined,
      },
      postgres: {
        retentionDays: pg.retentionDays,
        ...volume,
        ...(sizes && {
          databaseBytes: sizes.databaseBytes,
          eventsBytes: sizes.eventsBytes,
          events: sizes.events,
        }),
      },
      assumedPerReplica: deps.config.capacity.assumedPerReplica,
      utilisation: UTILISATION,
      planningDays: PLANNING_DAYS,
    });
    if (advice) {
      const { atRisk, risks, ...rest } = advice;
      state.at = now;
      // Unchanged figures keep the whole advice as first written: its asOf and the window they
      // were first measured over (end, span, samples), which describes them still. A full
      // window's span and sample count drift as samples slide through it (a sample's spacing,
      // one sample), so they count as changed only beyond WINDOW_TOLERANCE: an idle pipeline's
      // status is not rewritten, while a window still filling is.
      if (!state.advice || changedAdvice(state.advice, rest))
        state.advice = { asOf: rfc3339Seconds(deps.now()), ...rest };
      state.atRisk = { risk: atRisk, message: atRisk ? risks.join("; ") : "" };
      const labels = { pipeline_namespace: p.metadata.namespace, pipeline: p.metadata.name };
      deps.metrics.capacityAtRisk.set(labels, atRisk ? 1 : 0);
      deps.metrics.partitionsNeeded.set(labels, advice.partitions.needed);
      deps.metrics.ingestRate.set(labels, advice.ingest.meanPerSecond);
      if (advice.postgres.daysUntilFull !== undefined)
        deps.metrics.postgresDaysUntilFull.set(labels, advice.postgres.daysUntilFull);
      else deps.metrics.postgresDaysUntilFull.remove(labels);
    }
  }
  if (state.advice) observation.capacity = state.advice;
  if (state.atRisk) observation.capacityAtRisk = state.atRisk;
}
