import { describe, expect, it } from "vitest";
import { parsePipeline } from "../../operator/src/api/parse.js";
import { type BuildOptions, desiredState, type KubeObject } from "../../operator/src/builders/index.js";

const opts: BuildOptions = {
  images: { producer: "p", consumer: "c", query: "q", postgres: "pg", redis: "r" },
  imagePullPolicy: "IfNotPresent",
  capabilities: { strimzi: true, keda: false, serviceMonitor: false, prometheusRule: false },
  secretHashes: {},
  operatorNamespace: "logpipeline-system",
};
const creds = {
  postgresPassword: "a",
  redisPassword: "b",
  apiKey: "c",
  queryKey: "d",
  postgresRolePasswords: { owner: "e", writer: "f", reader: "g" },
};

const strimzi = { mode: "strimzi", clusterRef: { name: "kc", namespace: "kafka", listenerPort: 9093 } };

function render(spec: Record<string, unknown>): KubeObject[] {
  const r = parsePipeline({
    metadata: { name: "p", namespace: "team-a", uid: "0f1e2d3c-0000-4000-8000-000000000001", generation: 1 },
    spec,
  });
  if (!r.ok) throw new Error(r.message);
  return desiredState(r.pipeline, opts, creds).apply;
}

type Selector = {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; values: string[] }[];
};
type Peer = { podSelector?: Selector; namespaceSelector?: Selector; ipBlock?: { cidr: string } };
type Rule = { from?: Peer[]; to?: Peer[]; ports?: { protocol: string; port: number }[] };
type Policy = {
  metadata: { name: string };
  spec: { podSelector: Selector; policyTypes: string[]; ingress: Rule[]; egress: Rule[] };
};

const policies = (objs: KubeObject[]) =>
  objs.filter((o) => o.kind === "NetworkPolicy") as unknown as Policy[];
const policy = (objs: KubeObject[], component: string) => {
  const found = policies(objs).filter(
    (p) => p.spec.podSelector.matchLabels?.["app.kubernetes.io/component"] === component,
  );
  expect(found, `one policy selects the ${component} pods`).toHaveLength(1);
  return found[0] as Policy;
};
const ports = (rules: Rule[]) =>
  rules.flatMap((r) => (r.ports ?? []).map((p) => `${p.protocol}/${p.port}`)).sort();
/** The components a rule's pod selector names (the pipeline's own pods). */
const components = (r: Rule | undefined, dir: "from" | "to") =>
  (r?.[dir] ?? []).flatMap((p) => p.podSelector?.matchExpressions?.flatMap((e) => e.values) ?? []);

