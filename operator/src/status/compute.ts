import { recordedTopics } from "../builders/kafka-topics.js";
import type { LogPipeline, LogPipelineStatus } from "../api/logpipeline.js";
import { type Condition, type ConditionInput, type ConditionStatus, setCondition } from "./conditions.js";
import { type ConditionReason, type PartReason, type PartType, Reason } from "./reasons.js";

/**
 * The connections the spec chose weaker than TLS with the server verified, each said in a
 * few words (empty: none). Managed PostgreSQL and Redis are not among them: they run in the
 * pipeline's namespace behind its NetworkPolicies. Informational: Ready does not depend on it.
 */
export function weakerTransport(p: LogPipeline): string[] {
  const out: string[] = [];
  const pg = p.spec.postgres.external;
  if (p.spec.postgres.mode === "external" && pg && pg.sslMode !== "verify-full")
    out.push(
      pg.sslMode === "verify-ca"
        ? "PostgreSQL sslMode verify-ca (the certificate is checked, not the host name)"
        : `PostgreSQL sslMode ${pg.sslMode} (the server is not verified${pg.sslMode === "require" ? "" : "; traffic may be plaintext"})`,
    );
  const kafkaProtocol = p.spec.kafka.auth.securityProtocol;
  if (kafkaProtocol === "PLAINTEXT" || kafkaProtocol === "SASL_PLAINTEXT")
    out.push(`Kafka ${kafkaProtocol} (plaintext)`);
  const redis = p.spec.redis.external;
  if (p.spec.redis.mode === "external" && redis && !redis.url.startsWith("rediss://"))
    out.push("Redis redis:// (plaintext)");
  if (p.spec.ingress.enabled && !p.spec.ingress.tlsSecret)
    out.push("Ingress without TLS (keys sent in clear)");
  return out;
}

/** Condition types of a LogPipeline (the CRD's status.conditions). */
export const CONDITION_TYPES = [
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
] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

export interface WorkloadObservation {
  /** Replicas the Deployment (or StatefulSet) wants now (its spec, whoever set it). */
  desired: number;
  ready: number;
  /** The Deployment's Available condition (minimum availability met). */
  available: boolean;
  /** The controller has seen the latest spec (status.observedGeneration == generation). */
  current: boolean;
}

export interface TopicObservation {
  name: string;
  /** Strimzi's Ready condition, or the Admin API's answer in external mode. */
  ready: ConditionStatus;
  reason: ConditionReason;
  message: string;
}

/** What the controller saw this pass; everything status needs, nothing it must fetch. */
export interface Observation {
  /** Set when the spec cannot be acted on (parse error that admission did not catch). */
  invalidSpec?: string;
  /** Child objects the API server refused, with its message. */
  applyErrors: { object: string; message: string; terminal: boolean }[];
  /** A step of the reconcile that failed (retried with backoff), with why. */
  reconcileError?: { step: string; message: string };
  topics: TopicObservation[];
  /** Why topics could not be observed at all (Strimzi missing, Kafka unreachable). */
  topicsProblem?: { reason: ConditionReason; message: string };
  postgres?: WorkloadObservation | undefined;
  redis?: WorkloadObservation | undefined;
  producer?: WorkloadObservation | undefined;
  consumer?: WorkloadObservation | undefined;
  query?: WorkloadObservation | undefined;
  notes: { reason: ConditionReason; message: string }[];
  deleting?: { reason: string; message: string };
  names: {
    topic: string;
    deadLetterTopic?: string;
    consumerGroup: string;
    bootstrapServers: string;
    /** Topics recorded as created this pass (mode external; unioned with the stored record). */
    createdTopics?: string[];
  };
  endpoints: { ingest: string; query: string; otlp: string; ingressHost?: string };
  delivery?: LogPipelineStatus["delivery"];
  /** Why the operator could not read the ledger (reported for an external PostgreSQL). */
  postgresError?: string;
  /** The last divergence check's findings, and what they make of DataConsistent. */
  divergence?: LogPipelineStatus["divergence"] | undefined;
  /** The events table's partitions, as of the last check. */
  storage?: LogPipelineStatus["storage"] | undefined;
  dataConsistency?:
    { status: "True" | "False" | "Unknown"; reason: ConditionReason; message: string } | undefined;
  /** The capacity advice (status/capacity.ts), recomputed at most once per resync. */
  capacity?: LogPipelineStatus["capacity"] | undefined;
  capacityAtRisk?: { risk: boolean; message: string } | undefined;
  /** What the operator wants and the cluster has, where they differ (status/spec-differences.ts). */
  specDifferences?: { object: string; field: string; reason: string }[];
}

