import { describe, expect, it } from "vitest";
import {
  Informer,
  type InformerEvent,
  InformerGroup,
  type ListWatch,
  type WatchEventLike,
} from "./informer.js";

interface Obj {
  metadata: { name: string; namespace: string; resourceVersion: string };
  v?: number;
}
const obj = (name: string, rv: string, v = 0): Obj => ({
  metadata: { name, namespace: "ns", resourceVersion: rv },
  v,
});

/** A scripted ListWatch: each list() returns the next listing; each watch() plays the next script. */
class FakeListWatch implements ListWatch<Obj> {
  lists = 0;
  listedFrom: string[] = [];
  watches: string[] = [];
  constructor(
    private readonly listings: Obj[][],
    private readonly scripts: ((signal: AbortSignal) => AsyncIterable<WatchEventLike<Obj>>)[],
  ) {}
  list(resourceVersion: string) {
    this.listedFrom.push(resourceVersion);
    const items = this.listings[Math.min(this.lists, this.listings.length - 1)] ?? [];
    this.lists++;
    return Promise.resolve({ items, resourceVersion: String(100 * this.lists) });
  }
  watch(rv: string, _t: number, _idle: number, signal: AbortSignal) {
    this.watches.push(rv);
    const script = this.scripts.shift() ?? blockUntilAborted;
    return script(signal);
  }
}

async function* blockUntilAborted(signal: AbortSignal): AsyncIterable<WatchEventLike<Obj>> {
  await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
  yield* [];
}
function events(...evs: WatchEventLike<Obj>[]) {
  return async function* () {
    await Promise.resolve();
    yield* evs;
  };
}
function failing(message: string) {
  return async function* (): AsyncIterable<WatchEventLike<Obj>> {
    await Promise.resolve();
    yield* [];
    throw new Error(message);
  };
}
const until = async (cond: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 5));
  }
};

function record(inf: Informer<Obj>) {
  const seen: [string, InformerEvent][] = [];
  inf.on((key, ev) => seen.push([key, ev]));
  return seen;
}

