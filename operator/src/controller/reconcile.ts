import { randomBytes } from "node:crypto";
import { Reason } from "../status/reasons.js";
import {
  ANNOTATION_SKIP_DRAIN,
  API_VERSION,
  FINALIZER,
  KIND,
  type LogPipeline,
  type LogPipelineStatus,
} from "../api/logpipeline.js";
import { errorText } from "../../../workloads/common/src/connections.js";
import { parsePipeline } from "../api/parse.js";
import { type BuildNote, type DesiredState, desiredState, type KubeObject } from "../builders/index.js";
import { completenessConfigMap } from "../builders/completeness.js";
import { bootstrapServers } from "../builders/kafka-topics.js";
import { LABEL_PIPELINE_UID, pipelineNames } from "../builders/names.js";
import { SERVICE_PORT } from "../builders/workloads.js";
import { KubeError, type KubeObjectLike } from "../kube/client.js";
import type { ReconcileResult } from "../runtime/workqueue.js";
import type { Condition } from "../status/conditions.js";
import { setCondition, transitionEvents } from "../status/conditions.js";
import { adviseCapacityStep } from "./capacity.js";
import { computeStatus, type Observation, sameStatus, suspendedStatus } from "../status/compute.js";
import { childKinds, objectRef } from "./children.js";
import type { ControllerDeps } from "./deps.js";
import { dataConsistency, divergenceDue, divergenceStatus } from "./divergence.js";
import { foreignEdits, newSpecDifferences, specDifferences } from "../status/spec-differences.js";
import { observeKafkaTopic, observeWorkload, referencedSecrets } from "./observe.js";
import { policyViolations, secretUsable, unlabelledSecret } from "./policy.js";
import { objectKey } from "../runtime/informer.js";
import { rfc3339Seconds } from "../time.js";
import { deliveryDue, kafkaConnection, refreshDelivery, withKafka } from "./probes.js";

/**
 * reconcile(key, deps): the one place that mixes I/O and logic (docs/architecture.md, Layers).
 * Level-triggered: every pass builds the whole desired state; a child nobody changed since
 * its last apply is left alone, anything else is applied, so a child edited or deleted by
 * someone else is put back; status is computed purely from what was observed and written
 * only when it differs. The orchestrator below names its steps, each a function of its own
 * that returns what the next one needs.
 */
export async function reconcile(key: string, deps: ControllerDeps): Promise<ReconcileResult> {
  const raw = deps.pipelines.get(key);
  if (!raw) return undefined; // deleted: owned children go with it (garbage collector)
  const parsed = parsePipeline(raw);
  if (!parsed.ok) {
    const meta = raw.metadata;
    if (!meta?.name || !meta.namespace || !meta.uid) return undefined;
    // Deletion never waits on the spec: one stored under an older, looser schema (or edited
    // past admission) is let go with its data retained.
    if (meta.deletionTimestamp) return await finalizeUnreadable(raw, parsed.message, deps);
    deps.log.warn({ key, problem: parsed.message }, "invalid LogPipeline");
    return await reportStalled(
      raw,
      Reason.InvalidSpec,
      `invalid spec: ${parsed.message}`,
      parsed.message,
      deps,
    );
  }
  const p = parsed.pipeline;
  if (p.metadata.deletionTimestamp) return await finalize(p, deps);
  // Outside the operator's policy: nothing is applied (what an earlier spec made stays as it was).
  const refused = policyViolations(p, deps.config.policy);
  if (refused.length > 0) return await reportPolicyViolation(raw, refused, deps);
  // A step that fails is in the status (Ready False, ReconcileFailed, naming the step) within
  // this reconcile, then retried with backoff: never only in the operator's log.
  let step = "adding the finalizer";
  try {
    await ensureFinalizer(p, deps);
    if (p.spec.suspend) {
      step = "writing status";
      await writeStatus(p, suspendedStatus(p), deps);
      return undefined;
    }
    step = "reading or creating Secrets";
    const desired = await desiredWithCredentials(p, deps);
    if (desired.unusableSecrets.length > 0)
      return await reportPolicyViolation(raw, desired.unusableSecrets.map(unlabelledSecret), deps);
    step = "applying children and writing status";
    return await applyAndReport(key, p, desired, deps);
  } catch (e) {
    // A conflict only means this pass read a stale cache: retried at once, nothing to report.
    const benign = e instanceof ReportedError || (e instanceof KubeError && e.conflict);
    if (!benign) await reportReconcileError(p, step, e, deps);
    throw e;
  }
}

