import { describe, expect, it } from "vitest";
import { choosePartition, fnv1a } from "./partitioner.js";

const plan = { partitions: 6, priorityLevels: new Set(["ERROR", "FATAL"]), reserved: 1 };

describe("choosePartition", () => {
  it("routes priority levels to the reserved partitions and nothing else there", () => {
    for (let i = 0; i < 500; i++) {
      const source = `svc-${i}`;
      expect(choosePartition({ level: "ERROR", source }, plan)).toBe(0);
      expect(choosePartition({ level: "INFO", source }, plan)).toBeGreaterThanOrEqual(1);
      expect(choosePartition({ level: "INFO", source }, plan)).toBeLessThan(6);
    }
  });

  it("keeps one source on one partition, and spreads sources over the others", () => {
    const a = choosePartition({ level: "INFO", source: "checkout" }, plan);
    expect(choosePartition({ level: "WARN", source: "checkout" }, plan)).toBe(a);
    const used = new Set(
      Array.from({ length: 200 }, (_, i) => choosePartition({ level: "INFO", source: `s${i}` }, plan)),
    );
    expect([...used].sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it("uses every partition by hash when no partition is reserved or the topic is too small", () => {
    expect(choosePartition({ level: "ERROR", source: "x" }, { ...plan, reserved: 0 })).toBe(fnv1a("x") % 6);
    expect(choosePartition({ level: "ERROR", source: "x" }, { ...plan, partitions: 1 })).toBe(0);
  });

  it("is FNV-1a (published test vectors): stable across versions, as a partitioner must be", () => {
    expect(fnv1a("")).toBe(0x811c9dc5);
    expect(fnv1a("a")).toBe(0xe40c292c);
    expect(fnv1a("foobar")).toBe(0xbf9cf968);
  });
});