const cond = (
  type: ConditionType,
  status: ConditionStatus,
  reason: ConditionReason,
  message: string,
  generation: number,
): Input => ({ type, status, reason, message, observedGeneration: generation });

/** A condition as this module builds it: its reason one of the typed ones (reasons.ts). */
type Input = ConditionInput & { type: ConditionType; reason: ConditionReason };

function workloadCondition(
  type: ConditionType,
  what: string,
  w: WorkloadObservation | undefined,
  hibernating: boolean,
  g: number,
): Input {
  if (!w) return cond(type, "False", Reason.NotFound, `the ${what} does not exist yet`, g);
  if (hibernating && w.desired === 0)
    return cond(type, "True", Reason.Hibernated, `the ${what} is scaled to 0`, g);
  if (w.available && w.ready > 0)
    return cond(type, "True", Reason.Available, `${w.ready}/${w.desired} ${what} replicas ready`, g);
  return cond(type, "False", Reason.Unavailable, `${w.ready}/${w.desired} ${what} replicas ready`, g);
}

function topicsCondition(p: LogPipeline, o: Observation, g: number): Input {
  if (o.topicsProblem)
    return cond("TopicsReady", "False", o.topicsProblem.reason, o.topicsProblem.message, g);
  const bad = o.topics.find((t) => t.ready === "False") ?? o.topics.find((t) => t.ready === "Unknown");
  if (o.topics.length === 0)
    return cond("TopicsReady", "Unknown", Reason.Pending, "no topic observed yet", g);
  if (bad)
    return cond(
      "TopicsReady",
      bad.ready === "False" ? "False" : "Unknown",
      bad.reason,
      `topic ${bad.name}: ${bad.message}`,
      g,
    );
  const how = p.spec.kafka.mode === "strimzi" ? "by Strimzi's topic operator" : "through the Kafka Admin API";
  return cond(
    "TopicsReady",
    "True",
    Reason.TopicsReady,
    `${o.topics.length} topics ready, managed ${how}`,
    g,
  );
}

function dataServiceCondition(
  type: "PostgresReady" | "RedisReady",
  mode: string,
  w: WorkloadObservation | undefined,
  hibernating: boolean,
  g: number,
  postgresError?: string,
): Input {
  const what = type === "PostgresReady" ? "PostgreSQL" : "Redis";
  if (mode === "disabled") return cond(type, "True", Reason.Disabled, `${what} is disabled`, g);
  if (mode === "external" && type === "PostgresReady" && postgresError)
    return cond(
      type,
      "False",
      Reason.ConnectionFailed,
      `the operator cannot read the ledger: ${postgresError}`,
      g,
    );
  if (mode === "external")
    return type === "PostgresReady"
      ? cond(type, "True", Reason.Reachable, "external PostgreSQL: the operator reads the ledger", g)
      : cond(
          type,
          "True",
          Reason.External,
          `${what} is external: the workloads' readiness reports its reachability`,
          g,
        );
  if (!w) return cond(type, "False", Reason.NotFound, `the managed ${what} does not exist yet`, g);
  if (hibernating && w.desired === 0)
    return cond(type, "True", Reason.Hibernated, `${what} is scaled to 0`, g);
  return w.ready > 0
    ? cond(type, "True", Reason.Available, `managed ${what} is ready`, g)
    : cond(type, "False", Reason.Unavailable, `managed ${what} is not ready yet`, g);
}

const summary = (w: WorkloadObservation | undefined) =>
  w ? { desired: w.desired, ready: w.ready, summary: `${w.ready}/${w.desired}` } : undefined;

/**
 * The status from the pipeline and what was observed — pure: the clock is an argument and
 * conditions keep their lastTransitionTime unless their status moves.
 */
