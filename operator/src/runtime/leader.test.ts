import { afterEach, describe, expect, it, vi } from "vitest";
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

function elector(store: LeaseStore, identity: string, clock: { now: Date }, skewMs = 0) {
  return new LeaderElector(store, {
    identity,
    leaseDurationSeconds: 15,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    onStartedLeading: () => undefined,
    onStoppedLeading: () => undefined,
    now: () => new Date(clock.now.getTime() + skewMs),
    monotonicMs: () => clock.now.getTime(),
  });
}

const advance = (clock: { now: Date }, ms: number) => (clock.now = new Date(clock.now.getTime() + ms));

describe("LeaderElector", () => {
  it("one holder at a time; another takes over only after seeing the lease unchanged for its duration", async () => {
    const store = new MemoryLeaseStore();
    const clock = { now: new Date("2026-01-01T00:00:00Z") };
    const a = elector(store, "a", clock);
    const b = elector(store, "b", clock);
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(await b.tryAcquireOrRenew()).toBe(false); // b sees a's record at 0 s
    advance(clock, 10_000);
    expect(await a.tryAcquireOrRenew()).toBe(true); // renewal at 10 s
    advance(clock, 4_000);
    expect(await b.tryAcquireOrRenew()).toBe(false); // b sees the renewal at 14 s
    advance(clock, 14_000);
    expect(await b.tryAcquireOrRenew()).toBe(false); // 14 s since b saw it change: still held
    advance(clock, 2_000);
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
  });

  it("a standby whose clock runs an hour ahead does not take over a live leader", async () => {
    const store = new MemoryLeaseStore();
    const clock = { now: new Date("2026-01-01T00:00:00Z") };
    const a = elector(store, "a", clock);
    const ahead = elector(store, "b", clock, 3_600_000);
    const behind = elector(store, "c", clock, -3_600_000);
    expect(await a.tryAcquireOrRenew()).toBe(true);
    for (let i = 0; i < 30; i++) {
      advance(clock, 2_000);
      expect(await ahead.tryAcquireOrRenew()).toBe(false);
      expect(await behind.tryAcquireOrRenew()).toBe(false);
      expect(await a.tryAcquireOrRenew()).toBe(true);
    }
    // a stops renewing: the standby takes over once it has seen no change for 15 s (its first
    // look sees a's last renewal, made after its previous look).
    advance(clock, 14_000);
    expect(await ahead.tryAcquireOrRenew()).toBe(false);
    advance(clock, 14_000);
    expect(await ahead.tryAcquireOrRenew()).toBe(false);
    advance(clock, 2_000);
    expect(await ahead.tryAcquireOrRenew()).toBe(true);
  });

  it("loses a race on the resourceVersion instead of overwriting the winner", async () => {
    const store = new MemoryLeaseStore();
    const clock = { now: new Date("2026-01-01T00:00:00Z") };
    await elector(store, "a", clock).tryAcquireOrRenew();
    const b = elector(store, "b", clock);
    expect(await b.tryAcquireOrRenew()).toBe(false);
    advance(clock, 60_000);
    const stale = await store.get();
    expect(await b.tryAcquireOrRenew()).toBe(true);
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
    expect(await elector(store, "b", clock).tryAcquireOrRenew()).toBe(true);
  });
});

describe("LeaderElector against an API server that stops answering", () => {
  afterEach(() => void vi.useRealTimers());

  it("stops leading at the renew deadline while its attempts hang, and cancels each at its bound", async () => {
    vi.useFakeTimers({ now: new Date("2026-01-01T00:00:00Z") });
    const store = new MemoryLeaseStore();
    let hang = false;
    const aborted: unknown[] = [];
    const hanging = <T>(signal: AbortSignal | undefined, f: () => Promise<T>): Promise<T> =>
      hang
        ? new Promise<T>((_, reject) =>
            signal?.addEventListener("abort", () => {
              aborted.push(signal.reason);
              reject(signal.reason as Error);
            }),
          )
        : f();
    const flaky: LeaseStore = {
      get: (signal) => hanging(signal, () => store.get()),
      create: (spec, signal) => hanging(signal, () => store.create(spec)),
      update: (l, signal) => hanging(signal, () => store.update(l)),
    };
    const events: string[] = [];
    const a = new LeaderElector(flaky, {
      identity: "a",
      leaseDurationSeconds: 15,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      attemptTimeoutMs: 4_000,
      onStartedLeading: () => events.push(`started ${Date.now()}`),
      onStoppedLeading: () => events.push(`stopped ${Date.now()}`),
      monotonicMs: () => Date.now(),
    });
    const t0 = Date.now();
    const run = a.run();
    await vi.advanceTimersByTimeAsync(5_000); // renewed at 0, 2 and 4 s
    expect(a.isLeader).toBe(true);
    hang = true; // from the attempt at 6 s on, nothing answers
    await vi.advanceTimersByTimeAsync(8_000);
    expect(a.isLeader).toBe(true); // 13 s: the deadline is 10 s after the attempt at 4 s
    await vi.advanceTimersByTimeAsync(1_000);
    expect(a.isLeader).toBe(false);
    expect(events).toEqual([`started ${t0}`, `stopped ${t0 + 14_000}`]);
    await run;
    // The attempt at 6 s was cancelled at its 4-s bound, the one at 12 s when leadership was lost.
    expect(aborted.map(String)).toEqual([
      "Error: lease renewal took longer than 4000 ms",
      "Error: renew deadline passed: leadership lost",
    ]);
  });

  it("refuses an attempt bound at or beyond the renew deadline, and a deadline beyond the lease", () => {
    const opts = {
      identity: "a",
      leaseDurationSeconds: 15,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      onStartedLeading: () => undefined,
      onStoppedLeading: () => undefined,
    };
    expect(() => new LeaderElector(new MemoryLeaseStore(), { ...opts, attemptTimeoutMs: 10_000 })).toThrow();
    expect(() => new LeaderElector(new MemoryLeaseStore(), { ...opts, renewDeadlineMs: 15_000 })).toThrow();
  });
});
