import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { stringify } from "yaml";
import { KubeClient } from "../../../operator/src/kube/client.js";
import { uniqueSuffix } from "../../support/kube.js";
import { kubectl, LP_API, createNamespace } from "../../support/operator.js";

/**
 * What admission refuses, as a user meets it: `kubectl apply --dry-run=server` against the
 * real API server with the generated CRD. One test per CEL rule, then a corpus of bad input.
 */
const stack = inject("stack");
let kube: KubeClient;
const ns = `t-op-adm-${uniqueSuffix()}`;

type Spec = Record<string, unknown>;
const base = (): Spec => ({ kafka: { mode: "external", bootstrapServers: "kafka:9092" } });
const manifest = (name: string, spec: unknown) =>
  stringify({ apiVersion: LP_API, kind: "LogPipeline", metadata: { name, namespace: ns }, spec });
const apply = (name: string, spec: unknown, dryRun = true) =>
  kubectl(stack, ["apply", ...(dryRun ? ["--dry-run=server"] : []), "-f", "-"], manifest(name, spec));

beforeAll(async () => {
  kube = await KubeClient.fromEnvironment(stack.kubeconfig);
  await createNamespace(kube, ns);
});
afterAll(async () => {
  await kube.delete("v1", "Namespace", undefined, ns);
  await kube.close();
});

describe("CEL rules refuse invalid updates (kubectl apply --dry-run=server)", () => {
  const existing = {
    kafka: {
      mode: "external",
      bootstrapServers: "kafka:9092",
      topic: { name: "orders.logs", partitions: 6, replicationFactor: 1 },
    },
    postgres: { mode: "managed", table: "logs" },
  };
  beforeAll(() => {
    const r = apply("existing", existing, false);
    expect(r.stderr).toBe("");
  });

  const updates: [string, (s: typeof existing & Spec) => void, string][] = [
    ["partitions may only grow", (s) => (s.kafka.topic.partitions = 3), "partitions may only grow"],
    [
      "replication factor is immutable",
      (s) => (s.kafka.topic.replicationFactor = 2),
      "replicationFactor is immutable",
    ],
    ["the table name is immutable", (s) => (s.postgres.table = "other"), "postgres.table is immutable"],
    [
      "the PostgreSQL mode is immutable",
      (s) => Object.assign(s.postgres, { mode: "external", external: { host: "h", credentialsSecret: "c" } }),
      "postgres.mode is immutable",
    ],
    [
      "the Kafka mode is immutable",
      (s) => Object.assign(s.kafka, { mode: "strimzi", clusterRef: { name: "c", namespace: "kafka" } }),
      "kafka.mode is immutable",
    ],
    [
      "the topic name is immutable",
      (s) => (s.kafka.topic.name = "renamed.logs"),
      "kafka.topic.name is immutable",
    ],
  ];
  it.each(updates)("%s", (_what, change, message) => {
    const spec = structuredClone(existing) as typeof existing & Spec;
    change(spec);
    const r = apply("existing", spec);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(message);
  });

  it("growing partitions is accepted", () => {
    const spec = structuredClone(existing);
    spec.kafka.topic.partitions = 12;
    expect(apply("existing", spec).code).toBe(0);
  });
});

describe("CEL rules refuse invalid objects", () => {
  const rules: [string, Spec, string][] = [
    [
      "min ≤ max replicas",
      { ...base(), producer: { replicas: { min: 4, max: 2 } } },
      "replicas.min must not exceed replicas.max",
    ],
    [
      "consumer max ≤ partitions",
      {
        kafka: { ...(base().kafka as object), topic: { partitions: 2 } },
        consumer: { replicas: { min: 1, max: 3 } },
      },
      "consumer.replicas.max must not exceed kafka.topic.partitions",
    ],
    [
      "DLQ topic ≠ main topic",
      { kafka: { ...(base().kafka as object), topic: { name: "same" }, deadLetter: { topicName: "same" } } },
      "kafka.deadLetter.topicName must differ from kafka.topic.name",
    ],
    [
      "a Strimzi cluster ref in strimzi mode",
      { kafka: { mode: "strimzi" } },
      "kafka.clusterRef is required when kafka.mode is strimzi",
    ],
    [
      "bootstrap servers in external mode",
      { kafka: { mode: "external" } },
      "kafka.bootstrapServers is required when kafka.mode is external",
    ],
    [
      "connection settings for an external PostgreSQL",
      { ...base(), postgres: { mode: "external" } },
      "postgres.external is required",
    ],
    [
      "connection settings for an external Redis",
      { ...base(), redis: { mode: "external" } },
      "redis.external is required",
    ],
    [
      "SASL credentials for a SASL protocol",
      { kafka: { ...(base().kafka as object), auth: { securityProtocol: "SASL_SSL" } } },
      "kafka.auth.sasl is required",
    ],
    ["a host for an enabled Ingress", { ...base(), ingress: { enabled: true } }, "ingress.host is required"],
    [
      "a rediss:// url for a Redis CA",
      {
        ...base(),
        redis: { mode: "external", external: { url: "redis://r:6379", caSecretRef: { name: "redis-ca" } } },
      },
      "redis.external.caSecretRef needs a rediss:// url",
    ],
    [
      "priority partitions leave room for the rest",
      {
        kafka: { ...(base().kafka as object), topic: { partitions: 2 }, priority: { partitions: 2 } },
        consumer: { replicas: { max: 2 } },
      },
      "kafka.priority.partitions must leave at least one partition",
    ],
    [
      "a network peer that is one thing: an address block or selectors",
      {
        ...base(),
        network: { egress: [{ to: [{ ipBlock: { cidr: "10.0.0.0/8" }, podSelector: {} }] }] },
      },
      "a peer is either an ipBlock or pod/namespace selectors",
    ],
  ];
  it.each(rules)("%s", (_what, spec, message) => {
    const r = apply(`r-${uniqueSuffix()}`, spec);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(message);
  });
});

