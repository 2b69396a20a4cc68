import { describe, expect, it } from "vitest";
import { adviseCapacity, type CapacityInput, type FlowSample, round2 } from "./capacity.js";

const GiB = 2 ** 30;
const T0 = Date.parse("2026-12-01T10:00:00Z");

/**
 * Samples every 15 s: `ingest` events/s arrive, the consumers take `consumed` events/s (at
 * most what waits), starting with `lag0` waiting.
 */
function flow(o: { ingest: number[]; consumed: number; consumers?: number; lag0?: number }): FlowSample[] {
  const out: FlowSample[] = [];
  let processed = 1_000_000;
  let lag = o.lag0 ?? 0;
  out.push({ at: T0, processed, lag, consumers: o.consumers ?? 1 });
  o.ingest.forEach((rate, k) => {
    const arrived = rate * 15;
    const taken = Math.min(lag + arrived, o.consumed * 15);
    processed += taken;
    lag += arrived - taken;
    out.push({ at: T0 + (k + 1) * 15_000, processed, lag, consumers: o.consumers ?? 1 });
  });
  return out;
}

const base = (over: Partial<CapacityInput> = {}): CapacityInput => ({
  now: T0 + 3_600_000,
  samples: flow({ ingest: [100, 100, 100, 100], consumed: 10_000 }),
  partitions: 3,
  kafka: { retentionHours: 168, replicationFactor: 1, bytesPerEvent: 400 },
  postgres: {
    retentionDays: 7,
    volumeBytes: 10 * GiB,
    volumeSource: "managed",
    databaseBytes: 200e6,
    eventsBytes: 150e6,
    events: 300_000,
  },
  assumedPerReplica: 5000,
  utilisation: 0.8,
  planningDays: 30,
  ...over,
});