/** An error already in the status (an apply the API server refused for now). */
class ReportedError extends Error {}

async function reportReconcileError(
  p: LogPipeline,
  step: string,
  e: unknown,
  deps: ControllerDeps,
): Promise<void> {
  const observation = { ...emptyObservation(p, []), reconcileError: { step, message: errorText(e) } };
  await writeStatus(p, computeStatus(p, observation, deps.now()), deps).catch((w: unknown) =>
    deps.log.warn({ pipeline: p.metadata.name, err: errorText(w) }, "could not write the error into status"),
  );
}

async function applyAndReport(
  key: string,
  p: LogPipeline,
  desired: DesiredState,
  deps: ControllerDeps,
): Promise<ReconcileResult> {
  const observation = emptyObservation(p, desired.notes);
  if (p.spec.kafka.mode === "external") observation.names.createdTopics = deps.probes.created(key, p);
  askProbes(key, p, desired, observation, deps);
  const applied = await applyChildren(key, p, desired.apply, observation, deps);
  // The completeness ConfigMap is applied after the status (below), from it: kept here.
  await prune(p, [...desired.apply, completenessConfigMap(p, p.status)], deps);
  observeChildren(p, desired.apply, applied, observation);
  adviseCapacityStep(key, p, observation, deps);
  observation.specDifferences = specDifferences({
    pipeline: p.metadata.name,
    notes: desired.notes,
    topics: observation.topics,
    autoscaled: autoscaledDeployments(desired.apply, applied),
    reverted: deps.revertedEdits.get(key) ?? [],
  });
  const status = computeStatus(p, observation, deps.now());
  await writeStatus(p, status, deps);
  // The query pods' completeness banner, from the status just written: an API write only when
  // its answer changed (DataConsistent, or the lag's order of magnitude).
  await applyChildren(key, p, [completenessConfigMap(p, status)], observation, deps);
  recordWorkloadMetrics(p, status, deps);
  if (observation.applyErrors.some((e) => !e.terminal))
    throw new ReportedError(observation.applyErrors[0]?.message ?? "apply failed");
  return requeue(p, status, deps);
}

/** Step: the finalizer that lets deletion carry out deletionPolicy. */
async function ensureFinalizer(p: LogPipeline, deps: ControllerDeps): Promise<void> {
  if (!p.metadata.finalizers?.includes(FINALIZER)) await addFinalizer(p, deps);
}

/**
 * Step: the desired children, with the generated credentials created once and the content
 * hashes of every Secret the pods reference (a changed Secret rolls its pods). Two passes:
 * the first finds the Secrets the pods reference, the second hashes their content in.
 */
async function desiredWithCredentials(
  p: LogPipeline,
  deps: ControllerDeps,
): Promise<DesiredState & { unusableSecrets: string[] }> {
  const baseOptions = { ...deps.config, capabilities: deps.capabilities(), secretHashes: {} };
  const creds = {
    postgresPassword: secret(),
    postgresRolePasswords: { owner: secret(), writer: secret(), reader: secret() },
    redisPassword: secret(),
    apiKey: secret(),
    queryKey: secret(),
  };
  const first = desiredState(p, baseOptions, creds);
  await createOnce(first.createOnce, p.status?.observedGeneration === undefined, deps);
  const secretHashes: Record<string, string> = {};
  // A Secret the pods would mount, or the Ingress's certificate the ingress controller would
  // serve, that the pipeline may not use (policy.ts): nothing is applied.
  const unusableSecrets: string[] = [];
  const tls = p.spec.ingress.enabled ? p.spec.ingress.tlsSecret : undefined;
  const mounted = referencedSecrets(first.apply);
  for (const name of new Set([...mounted, ...(tls ? [tls] : [])])) {
    const read = await deps.secrets.read(p.metadata.namespace, name);
    if (read.exists && !secretUsable(read.labels, p)) unusableSecrets.push(name);
    if (mounted.includes(name)) secretHashes[name] = read.hash;
  }
  // Read afresh next pass: its team is probably labelling it now.
  for (const name of unusableSecrets) deps.secrets.invalidate(p.metadata.namespace, name);
  return { ...desiredState(p, { ...baseOptions, secretHashes }, creds), unusableSecrets };
}

