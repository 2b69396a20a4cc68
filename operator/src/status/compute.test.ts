import { describe, expect, it } from "vitest";
import type { LogPipeline } from "../api/logpipeline.js";
import { parsePipeline } from "../api/parse.js";
import { computeStatus, type Observation, sameStatus, type WorkloadObservation } from "./compute.js";

const t0 = new Date("2026-01-01T00:00:00Z");
const t1 = new Date("2026-01-01T00:05:00Z");

function pipeline(spec: Record<string, unknown> = {}, status?: unknown): LogPipeline {
  const r = parsePipeline({
    metadata: { name: "p", namespace: "ns", uid: "u", generation: 3 },
    spec: { kafka: { mode: "external", bootstrapServers: "k:9092" }, ...spec },
    status,
  });
  if (!r.ok) throw new Error(r.message);
  return r.pipeline;
}
const up: WorkloadObservation = { desired: 1, ready: 1, available: true, current: true };
const down: WorkloadObservation = { desired: 1, ready: 0, available: false, current: true };
function observation(over: Partial<Observation> = {}): Observation {
  return {
    applyErrors: [],
    topics: [
      { name: "ns.p.logs", ready: "True", reason: "TopicsReady", message: "6 partitions" },
      { name: "ns.p.dlq", ready: "True", reason: "TopicsReady", message: "1 partition" },
    ],
    postgres: up,
    redis: up,
    producer: up,
    consumer: up,
    query: up,
    notes: [],
    names: { topic: "ns.p.logs", consumerGroup: "g", bootstrapServers: "k:9092" },
    endpoints: {
      ingest: "http://p-producer.ns.svc:80/api/logs",
      query: "http://p-query.ns.svc:80/api/logs",
      otlp: "http://p-producer.ns.svc:80/v1/logs",
    },
    ...over,
  };
}
const condition = (s: ReturnType<typeof computeStatus>, type: string) =>
  s.conditions?.find((c) => c.type === type);