describe("a corpus of bad input is refused at admission, naming the field", () => {
  const kafka = base().kafka as Spec;
  const corpus: [string, unknown, string][] = [
    [
      "a string where a number belongs",
      { kafka: { ...kafka, topic: { partitions: "six" } } },
      "spec.kafka.topic.partitions",
    ],
    ["a negative number", { kafka: { ...kafka, topic: { partitions: -1 } } }, "spec.kafka.topic.partitions"],
    [
      "a huge number",
      { ...base(), producer: { replicas: { max: 1_000_000_000 } } },
      "spec.producer.replicas.max",
    ],
    ["an unknown field", { kafka: { ...kafka, bogus: 1 } }, 'unknown field "spec.kafka.bogus"'],
    ["an unknown top-level field", { ...base(), replicas: 3 }, 'unknown field "spec.replicas"'],
    ["a value outside an enum", { ...base(), redis: { mode: "sometimes" } }, "spec.redis.mode"],
    ["no spec at all", undefined, "spec"],
    [
      "a huge string",
      { kafka: { ...kafka, bootstrapServers: "k".repeat(5000) } },
      "spec.kafka.bootstrapServers",
    ],
    ["SQL in a table name", { ...base(), postgres: { table: "logs; DROP TABLE x" } }, "spec.postgres.table"],
    [
      "an invalid quantity",
      { ...base(), postgres: { managed: { storage: { size: "lots" } } } },
      "spec.postgres.managed.storage.size",
    ],
    [
      "a negative drain timeout",
      { ...base(), deletionPolicy: { drainTimeoutSeconds: -5 } },
      "spec.deletionPolicy.drainTimeoutSeconds",
    ],
    ["a string where a boolean belongs", { ...base(), suspend: "maybe" }, "spec.suspend"],
    [
      "a broker list that is not one",
      { kafka: { ...kafka, bootstrapServers: "not a host list" } },
      "spec.kafka.bootstrapServers",
    ],
    [
      "an address block that is not a CIDR",
      { ...base(), network: { apiFrom: [{ ipBlock: { cidr: "everyone" } }] } },
      "spec.network.apiFrom[0].ipBlock.cidr",
    ],
    [
      "a port out of range",
      { ...base(), network: { egress: [{ ports: [{ port: 70000 }] }] } },
      "spec.network.egress[0].ports[0].port",
    ],
    [
      "a broker with a path",
      { kafka: { ...kafka, bootstrapServers: "kafka:9092/x" } },
      "spec.kafka.bootstrapServers",
    ],
  ];
  it.each(corpus)("%s", (_what, spec, field) => {
    const r = apply(`bad-${uniqueSuffix()}`, spec);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(field);
  });
});

describe("names and broker lists", () => {
  it("accepts broker lists as librdkafka reads them: host:port, a bare host, IPv4, bracketed IPv6", () => {
    const r = apply(`brokers-${uniqueSuffix()}`, {
      kafka: { mode: "external", bootstrapServers: "kafka-0.kafka:9092, kafka-1,10.0.0.7:19092,[::1]:9093" },
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("refuses a name whose topic could not fit Kafka's 249 characters, and takes the longest that fits", () => {
    const tooLong = apply(`a${"n".repeat(180)}`, base());
    expect(tooLong.code).not.toBe(0);
    expect(tooLong.stderr).toContain("metadata.name must be at most 180 characters");
    const longest = apply(`a${"n".repeat(179)}`, base());
    expect(longest.stderr).toBe("");
  });
});

describe("kubectl explain teaches the API", () => {
  it("describes every field of logpipeline.spec", () => {
    const r = kubectl(stack, ["explain", "logpipeline.spec", "--recursive=false"]);
    expect(r.code).toBe(0);
    for (const field of [
      "kafka",
      "postgres",
      "redis",
      "producer",
      "consumer",
      "query",
      "hibernate",
      "suspend",
      "deletionPolicy",
      "monitoring",
      "ingress",
    ])
      expect(r.stdout).toMatch(new RegExp(`^\\s+${field}\\s+<`, "m"));
    expect(r.stdout).not.toContain("<empty>");
  });
});
