import { describe, expect, it } from "vitest";
import { closedWindow, compareWindow, type KafkaRecordRef, type LedgerEntry, stuckState } from "./window.js";

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
