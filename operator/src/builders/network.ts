import type { V1Ingress } from "@kubernetes/client-node";
import type { LogPipeline } from "../api/logpipeline.js";
import { POSTGRES_PORT, REDIS_PORT } from "./data-services.js";
import { type Component, LABEL_COMPONENT, pipelineLabels, pipelineNames, selectorLabels } from "./names.js";
import { type BuildOptions, childMeta, type KubeObject } from "./options.js";
import { HTTP_PORT, METRICS_PORT, SERVICE_PORT } from "./workloads.js";

const OPERATOR_SELECTOR = { "app.kubernetes.io/name": "logpipeline-operator" };

type Peer = NonNullable<LogPipeline["spec"]["network"]["apiFrom"]>[number] | Record<string, unknown>;
interface Port {
  protocol: "TCP" | "UDP" | "SCTP";
  port: number;
  endPort?: number | undefined;
}
/** networking.k8s.io/v1 rules (typed here: the client's model names the field `_from`). */
interface Rule {
  peers?: Peer[];
  ports?: Port[];
}
const tcp = (port: number): Port => ({ protocol: "TCP", port });

/** The pipeline's own pods of some components. */
function componentPeer(p: LogPipeline, components: Component[]): Peer {
  return {
    podSelector: {
      matchLabels: Object.fromEntries(
        Object.entries(selectorLabels(p, "producer")).filter(([k]) => k !== LABEL_COMPONENT),
      ),
      matchExpressions: [{ key: LABEL_COMPONENT, operator: "In", values: components }],
    },
  };
}

/** Any pod of the cluster, nothing outside it. */
const IN_CLUSTER: Peer = { namespaceSelector: {} };

/** The ports of a `host:port,host:port` list (a missing port is Kafka's 9092). */
function listPorts(list: string): number[] {
  const ports = list
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((hp) => Number(/:(\d+)$/.exec(hp)?.[1] ?? 9092))
    .filter((n) => Number.isInteger(n) && n > 0 && n < 65536);
  return [...new Set(ports)].sort((a, b) => a - b);
}

/**
 * Where the brokers are. Strimzi: the cluster's pods on its listener's port (Strimzi's brokers
 * listen on the listener's own port). External: the bootstrap list's ports, any address (the
 * brokers' addresses are not known here; `network.egress` can narrow them).
 */
export function kafkaEgress(p: LogPipeline): Rule {
  const { clusterRef, bootstrapServers } = p.spec.kafka;
  if (p.spec.kafka.mode === "strimzi" && clusterRef)
    return {
      peers: [
        {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": clusterRef.namespace } },
          podSelector: { matchLabels: { "strimzi.io/cluster": clusterRef.name, "strimzi.io/kind": "Kafka" } },
        },
      ],
      ports: [tcp(clusterRef.listenerPort)],
    };
  return { ports: listPorts(bootstrapServers ?? "").map(tcp) };
}

function postgresEgress(p: LogPipeline): Rule {
  if (p.spec.postgres.mode === "managed")
    return { peers: [componentPeer(p, ["postgres"])], ports: [tcp(POSTGRES_PORT)] };
  return { ports: [tcp(p.spec.postgres.external?.port ?? POSTGRES_PORT)] };
}

function redisEgress(p: LogPipeline): Rule | undefined {
  const { mode, external } = p.spec.redis;
  if (mode === "disabled") return undefined;
  if (mode === "managed") return { peers: [componentPeer(p, ["redis"])], ports: [tcp(REDIS_PORT)] };
  let port = REDIS_PORT;
  try {
    port = Number(new URL(external?.url ?? "").port) || REDIS_PORT;
  } catch {
    // CEL admits only redis:// and rediss:// URLs; an unparsable one keeps Redis's port.
  }
  return { ports: [tcp(port)] };
}

/**
 * DNS: port 53 anywhere (a node-local cache, an upstream resolver), and the cluster's DNS
 * pods (`k8s-app: kube-dns` in kube-system, the label kubeadm, EKS, GKE and AKS give CoreDNS)
 * on any port: a policy sees the pod's port after the Service, and CoreDNS run without
 * privileges listens on another (the local node's on 1053).
 */
const DNS: Rule[] = [
  { ports: [{ protocol: "UDP", port: 53 }, tcp(53)] },
  {
    peers: [
      {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
        podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
      },
    ],
  },
];