export function computeStatus(p: LogPipeline, o: Observation, now: Date): LogPipelineStatus {
  const g = p.metadata.generation ?? 0;
  const hib = p.spec.hibernate;
  const old = (p.status?.conditions ?? []) as Condition[];
  const inputs: ConditionInput[] = [];

  const topics = topicsCondition(p, o, g);
  const postgres = dataServiceCondition(
    "PostgresReady",
    p.spec.postgres.mode,
    o.postgres,
    hib,
    g,
    o.postgresError,
  );
  const redis = dataServiceCondition("RedisReady", p.spec.redis.mode, o.redis, hib, g);
  const producer = workloadCondition("ProducerAvailable", "producer", o.producer, hib, g);
  const stalledParts = (o.delivery ?? p.status?.delivery)?.partitions?.filter((x) => x.stalled) ?? [];
  const firstStall = stalledParts[0]?.stalled;
  const consumer =
    firstStall && !hib
      ? cond(
          "ConsumerAvailable",
          "False",
          Reason.ConsumerStalled,
          `PostgreSQL refuses the batches of partition${stalledParts.length > 1 ? "s" : ""} ${stalledParts.map((x) => x.partition).join(", ")} since ${firstStall.since} (SQLSTATE ${firstStall.sqlstate}: ${firstStall.reason}); nothing is dead-lettered, the consumer retries`,
          g,
        )
      : workloadCondition("ConsumerAvailable", "consumer", o.consumer, hib, g);
  const query = workloadCondition("QueryAvailable", "query API", o.query, hib, g);
  const parts = [topics, postgres, redis, producer, consumer, query];

  const terminal = o.applyErrors.find((e) => e.terminal);
  const stalled: Input = o.invalidSpec
    ? cond("Stalled", "True", Reason.InvalidSpec, o.invalidSpec, g)
    : terminal
      ? cond("Stalled", "True", Reason.ApplyRejected, `${terminal.object}: ${terminal.message}`, g)
      : topics.status === "False" && topics.reason === "NotSupported"
        ? cond("Stalled", "True", Reason.TopicChangeNotSupported, topics.message, g)
        : topics.status === "False" && topics.reason === "NotOwned"
          ? cond("Stalled", "True", Reason.TopicNotOwned, topics.message, g)
          : cond("Stalled", "False", Reason.Progressing, "no blocking error", g);

  const notReady = parts.find((c) => c.status !== "True");
  const transient = o.applyErrors.find((e) => !e.terminal);
  const ready: Input = o.deleting
    ? cond("Ready", "False", Reason.Deleting, o.deleting.message, g)
    : stalled.status === "True"
      ? cond("Ready", "False", stalled.reason, stalled.message, g)
      : o.reconcileError
        ? cond(
            "Ready",
            "False",
            Reason.ReconcileFailed,
            `${o.reconcileError.step}: ${o.reconcileError.message}`,
            g,
          )
        : transient
          ? cond("Ready", "False", Reason.ApplyFailed, `${transient.object}: ${transient.message}`, g)
          : notReady
            ? cond(
                "Ready",
                "False",
                `${notReady.type as PartType}${notReady.status === "Unknown" ? "Unknown" : "False"}` satisfies PartReason,
                notReady.message,
                g,
              )
            : cond(
                "Ready",
                "True",
                hib ? Reason.Hibernated : Reason.PipelineReady,
                hib
                  ? "hibernating: workloads scaled to 0, data kept"
                  : "the pipeline accepts and delivers events",
                g,
              );

  const reconciling =
    ready.status === "True" || stalled.status === "True"
      ? cond("Reconciling", "False", ready.status === "True" ? "Reconciled" : "Stalled", ready.message, g)
      : cond("Reconciling", "True", Reason.Progressing, ready.message, g);

  // Only the divergence check moves DataConsistent; until it runs, Unknown.
  const data: ConditionInput = o.dataConsistency
    ? cond("DataConsistent", o.dataConsistency.status, o.dataConsistency.reason, o.dataConsistency.message, g)
    : (old.find((c) => c.type === "DataConsistent") ??
      cond("DataConsistent", "Unknown", Reason.NotChecked, "no divergence check has run yet", g));

  // The capacity advice moves CapacityAtRisk; until two delivery reads span some time, Unknown.
  const capacity: ConditionInput = o.capacityAtRisk
    ? o.capacityAtRisk.risk
      ? cond("CapacityAtRisk", "True", Reason.CapacityShort, o.capacityAtRisk.message, g)
      : cond(
          "CapacityAtRisk",
          "False",
          Reason.CapacitySufficient,
          "the partitions carry the observed peak and the PostgreSQL volume outlasts the retention horizon",
          g,
        )
    : (old.find((c) => c.type === "CapacityAtRisk") ??
      cond(
        "CapacityAtRisk",
        "Unknown",
        Reason.NotMeasured,
        "the pipeline's flow has not been measured yet",
        g,
      ));

  const firstNote = o.notes[0];
  const integrations = firstNote
    ? cond("IntegrationsAvailable", "False", firstNote.reason, o.notes.map((n) => n.message).join("; "), g)
    : cond(
        "IntegrationsAvailable",
        "True",
        Reason.AllPresent,
        "every optional integration the spec asks for is installed",
        g,
      );

  const weaker = weakerTransport(p);
  const transport = weaker.length
    ? cond("TransportVerified", "False", Reason.WeakerByChoice, `chosen in the spec: ${weaker.join("; ")}`, g)
    : cond(
        "TransportVerified",
        "True",
        Reason.Verified,
        "every connection to a service outside the pipeline's namespace is TLS with the server verified",
        g,
      );

  inputs.push(
    ready,
    topics,
    postgres,
    redis,
    producer,
    consumer,
    query,
    data,
    capacity,
    integrations,
    transport,
    reconciling,
    stalled,
  );
  let conditions = old.filter((c) => (CONDITION_TYPES as readonly string[]).includes(c.type));
  for (const c of inputs) conditions = setCondition(conditions, c, now);
  conditions.sort(
    (a, b) =>
      CONDITION_TYPES.indexOf(a.type as ConditionType) - CONDITION_TYPES.indexOf(b.type as ConditionType),
  );

  const dataBad = data.status === "False";
  const phase: NonNullable<LogPipelineStatus["phase"]> = o.deleting
    ? "Deleting"
    : stalled.status === "True"
      ? "Failed"
      : hib && ready.status === "True"
        ? "Hibernated"
        : ready.status === "True"
          ? dataBad
            ? "Degraded"
            : "Ready"
          : parts.every((c) => c.reason === "NotFound" || c.reason === "Pending")
            ? "Pending"
            : "Provisioning";

  const notes = o.notes.map((n) => n.message);
  const message = ready.status === "True" ? [ready.message, ...notes].join("; ") : ready.message;

  const workloads = {
    ...(o.producer ? { producer: summary(o.producer) } : {}),
    ...(o.consumer ? { consumer: summary(o.consumer) } : {}),
    ...(o.query ? { query: summary(o.query) } : {}),
  };
  return {
    observedGeneration: g,
    phase,
    message,
    conditions,
    topics: {
      main: o.names.topic,
      ...(o.names.deadLetterTopic ? { deadLetter: o.names.deadLetterTopic } : {}),
      consumerGroup: o.names.consumerGroup,
      bootstrapServers: o.names.bootstrapServers,
      // Always written in mode external, empty included: a status without it is one written
      // before the record existed (recordedTopics).
      ...(p.spec.kafka.mode === "external"
        ? { created: [...new Set([...recordedTopics(p), ...(o.names.createdTopics ?? [])])].sort() }
        : {}),
    },
    endpoints: o.endpoints,
    // An empty object would reach server-side apply as null, which the schema refuses.
    ...(Object.keys(workloads).length > 0 ? { workloads } : {}),
    ...(o.delivery ? { delivery: o.delivery } : p.status?.delivery ? { delivery: p.status.delivery } : {}),
    ...(o.storage ? { storage: o.storage } : p.status?.storage ? { storage: p.status.storage } : {}),
    ...(o.capacity ? { capacity: o.capacity } : p.status?.capacity ? { capacity: p.status.capacity } : {}),
    ...divergenceOf(p, o),
  };
}

