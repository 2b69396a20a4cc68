import { describe, expect, it } from "vitest";
import { type Lease, LeaderElector, type LeaseSpec, type LeaseStore } from "./leader.js";

/** An in-memory Lease with the API server's optimistic concurrency (resourceVersion). */
class MemoryLeaseStore implements LeaseStore {
  lease: Lease | undefined;
  private rv = 0;
  get() {
    return Promise.resolve(this.lease ? structuredClone(this.lease) : undefined);
  }
  create(spec: LeaseSpec) {
    if (this.lease) return Promise.reject(new Error("AlreadyExists"));
    this.lease = { metadata: { name: "l", namespace: "ns", resourceVersion: String(++this.rv) }, spec };
    return Promise.resolve(structuredClone(this.lease));
  }
  update(l: Lease) {
    if (l.metadata.resourceVersion !== this.lease?.metadata.resourceVersion)
      return Promise.reject(new Error("Conflict"));
    this.lease = { metadata: { ...l.metadata, resourceVersion: String(++this.rv) }, spec: l.spec };
    return Promise.resolve(structuredClone(this.lease));
  }
}

function elector(store: LeaseStore, identity: string, clock: { now: Date }) {
  return new LeaderElector(store, {
    identity,
    leaseDurationSeconds: 15,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    onStartedLeading: () => undefined,
    onStoppedLeading: () => undefined,
    now: () => clock.now,
  });
}

describe("LeaderElector", () => {
  it("one holder at a time; another takes over only after the lease expires", async () => {
    const store = new MemoryLeaseStore();
    const clock = { now: new Date("2026-01-01T00:00:00Z") };
    const a = elector(store, "a", clock);
    const b = elector(store, "b", clock);
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(await b.tryAcquireOrRenew()).toBe(false);
    clock.now = new Date(clock.now.getTime() + 10_000);
    expect(await a.tryAcquireOrRenew()).toBe(true); // renewal
    clock.now = new Date(clock.now.getTime() + 14_000);
    expect(await b.tryAcquireOrRenew()).toBe(false); // 14 s since the renewal: still held
    clock.now = new Date(clock.now.getTime() + 2_000);
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
  });

  it("loses a race on the resourceVersion instead of overwriting the winner", async () => {
    const store = new MemoryLeaseStore();
    const clock = { now: new Date("2026-01-01T00:00:00Z") };
    await elector(store, "a", clock).tryAcquireOrRenew();
    clock.now = new Date(clock.now.getTime() + 60_000);
    const stale = await store.get();
    expect(await elector(store, "b", clock).tryAcquireOrRenew()).toBe(true);
    if (!stale) throw new Error("no lease");
    await expect(store.update({ ...stale, spec: { ...stale.spec, holderIdentity: "c" } })).rejects.toThrow(
      "Conflict",
    );
    expect(store.lease?.spec.holderIdentity).toBe("b");
  });

  it("releases the lease on stop so the next leader need not wait it out", async () => {
    const store = new MemoryLeaseStore();
    const clock = { now: new Date("2026-01-01T00:00:00Z") };
    const a = elector(store, "a", clock);
    const run = a.run();
    await new Promise((r) => setTimeout(r, 20));
    expect(a.isLeader).toBe(true);
    await a.stop();
    await run;
    expect(store.lease?.spec.holderIdentity).toBe("");
    clock.now = new Date(clock.now.getTime() + 1_500);
    expect(await elector(store, "b", clock).tryAcquireOrRenew()).toBe(true);
  });
});
