import { describe, expect, it } from "vitest";
import { sweepFromStatus } from "./divergence.js";

const row = (partition: number, sweepFrom?: number) => ({
  partition,
  lastStableOffset: 100,
  storedNextOffset: 100,
  lag: 0,
  stuck: false,
  windowFrom: 90,
  windowTo: 100,
  kafkaRecords: 10,
  missing: 0,
  duplicated: 0,
  spurious: 0,
  ...(sweepFrom !== undefined ? { sweepFrom, sweepTo: sweepFrom + 10 } : {}),
});

describe("sweepFromStatus", () => {
  it("goes on from where the recorded sweep stood, per partition (a restart does not start it over)", () => {
    const status = { divergence: { partitions: [row(0, 40), row(1), row(2, 0)] } };
    expect([...sweepFromStatus(status)]).toEqual([
      [0, 40],
      [2, 0],
    ]);
    expect(sweepFromStatus(undefined).size).toBe(0);
  });
});
