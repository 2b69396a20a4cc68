import { collectDefaultMetrics, Registry } from "prom-client";

/** One registry per process (tests build several apps in one process: no global registry). */
export function createRegistry(workload: string, pipeline: string): Registry {
  const registry = processRegistry();
  registry.setDefaultLabels({ workload, pipeline });
  return registry;
}

/**
 * A registry with the process's own metrics (resident memory, CPU, heap, event-loop lag,
 * garbage collection): the workloads' and the operator's.
 */
export function processRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client exports these three gauges with a counter's `_total` suffix, which
  // `promtool check metrics` rejects; the rest of the process metrics stay.
  for (const name of [
    "nodejs_active_handles_total",
    "nodejs_active_requests_total",
    "nodejs_active_resources_total",
  ])
    registry.removeSingleMetric(name);
  return registry;
}

/** Exponential latency buckets in seconds, 0.5 ms … ~16 s. */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16,
];
