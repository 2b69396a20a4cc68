import type { V1Ingress } from "@kubernetes/client-node";
import type { LogPipeline } from "../api/logpipeline.js";
import { POSTGRES_PORT, REDIS_PORT } from "./data-services.js";
import { type Component, LABEL_COMPONENT, pipelineLabels, pipelineNames, selectorLabels } from "./names.js";
import { type BuildOptions, childMeta, type KubeObject } from "./options.js";
import { SERVICE_PORT } from "./workloads.js";

const OPERATOR_SELECTOR = { "app.kubernetes.io/name": "logpipeline-operator" };

/**
 * Only the pipeline's own workloads (and the operator, which reads the ledger) may reach a
 * managed data service.
 */
function dataServicePolicy(
  p: LogPipeline,
  opts: BuildOptions,
  component: "postgres" | "redis",
  port: number,
  clients: Component[],
): KubeObject {
  // Typed loosely: the client's model names the field `_from`, the API `from`.
  const names = pipelineNames(p);
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: childMeta(
      p,
      component === "postgres" ? names.postgres : names.redis,
      pipelineLabels(p, component),
    ),
    spec: {
      podSelector: { matchLabels: selectorLabels(p, component) },
      policyTypes: ["Ingress"],
      ingress: [
        {
          from: [
            {
              podSelector: {
                matchLabels: {
                  "app.kubernetes.io/instance":
                    selectorLabels(p, component)["app.kubernetes.io/instance"] ?? "",
                },
                matchExpressions: [{ key: LABEL_COMPONENT, operator: "In", values: clients }],
              },
            },
            ...(component === "postgres"
              ? [
                  {
                    namespaceSelector: {
                      matchLabels: { "kubernetes.io/metadata.name": opts.operatorNamespace },
                    },
                    podSelector: { matchLabels: OPERATOR_SELECTOR },
                  },
                ]
              : []),
          ],
          ports: [{ protocol: "TCP", port }],
        },
      ],
    },
  };
}

export function networkPolicies(p: LogPipeline, opts: BuildOptions): KubeObject[] {
  const out: KubeObject[] = [];
  if (p.spec.postgres.mode === "managed")
    out.push(dataServicePolicy(p, opts, "postgres", POSTGRES_PORT, ["consumer", "query"]));
  if (p.spec.redis.mode === "managed")
    out.push(dataServicePolicy(p, opts, "redis", REDIS_PORT, ["producer", "query"]));
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