/**
 * Step: the tenant's Kafka and PostgreSQL, read off this path (probes.ts): ask for what is
 * due, take what the last reads found; a pass that ends queues the pipeline again.
 */
function askProbes(
  key: string,
  p: LogPipeline,
  desired: DesiredState,
  observation: Observation,
  deps: ControllerDeps,
): void {
  const external = p.spec.kafka.mode === "external";
  deps.probes.request(key, p, {
    topics: external && deps.probes.topicsDue(key, desired.adminTopics) ? desired.adminTopics : undefined,
    delivery: deliveryDue(key, deps),
    check: divergenceDue(key, p, deps),
  });
  if (external) observation.topics = deps.probes.topics(key) ?? [];
  else if (!deps.capabilities().strimzi)
    observation.topicsProblem = {
      reason: Reason.StrimziMissing,
      message: "kafka.mode is strimzi but the KafkaTopic CRD is not installed",
    };
  const read = deps.deliveryReads.get(key);
  if (read?.delivery) observation.delivery = read.delivery;
  if (read?.postgresError) observation.postgresError = read.postgresError;
  const check = deps.divergence.get(key);
  observation.divergence = divergenceStatus(check);
  observation.storage = check?.storage;
  observation.dataConsistency = dataConsistency(check);
}

/**
 * Step: server-side apply of every child that changed since its last apply (AppliedChildren),
 * the others taken from the cache. Returns the children as applied or cached, by reference;
 * failures go into the observation (terminal ones stall the pipeline, others are retried).
 */
async function applyChildren(
  key: string,
  p: LogPipeline,
  objects: KubeObject[],
  observation: Observation,
  deps: ControllerDeps,
): Promise<Map<string, KubeObjectLike>> {
  const applied = new Map<string, KubeObjectLike>();
  for (const obj of objects) {
    const ref = objectRef(obj.kind, obj.metadata.namespace, obj.metadata.name);
    const before = deps.children.get(obj.kind)?.get(`${obj.metadata.namespace ?? ""}/${obj.metadata.name}`);
    if (before && deps.applied.unchanged(key, ref, obj, before)) {
      applied.set(ref, before);
      deps.metrics.applies.inc({ result: "unchanged" });
      continue;
    }
    try {
      const result = await deps.kube.apply(obj);
      applied.set(ref, result);
      deps.applied.record(key, ref, obj, result);
      const noop = before?.metadata?.resourceVersion === result.metadata?.resourceVersion;
      deps.metrics.applies.inc({ result: noop ? "noop" : "changed" });
      // The spec did not change, the child did: someone else edited it, and this apply put it back.
      if (before && !noop && p.metadata.generation === p.status?.observedGeneration)
        noteRevertedEdit(key, `${obj.kind}/${obj.metadata.name}`, before, deps);
    } catch (e) {
      deps.applied.forget(key, ref);
      deps.metrics.applies.inc({ result: "error" });
      const terminal = e instanceof KubeError && [400, 403, 422].includes(e.status);
      observation.applyErrors.push({
        object: `${obj.kind}/${obj.metadata.name}`,
        message: errorText(e),
        terminal,
      });
      deps.log.warn({ key, object: ref, err: errorText(e) }, "apply failed");
    }
  }
  return applied;
}

/** Step: the replica gauges from the status just computed. */
function recordWorkloadMetrics(p: LogPipeline, status: LogPipelineStatus, deps: ControllerDeps): void {
  for (const [component, w] of Object.entries(status.workloads ?? {}))
    for (const state of ["desired", "ready"] as const)
      if (w)
        deps.metrics.workloadReplicas.set(
          { pipeline_namespace: p.metadata.namespace, pipeline: p.metadata.name, component, state },
          w[state],
        );
}