/** The last check's findings (this pass's, else the stored ones) with this pass's spec differences. */
function divergenceOf(p: LogPipeline, o: Observation): Pick<LogPipelineStatus, "divergence"> {
  const div: NonNullable<LogPipelineStatus["divergence"]> = {
    ...(o.divergence ?? p.status?.divergence ?? {}),
  };
  delete div.specDifferences; // this pass's, never the stored ones
  const spec = o.specDifferences ?? [];
  if (spec.length > 0) div.specDifferences = spec;
  return Object.keys(div).length > 0 ? { divergence: div } : {};
}

/** A status for a suspended pipeline: everything as it was, phase Suspended. */
export function suspendedStatus(p: LogPipeline): LogPipelineStatus {
  return {
    ...(p.status ?? {}),
    observedGeneration: p.metadata.generation ?? 0,
    phase: "Suspended",
    message: "reconciliation is suspended (spec.suspend): children are left as they are",
  };
}

/** Equality of two statuses as the API server would store them (key order ignored). */
export function sameStatus(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === "object" && !Array.isArray(val)
      ? Object.fromEntries(
          Object.entries(val as Record<string, unknown>)
            .filter(([, x]) => x !== undefined)
            .sort(([x], [y]) => x.localeCompare(y)),
        )
      : val,
  );
}
