import { describe, expect, it } from "vitest";
import { AppliedChildren } from "./applied.js";
import { cachedChild } from "./observe.js";

const owner = {
  apiVersion: "logpipeline.io/v1alpha1",
  kind: "LogPipeline",
  name: "p",
  uid: "u1",
  controller: true,
};
const ownMeta = {
  name: "p-producer",
  namespace: "ns",
  labels: { "app.kubernetes.io/instance": "p" },
  annotations: { "logpipeline.io/config-hash": "h1" },
  ownerReferences: [owner],
};
const deployment = (image: string) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: ownMeta,
  spec: { template: { spec: { containers: [{ name: "producer", image }] } } },
});
const live = (generation: number, resourceVersion: string, meta: Record<string, unknown> = {}) => ({
  ...deployment("a"),
  metadata: { ...ownMeta, generation, resourceVersion, ...meta },
});

describe("AppliedChildren", () => {
  it("leaves alone a child whose status alone changed, not one whose spec or wanted state did", () => {
    const a = new AppliedChildren();
    const ref = "Deployment/ns/p-producer";
    expect(a.unchanged("ns/p", ref, deployment("a"), live(3, "100"))).toBe(false); // never applied
    a.record("ns/p", ref, deployment("a"), live(3, "100"));
    // A status update: new resourceVersion, same generation — and no time-based re-apply.
    expect(a.unchanged("ns/p", ref, deployment("a"), live(3, "140"))).toBe(true);
    // Someone edited the spec: the generation moved.
    expect(a.unchanged("ns/p", ref, deployment("a"), live(4, "150"))).toBe(false);
    // The operator wants something else now.
    expect(a.unchanged("ns/p", ref, deployment("b"), live(3, "140"))).toBe(false);
    // Deleted (not in the cache).
    expect(a.unchanged("ns/p", ref, deployment("a"), undefined)).toBe(false);
  });

  it("applies again when another manager changed the operator's labels, annotations or owner reference", () => {
    const a = new AppliedChildren();
    const ref = "Deployment/ns/p-producer";
    a.record("ns/p", ref, deployment("a"), live(3, "100"));
    // Another manager's own additions are theirs: nothing to put back.
    const added = live(3, "101", {
      labels: { ...ownMeta.labels, team: "x" },
      annotations: { ...ownMeta.annotations, "x/y": "z" },
    });
    expect(a.unchanged("ns/p", ref, deployment("a"), added)).toBe(true);
    // A label removed, an annotation changed, the owner reference dropped: generation unchanged, applied over.
    expect(a.unchanged("ns/p", ref, deployment("a"), live(3, "102", { labels: {} }))).toBe(false);
    expect(
      a.unchanged(
        "ns/p",
        ref,
        deployment("a"),
        live(3, "103", { annotations: { "logpipeline.io/config-hash": "h0" } }),
      ),
    ).toBe(false);
    expect(a.unchanged("ns/p", ref, deployment("a"), live(3, "104", { ownerReferences: [] }))).toBe(false);
    expect(
      a.unchanged(
        "ns/p",
        ref,
        deployment("a"),
        live(3, "105", { ownerReferences: [{ ...owner, controller: false }] }),
      ),
    ).toBe(false);
  });

  it("compares the content of kinds without a generation (not their status), and forgets on request", () => {
    const a = new AppliedChildren();
    const svc = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "s", namespace: "ns" },
      spec: { ports: [80] },
    };
    const at = (rv: string, ports = [80], status: unknown = {}) => ({
      ...svc,
      metadata: { ...svc.metadata, resourceVersion: rv },
      spec: { ports },
      status,
    });
    a.record("ns/p", "Service/ns/s", svc, at("7"));
    expect(a.unchanged("ns/p", "Service/ns/s", svc, at("7"))).toBe(true);
    // A status-only update moves the resourceVersion, not the content.
    expect(a.unchanged("ns/p", "Service/ns/s", svc, at("8", [80], { loadBalancer: {} }))).toBe(true);
    // Someone edited the spec.
    expect(a.unchanged("ns/p", "Service/ns/s", svc, at("9", [81]))).toBe(false);
    // As the child cache keeps it (only the content's hash).
    expect(a.unchanged("ns/p", "Service/ns/s", svc, cachedChild(at("10")))).toBe(true);
    a.forget("ns/p", "Service/ns/s");
    expect(a.unchanged("ns/p", "Service/ns/s", svc, at("7"))).toBe(false);
    a.record("ns/p", "Service/ns/s", svc, at("7"));
    a.forget("ns/p");
    expect(a.unchanged("ns/p", "Service/ns/s", svc, at("7"))).toBe(false);
  });
});