describe("NetworkPolicies: default deny in and out for every pod of the pipeline", () => {
  it("selects every pod template the pipeline runs with one policy of both types", () => {
    const objs = render({ kafka: strimzi });
    const pods = objs.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet");
    expect(pods.length).toBe(5);
    for (const w of pods) {
      const labels = (w.spec as { template: { metadata: { labels: Record<string, string> } } }).template
        .metadata.labels;
      const matching = policies(objs).filter((p) =>
        Object.entries(p.spec.podSelector.matchLabels ?? {}).every(([k, v]) => labels[k] === v),
      );
      expect(
        matching.map((p) => p.metadata.name),
        w.metadata.name,
      ).toHaveLength(1);
      expect(matching[0]?.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    }
  });

  it("lets each workload out only to what it uses", () => {
    const objs = render({ kafka: strimzi });
    const producer = policy(objs, "producer");
    const consumer = policy(objs, "consumer");
    const query = policy(objs, "query");
    // DNS, Kafka's listener, managed Redis / PostgreSQL: nothing else.
    expect(ports(producer.spec.egress)).toEqual(["TCP/53", "TCP/6379", "TCP/9093", "UDP/53"]);
    expect(ports(consumer.spec.egress)).toEqual(["TCP/53", "TCP/5432", "TCP/9093", "UDP/53"]);
    expect(ports(query.spec.egress)).toEqual(["TCP/53", "TCP/5432", "TCP/6379", "UDP/53"]);
    // The cluster's DNS pods on any port (a policy sees CoreDNS's own port, not the Service's 53).
    for (const pol of [producer, consumer, query])
      expect(pol.spec.egress).toContainEqual({
        to: [
          {
            namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
            podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
          },
        ],
      });
    const kafka = producer.spec.egress.find((r) => r.ports?.[0]?.port === 9093);
    expect(kafka?.to).toEqual([
      {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kafka" } },
        podSelector: { matchLabels: { "strimzi.io/cluster": "kc", "strimzi.io/kind": "Kafka" } },
      },
    ]);
    expect(
      components(
        consumer.spec.egress.find((r) => r.ports?.[0]?.port === 5432),
        "to",
      ),
    ).toEqual(["postgres"]);
    expect(
      components(
        query.spec.egress.find((r) => r.ports?.[0]?.port === 6379),
        "to",
      ),
    ).toEqual(["redis"]);
  });

  it("lets in only the API port (from anywhere by default) and the metrics port (from the cluster)", () => {
    const objs = render({ kafka: strimzi });
    for (const c of ["producer", "query"]) {
      const p = policy(objs, c);
      expect(ports(p.spec.ingress)).toEqual(["TCP/8080", "TCP/9090"]);
      expect(p.spec.ingress.find((r) => r.ports?.[0]?.port === 8080)?.from).toBeUndefined();
      expect(p.spec.ingress.find((r) => r.ports?.[0]?.port === 9090)?.from).toEqual([
        { namespaceSelector: {} },
      ]);
    }
    expect(ports(policy(objs, "consumer").spec.ingress)).toEqual(["TCP/9090"]);
  });

  it("lets only the pipeline's clients (and the operator) into the managed servers, and them out nowhere", () => {
    const objs = render({ kafka: strimzi });
    const pg = policy(objs, "postgres");
    const redis = policy(objs, "redis");
    expect(pg.spec.egress).toEqual([]);
    expect(redis.spec.egress).toEqual([]);
    expect(components(pg.spec.ingress[0], "from")).toEqual(["consumer", "query"]);
    expect(pg.spec.ingress[0]?.from?.[1]).toEqual({
      namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "logpipeline-system" } },
      podSelector: { matchLabels: { "app.kubernetes.io/name": "logpipeline-operator" } },
    });
    expect(components(redis.spec.ingress[0], "from")).toEqual(["producer", "query"]);
    // The selector names this pipeline's pods, not another app's with the same component label.
    expect(pg.spec.ingress[0]?.from?.[0]?.podSelector?.matchLabels).toEqual({
      "app.kubernetes.io/name": "logpipeline",
      "app.kubernetes.io/instance": "p",
    });
  });

  it("reaches external services by their ports", () => {
    const objs = render({
      kafka: { mode: "external", bootstrapServers: "b-1.example:9094,b-2.example:9095,b-3.example:9094" },
      postgres: {
        mode: "external",
        external: { host: "db.example", port: 6432, database: "logs", credentialsSecret: "pg" },
      },
      redis: { mode: "external", external: { url: "rediss://cache.example:6380/0" } },
    });
    expect(ports(policy(objs, "producer").spec.egress)).toEqual([
      "TCP/53",
      "TCP/6380",
      "TCP/9094",
      "TCP/9095",
      "UDP/53",
    ]);
    expect(ports(policy(objs, "consumer").spec.egress)).toEqual([
      "TCP/53",
      "TCP/6432",
      "TCP/9094",
      "TCP/9095",
      "UDP/53",
    ]);
    expect(
      policies(objs)
        .map((p) => p.metadata.name)
        .sort(),
    ).toEqual(["p-consumer", "p-producer", "p-query"]);
  });

  it("leaves Redis out when it is disabled", () => {
    const objs = render({ kafka: strimzi, redis: { mode: "disabled" } });
    expect(ports(policy(objs, "producer").spec.egress)).toEqual(["TCP/53", "TCP/9093", "UDP/53"]);
  });

  it("takes the user's peers for the API and metrics, and adds their egress to every workload", () => {
    const apiFrom = [
      { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } },
    ];
    const metricsFrom = [
      { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } },
    ];
    const egress = [{ to: [{ ipBlock: { cidr: "10.244.0.1/32" } }], ports: [{ port: 4317 }] }];
    const objs = render({ kafka: strimzi, network: { apiFrom, metricsFrom, egress } });
    for (const c of ["producer", "consumer", "query"]) {
      const p = policy(objs, c);
      expect(p.spec.egress).toContainEqual({ to: egress[0]?.to, ports: [{ protocol: "TCP", port: 4317 }] });
      expect(p.spec.ingress.find((r) => r.ports?.[0]?.port === 9090)?.from).toEqual(metricsFrom);
    }
    expect(policy(objs, "query").spec.ingress.find((r) => r.ports?.[0]?.port === 8080)?.from).toEqual(
      apiFrom,
    );
  });

  it("makes none when network.policies is false", () => {
    expect(policies(render({ kafka: strimzi, network: { policies: false } }))).toEqual([]);
  });
});