/** Step: when to come back — a ready pipeline at its next divergence check or the resync. */
function requeue(p: LogPipeline, status: LogPipelineStatus, deps: ControllerDeps): ReconcileResult {
  return { requeueAfterMs: requeueAfterMs(p, status, deps.now().getTime(), deps.config) };
}

/**
 * When to look at a pipeline again without an event. Ready: at the delivery interval (its
 * status.delivery is read then; a child's status updates no longer wake it), or at the
 * resync period or its divergence check when sooner. Stalled: every minute. Progressing: after
 * progressingRequeueMs at first, then a quarter of the time it has been progressing, up to
 * the resync period — its children's events wake it anyway, so at 1,000 pipelines whose pods
 * cannot be scheduled this poll does not grow into the operator's main load.
 */
export function requeueAfterMs(
  p: LogPipeline,
  status: LogPipelineStatus,
  nowMs: number,
  config: Pick<ControllerDeps["config"], "resyncMs" | "progressingRequeueMs" | "deliveryIntervalMs">,
): number {
  const condition = (type: string) => status.conditions?.find((c) => c.type === type);
  if (condition("Ready")?.status === "True") {
    const checkEveryMs = p.spec.hibernate ? Infinity : p.spec.reconciliation.intervalSeconds * 1000;
    return Math.min(config.resyncMs, checkEveryMs, config.deliveryIntervalMs);
  }
  if (condition("Stalled")?.status === "True") return 60_000;
  const since = Date.parse(condition("Reconciling")?.lastTransitionTime ?? "");
  const progressingMs = Number.isNaN(since) ? 0 : Math.max(0, nowMs - since);
  return Math.min(config.resyncMs, Math.max(config.progressingRequeueMs, Math.round(progressingMs / 4)));
}

const secret = () => randomBytes(24).toString("base64url");

/** Keeps the last 5 edits of the past hour that the operator reverted, for status.divergence. */
function noteRevertedEdit(key: string, object: string, before: KubeObjectLike, deps: ControllerDeps): void {
  const edit = foreignEdits((before.metadata as { managedFields?: [] } | undefined)?.managedFields);
  if (edit.managers.length === 0) return;
  const now = deps.now();
  const recent = (deps.revertedEdits.get(key) ?? []).filter(
    (r) => r.object !== object && now.getTime() - Date.parse(r.at) < 3_600_000,
  );
  recent.push({ object, ...edit, at: rfc3339Seconds(now) });
  deps.revertedEdits.set(key, recent.slice(-5));
  deps.log.info(
    { key, object, managers: edit.managers, fields: edit.fields },
    "reverted an edit made outside the operator",
  );
}

/** The Deployments an HPA scales, as applied (with their managedFields). */
function autoscaledDeployments(
  apply: KubeObject[],
  applied: Map<string, KubeObjectLike>,
): { name: string; managedFields?: [] }[] {
  return apply
    .filter((o) => o.kind === "HorizontalPodAutoscaler")
    .map((h) => (h as { spec?: { scaleTargetRef?: { name?: string } } }).spec?.scaleTargetRef?.name ?? "")
    .map((name) => {
      const d = [...applied.values()].find((o) => o.kind === "Deployment" && o.metadata?.name === name);
      const managedFields = (d?.metadata as { managedFields?: [] } | undefined)?.managedFields;
      return { name, ...(managedFields ? { managedFields } : {}) };
    });
}

function emptyObservation(p: LogPipeline, notes: BuildNote[]): Observation {
  const names = pipelineNames(p);
  const ns = p.metadata.namespace;
  return {
    applyErrors: [],
    topics: [],
    notes,
    names: {
      topic: names.topic,
      ...(p.spec.kafka.deadLetter.enabled ? { deadLetterTopic: names.deadLetterTopic } : {}),
      consumerGroup: names.consumerGroup,
      bootstrapServers: bootstrapServers(p),
    },
    endpoints: {
      ingest: `http://${names.producer}.${ns}.svc:${SERVICE_PORT}/api/logs`,
      query: `http://${names.query}.${ns}.svc:${SERVICE_PORT}/api/logs`,
      otlp: `http://${names.producer}.${ns}.svc:${SERVICE_PORT}/v1/logs`,
      ...(p.spec.ingress.enabled && p.spec.ingress.host ? { ingressHost: p.spec.ingress.host } : {}),
    },
  };
}

