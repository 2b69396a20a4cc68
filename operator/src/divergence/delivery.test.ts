import { describe, expect, it } from "vitest";
import { deliveryStatus, type LedgerRow } from "./delivery.js";

const row = (partition: number, nextOffset: number, extra: Partial<LedgerRow> = {}): LedgerRow => ({
  partition,
  nextOffset,
  applied: 0,
  duplicatesSkipped: 0,
  deadLettered: 0,
  ...extra,
});

describe("deliveryStatus", () => {
  const at = new Date("2026-01-01T00:00:00.123Z");

  it("uses the committed-record count where it was read, the offset gap elsewhere", () => {
    const d = deliveryStatus(
      new Map([
        [0, 110],
        [1, 50],
        [2, 20_000],
      ]),
      [row(0, 109), row(1, 10)],
      new Map([[1, 38]]),
      at,
    );
    expect(d.partitions).toEqual([
      { partition: 0, lastStableOffset: 110, dbNextOffset: 109, lag: 1 },
      { partition: 1, lastStableOffset: 50, dbNextOffset: 10, lag: 38 },
      { partition: 2, lastStableOffset: 20_000, dbNextOffset: 0, lag: 20_000 },
    ]);
    expect(d.lag).toBe(20_039);
    expect(d.asOf).toBe("2026-01-01T00:00:00Z");
  });

  it("a drained partition whose gap is only transaction markers has lag 0", () => {
    const d = deliveryStatus(new Map([[0, 110]]), [row(0, 109)], new Map([[0, 0]]), at);
    expect(d.lag).toBe(0);
  });

  it("sums dead letters and duplicates over the ledger", () => {
    const d = deliveryStatus(
      new Map([
        [0, 5],
        [1, 5],
      ]),
      [row(0, 5, { deadLettered: 2, duplicatesSkipped: 1 }), row(1, 5, { deadLettered: 1 })],
      new Map(),
      at,
    );
    expect(d).toMatchObject({ lag: 0, dlq: 3, duplicatesSkipped: 1 });
  });
});
