import { describe, expect, it } from "vitest";
import { ledgerNames } from "./ledger.js";
import {
  bucketOf,
  DAY_MS,
  FUTURE_SKEW_MS,
  HOUR_MS,
  isClosed,
  KEY_OVERLAP_MS,
  keyBuckets,
  LATE_WINDOW_MS,
  storedTime,
} from "./storage.js";

const T = Date.parse("2026-12-01T15:30:00Z");

describe("storedTime: the out-of-range rule", () => {
  it("keeps a time inside [receivedAt − late window, receivedAt + skew], and clamps one outside", () => {
    expect(storedTime(T - 60_000, T)).toEqual({ ms: T - 60_000, clamped: false });
    expect(storedTime(T - LATE_WINDOW_MS, T)).toEqual({ ms: T - LATE_WINDOW_MS, clamped: false });
    expect(storedTime(T - LATE_WINDOW_MS - 1, T)).toEqual({ ms: T - LATE_WINDOW_MS, clamped: true });
    expect(storedTime(0, T)).toEqual({ ms: T - LATE_WINDOW_MS, clamped: true });
    expect(storedTime(T + FUTURE_SKEW_MS, T)).toEqual({ ms: T + FUTURE_SKEW_MS, clamped: false });
    expect(storedTime(T + 365 * DAY_MS, T)).toEqual({ ms: T + FUTURE_SKEW_MS, clamped: true });
  });
});

describe("keyBuckets: the key partitions a key is written into", () => {
  const day = bucketOf(T, DAY_MS);
  it("is the day's own partition away from a boundary", () => {
    expect(keyBuckets(day + 12 * HOUR_MS)).toEqual([day]);
  });
  it("adds the neighbour within the overlap of either boundary", () => {
    expect(keyBuckets(day + KEY_OVERLAP_MS - 1)).toEqual([day - DAY_MS, day]);
    expect(keyBuckets(day + KEY_OVERLAP_MS)).toEqual([day]);
    expect(keyBuckets(day + DAY_MS - KEY_OVERLAP_MS)).toEqual([day, day + DAY_MS]);
  });
  it("makes two writes straddling a boundary, closer than the overlap, share a partition", () => {
    for (const gap of [1, 1000, 60_000, KEY_OVERLAP_MS - 1]) {
      for (const before of [1, gap / 2, gap - 1]) {
        const a = keyBuckets(day + DAY_MS - before);
        const b = keyBuckets(day + DAY_MS - before + gap);
        expect(
          a.some((x) => b.includes(x)),
          `gap ${String(gap)} before ${String(before)}`,
        ).toBe(true);
      }
    }
  });
});

describe("partition names and closing", () => {
  it("names partitions by their start, and fits a long table name within PostgreSQL's 63 bytes", () => {
    const n = ledgerNames("s", "logs");
    expect(n.storage.partition("events", T)).toBe("logs_p20261201t15");
    expect(n.storage.partition("keys", T)).toBe("logs_k20261201");
    const long = ledgerNames("s", "a".repeat(63));
    for (const t of ["events", "countsMinute", "countsHour", "keys"] as const)
      expect(long.storage.partition(t, T).length).toBeLessThanOrEqual(63);
    expect(long.storage.legacy.bare.length).toBeLessThanOrEqual(63);
  });
  it("closes a partition once its upper bound plus the late window has passed", () => {
    const p = { to: bucketOf(T) + HOUR_MS };
    expect(isClosed(p, p.to + LATE_WINDOW_MS - 1)).toBe(false);
    expect(isClosed(p, p.to + LATE_WINDOW_MS)).toBe(true);
  });
});