function observeChildren(
  p: LogPipeline,
  desired: KubeObject[],
  applied: Map<string, KubeObjectLike>,
  o: Observation,
): void {
  const names = pipelineNames(p);
  const get = (kind: string, name: string, namespace = p.metadata.namespace) =>
    applied.get(objectRef(kind, namespace, name));
  o.producer = observeWorkload(get("Deployment", names.producer));
  o.consumer = observeWorkload(get("Deployment", names.consumer));
  o.query = observeWorkload(get("Deployment", names.query));
  o.redis = observeWorkload(get("Deployment", names.redis));
  o.postgres = observeWorkload(get("StatefulSet", names.postgres));
  if (p.spec.kafka.mode === "strimzi")
    o.topics = desired
      .filter((d) => d.kind === "KafkaTopic")
      .map((d) => {
        const live = get("KafkaTopic", d.metadata.name, d.metadata.namespace);
        return live
          ? observeKafkaTopic(live)
          : {
              name: d.metadata.name,
              ready: "False" as const,
              reason: Reason.ApplyFailed,
              message: "the KafkaTopic could not be written",
            };
      });
}

/**
 * The generated credentials, created when missing. A pipeline the operator has never reported
 * on is new, and its Secrets almost always missing: they are created without a read first
 * (a conflict means they exist), and the created object is remembered, so converging a new
 * pipeline costs one request per Secret instead of three. Otherwise they are looked up (the
 * read is shared with the pod templates' hashes) and created only when missing.
 */
async function createOnce(objects: KubeObject[], isNew: boolean, deps: ControllerDeps): Promise<void> {
  for (const obj of objects) {
    const ns = obj.metadata.namespace ?? "";
    if (!isNew && (await deps.secrets.read(ns, obj.metadata.name)).exists) continue;
    try {
      const created = await deps.kube.create<{ data?: Record<string, string> }>(obj);
      deps.secrets.remember(ns, obj.metadata.name, created);
      deps.log.info(
        { object: objectRef(obj.kind, obj.metadata.namespace, obj.metadata.name) },
        "generated credentials",
      );
    } catch (e) {
      if (!(e instanceof KubeError && e.conflict)) throw e; // created meanwhile by another pass: fine
    }
  }
}

/** Deletes children labelled with this pipeline's uid that this generation no longer wants. */
async function prune(p: LogPipeline, desired: KubeObject[], deps: ControllerDeps): Promise<void> {
  const wanted = new Set(desired.map((d) => objectRef(d.kind, d.metadata.namespace, d.metadata.name)));
  for (const k of childKinds(deps.capabilities())) {
    const informer = deps.children.get(k.kind);
    if (!informer) continue;
    for (const live of informer.list()) {
      const m = live.metadata;
      if (m?.labels?.[LABEL_PIPELINE_UID] !== p.metadata.uid || !m.name) continue;
      if (wanted.has(objectRef(k.kind, m.namespace, m.name))) continue;
      if (k.kind === "KafkaTopic") continue; // topics are never pruned: only deletion (and its policy) removes them
      deps.log.info({ object: objectRef(k.kind, m.namespace, m.name) }, "pruning child no longer wanted");
      await deps.kube.delete(k.apiVersion, k.kind, m.namespace, m.name);
    }
  }
}

async function addFinalizer(p: LogPipeline, deps: ControllerDeps): Promise<void> {
  await deps.kube.mergePatch(API_VERSION, KIND, p.metadata.namespace, p.metadata.name, {
    metadata: {
      resourceVersion: p.metadata.resourceVersion,
      finalizers: [...(p.metadata.finalizers ?? []), FINALIZER],
    },
  });
}

const ref = (p: LogPipeline) => ({
  apiVersion: API_VERSION,
  kind: KIND,
  name: p.metadata.name,
  namespace: p.metadata.namespace,
  uid: p.metadata.uid,
});

