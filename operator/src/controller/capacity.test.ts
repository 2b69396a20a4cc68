import { Gauge } from "prom-client";
import { describe, expect, it } from "vitest";
import { parsePipeline } from "../api/parse.js";
import type { Observation } from "../status/compute.js";
import { adviseCapacityStep } from "./capacity.js";
import type { CapacityState, ControllerDeps, DeliveryRead } from "./deps.js";

const T0 = Date.parse("2026-12-01T10:00:00Z");

function pipeline() {
  const r = parsePipeline({
    metadata: { name: "p", namespace: "ns", uid: "u", generation: 1 },
    spec: { kafka: { mode: "external", bootstrapServers: "k:9092" } },
  });
  if (!r.ok) throw new Error(r.message);
  return r.pipeline;
}

/** Just what the step reads and writes; the clock is moved by hand. */
function harness() {
  let now = T0;
  const gauge = (name: string) =>
    new Gauge({ name, help: name, labelNames: ["pipeline_namespace", "pipeline"], registers: [] });
  const deps = {
    now: () => new Date(now),
    config: { resyncMs: 0, capacity: { windowMs: 60_000, assumedPerReplica: 1000 } },
    capacity: new Map(),
    divergence: new Map(),
    deliveryReads: new Map<string, DeliveryRead>(),
    metrics: {
      capacityAtRisk: gauge("a"),
      partitionsNeeded: gauge("b"),
      ingestRate: gauge("c"),
      postgresDaysUntilFull: gauge("d"),
    },
  } as unknown as ControllerDeps;
  const p = pipeline();
  /** A delivery read whose offsets were taken at `readAtMs`, ending `tookMs` later. */
  const read = (readAtMs: number, processed: number, tookMs: number): Observation => {
    deps.deliveryReads.set("ns/p", {
      at: T0 + readAtMs,
      readAt: T0 + readAtMs,
      delivery: {
        asOf: new Date(T0 + readAtMs).toISOString().replace(/\.\d{3}Z$/, "Z"),
        processed,
        lag: 0,
        dlq: 0,
        duplicatesSkipped: 0,
      },
    });
    now = T0 + readAtMs + tookMs;
    const observation = {} as Observation;
    adviseCapacityStep("ns/p", p, observation, deps);
    return observation;
  };
  return { deps, read };
}

describe("adviseCapacityStep", () => {
  it("stamps each flow sample with when its offsets were read, to the millisecond, not when the read ended", () => {
    const h = harness();
    h.read(900, 0, 4_000); // a slow first read: its figures are of T0 + 0.9 s
    const o = h.read(10_400, 1_900, 100);
    // 1,900 events in 9.5 s. Stamped to the second (0 s and 10 s) it would say 190/s; stamped
    // at the reads' ends (4.9 s and 10.5 s), 340/s.
    expect(o.capacity?.ingest.meanPerSecond).toBe(200);
    expect(o.capacity?.windowEnd).toBe("2026-12-01T10:00:10Z");
    expect(o.capacity?.asOf).toBe("2026-12-01T10:00:10Z");
    expect(o.capacity?.samples).toBe(2);
  });

  it("takes no sample from a read that failed and kept the last figures", () => {
    const h = harness();
    h.read(0, 0, 10);
    h.read(10_000, 2_000, 10);
    // The next read failed: the last figures stand, with their stamp.
    const kept = h.deps.deliveryReads.get("ns/p") as DeliveryRead;
    h.deps.deliveryReads.set("ns/p", { ...kept, at: T0 + 20_000, failures: 1 });
    const o = {} as Observation;
    adviseCapacityStep("ns/p", pipeline(), o, h.deps);
    expect(o.capacity?.samples).toBe(2);
    expect(o.capacity?.ingest.meanPerSecond).toBe(200);
  });

  it("does not rewrite an idle pipeline's advice once its window is full, though the window's span and samples drift", () => {
    const h = harness(); // a 60 s window: a sample every 0.5 s at most, reads every 0.6-0.9 s
    let t = 0;
    let seed = 7;
    const jitter = () => ((seed = (seed * 48271) % 2147483647) % 300) + 600;
    const advices = new Set<unknown>();
    const spans = new Set<number>();
    const counts = new Set<number>();
    let shown: Observation["capacity"];
    while (t < 300_000) {
      const o = h.read(t, 5_000, 20); // no event in five minutes
      if (t > 70_000) {
        advices.add(o.capacity);
        shown = o.capacity;
        // The window as it is now, not as first shown.
        const samples = (h.deps.capacity.get("ns/p") as CapacityState).samples;
        counts.add(samples.length);
        spans.add(Math.round(((samples.at(-1)?.at ?? 0) - (samples[0]?.at ?? 0)) / 1000));
      }
      t += jitter();
    }
    // The window did drift (so the test could see a rewrite), yet the advice stayed as written.
    expect(spans.size).toBeGreaterThan(1);
    expect(counts.size).toBeGreaterThan(1);
    expect(advices.size).toBe(1);
    expect(shown?.ingest.meanPerSecond).toBe(0);
    expect(shown?.windowSeconds).toBeGreaterThanOrEqual(57); // a window that filled was rewritten
  });
});