describe("Informer", () => {
  it("lists, reports adds, then applies watch events to the cache", async () => {
    const lw = new FakeListWatch(
      [[obj("a", "1"), obj("b", "2")]],
      [events({ type: "MODIFIED", object: obj("a", "3", 7) }, { type: "DELETED", object: obj("b", "4") })],
    );
    const inf = new Informer("t", lw, { resyncMs: 60_000, backoffInitialMs: 1 });
    const seen = record(inf);
    inf.start();
    await until(() => seen.length >= 4);
    await inf.stop();
    expect(seen).toEqual([
      ["ns/a", "add"],
      ["ns/b", "add"],
      ["ns/a", "update"],
      ["ns/b", "delete"],
    ]);
    expect(inf.get("ns/a")?.v).toBe(7);
    expect(inf.get("ns/b")).toBeUndefined();
    expect(inf.hasSynced()).toBe(true);
  });

  it("relists on 410 Gone and reports only objects that really changed", async () => {
    const lw = new FakeListWatch(
      [
        [obj("a", "1"), obj("b", "2")],
        [obj("a", "1"), obj("b", "9"), obj("c", "10")],
      ],
      [events({ type: "ERROR", object: { ...obj("", ""), code: 410, message: "too old" } })],
    );
    const inf = new Informer("t", lw, { resyncMs: 60_000, backoffInitialMs: 1 });
    const seen = record(inf);
    inf.start();
    await until(() => lw.lists >= 2 && seen.length >= 4);
    await inf.stop();
    expect(seen.slice(2)).toEqual([
      ["ns/b", "update"],
      ["ns/c", "add"],
    ]);
    expect(inf.relists).toBe(2);
    // The version it had is gone: the relist asks for the latest (a quorum read).
    expect(lw.listedFrom.slice(0, 2)).toEqual(["", ""]);
  });

  it("restarts a failed watch with growing, jittered backoff, then relists", async () => {
    const delays: number[] = [];
    const lw = new FakeListWatch([[obj("a", "1")]], [failing("reset"), failing("reset"), failing("reset")]);
    const inf = new Informer("t", lw, {
      resyncMs: 60_000,
      backoffInitialMs: 10,
      random: () => 1,
      onError: (_n, _e, ms) => delays.push(ms),
    });
    inf.start();
    await until(() => lw.lists >= 4);
    await inf.stop();
    expect(delays.slice(0, 3)).toEqual([10, 20, 40]);
    expect(inf.restarts).toBeGreaterThanOrEqual(3);
    // Every restart lists again: a failed watch may have missed events. The first list asks
    // for the latest; the others for at least the version already seen (100, then each
    // list's own), which the API server serves from its watch cache.
    expect(lw.lists).toBeGreaterThanOrEqual(4);
    expect(lw.listedFrom.slice(0, 4)).toEqual(["", "100", "200", "300"]);
  });

  it("re-watches from the last resourceVersion when the server ends a watch normally (no relist)", async () => {
    const lw = new FakeListWatch([[obj("a", "1")]], [events({ type: "BOOKMARK", object: obj("", "555") })]);
    const inf = new Informer("t", lw, { resyncMs: 60_000 });
    inf.start();
    await until(() => lw.watches.length >= 2);
    await inf.stop();
    expect(lw.watches.slice(0, 2)).toEqual(["100", "555"]);
    expect(lw.lists).toBe(1);
  });

  it("replays every cached key on resync", async () => {
    const lw = new FakeListWatch([[obj("a", "1"), obj("b", "1")]], []);
    const inf = new Informer("t", lw, { resyncMs: 30 });
    const seen = record(inf);
    inf.start();
    await until(() => seen.filter(([, e]) => e === "resync").length >= 4);
    await inf.stop();
    expect(new Set(seen.filter(([, e]) => e === "resync").map(([k]) => k))).toEqual(
      new Set(["ns/a", "ns/b"]),
    );
  });

  it("is unhealthy before its first list and when out of touch for too long", async () => {
    const lw = new FakeListWatch([[obj("a", "1")]], [failing("down"), failing("down")]);
    const inf = new Informer("t", lw, {
      resyncMs: 60_000,
      staleAfterMs: 1000,
      backoffInitialMs: 5_000,
      random: () => 1,
    });
    expect(inf.healthy()).toBe(false);
    inf.start();
    await until(() => inf.restarts >= 1);
    expect(inf.healthy()).toBe(true);
    expect(inf.healthy(Date.now() + 2000)).toBe(false);
    await inf.stop();
  });
});

describe("InformerGroup", () => {
  const inNs = (namespace: string, name: string): Obj => ({
    metadata: { name, namespace, resourceVersion: "1" },
  });
  it("reads one kind namespace by namespace as one cache, each key from its own namespace's informer", async () => {
    const a = new Informer("K/a", new FakeListWatch([[inNs("a", "x")]], []), { resyncMs: 60_000 });
    const b = new Informer("K/b", new FakeListWatch([[inNs("b", "x"), inNs("b", "y")]], []), {
      resyncMs: 60_000,
    });
    const group = new InformerGroup(
      "K",
      new Map([
        ["a", a],
        ["b", b],
      ]),
    );
    const seen: string[] = [];
    group.on((key) => seen.push(key));
    expect(group.healthy()).toBe(false);
    group.start();
    await group.waitForSync(2000);
    expect(group.healthy()).toBe(true);
    expect(group.get("a/x")?.metadata.namespace).toBe("a");
    expect(group.get("b/y")?.metadata.name).toBe("y");
    expect(group.get("a/y")).toBeUndefined();
    expect(group.get("c/x")).toBeUndefined();
    expect(
      group
        .list()
        .map((o) => `${o.metadata.namespace}/${o.metadata.name}`)
        .sort(),
    ).toEqual(["a/x", "b/x", "b/y"]);
    expect(seen.sort()).toEqual(["a/x", "b/x", "b/y"]);
    expect(group.members.map((m) => m.name)).toEqual(["K/a", "K/b"]);
    await group.stop();
  });
});
