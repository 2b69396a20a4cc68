import type { LogPipeline } from "../api/logpipeline.js";
import { dnsName, LABEL_PIPELINE, LABEL_PIPELINE_UID, MANAGED_BY, pipelineNames } from "../builders/names.js";

/**
 * What a pipeline may ask of the operator on its team's behalf (the chart's `policy` values;
 * docs/security.md). The operator acts with its own permissions, wider than the team's: a
 * pipeline outside this policy is Stalled (PolicyViolation) and gets nothing applied.
 */
export interface PipelinePolicy {
  /** Namespaces of the Strimzi clusters a pipeline may name; [] its own only, "*" any. */
  strimziNamespaces: string[];
  /** Every topic a pipeline names starts with this ({namespace}: its namespace); "" any. */
  topicPrefix: string;
  /** Namespaces whose pipelines may choose their images; [] none, "*" all. */
  imageOverrideNamespaces: string[];
  allowIngressWithoutTLS: boolean;
}

export const DEFAULT_POLICY: PipelinePolicy = {
  strimziNamespaces: [],
  topicPrefix: "{namespace}.",
  imageOverrideNamespaces: [],
  allowIngressWithoutTLS: false,
};

/** A Secret a pipeline names is used only with this label ("true"), or when the operator generated it for that pipeline. */
export const LABEL_PIPELINE_SECRET = "logpipeline.io/pipeline-secret";

const allows = (list: string[], namespace: string) => list.includes("*") || list.includes(namespace);

/** What in the spec the policy refuses, one sentence each; empty when nothing. */
export function policyViolations(p: LogPipeline, policy: PipelinePolicy): string[] {
  const ns = p.metadata.namespace;
  const out: string[] = [];
  const ref = p.spec.kafka.clusterRef;
  if (
    p.spec.kafka.mode === "strimzi" &&
    ref &&
    ref.namespace !== ns &&
    !allows(policy.strimziNamespaces, ref.namespace)
  )
    out.push(
      `kafka.clusterRef.namespace ${ref.namespace} is not a Strimzi namespace pipelines may use (policy.strimziNamespaces: ${policy.strimziNamespaces.join(", ") || "only the pipeline's own"})`,
    );
  const prefix = policy.topicPrefix.replaceAll("{namespace}", ns);
  if (prefix) {
    const names = pipelineNames(p);
    for (const [field, topic] of [
      ["kafka.topic.name", names.topic],
      ["kafka.deadLetter.topicName", names.deadLetterTopic],
    ] as const)
      if (!topic.startsWith(prefix))
        out.push(
          `${field} ${topic} does not start with ${prefix}, the prefix namespace ${ns} owns (policy.topicPrefix)`,
        );
  }
  const images = [
    ...Object.entries(p.spec.images)
      .filter(([, v]) => v !== undefined)
      .map(([k]) => `images.${k}`),
    ...(p.spec.postgres.managed.image ? ["postgres.managed.image"] : []),
    ...(p.spec.redis.managed.image ? ["redis.managed.image"] : []),
  ];
  if (images.length > 0 && !allows(policy.imageOverrideNamespaces, ns))
    out.push(
      `${images.join(", ")}: pipelines in namespace ${ns} may not choose their images (policy.imageOverrideNamespaces)`,
    );
  if (p.spec.ingress.enabled && !p.spec.ingress.tlsSecret && !policy.allowIngressWithoutTLS)
    out.push(
      "ingress.tlsSecret is required: an Ingress without TLS is not allowed (policy.allowIngressWithoutTLS)",
    );
  return out;
}

/**
 * Whether a pipeline may use a Secret: one its team labelled for pipelines, or one the
 * operator generated for a pipeline of this name (this one, or the one before it whose data
 * deletionPolicy Retain kept: a pipeline applied again finds its database with its
 * credentials). Anyone who may create a LogPipeline could otherwise have any Secret of the
 * namespace mounted into pods, or sent to brokers they chose. Either way the labels were set
 * by the operator or by someone allowed to write that Secret.
 */
export function secretUsable(labels: Readonly<Record<string, string>> | undefined, p: LogPipeline): boolean {
  if (labels?.[LABEL_PIPELINE_SECRET] === "true") return true;
  return (
    labels?.["app.kubernetes.io/managed-by"] === MANAGED_BY &&
    (labels[LABEL_PIPELINE_UID] === p.metadata.uid || labels[LABEL_PIPELINE] === dnsName(p.metadata.name))
  );
}

export const unlabelledSecret = (name: string): string =>
  `Secret ${name} is not labelled ${LABEL_PIPELINE_SECRET}=true, so pipelines may not use it`;