/** Writes status when it differs from what is stored (or what this process last wrote), and emits Events on condition transitions. */
async function writeStatus(p: LogPipeline, status: LogPipelineStatus, deps: ControllerDeps): Promise<void> {
  const key = `${p.metadata.namespace}/${p.metadata.name}`;
  const written = deps.writtenStatus.get(key);
  if (sameStatus(p.status ?? {}, status) || (written !== undefined && sameStatus(written, status))) return;
  const previous = (written as LogPipelineStatus | undefined) ?? p.status;
  const before = previous?.conditions ?? [];
  try {
    await deps.kube.apply(
      {
        apiVersion: API_VERSION,
        kind: KIND,
        metadata: { name: p.metadata.name, namespace: p.metadata.namespace },
        status,
      },
      { subresource: "status" },
    );
  } catch (e) {
    if (e instanceof KubeError && e.notFound) return; // deleted meanwhile: nothing to report on
    throw e;
  }
  deps.metrics.statusWrites.inc();
  deps.writtenStatus.set(key, status);
  for (const ev of transitionEvents(before as Condition[], (status.conditions ?? []) as Condition[]))
    await deps.recorder.emit(ref(p), ev.type, ev.reason, ev.message);
  // A spec difference is announced once, when it appears (the status lists it while it lasts).
  for (const d of newSpecDifferences(
    previous?.divergence?.specDifferences,
    status.divergence?.specDifferences,
  ))
    await deps.recorder.emit(ref(p), "Warning", "SpecDifference", `${d.object} ${d.field}: ${d.reason}`);
}

/** A spec outside the operator's policy: Stalled, every violation named, nothing applied. */
async function reportPolicyViolation(
  raw: KubeObjectLike,
  violations: string[],
  deps: ControllerDeps,
): Promise<ReconcileResult> {
  const message = violations.join("; ");
  deps.log.warn({ pipeline: objectKey(raw), problem: message }, "LogPipeline outside the operator's policy");
  return await reportStalled(
    raw,
    Reason.PolicyViolation,
    `outside the operator's policy: ${message}`,
    message,
    deps,
  );
}

/** Stalled True with a reason; the rest of the status as it was (what was made before stays). */
async function reportStalled(
  raw: KubeObjectLike,
  reason: typeof Reason.InvalidSpec | typeof Reason.PolicyViolation,
  summary: string,
  message: string,
  deps: ControllerDeps,
): Promise<ReconcileResult> {
  const m = raw.metadata ?? {};
  const generation = m.generation ?? 0;
  const current = raw.status as LogPipelineStatus | undefined;
  const status: LogPipelineStatus = {
    ...(current ?? {}),
    observedGeneration: generation,
    phase: "Failed",
    message: summary,
    // Ready too: what an earlier spec made may still run, but this spec is not acted on, so
    // `kubectl get lp` must not say Ready.
    conditions: (["Stalled", "Ready"] as const).reduce(
      (conditions, type) =>
        setCondition(
          conditions,
          {
            type,
            status: type === "Stalled" ? "True" : "False",
            reason,
            message,
            observedGeneration: generation,
          },
          deps.now(),
        ),
      (current?.conditions ?? []) as Condition[],
    ),
  };
  const pipeline = {
    metadata: { name: m.name ?? "", namespace: m.namespace ?? "", uid: m.uid ?? "" },
    ...(current ? { status: current } : {}),
  } as LogPipeline;
  await writeStatus(pipeline, status, deps);
  return { requeueAfterMs: 60_000 };
}

/**
 * Deletion: wait (bounded) for the consumer to drain when data will be deleted, remove
 * topics and PostgreSQL's volumes as deletionPolicy says, then let the object go.
 */
