import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runWorkers, WorkQueue } from "./workqueue.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const unlimited = { baseDelayMs: 5, maxDelayMs: 1000, qps: 1e9, burst: 1e9 };

describe("WorkQueue", () => {
  it("is FIFO and collapses repeated adds of a waiting key", async () => {
    const q = new WorkQueue<string>(unlimited);
    for (const k of ["a", "b", "a", "c", "b"]) q.add(k);
    expect(q.length).toBe(3);
    expect([await q.get(), await q.get(), await q.get()]).toEqual(["a", "b", "c"]);
  });

  it("never hands out a key twice at once; an add during processing runs once after done", async () => {
    const q = new WorkQueue<string>(unlimited);
    q.add("a");
    const first = await q.get();
    q.add("a");
    q.add("a");
    expect(q.length).toBe(0); // not handed out while "a" is processed
    q.done(first ?? "");
    expect(q.length).toBe(1);
    expect(await q.get()).toBe("a");
    q.done("a");
    expect(q.length).toBe(0);
  });

  it("wakes a waiting get when a key is added", async () => {
    const q = new WorkQueue<string>(unlimited);
    const pending = q.get();
    q.add("x");
    expect(await pending).toBe("x");
  });

  it("backs off per key exponentially up to the cap, and forget resets it", () => {
    const q = new WorkQueue<string>(unlimited);
    expect([q.when("a"), q.when("a"), q.when("a"), q.when("a")]).toEqual([5, 10, 20, 40]);
    expect(q.when("b")).toBe(5); // per key
    for (let i = 0; i < 20; i++) q.when("a");
    expect(q.when("a")).toBe(1000);
    expect(q.retries("a")).toBe(25);
    q.forget("a");
    expect(q.when("a")).toBe(5);
  });

  it("bounds rate-limited adds with a global token bucket", () => {
    let now = 0;
    const q = new WorkQueue<string>({ baseDelayMs: 1, maxDelayMs: 1, qps: 10, burst: 2 }, () => now);
    expect([q.when("a"), q.when("b")]).toEqual([1, 1]); // burst
    expect(q.when("c")).toBe(100); // one token per 100 ms
    expect(q.when("d")).toBe(200);
    now = 1000; // refilled
    expect(q.when("e")).toBe(1);
  });

  it("adds a rate-limited key after its delay", async () => {
    const q = new WorkQueue<string>(unlimited);
    q.addRateLimited("a");
    q.addRateLimited("a"); // second failure: 10 ms, but the key collapses into one entry
    expect(q.length).toBe(0);
    await vi.advanceTimersByTimeAsync(5);
    expect(q.length).toBe(1);
    await vi.advanceTimersByTimeAsync(10);
    expect(q.length).toBe(1);
  });

  it("on shutdown, refuses new keys, lets waiters finish and drains in-flight work", async () => {
    const q = new WorkQueue<string>(unlimited);
    q.add("a");
    const key = await q.get();
    const waiter = q.get();
    q.shutDown();
    q.add("b");
    expect(await waiter).toBeUndefined();
    let drained = false;
    const d = q.drain().then(() => (drained = true));
    await Promise.resolve();
    expect(drained).toBe(false);
    q.done(key ?? "");
    await d;
    expect(drained).toBe(true);
  });
});