describe("computeStatus", () => {
  it("sets every condition from the first visit, with observedGeneration, and DataConsistent Unknown", () => {
    const s = computeStatus(pipeline(), observation({ producer: undefined, consumer: down }), t0);
    expect(s.conditions?.map((c) => c.type)).toEqual([
      "Ready",
      "TopicsReady",
      "PostgresReady",
      "RedisReady",
      "ProducerAvailable",
      "ConsumerAvailable",
      "QueryAvailable",
      "DataConsistent",
      "CapacityAtRisk",
      "IntegrationsAvailable",
      "TransportVerified",
      "Reconciling",
      "Stalled",
    ]);
    expect(s.conditions?.every((c) => c.observedGeneration === 3)).toBe(true);
    expect(condition(s, "DataConsistent")).toMatchObject({ status: "Unknown", reason: "NotChecked" });
    expect(condition(s, "CapacityAtRisk")).toMatchObject({ status: "Unknown", reason: "NotMeasured" });
    expect(condition(s, "Ready")).toMatchObject({ status: "False", reason: "ProducerAvailableFalse" });
    expect(s).toMatchObject({ observedGeneration: 3, phase: "Provisioning" });
    expect(condition(s, "Reconciling")?.status).toBe("True");
  });

  it("says which connections the spec chose weaker than verified TLS, without touching Ready", () => {
    const pgExternal = (sslMode?: string) => ({
      mode: "external",
      external: { host: "db", credentialsSecret: "c", ...(sslMode && { sslMode }) },
    });
    const verified = computeStatus(
      pipeline({
        kafka: { mode: "external", bootstrapServers: "k:9093", auth: { securityProtocol: "SSL" } },
        postgres: pgExternal(),
      }),
      observation(),
      t0,
    );
    expect(condition(verified, "TransportVerified")).toMatchObject({ status: "True", reason: "Verified" });
    const weaker = computeStatus(
      pipeline({
        postgres: pgExternal("require"),
        redis: { mode: "external", external: { url: "redis://cache:6379" } },
        ingress: { enabled: true, host: "logs.example.com" },
      }),
      observation(),
      t0,
    );
    expect(condition(weaker, "TransportVerified")).toMatchObject({
      status: "False",
      reason: "WeakerByChoice",
    });
    const message = condition(weaker, "TransportVerified")?.message ?? "";
    for (const part of [
      /PostgreSQL sslMode require/,
      /Kafka PLAINTEXT/,
      /Redis redis:\/\//,
      /Ingress without TLS/,
    ])
      expect(message).toMatch(part);
    expect(condition(weaker, "Ready")?.status).toBe("True");
  });

  it("says a stalled partition in ConsumerAvailable (and so Ready), and clears it when the ledger does", () => {
    const delivery = (stalled: boolean) => ({
      asOf: "2026-01-01T00:00:00Z",
      lag: 5,
      dlq: 0,
      duplicatesSkipped: 0,
      partitions: [
        { partition: 0, lastStableOffset: 10, dbNextOffset: 10, lag: 0 },
        {
          partition: 1,
          lastStableOffset: 10,
          dbNextOffset: 5,
          lag: 5,
          ...(stalled && {
            stalled: {
              sqlstate: "42501",
              reason: "permission denied for table logs",
              since: "2026-01-01T00:00:00Z",
            },
          }),
        },
      ],
    });
    const s = computeStatus(pipeline(), observation({ delivery: delivery(true) }), t0);
    expect(condition(s, "ConsumerAvailable")).toMatchObject({ status: "False", reason: "ConsumerStalled" });
    expect(condition(s, "ConsumerAvailable")?.message).toMatch(
      /partition 1 .*SQLSTATE 42501: permission denied/,
    );
    expect(condition(s, "Ready")).toMatchObject({ status: "False", reason: "ConsumerAvailableFalse" });
    const after = computeStatus(pipeline(), observation({ delivery: delivery(false) }), t1);
    expect(condition(after, "ConsumerAvailable")).toMatchObject({ status: "True" });
  });

  it("is Ready when every child is, and says so in the message and the replica summaries", () => {
    const s = computeStatus(pipeline(), observation({ consumer: { ...up, desired: 3, ready: 2 } }), t0);
    expect(condition(s, "Ready")).toMatchObject({ status: "True", reason: "PipelineReady" });
    expect(s.phase).toBe("Ready");
    expect(s.workloads?.consumer?.summary).toBe("2/3");
    expect(condition(s, "Reconciling")).toMatchObject({ status: "False", reason: "Reconciled" });
  });

  it("keeps lastTransitionTime when nothing moved, so a recomputed status is the same status", () => {
    const first = computeStatus(pipeline(), observation(), t0);
    const again = computeStatus(pipeline({}, first), observation(), t1);
    expect(sameStatus(first, again)).toBe(true);
    const moved = computeStatus(pipeline({}, first), observation({ query: down }), t1);
    expect(condition(moved, "QueryAvailable")?.lastTransitionTime).toBe(t1.toISOString());
    expect(condition(moved, "TopicsReady")?.lastTransitionTime).toBe(t0.toISOString());
  });

  it("mirrors Strimzi's NotSupported into TopicsReady and stalls instead of retrying blindly", () => {
    const s = computeStatus(
      pipeline(),
      observation({
        topics: [
          {
            name: "ns.p.logs",
            ready: "False",
            reason: "NotSupported",
            message: "Decreasing partitions not supported",
          },
        ],
      }),
      t0,
    );
    expect(condition(s, "TopicsReady")).toMatchObject({
      status: "False",
      reason: "NotSupported",
      message: "topic ns.p.logs: Decreasing partitions not supported",
    });
    expect(condition(s, "Stalled")).toMatchObject({ status: "True", reason: "TopicChangeNotSupported" });
    expect(s.phase).toBe("Failed");
  });

  it("stalls on a topic someone else made (NotOwned) until the spec adopts it", () => {
    const s = computeStatus(
      pipeline(),
      observation({
        topics: [
          { name: "ns.p.logs", ready: "False", reason: "NotOwned", message: "exists and was not created" },
        ],
      }),
      t0,
    );
    expect(condition(s, "TopicsReady")).toMatchObject({ status: "False", reason: "NotOwned" });
    expect(condition(s, "Stalled")).toMatchObject({ status: "True", reason: "TopicNotOwned" });
  });

  it("keeps the record of created topics: stored ones and this pass's, never dropping one", () => {
    const first = computeStatus(
      pipeline(),
      observation({
        names: {
          topic: "ns.p.logs",
          consumerGroup: "g",
          bootstrapServers: "k",
          createdTopics: ["ns.p.logs"],
        },
      }),
      t0,
    );
    expect(first.topics?.created).toEqual(["ns.p.logs"]);
    const next = computeStatus(
      pipeline({}, first),
      observation({
        names: { topic: "ns.p.logs", consumerGroup: "g", bootstrapServers: "k", createdTopics: ["ns.p.dlq"] },
      }),
      t1,
    );
    expect(next.topics?.created).toEqual(["ns.p.dlq", "ns.p.logs"]);
    // None created: still written (empty), so a status without it means one from before the record.
    expect(computeStatus(pipeline(), observation(), t0).topics?.created).toEqual([]);
  });

  it("DataConsistent=False sets phase Degraded and leaves Ready to the children", () => {
    const prior = computeStatus(pipeline(), observation(), t0);
    const withData = {
      ...prior,
      conditions: prior.conditions?.map((c) =>
        c.type === "DataConsistent"
          ? { ...c, status: "False" as const, reason: "EventsMissing", message: "3 missing" }
          : c,
      ),
    };
    const s = computeStatus(pipeline({}, withData), observation(), t1);
    expect(condition(s, "Ready")?.status).toBe("True");
    expect(s.phase).toBe("Degraded");
  });

  it("reports a missing optional integration as a condition without blocking Ready", () => {
    const s = computeStatus(
      pipeline(),
      observation({ notes: [{ reason: "KedaMissing", message: "KEDA is not installed" }] }),
      t0,
    );
    expect(condition(s, "IntegrationsAvailable")).toMatchObject({ status: "False", reason: "KedaMissing" });
    expect(condition(s, "Ready")?.status).toBe("True");
  });

  it("a hibernating pipeline with workloads at 0 is Hibernated, not failing", () => {
    const zero = { desired: 0, ready: 0, available: false, current: true };
    const s = computeStatus(
      pipeline({ hibernate: true }),
      observation({ producer: zero, consumer: zero, query: zero, redis: zero, postgres: zero }),
      t0,
    );
    expect(s.phase).toBe("Hibernated");
    expect(condition(s, "ProducerAvailable")).toMatchObject({ status: "True", reason: "Hibernated" });
  });

  it("an apply the API server refuses stalls with the object named; a transient one only unreadies", () => {
    const refused = computeStatus(
      pipeline(),
      observation({
        applyErrors: [{ object: "Deployment/p-producer", message: "field is immutable", terminal: true }],
      }),
      t0,
    );
    expect(condition(refused, "Stalled")).toMatchObject({ status: "True", reason: "ApplyRejected" });
    const transient = computeStatus(
      pipeline(),
      observation({ applyErrors: [{ object: "Service/p-query", message: "timeout", terminal: false }] }),
      t0,
    );
    expect(condition(transient, "Stalled")?.status).toBe("False");
    expect(condition(transient, "Ready")).toMatchObject({ status: "False", reason: "ApplyFailed" });
  });

  it("a failed reconcile step is Ready False with the step and why, retried (not Stalled)", () => {
    const failed = computeStatus(
      pipeline(),
      observation({
        reconcileError: { step: "reading or creating Secrets", message: "secrets is forbidden" },
      }),
      t0,
    );
    expect(condition(failed, "Ready")).toMatchObject({
      status: "False",
      reason: "ReconcileFailed",
      message: "reading or creating Secrets: secrets is forbidden",
    });
    expect(condition(failed, "Stalled")?.status).toBe("False");
    expect(condition(failed, "Reconciling")?.status).toBe("True");
  });
});
