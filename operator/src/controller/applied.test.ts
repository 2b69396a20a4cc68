import { describe, expect, it } from "vitest";
import { AppliedChildren } from "./applied.js";

const deployment = (image: string) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "p-producer", namespace: "ns" },
  spec: { template: { spec: { containers: [{ name: "producer", image }] } } },
});
const live = (generation: number, resourceVersion: string) => ({
  ...deployment("a"),
  metadata: { name: "p-producer", namespace: "ns", generation, resourceVersion },
});

describe("AppliedChildren", () => {
  it("leaves alone a child whose status alone changed, not one whose spec or wanted state did", () => {
    const a = new AppliedChildren(60_000);
    const ref = "Deployment/ns/p-producer";
    expect(a.unchanged("ns/p", ref, deployment("a"), live(3, "100"), 0)).toBe(false); // never applied
    a.record("ns/p", ref, deployment("a"), live(3, "100"), 0);
    // A status update: new resourceVersion, same generation.
    expect(a.unchanged("ns/p", ref, deployment("a"), live(3, "140"), 1000)).toBe(true);
    // Someone edited the spec: the generation moved.
    expect(a.unchanged("ns/p", ref, deployment("a"), live(4, "150"), 1000)).toBe(false);
    // The operator wants something else now.
    expect(a.unchanged("ns/p", ref, deployment("b"), live(3, "140"), 1000)).toBe(false);
    // Deleted (not in the cache).
    expect(a.unchanged("ns/p", ref, deployment("a"), undefined, 1000)).toBe(false);
    // The periodic re-apply.
    expect(a.unchanged("ns/p", ref, deployment("a"), live(3, "140"), 60_000)).toBe(false);
  });

  it("compares the resourceVersion of kinds without a generation, and forgets on request", () => {
    const a = new AppliedChildren(60_000);
    const svc = { apiVersion: "v1", kind: "Service", metadata: { name: "s", namespace: "ns" }, spec: {} };
    const at = (rv: string) => ({ ...svc, metadata: { ...svc.metadata, resourceVersion: rv } });
    a.record("ns/p", "Service/ns/s", svc, at("7"), 0);
    expect(a.unchanged("ns/p", "Service/ns/s", svc, at("7"), 1)).toBe(true);
    expect(a.unchanged("ns/p", "Service/ns/s", svc, at("8"), 1)).toBe(false);
    a.forget("ns/p", "Service/ns/s");
    expect(a.unchanged("ns/p", "Service/ns/s", svc, at("7"), 1)).toBe(false);
    a.record("ns/p", "Service/ns/s", svc, at("7"), 0);
    a.forget("ns/p");
    expect(a.unchanged("ns/p", "Service/ns/s", svc, at("7"), 1)).toBe(false);
  });
});