async function finalize(p: LogPipeline, deps: ControllerDeps): Promise<ReconcileResult> {
  if (!p.metadata.finalizers?.includes(FINALIZER)) return undefined;
  const policy = p.spec.deletionPolicy;
  const ns = p.metadata.namespace;
  const deleting = (message: string) =>
    writeStatus(
      p,
      computeStatus(
        p,
        { ...emptyObservation(p, []), deleting: { reason: Reason.Deleting, message } },
        deps.now(),
      ),
      deps,
    );

  const namespace = await deps.kube
    .getOrUndefined<{ status?: { phase?: string } }>("v1", "Namespace", undefined, ns)
    .catch((e: unknown) => {
      if (e instanceof KubeError && e.status === 403) return "forbidden" as const;
      throw e;
    });
  if (namespace === "forbidden") {
    // Namespaced install: the namespace controller removes this operator's Role with the rest
    // of a namespace being deleted, so nothing in it can be read or removed any more. The
    // pipeline is let go (a cluster-wide patch on LogPipelines is kept for this alone) and
    // its data retained: delete pipelines before their namespace to have deletionPolicy done.
    deps.log.warn(
      { pipeline: `${ns}/${p.metadata.name}` },
      "namespace being deleted and this operator's access to it gone: deletionPolicy not carried out, topics and volumes retained",
    );
    await releaseFinalizer(p.metadata, deps);
    return undefined;
  }
  const terminating = namespace?.status?.phase === "Terminating";
  const since = Date.parse(p.metadata.deletionTimestamp ?? "") || deps.now().getTime();
  const waited = deps.now().getTime() - since;

  const deletesData = policy.topics === "Delete" || policy.postgres === "Delete";
  if (deletesData && p.metadata.annotations?.[ANNOTATION_SKIP_DRAIN] !== "true") {
    const key = `${ns}/${p.metadata.name}`;
    await withKafka(p, deps, deliveryDue(key, deps), (kafka) => refreshDelivery(key, p, deps, kafka));
    const lag = deps.deliveryReads.get(key)?.delivery?.lag ?? p.status?.delivery?.lag;
    if (!terminating && lag !== undefined && lag > 0 && waited < policy.drainTimeoutSeconds * 1000) {
      await deleting(
        `waiting for the consumer to drain ${lag} events before deleting data (up to ${policy.drainTimeoutSeconds}s; annotate ${ANNOTATION_SKIP_DRAIN}=true to skip)`,
      );
      return { requeueAfterMs: Math.min(5_000, policy.drainTimeoutSeconds * 1000 - waited + 100) };
    }
  }
  await deleting("removing topics and data as deletionPolicy says");

  // Removing data can fail (Kafka down, a credentials Secret already deleted with its
  // namespace): retry within a bound, then give up with a Warning rather than hold the
  // object, and its namespace, for ever.
  const boundMs = terminating
    ? CLEANUP_BOUND_TERMINATING_MS
    : policy.drainTimeoutSeconds * 1000 + CLEANUP_BOUND_EXTRA_MS;
  try {
    await deleteData(p, deps);
  } catch (e) {
    if (waited < boundMs) {
      await deleting(
        `could not remove data yet (${errorText(e)}); retrying for up to ${Math.round(boundMs / 1000)}s after deletion`,
      );
      return { requeueAfterMs: 2_000 };
    }
    await deps.recorder.emit(
      ref(p),
      "Warning",
      "CleanupAbandoned",
      `deletionPolicy could not be carried out within ${Math.round(boundMs / 1000)}s (${errorText(e)}): topics or volumes may be left in place`,
    );
  }

  await releaseFinalizer(p.metadata, deps);
  return undefined;
}

/** Drops the operator's finalizer and what this process kept of the pipeline. */
async function releaseFinalizer(
  m: {
    name: string;
    namespace: string;
    resourceVersion?: string | undefined;
    finalizers?: string[] | undefined;
  },
  deps: ControllerDeps,
): Promise<boolean> {
  const key = `${m.namespace}/${m.name}`;
  let released = true;
  try {
    await deps.kube.mergePatch(API_VERSION, KIND, m.namespace, m.name, {
      metadata: {
        resourceVersion: m.resourceVersion,
        finalizers: (m.finalizers ?? []).filter((f) => f !== FINALIZER),
      },
    });
  } catch (e) {
    // Gone already: this pass worked from a cache that had not yet seen the last one finish.
    if (!(e instanceof KubeError && e.notFound)) throw e;
    released = false;
  }
  deps.writtenStatus.delete(key);
  deps.deliveryReads.delete(key);
  deps.capacity.delete(key);
  deps.divergence.delete(key);
  deps.revertedEdits.delete(key);
  deps.applied.forget(key);
  deps.probes.forget(key);
  deps.secrets.forgetNamespace(m.namespace);
  deps.log.info({ pipeline: key }, "finalized");
  return released;
}