function policy(
  p: LogPipeline,
  name: string,
  component: Component,
  ingress: Rule[],
  egress: Rule[],
): KubeObject {
  const toK8s = (dir: "from" | "to") => (r: Rule) => ({
    ...(r.peers ? { [dir]: r.peers } : {}),
    ...(r.ports ? { ports: r.ports } : {}),
  });
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: childMeta(p, name, pipelineLabels(p, component)),
    spec: {
      podSelector: { matchLabels: selectorLabels(p, component) },
      policyTypes: ["Ingress", "Egress"],
      ingress: ingress.map(toK8s("from")),
      egress: egress.map(toK8s("to")),
    },
  };
}

/**
 * Default deny, in and out, for every pod of the pipeline (docs/security.md):
 * - producer, query: in, the API port from `network.apiFrom` (any source when unset);
 * - every workload: in, the metrics port from `network.metricsFrom` (any pod of the cluster);
 * - out, what each one uses: DNS, Kafka (producer, consumer), PostgreSQL (consumer, query),
 *   Redis (producer, query), and `network.egress`;
 * - managed PostgreSQL: in, the consumer, the query API and the operator; managed Redis: in,
 *   the producer and the query API; neither goes out.
 * Kubelet probes come from the node, which NetworkPolicy enforcers let through.
 */
export function networkPolicies(p: LogPipeline, opts: BuildOptions): KubeObject[] {
  const { network } = p.spec;
  if (!network.policies) return [];
  const names = pipelineNames(p);
  const api: Rule = { ...(network.apiFrom ? { peers: network.apiFrom } : {}), ports: [tcp(HTTP_PORT)] };
  const metrics: Rule = { peers: network.metricsFrom ?? [IN_CLUSTER], ports: [tcp(METRICS_PORT)] };
  const extra: Rule[] = network.egress.map((r) => ({
    ...(r.to ? { peers: r.to } : {}),
    ...(r.ports ? { ports: r.ports } : {}),
  }));
  const redis = redisEgress(p);
  const out: KubeObject[] = [
    policy(
      p,
      names.producer,
      "producer",
      [api, metrics],
      [...DNS, kafkaEgress(p), ...(redis ? [redis] : []), ...extra],
    ),
    policy(p, names.consumer, "consumer", [metrics], [...DNS, kafkaEgress(p), postgresEgress(p), ...extra]),
    policy(
      p,
      names.query,
      "query",
      [api, metrics],
      [...DNS, postgresEgress(p), ...(redis ? [redis] : []), ...extra],
    ),
  ];
  if (p.spec.postgres.mode === "managed") {
    const operator: Peer = {
      namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": opts.operatorNamespace } },
      podSelector: { matchLabels: OPERATOR_SELECTOR },
    };
    out.push(
      policy(
        p,
        names.postgres,
        "postgres",
        [{ peers: [componentPeer(p, ["consumer", "query"]), operator], ports: [tcp(POSTGRES_PORT)] }],
        [],
      ),
    );
  }
  if (p.spec.redis.mode === "managed")
    out.push(
      policy(
        p,
        names.redis,
        "redis",
        [{ peers: [componentPeer(p, ["producer", "query"])], ports: [tcp(REDIS_PORT)] }],
        [],
      ),
    );
  return out;
}

/** One Ingress: the ingest API on `host`, the query API on `queryHost` (both serve /api/logs). */
export function ingress(p: LogPipeline): V1Ingress | undefined {
  const spec = p.spec.ingress;
  if (!spec.enabled || !spec.host) return undefined;
  const names = pipelineNames(p);
  const rule = (host: string, service: string) => ({
    host,
    http: {
      paths: [
        {
          path: "/",
          pathType: "Prefix",
          backend: { service: { name: service, port: { number: SERVICE_PORT } } },
        },
      ],
    },
  });
  const hosts = [spec.host, ...(spec.queryHost ? [spec.queryHost] : [])];
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "Ingress",
    metadata: childMeta(p, p.metadata.name, pipelineLabels(p, "producer")),
    spec: {
      ...(spec.className ? { ingressClassName: spec.className } : {}),
      ...(spec.tlsSecret ? { tls: [{ hosts, secretName: spec.tlsSecret }] } : {}),
      rules: [
        rule(spec.host, names.producer),
        ...(spec.queryHost ? [rule(spec.queryHost, names.query)] : []),
      ],
    },
  };
}
