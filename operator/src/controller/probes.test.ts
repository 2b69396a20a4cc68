import { pino } from "pino";
import { Counter } from "prom-client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parsePipeline } from "../api/parse.js";
import type { LogPipeline } from "../api/logpipeline.js";
import type { DesiredTopic } from "../builders/kafka-topics.js";
import type { KafkaConnection, TopicAdmin } from "../kafka/topic-admin.js";
import type { ControllerDeps } from "./deps.js";
import { Probes } from "./probes.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const pipeline = (name: string, bootstrap: string): LogPipeline => {
  const r = parsePipeline({
    metadata: { name, namespace: "ns", uid: `uid-${name}` },
    spec: { kafka: { mode: "external", bootstrapServers: bootstrap } },
  });
  if (!r.ok) throw new Error(r.message);
  return r.pipeline;
};
const topic = (name: string, partitions = 1): DesiredTopic => ({
  role: "main",
  name: `ns.${name}.logs`,
  partitions,
  replicationFactor: 1,
  config: {},
});
const topics = (name: string) => [topic(name)];

/** Deps whose Kafka at "slow:9092" accepts and never answers; every other answers at once. */
function fakeDeps() {
  const admin = (): TopicAdmin =>
    ({
      ensure: (ts: { name: string }[]) =>
        Promise.resolve(ts.map((t) => ({ name: t.name, ready: "True", reason: "TopicsReady", message: "" }))),
      close: () => Promise.resolve(),
    }) as unknown as TopicAdmin;
  const deps = {
    log: pino({ level: "silent" }),
    now: () => new Date(Date.now()),
    config: { resyncMs: 300_000 },
    metrics: { probeTimeouts: new Counter({ name: "t_probe_timeouts", help: "t", registers: [] }) },
    connectTopicAdmin: (c: KafkaConnection) => {
      if (c.bootstrapServers.startsWith("slow")) return new Promise<TopicAdmin>(() => undefined);
      return Promise.resolve(admin());
    },
  } as unknown as ControllerDeps;
  return { deps };
}

/** Probes over `deps` that record which pipelines' passes ended. */
function probesOver(deps: ControllerDeps, concurrency: number) {
  const done: string[] = [];
  const probes = new Probes(deps, { concurrency, timeoutMs: 5000, onDone: (k) => done.push(k) });
  /** Asks for the topics of pipeline `name` on `bootstrap`. */
  const ask = (name: string, bootstrap: string) =>
    probes.request(`ns/${name}`, pipeline(name, bootstrap), {
      topics: topics(name),
      delivery: false,
      check: false,
    });
  return { probes, done, ask };
}

describe("Probes: tenants' Kafka off the reconcile path", () => {
  it("bounds concurrency, times out a broker that never answers, and serves the other pipelines meanwhile", async () => {
    const { deps } = fakeDeps();
    const { probes, done, ask } = probesOver(deps, 2);
    for (const name of ["slow-a", "slow-b", "slow-c"]) ask(name, "slow:9092");
    for (let i = 0; i < 5; i++) ask(`fast-${i}`, "fast:9092");
    await vi.advanceTimersByTimeAsync(0);
    expect(probes.load).toEqual({ waiting: 6, active: 2 }); // two slow ones hold the two slots
    await vi.advanceTimersByTimeAsync(5000); // they time out; slow-c takes one slot, the fast ones pass through the other
    expect(done).toEqual(
      expect.arrayContaining(["ns/slow-a", "ns/slow-b", ...[0, 1, 2, 3, 4].map((i) => `ns/fast-${i}`)]),
    );
    expect(probes.topics("ns/slow-a")?.[0]).toMatchObject({ ready: "False", reason: "KafkaError" });
    expect(probes.topics("ns/fast-4")?.[0]).toMatchObject({ ready: "True" });
    // A pipeline whose pass is still hanging gets no second one.
    ask("slow-a", "slow:9092");
    expect(probes.load.waiting).toBe(0);
    expect((await deps.metrics.probeTimeouts.get()).values[0]?.value).toBe(2);
    probes.stop();
  });

  it("merges repeated requests of a waiting pipeline and ensures topics only when due", async () => {
    const { deps } = fakeDeps();
    const { probes, done, ask } = probesOver(deps, 1);
    ask("slow", "slow:9092");
    for (let i = 0; i < 10; i++) ask("p", "fast:9092");
    expect(probes.load.waiting).toBe(1);
    await vi.advanceTimersByTimeAsync(5000);
    expect(done.filter((k) => k === "ns/p")).toHaveLength(1);
    expect(probes.topicsDue("ns/p", topics("p"))).toBe(false); // ready, unchanged, recent
    expect(probes.topicsDue("ns/p", [topic("p", 3)])).toBe(true); // changed
    await vi.advanceTimersByTimeAsync(300_000);
    expect(probes.topicsDue("ns/p", topics("p"))).toBe(true); // a resync old
    probes.stop();
  });
});

describe("Probes: a broker that fails the request", () => {
  it("reports the topics as KafkaError with the client's reason, instead of leaving them pending", async () => {
    const { deps } = fakeDeps();
    deps.connectTopicAdmin = () =>
      Promise.resolve({
        ensure: () => Promise.reject(new Error("Local: Broker transport failure")),
        close: () => Promise.resolve(),
      } as unknown as TopicAdmin);
    const { probes, done, ask } = probesOver(deps, 1);
    ask("p", "broken:9092");
    await vi.advanceTimersByTimeAsync(0);
    expect(done).toEqual(["ns/p"]);
    expect(probes.topics("ns/p")?.[0]).toMatchObject({
      ready: "False",
      reason: "KafkaError",
      message: "Local: Broker transport failure",
    });
    probes.stop();
  });
});