describe("adviseCapacity", () => {
  it("says nothing until two readings span some time", () => {
    expect(adviseCapacity(base({ samples: [] }))).toBeUndefined();
    expect(adviseCapacity(base({ samples: flow({ ingest: [], consumed: 1 }) }))).toBeUndefined();
    const [one] = flow({ ingest: [], consumed: 1 });
    expect(adviseCapacity(base({ samples: [one as FlowSample, one as FlowSample] }))).toBeUndefined();
  });

  // Each row: the flow, the partitions, and what the advice must say about them.
  const partitionRows: {
    name: string;
    samples: FlowSample[];
    partitions: number;
    want: { mean: number; peak: number; perReplica: number; source: string; needed: number; risk: boolean };
  }[] = [
    {
      name: "a steady 100/s the consumers keep up with: the assumed rate, one partition is enough",
      samples: flow({ ingest: [100, 100, 100, 100], consumed: 10_000 }),
      partitions: 3,
      want: { mean: 100, peak: 100, perReplica: 5000, source: "assumed", needed: 1, risk: false },
    },
    {
      name: "a burst the consumers fall behind on: their rate is measured, the peak needs more partitions",
      samples: flow({ ingest: [100, 3000, 3000, 100], consumed: 500, consumers: 1 }),
      partitions: 3,
      want: { mean: 1600, peak: 3000, perReplica: 500, source: "measured", needed: 8, risk: true },
    },
    {
      name: "the same burst with two replicas behind: the rate is per replica",
      samples: flow({ ingest: [100, 3000, 3000, 100], consumed: 1000, consumers: 2 }),
      partitions: 8,
      want: { mean: 1600, peak: 3000, perReplica: 500, source: "measured", needed: 8, risk: false },
    },
    {
      name: "a high rate with events always in flight is not saturation: the assumed rate stands",
      samples: [0, 1, 2, 3].map((k) => ({
        at: T0 + k * 15_000,
        processed: k * 22_500,
        lag: 150,
        consumers: 1,
      })),
      partitions: 3,
      want: { mean: 1500, peak: 1500, perReplica: 5000, source: "assumed", needed: 1, risk: false },
    },
    {
      name: "nothing flows: no rate, nothing at risk",
      samples: flow({ ingest: [0, 0, 0], consumed: 1000 }),
      partitions: 1,
      want: { mean: 0, peak: 0, perReplica: 5000, source: "assumed", needed: 1, risk: false },
    },
  ];
  for (const row of partitionRows)
    it(`partitions: ${row.name}`, () => {
      // No volume stated: only the partitions can be at risk here.
      const a = adviseCapacity(
        base({ samples: row.samples, partitions: row.partitions, postgres: { retentionDays: 7 } }),
      );
      expect(a).toMatchObject({
        ingest: { meanPerSecond: row.want.mean, peakPerSecond: row.want.peak },
        consumer: { perReplicaPerSecond: row.want.perReplica, source: row.want.source },
        partitions: { current: row.partitions, needed: row.want.needed },
      });
      const rec = a?.recommendations.find((r) => r.subject === "partitions");
      expect(rec?.advice).toBe(row.want.risk ? `raise kafka.topic.partitions to ${row.want.needed}` : "none");
      expect(rec?.figures.peakEventsPerSecond).toBe(String(row.want.peak));
      expect(a?.atRisk).toBe(row.want.risk);
    });

  const volumeRows: {
    name: string;
    rate: number;
    postgres: Partial<CapacityInput["postgres"]>;
    want: { daysUntilFull?: number; supported?: number; risk: boolean; advice: RegExp };
  }[] = [
    {
      // 100/s × 500 B = 4.32 GB a day; 10 GiB less 50 MB fixed holds 2.5 days < 7.
      name: "a volume that fills before the retention",
      rate: 100,
      postgres: {},
      want: {
        daysUntilFull: 2.4,
        supported: 2.5,
        risk: true,
        advice: /grow the volume to .*or lower postgres.retentionDays to 2/,
      },
    },
    {
      name: "a volume that holds the retention",
      rate: 10,
      postgres: {},
      want: { supported: 25, risk: false, advice: /^none$/ },
    },
    {
      name: "kept for ever, full within the planning horizon",
      rate: 10,
      postgres: { retentionDays: 0 },
      want: { daysUntilFull: 24, supported: 25, risk: true, advice: /or set postgres.retentionDays/ },
    },
    {
      name: "kept for ever, full beyond the planning horizon",
      rate: 1,
      postgres: { retentionDays: 0 },
      want: { daysUntilFull: 240, supported: 250, risk: false, advice: /^none$/ },
    },
  ];
  for (const row of volumeRows)
    it(`PostgreSQL volume: ${row.name}`, () => {
      const a = adviseCapacity(
        base({
          samples: flow({ ingest: [row.rate, row.rate, row.rate], consumed: 10_000 }),
          postgres: { ...base().postgres, eventsBytes: 150e6, events: 300_000, ...row.postgres },
        }),
      );
      expect(a?.postgres.bytesPerEvent).toBe(500);
      expect(a?.postgres.daysUntilFull).toBe(row.want.daysUntilFull);
      expect(a?.postgres.retentionDaysSupported).toBe(row.want.supported);
      expect(a?.atRisk).toBe(row.want.risk);
      const rec = a?.recommendations.find((r) => r.subject === "postgresVolume");
      expect(rec?.advice).toMatch(row.want.advice);
      expect(rec?.figures).toMatchObject({ bytesPerEvent: "500", meanEventsPerSecond: String(row.rate) });
    });

  it("gives no volume advice without a volume size (an external server that states none)", () => {
    const a = adviseCapacity(base({ postgres: { retentionDays: 7, databaseBytes: 1e9 } }));
    expect(a?.recommendations.map((r) => r.subject)).toEqual(["partitions", "kafkaDisk"]);
    expect(a?.postgres).toEqual({ databaseBytes: 1e9 });
  });

  it("bounds Kafka's disk from the measured record size, the rate and the retention", () => {
    const a = adviseCapacity(
      base({ kafka: { retentionHours: 24, replicationFactor: 3, bytesPerEvent: 400 }, partitions: 4 }),
    );
    // 100/s × 400 B × 86,400 s × 3 replicas; 25/s per partition × 400 B × 86,400 s.
    expect(a?.kafka).toEqual({
      bytesPerEvent: 400,
      bytesPerDay: round2(1.0368e10),
      logBytesPerPartition: round2(8.64e8),
    });
  });

  it("names the window it measured: when its newest reading was taken, and its span", () => {
    const a = adviseCapacity(base());
    // Four intervals of 15 s from T0; the advice is computed an hour later (now), which it does not claim.
    expect(a?.windowEnd).toBe("2026-12-01T10:01:00Z");
    expect(a?.windowSeconds).toBe(60);
    expect(a?.samples).toBe(5);
  });

  it("makes no rate of a counter that went backwards (a ledger reset)", () => {
    const s = flow({ ingest: [100, 100], consumed: 10_000 });
    s.push({ at: T0 + 45_000, processed: 0, lag: 0, consumers: 1 });
    const a = adviseCapacity(base({ samples: s }));
    expect(a?.ingest.meanPerSecond).toBe(0);
    expect(a?.ingest.peakPerSecond).toBe(100);
  });

  it("rounds so that readings a little apart give the same advice (no status churn)", () => {
    const a = adviseCapacity(base({ samples: flow({ ingest: [1000, 1000, 1000], consumed: 10_000 }) }));
    const b = adviseCapacity(base({ samples: flow({ ingest: [1001, 1002, 1000], consumed: 10_000 }) }));
    expect(b).toEqual(a);
  });
});