/**
 * Deletion of a pipeline whose spec cannot be read: its deletionPolicy is unknown, so the
 * data is retained (topics, PostgreSQL's volumes, generated Secrets: none of them is owned by
 * the pipeline), the owned children go with the garbage collector, and a Warning says so.
 */
async function finalizeUnreadable(
  raw: KubeObjectLike,
  problem: string,
  deps: ControllerDeps,
): Promise<ReconcileResult> {
  const m = raw.metadata ?? {};
  if (!m.name || !m.namespace || !m.uid || !m.finalizers?.includes(FINALIZER)) return undefined;
  // Said once, by the pass that let it go: a second pass from a cache that had not yet seen
  // the first finish finds it gone and says nothing.
  if (await releaseFinalizer({ ...m, name: m.name, namespace: m.namespace }, deps))
    await deps.recorder.emit(
      { apiVersion: API_VERSION, kind: KIND, name: m.name, namespace: m.namespace, uid: m.uid },
      "Warning",
      "DataRetained",
      `deleted with a spec that cannot be read (${problem}): its deletionPolicy is unknown, so topics, volumes and generated Secrets were kept`,
    );
  return undefined;
}

const CLEANUP_BOUND_TERMINATING_MS = 30_000;
const CLEANUP_BOUND_EXTRA_MS = 120_000;

/** Topics, PostgreSQL's volumes and the generated Secrets, as deletionPolicy says. */
async function deleteData(p: LogPipeline, deps: ControllerDeps): Promise<void> {
  const policy = p.spec.deletionPolicy;
  const ns = p.metadata.namespace;
  const names = pipelineNames(p);
  if (p.spec.kafka.mode === "strimzi" && deps.capabilities().strimzi) {
    const topics = deps.children.get("KafkaTopic")?.list() ?? [];
    for (const t of topics.filter((t) => t.metadata?.labels?.[LABEL_PIPELINE_UID] === p.metadata.uid)) {
      const tns = t.metadata?.namespace;
      const tname = t.metadata?.name ?? "";
      // Unmanaged first: Strimzi then lets the resource go and leaves the topic in Kafka.
      if (policy.topics === "Retain")
        await deps.kube
          .mergePatch("kafka.strimzi.io/v1", "KafkaTopic", tns, tname, {
            metadata: { annotations: { "strimzi.io/managed": "false" } },
          })
          .catch((e: unknown) => {
            if (!(e instanceof KubeError && e.notFound)) throw e;
          });
      await deps.kube.delete("kafka.strimzi.io/v1", "KafkaTopic", tns, tname);
    }
  } else if (p.spec.kafka.mode === "external" && policy.topics === "Delete") {
    // Only the topics the operator created for this pipeline, or adopted on request: never
    // one that someone else made and the spec merely names.
    const key = `${ns}/${p.metadata.name}`;
    const owned = new Set([
      ...deps.probes.created(key, p),
      ...(p.spec.kafka.topic.adopt ? [names.topic, names.deadLetterTopic] : []),
    ]);
    const admin = await deps.connectTopicAdmin(await kafkaConnection(p, deps));
    try {
      if (owned.size > 0) await admin.delete([...owned]);
    } finally {
      await admin.close().catch(() => undefined);
    }
  }
  if (p.spec.postgres.mode === "managed" && policy.postgres === "Delete") {
    const pvcs = await deps.kube.list("v1", "PersistentVolumeClaim", ns, {
      labelSelector: `${LABEL_PIPELINE_UID}=${p.metadata.uid}`,
    });
    for (const pvc of pvcs.items)
      await deps.kube.delete("v1", "PersistentVolumeClaim", ns, pvc.metadata?.name ?? "");
    await deps.kube.delete("v1", "Secret", ns, names.postgresCredentials);
    for (const role of Object.values(names.postgresRoles)) await deps.kube.delete("v1", "Secret", ns, role);
  }
  // Generated Secrets of the cache and the ingest keys belong to this pipeline alone.
  await deps.kube.delete("v1", "Secret", ns, names.redisCredentials);
  if (!p.spec.producer.auth.apiKeysSecret) await deps.kube.delete("v1", "Secret", ns, names.apiKeys);
  if (!p.spec.query.apiKeysSecret) await deps.kube.delete("v1", "Secret", ns, names.queryKeys);
}
