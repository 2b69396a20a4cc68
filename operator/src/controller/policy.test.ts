import { describe, expect, it } from "vitest";
import type { LogPipeline } from "../api/logpipeline.js";
import { parsePipeline } from "../api/parse.js";
import { DEFAULT_POLICY, type PipelinePolicy, policyViolations, secretUsable } from "./policy.js";

function pipeline(spec: Record<string, unknown> = {}): LogPipeline {
  const r = parsePipeline({
    metadata: { name: "p", namespace: "team-a", uid: "uid-a", generation: 1 },
    spec: { kafka: { mode: "external", bootstrapServers: "k:9092" }, ...spec },
  });
  if (!r.ok) throw new Error(r.message);
  return r.pipeline;
}
const strimzi = (namespace: string, topic: Record<string, unknown> = {}) => ({
  kafka: { mode: "strimzi", clusterRef: { name: "c", namespace }, topic },
});
const policy = (over: Partial<PipelinePolicy> = {}): PipelinePolicy => ({ ...DEFAULT_POLICY, ...over });

describe("policyViolations", () => {
  it("allows a default pipeline under the default policy", () => {
    expect(policyViolations(pipeline(), policy())).toEqual([]);
    expect(policyViolations(pipeline(strimzi("team-a")), policy())).toEqual([]);
  });

  it("allows a Strimzi cluster elsewhere only in a listed namespace, or with *", () => {
    const p = pipeline(strimzi("kafka"));
    expect(policyViolations(p, policy())).toEqual([
      "kafka.clusterRef.namespace kafka is not a Strimzi namespace pipelines may use (policy.strimziNamespaces: only the pipeline's own)",
    ]);
    expect(policyViolations(p, policy({ strimziNamespaces: ["other"] }))[0]).toMatch(
      /policy.strimziNamespaces: other\)$/,
    );
    expect(policyViolations(p, policy({ strimziNamespaces: ["kafka"] }))).toEqual([]);
    expect(policyViolations(p, policy({ strimziNamespaces: ["*"] }))).toEqual([]);
  });

  it("keeps every topic a pipeline names within its namespace's prefix", () => {
    const foreign = pipeline({
      kafka: {
        mode: "external",
        bootstrapServers: "k:9092",
        topic: { name: "team-b.orders.logs" },
        deadLetter: { topicName: "team-b.orders.dlq" },
      },
    });
    expect(policyViolations(foreign, policy())).toEqual([
      "kafka.topic.name team-b.orders.logs does not start with team-a., the prefix namespace team-a owns (policy.topicPrefix)",
      "kafka.deadLetter.topicName team-b.orders.dlq does not start with team-a., the prefix namespace team-a owns (policy.topicPrefix)",
    ]);
    expect(policyViolations(foreign, policy({ topicPrefix: "" }))).toEqual([]);
    expect(policyViolations(foreign, policy({ topicPrefix: "tenants.{namespace}-" }))).toHaveLength(2);
    const own = pipeline({
      kafka: { mode: "external", bootstrapServers: "k:9092", topic: { name: "tenants.team-a-x" } },
    });
    // The dead-letter topic is checked even when it is derived (and so already prefixed).
    expect(policyViolations(own, policy({ topicPrefix: "tenants.{namespace}-" }))).toEqual([
      "kafka.deadLetter.topicName team-a.p.dlq does not start with tenants.team-a-, the prefix namespace team-a owns (policy.topicPrefix)",
    ]);
  });

  it("lets only listed namespaces choose images, the data services' included", () => {
    const p = pipeline({
      images: { producer: "evil/producer:1" },
      postgres: { managed: { image: "evil/pg:1" } },
    });
    expect(policyViolations(p, policy())).toEqual([
      "images.producer, postgres.managed.image: pipelines in namespace team-a may not choose their images (policy.imageOverrideNamespaces)",
    ]);
    expect(policyViolations(p, policy({ imageOverrideNamespaces: ["team-a"] }))).toEqual([]);
    expect(policyViolations(p, policy({ imageOverrideNamespaces: ["*"] }))).toEqual([]);
  });

  it("refuses an Ingress without TLS unless allowed", () => {
    const plain = pipeline({ ingress: { enabled: true, host: "logs.example.test" } });
    expect(policyViolations(plain, policy())).toEqual([
      "ingress.tlsSecret is required: an Ingress without TLS is not allowed (policy.allowIngressWithoutTLS)",
    ]);
    expect(policyViolations(plain, policy({ allowIngressWithoutTLS: true }))).toEqual([]);
    const tls = pipeline({ ingress: { enabled: true, host: "logs.example.test", tlsSecret: "logs-tls" } });
    expect(policyViolations(tls, policy())).toEqual([]);
  });
});

describe("secretUsable", () => {
  const p = pipeline();
  it("uses a Secret labelled for pipelines, or one the operator generated for this pipeline", () => {
    expect(secretUsable({ "logpipeline.io/pipeline-secret": "true" }, p)).toBe(true);
    expect(
      secretUsable(
        { "app.kubernetes.io/managed-by": "logpipeline-operator", "logpipeline.io/pipeline-uid": "uid-a" },
        p,
      ),
    ).toBe(true);
  });
  it("uses what the operator generated for the pipeline of the same name before (kept by deletionPolicy Retain)", () => {
    const before = {
      "app.kubernetes.io/managed-by": "logpipeline-operator",
      "logpipeline.io/pipeline": "p",
      "logpipeline.io/pipeline-uid": "uid-of-the-one-before",
    };
    expect(secretUsable(before, p)).toBe(true);
  });
  it("refuses any other Secret, another pipeline's generated one included", () => {
    expect(secretUsable(undefined, p)).toBe(false);
    expect(secretUsable({ "logpipeline.io/pipeline-secret": "yes" }, p)).toBe(false);
    const anothers = {
      "app.kubernetes.io/managed-by": "logpipeline-operator",
      "logpipeline.io/pipeline": "q",
      "logpipeline.io/pipeline-uid": "uid-b",
    };
    expect(secretUsable(anothers, p)).toBe(false);
    expect(secretUsable({ "logpipeline.io/pipeline": "p", "logpipeline.io/pipeline-uid": "uid-a" }, p)).toBe(
      false,
    );
  });
});
