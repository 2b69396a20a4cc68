import { describe, expect, it } from "vitest";
import { histogramWidthMs, MINUTE_MS, minuteRange } from "./counts.js";

describe("histogram widths and count ranges", () => {
  it("widens a range to whole minutes", () => {
    const r = minuteRange({
      from: new Date("2026-12-01T10:00:59.999Z"),
      to: new Date("2026-12-01T11:30:30Z"),
    });
    expect(new Date(r.from).toISOString()).toBe("2026-12-01T10:00:00.000Z");
    expect(new Date(r.to).toISOString()).toBe("2026-12-01T11:31:00.000Z");
  });
  it("picks the smallest nice width giving at most the buckets asked for", () => {
    const day = { from: 0, to: 24 * 60 * MINUTE_MS };
    expect(histogramWidthMs(day, 24) / MINUTE_MS).toBe(60);
    expect(histogramWidthMs(day, 100) / MINUTE_MS).toBe(15);
    expect(histogramWidthMs(day, 1440) / MINUTE_MS).toBe(1);
    expect(histogramWidthMs({ from: 0, to: 60 * 24 * 60 * MINUTE_MS }, 10) / MINUTE_MS).toBe(6 * 1440);
  });
});
