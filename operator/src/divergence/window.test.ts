import { describe, expect, it } from "vitest";
import {
  closedWindow,
  compareWindow,
  type KafkaRecordRef,
  type LedgerEntry,
  stuckState,
  sweepWindow,
} from "./window.js";

const rec = (offset: number, eventId?: string): KafkaRecordRef => ({ offset, eventId });
const row = (offset: number, eventId: string): LedgerEntry => ({ offset, eventId, kind: "row" });

describe("compareWindow", () => {
  // Offsets 0..5: records at 0, 1, 2 (a transaction), a marker at 3, an aborted record at 4,
  // its abort marker at 5, then 6 and 7 committed.
  const records = [rec(0, "a"), rec(1, "b"), rec(2, "c"), rec(6, "d"), rec(7, "e")];
  const delivered = [row(0, "a"), row(1, "b"), row(2, "c"), row(6, "d"), row(7, "e")];

  it("finds nothing when every committed record has exactly one entry (markers and aborts never count)", () => {
    const f = compareWindow(records, delivered);
    expect(f).toMatchObject({ kafkaRecords: 5, ledgerEntries: 5, missing: 0, duplicated: 0, spurious: 0 });
  });

  it("counts a skipped duplicate and a dead letter as delivered", () => {
    const f = compareWindow(
      [...records, rec(8, "a"), rec(9)],
      [
        ...delivered,
        { offset: 8, eventId: "a", kind: "duplicate" },
        { offset: 9, eventId: null, kind: "deadLetter" },
      ],
    );
    expect(f).toMatchObject({ missing: 0, duplicated: 0, spurious: 0 });
  });

  it("reports a deleted row as missing, with its event id", () => {
    const f = compareWindow(
      records,
      delivered.filter((e) => e.eventId !== "c"),
    );
    expect(f).toMatchObject({ missing: 1, duplicated: 0, spurious: 0 });
    expect(f.samples.missing).toEqual(["c"]);
  });

  it("reports a row no committed record produced (an aborted offset, or none) as spurious", () => {
    const f = compareWindow(records, [...delivered, row(4, "x"), row(3, "y")]);
    expect(f).toMatchObject({ missing: 0, duplicated: 0, spurious: 2 });
    expect(f.samples.spurious.sort()).toEqual(["x", "y"]);
  });

  it("reports a record stored twice as duplicated", () => {
    const f = compareWindow(records, [
      ...delivered,
      row(1, "b-copy"),
      { offset: 2, eventId: "c", kind: "duplicate" },
    ]);
    expect(f).toMatchObject({ missing: 0, duplicated: 2, spurious: 0 });
    expect(f.samples.duplicated.sort()).toEqual(["b", "c"]);
  });

  it("reports a row under the wrong id as the record missing and the row spurious", () => {
    const f = compareWindow(records, [...delivered.filter((e) => e.offset !== 6), row(6, "not-d")]);
    expect(f).toMatchObject({ missing: 1, duplicated: 0, spurious: 1 });
  });

  it("counts a record older than the retention with no row as expired, not missing", () => {
    const day = 86_400_000;
    const timed = [
      { offset: 0, eventId: "old", eventTime: 10 * day },
      { offset: 1, eventId: "young", eventTime: 40 * day },
    ];
    // Retention 30 days at day 45: "old" (day 10) was deleted by it, "young" must be there.
    expect(compareWindow(timed, [], 10, 15 * day)).toMatchObject({ missing: 1, expired: 1 });
    expect(compareWindow(timed, [], 10, 15 * day).samples.missing).toEqual(["young"]);
    // Without a retention both are missing; a row still there for an old event is fine.
    expect(compareWindow(timed, [], 10)).toMatchObject({ missing: 2, expired: 0 });
    expect(compareWindow(timed, [row(0, "old"), row(1, "young")], 10, 15 * day)).toMatchObject({
      missing: 0,
      expired: 0,
      spurious: 0,
    });
  });

  it("bounds its samples", () => {
    const many = Array.from({ length: 100 }, (_, i) => rec(i, `e${i}`));
    const f = compareWindow(many, [], 10);
    expect(f.missing).toBe(100);
    expect(f.samples.missing).toHaveLength(10);
  });
});

describe("closedWindow", () => {
  it("covers the latest offsets the consumer has passed, never before the log start", () => {
    expect(closedWindow(0, 25_000, 10_000)).toEqual({ from: 15_000, to: 25_000 });
    expect(closedWindow(20_000, 25_000, 10_000)).toEqual({ from: 20_000, to: 25_000 });
    expect(closedWindow(0, 0, 10_000)).toEqual({ from: 0, to: 0 });
  });
});

describe("sweepWindow", () => {
  it("walks down below the latest window to the log start, then starts again below the latest", () => {
    const latest = { from: 25_000, to: 35_000 };
    const first = sweepWindow(0, latest, undefined, 10_000);
    expect(first).toEqual({ from: 15_000, to: 25_000 });
    const second = sweepWindow(0, latest, first?.from, 10_000);
    expect(second).toEqual({ from: 5_000, to: 15_000 });
    const third = sweepWindow(0, latest, second?.from, 10_000);
    expect(third).toEqual({ from: 0, to: 5_000 });
    // At the log start: again from the top, which has moved up meanwhile.
    expect(sweepWindow(0, { from: 40_000, to: 50_000 }, third?.from, 10_000)).toEqual({
      from: 30_000,
      to: 40_000,
    });
  });

  it("never goes below the log start (retention) and has nothing to do when the latest window is all", () => {
    expect(sweepWindow(20_000, { from: 25_000, to: 35_000 }, undefined, 10_000)).toEqual({
      from: 20_000,
      to: 25_000,
    });
    // A cursor Kafka's retention has since passed: from the top again.
    expect(sweepWindow(22_000, { from: 25_000, to: 35_000 }, 21_000, 10_000)).toEqual({
      from: 22_000,
      to: 25_000,
    });
    expect(sweepWindow(0, { from: 0, to: 8_000 }, undefined, 10_000)).toBeUndefined();
  });
});

describe("stuckState", () => {
  it("is stuck only when the position stood still for the whole period while committed work waits", () => {
    const first = stuckState(undefined, { storedNext: 10, lag: 5 }, 0, 10_000);
    expect(first).toEqual({ stuck: false, mark: { storedNext: 10, since: 0 } });
    expect(stuckState(first.mark, { storedNext: 10, lag: 7 }, 5_000, 10_000).stuck).toBe(false);
    expect(stuckState(first.mark, { storedNext: 10, lag: 7 }, 10_000, 10_000).stuck).toBe(true);
    // It moved: a new mark, not stuck.
    expect(stuckState(first.mark, { storedNext: 12, lag: 7 }, 20_000, 10_000)).toEqual({
      stuck: false,
      mark: { storedNext: 12, since: 20_000 },
    });
    // Nothing to do is not stuck.
    expect(stuckState(first.mark, { storedNext: 10, lag: 0 }, 60_000, 10_000).stuck).toBe(false);
  });
});