describe("runWorkers", () => {
  it("retries a failing key with backoff, forgets it on success, and honours requeueAfter", async () => {
    const q = new WorkQueue<string>(unlimited);
    const seen: string[] = [];
    let failuresLeft = 2;
    const workers = runWorkers(q, 2, (key) => {
      seen.push(`${key}@${Date.now()}`);
      if (key === "flaky" && failuresLeft-- > 0) return Promise.reject(new Error("boom"));
      if (key === "periodic" && seen.filter((s) => s.startsWith("periodic")).length < 2)
        return Promise.resolve({ requeueAfterMs: 1000 });
      return Promise.resolve(undefined);
    });
    const start = Date.now();
    q.add("flaky");
    q.add("periodic");
    await vi.advanceTimersByTimeAsync(2000);
    q.shutDown();
    await workers;
    const times = (k: string) =>
      seen.filter((s) => s.startsWith(k)).map((s) => Number(s.split("@")[1]) - start);
    expect(times("flaky")).toEqual([0, 5, 15]); // 5 ms, then 10 ms of backoff
    expect(q.retries("flaky")).toBe(0); // forgotten after success
    expect(times("periodic")).toEqual([0, 1000]);
  });

  it("processes different keys concurrently, the same key never", async () => {
    const q = new WorkQueue<string>(unlimited);
    let active = 0;
    let maxActive = 0;
    let calls = 0;
    let sameKeyTwice = 0;
    const perKey = new Map<string, number>();
    const workers = runWorkers(q, 3, async (key) => {
      active++;
      calls++;
      maxActive = Math.max(maxActive, active);
      perKey.set(key, (perKey.get(key) ?? 0) + 1);
      if ((perKey.get(key) ?? 0) > 1) sameKeyTwice++;
      await new Promise((r) => setTimeout(r, 10));
      perKey.set(key, (perKey.get(key) ?? 0) - 1);
      active--;
      return undefined;
    });
    for (const k of ["a", "b", "c", "a", "b", "c"]) q.add(k);
    await vi.advanceTimersByTimeAsync(5);
    for (const k of ["a", "b", "c"]) q.add(k); // while processing: once more each, after done
    await vi.advanceTimersByTimeAsync(50);
    q.shutDown();
    await workers;
    expect(maxActive).toBe(3);
    expect(sameKeyTwice).toBe(0);
    expect(calls).toBe(6); // three keys, each once more after the add during processing
  });
});

describe("WorkQueue scheduled adds (client-go's delaying queue)", () => {
  it("keeps one waiting entry per key, at its earliest deadline", async () => {
    const q = new WorkQueue<string>(unlimited);
    for (let i = 0; i < 1000; i++) q.addAfter("a", 1000 + i);
    await vi.advanceTimersByTimeAsync(1000);
    expect(q.length).toBe(1);
    q.done((await q.get()) ?? "");
    await vi.advanceTimersByTimeAsync(5000);
    expect(q.length).toBe(0); // the 999 later deadlines were never separate entries
  });

  it("moves a waiting entry earlier, never later", async () => {
    const q = new WorkQueue<string>(unlimited);
    // Either order of the two deadlines leaves one entry, at 100 ms.
    for (const [key, deadlines] of [
      ["a", [5000, 100]],
      ["b", [100, 5000]],
    ] as const) {
      for (const ms of deadlines) q.addAfter(key, ms);
      await vi.advanceTimersByTimeAsync(100);
      expect(q.length, key).toBe(1);
      q.done((await q.get()) ?? "");
    }
    await vi.advanceTimersByTimeAsync(10_000);
    expect(q.length).toBe(0);
  });

  it("lets an add win over a waiting entry of the same key (a resync does not stack on a requeue)", async () => {
    const q = new WorkQueue<string>(unlimited);
    q.addAfter("a", 1000);
    q.add("a");
    expect(q.length).toBe(1);
    q.done((await q.get()) ?? "");
    await vi.advanceTimersByTimeAsync(2000);
    expect(q.length).toBe(0);
  });

  it("after 1,000 child events, a pipeline is reconciled once per requeue interval again, not once per event", async () => {
    const q = new WorkQueue<string>(unlimited);
    let reconciles = 0;
    const workers = runWorkers(q, 4, async () => {
      reconciles++;
      await new Promise((r) => setTimeout(r, 20)); // applying the children
      return { requeueAfterMs: 60_000 };
    });
    // 1,000 status updates of its children, one every 50 ms (each queues the pipeline).
    for (let i = 0; i < 1000; i++) {
      q.add("ns/p");
      await vi.advanceTimersByTimeAsync(50);
    }
    const duringEvents = reconciles;
    expect(duringEvents).toBeLessThanOrEqual(1001);
    // Then ten quiet minutes: one reconcile per requeue interval, not one chain per event.
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(reconciles - duringEvents).toBeLessThanOrEqual(10);
    expect(reconciles - duringEvents).toBeGreaterThanOrEqual(9);
    q.shutDown();
    await vi.advanceTimersByTimeAsync(100);
    await workers;
  });
});
