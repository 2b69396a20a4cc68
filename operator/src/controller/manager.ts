import { hostname } from "node:os";
import type { Logger } from "pino";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { processRegistry } from "../../../workloads/common/src/metrics.js";
import { API_VERSION, KIND } from "../api/logpipeline.js";
import { LABEL_PIPELINE_UID, MANAGED_BY } from "../builders/names.js";
import { TopicAdmin } from "../kafka/topic-admin.js";
import { missingPermissions, type Permission } from "../kube/access.js";
import { FIELD_MANAGER, KubeClient, KubeError, type KubeObjectLike, resourcePath } from "../kube/client.js";
import { listWatch } from "../kube/list-watch.js";
import { errorText } from "../../../workloads/common/src/connections.js";
import { type Clock, systemClock } from "../time.js";
import { EventRecorder } from "../runtime/events.js";
import { AppliedChildren } from "./applied.js";
import { Probes } from "./probes.js";
import { type Cache, Informer, InformerGroup, objectKey } from "../runtime/informer.js";
import { type Lease, LeaderElector, type LeaseSpec, type LeaseStore } from "../runtime/leader.js";
import { DEFAULT_RATE_LIMITER, runWorkers, WorkQueue } from "../runtime/workqueue.js";
import { type Capabilities, childKinds, detectCapabilities } from "./children.js";
import type { ControllerConfig, ControllerDeps } from "./deps.js";
import { cachedChild, childDigest, pipelineDigest, withoutManagedFields } from "./observe.js";
import { reconcile } from "./reconcile.js";
import { SecretReads } from "./secret-reads.js";

export interface ManagerConfig extends ControllerConfig {
  kubeconfig?: string | undefined;
  /** Act as this user (tests run the operator as its ServiceAccount to prove the RBAC). */
  impersonate?: string | undefined;
  /** Namespaces whose LogPipelines are reconciled; empty means all. */
  watchNamespaces: string[];
  /**
   * cluster (default): children watched cluster-wide. namespaced: every child informer is
   * per watched namespace (and KafkaTopics per allowed Strimzi namespace), as Roles allow.
   */
  installMode?: "cluster" | "namespaced";
  concurrency: number;
  leaderElection: { enabled: boolean; namespace: string; name: string; identity?: string | undefined };
  /** How often optional CRDs (Strimzi, KEDA, Prometheus Operator) are looked for again. */
  capabilityRefreshMs: number;
  /** The one clock of the manager, its informers, leader election, Events and checks. */
  clock?: Clock;
}

export interface Manager {
  registry: Registry;
  kube: KubeClient;
  /** Requests made by verb and resource, leader election's client included (the RBAC test). */
  calls(): Map<string, number>;
  /** Informers synced and not stale: what /readyz reports. */
  ready(): boolean;
  isLeader(): boolean;
  capabilities(): Capabilities;
  /** Stops workers, informers and leader election; releases the lease. */
  stop(): Promise<void>;
  /** Resolves when leadership is lost or the workers could not start (the process should then exit). */
  lostLeadership: Promise<void>;
  deps: ControllerDeps;
}

/** Wires informers, the work queue, leader election and reconcile together (the operator process). */
export async function startManager(config: ManagerConfig, log: Logger): Promise<Manager> {
  const kube = await KubeClient.fromEnvironment(config.kubeconfig, { impersonate: config.impersonate });
  const registry = processRegistry();
  const identity = config.leaderElection.identity ?? `${hostname()}_${process.pid}`;
  let caps = await detectCapabilities(kube);
  log.info({ capabilities: caps }, "optional integrations detected");

  const clock = config.clock ?? systemClock;
  const informerOpts = {
    resyncMs: config.resyncMs,
    now: clock,
    onError: (name: string, e: unknown, retryInMs: number) =>
      log.warn({ informer: name, err: errorText(e), retryInMs }, "watch restarting"),
  };
  // LogPipelines are watched cluster-wide: a pipeline outside the watched namespaces is
  // ignored, with one log line, and keeps only its metadata in the cache.
  const watched = new Set(config.watchNamespaces);
  const isWatched = (ns: string | undefined) => watched.size === 0 || (ns !== undefined && watched.has(ns));
  const pipelineInformer = new Informer(`LogPipeline/*`, listWatch(kube, API_VERSION, KIND), {
    ...informerOpts,
    transform: (o: KubeObjectLike) =>
      isWatched(o.metadata?.namespace) ? withoutManagedFields(o) : { metadata: ignoredMetadata(o) },
  });
  const children = new Map<string, Cache<KubeObjectLike>>();
  const queue = new WorkQueue<string>(DEFAULT_RATE_LIMITER, () => clock().getTime());

  const pipelines = {
    get: (key: string) => {
      const o = pipelineInformer.get(key);
      return o && isWatched(o.metadata?.namespace) ? o : undefined;
    },
  };
  // Child → pipeline by the pipeline's uid (the children's label), from an index the
  // pipeline informers keep: a child event costs one lookup, not a scan of every pipeline.
  const keyByUid = new Map<string, string>();
  const keyOfUid = (uid: string | undefined) => (uid ? keyByUid.get(uid) : undefined);
  // A status-only update (the operator's own status write, seen again) queues nothing:
  // pipelineDigest. Adds, deletes, spec and metadata changes and the resync do.
  const seenPipelines = new Map<string, string>();
  const ignored = new Set<string>();
  pipelineInformer.on((key, event, obj) => {
    if (!isWatched(obj?.metadata?.namespace)) {
      if (event === "delete") ignored.delete(key);
      else if (!ignored.has(key)) {
        ignored.add(key);
        log.info(
          { pipeline: key, watchNamespaces: config.watchNamespaces },
          "LogPipeline ignored: its namespace is not one this operator watches",
        );
      }
      return;
    }
    const uid = obj?.metadata?.uid;
    if (uid) {
      if (event === "delete") keyByUid.delete(uid);
      else keyByUid.set(uid, key);
    }
    if (event === "delete") seenPipelines.delete(key);
    else if (obj) {
      const digest = pipelineDigest(obj);
      if (event === "update" && seenPipelines.get(key) === digest) return;
      seenPipelines.set(key, digest);
    }
    queue.add(key);
  });

  const startChildInformer = (apiVersion: string, kind: string) => {
    if (children.has(kind)) return;
    const informerIn = (namespace?: string) =>
      new Informer(
        namespace ? `${kind}/${namespace}` : kind,
        listWatch(kube, apiVersion, kind, {
          labelSelector: `app.kubernetes.io/managed-by=${MANAGED_BY}`,
          ...(namespace ? { namespace } : {}),
        }),
        { ...informerOpts, transform: cachedChild },
      );
    const scopes = childScopes(config, kind);
    const inf: Cache<KubeObjectLike> = scopes
      ? new InformerGroup(kind, new Map(scopes.map((ns) => [ns, informerIn(ns)])))
      : informerIn();
    // A child changed (or vanished): reconcile its pipeline, which puts it back as wanted.
    // An update that changed nothing the reconcile reads (childDigest) is not a change.
    const seen = new Map<string, string>();
    inf.on((key, event, obj) => {
      if (event === "resync") return;
      if (event === "delete") seen.delete(key);
      else if (obj) {
        const digest = childDigest(kind, obj);
        if (seen.get(key) === digest) return;
        seen.set(key, digest);
      }
      const k = keyOfUid(obj?.metadata?.labels?.[LABEL_PIPELINE_UID]);
      if (k) queue.add(k);
    });
    children.set(kind, inf);
    inf.start();
  };

  const allInformers = () => [pipelineInformer, ...[...children.values()].flatMap((c) => c.members)];

  const metrics = {
    reconciles: new Counter({
      name: "logpipeline_operator_reconcile_total",
      help: "Reconciles by result",
      labelNames: ["result"] as const,
      registers: [registry],
    }),
    reconcileDuration: new Histogram({
      name: "logpipeline_operator_reconcile_duration_seconds",
      help: "Duration of one reconcile",
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    applies: new Counter({
      name: "logpipeline_operator_apply_total",
      help: "Children per reconcile by result: unchanged (not applied: neither the wanted object, its generation or content, nor the operator's labels on it changed since the last apply), noop (applied, the API server changed nothing), changed, error",
      labelNames: ["result"] as const,
      registers: [registry],
    }),
    statusWrites: new Counter({
      name: "logpipeline_operator_status_writes_total",
      help: "LogPipeline status writes",
      registers: [registry],
    }),
    divergenceEvents: new Gauge({
      name: "logpipeline_divergence_events",
      help: "Events the last divergence check found missing, duplicated or spurious, per pipeline",
      labelNames: ["pipeline_namespace", "pipeline", "kind"] as const,
      registers: [registry],
    }),
    consumerLag: new Gauge({
      name: "logpipeline_consumer_lag",
      help: "Committed records beyond the consumer's stored position, per partition (last divergence check)",
      labelNames: ["pipeline_namespace", "pipeline", "partition"] as const,
      registers: [registry],
    }),
    capacityAtRisk: new Gauge({
      name: "logpipeline_capacity_at_risk",
      help: "1 when the capacity advice finds the partitions below the observed peak or the PostgreSQL volume filling before the retention horizon (status.capacity)",
      labelNames: ["pipeline_namespace", "pipeline"] as const,
      registers: [registry],
    }),
    partitionsNeeded: new Gauge({
      name: "logpipeline_capacity_partitions_needed",
      help: "Partitions the observed ingest peak needs for the consumers to keep up (status.capacity)",
      labelNames: ["pipeline_namespace", "pipeline"] as const,
      registers: [registry],
    }),
    ingestRate: new Gauge({
      name: "logpipeline_ingest_events_per_second",
      help: "Mean events/s committed to the pipeline's topic over the capacity window",
      labelNames: ["pipeline_namespace", "pipeline"] as const,
      registers: [registry],
    }),
    postgresDaysUntilFull: new Gauge({
      name: "logpipeline_postgres_days_until_full",
      help: "Days until the PostgreSQL volume is full at the mean rate (absent when it does not fill)",
      labelNames: ["pipeline_namespace", "pipeline"] as const,
      registers: [registry],
    }),
    ftsIndexDelay: new Gauge({
      name: "logpipeline_fts_index_delay_seconds",
      help: "How long the oldest closed partition has waited for its full-text index, per pipeline (last divergence check)",
      labelNames: ["pipeline_namespace", "pipeline"] as const,
      registers: [registry],
    }),
    stuckPartitions: new Gauge({
      name: "logpipeline_consumer_stuck_partitions",
      help: "Partitions whose stored position stood still for a check interval while events waited",
      labelNames: ["pipeline_namespace", "pipeline"] as const,
      registers: [registry],
    }),
    workloadReplicas: new Gauge({
      name: "logpipeline_workload_replicas",
      help: "Replicas of each workload (state desired or ready), as the operator observes them",
      labelNames: ["pipeline_namespace", "pipeline", "component", "state"] as const,
      registers: [registry],
    }),
    reconcileErrors: new Counter({
      name: "logpipeline_reconcile_errors_total",
      help: "Failed reconciles, per pipeline",
      labelNames: ["pipeline_namespace", "pipeline"] as const,
      registers: [registry],
    }),
    divergenceChecks: new Histogram({
      name: "logpipeline_divergence_check_duration_seconds",
      help: "Duration of one divergence check",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    divergenceCheckFailures: new Counter({
      name: "logpipeline_divergence_check_failures_total",
      help: "Divergence checks that could not run (Kafka or PostgreSQL unreadable)",
      labelNames: ["pipeline_namespace", "pipeline"] as const,
      registers: [registry],
    }),
    probeTimeouts: new Counter({
      name: "logpipeline_operator_probe_timeouts_total",
      help: "Passes of Kafka/PostgreSQL reads (topics, delivery, divergence check) that took longer than their timeout",
      registers: [registry],
    }),
  };
  new Gauge({
    name: "logpipeline_operator_queue_depth",
    help: "Keys waiting in the work queue",
    registers: [registry],
    collect() {
      this.set(queue.length);
    },
  });
  new Gauge({
    name: "logpipeline_operator_informer_relists",
    help: "Full relists per informer (initial list included)",
    labelNames: ["informer"] as const,
    registers: [registry],
    collect() {
      for (const inf of allInformers()) this.set({ informer: inf.name }, inf.relists);
    },
  });
  new Gauge({
    name: "logpipeline_operator_informer_restarts",
    help: "Watch restarts after errors per informer",
    labelNames: ["informer"] as const,
    registers: [registry],
    collect() {
      for (const inf of allInformers()) this.set({ informer: inf.name }, inf.restarts);
    },
  });
  const leaderGauge = new Gauge({
    name: "logpipeline_operator_leader",
    help: "1 when this replica leads",
    registers: [registry],
  });

  const recorder = new EventRecorder(
    (ev) => kube.create(ev),
    FIELD_MANAGER,
    identity,
    (e) => log.warn({ err: errorText(e) }, "could not record an Event"),
    clock,
  );
  const deps: ControllerDeps = {
    kube,
    pipelines,
    children,
    capabilities: () => caps,
    config,
    recorder,
    log,
    metrics,
    now: clock,
    connectTopicAdmin: (c) => TopicAdmin.connect(c),
    divergence: new Map(),
    revertedEdits: new Map(),
    // What was applied to each child: a child nobody changed is left alone (applied.ts).
    applied: new AppliedChildren(),
    secrets: new SecretReads(kube, config.secretRefreshMs, () => clock().getTime()),
    writtenStatus: new Map(),
    deliveryReads: new Map(),
    capacity: new Map(),
    probes: undefined as unknown as Probes, // set below: the probes read the other fields
  };
  // Kafka and PostgreSQL reads off the reconcile workers: a pass that ends queues its pipeline.
  deps.probes = new Probes(deps, {
    concurrency: config.probeConcurrency,
    timeoutMs: config.probeTimeoutMs,
    onDone: (key) => queue.add(key),
  });

  const missing = await missingPermissions(kube, requiredPermissions(config, caps));
  if (missing.length > 0) {
    await kube.close();
    throw new Error(
      `the operator's RBAC does not cover what it needs: ${missing.join("; ")} (config/rbac; the chart binds it to the watched namespaces)`,
    );
  }
  if (watched.size > 0)
    log.info({ watchNamespaces: config.watchNamespaces }, "watching LogPipelines only in these namespaces");
  pipelineInformer.start();
  for (const k of childKinds(caps)) startChildInformer(k.apiVersion, k.kind);
  const capsTimer = setInterval(() => {
    detectCapabilities(kube)
      .then((next) => {
        if (JSON.stringify(next) === JSON.stringify(caps)) return;
        log.info({ capabilities: next }, "optional integrations changed");
        caps = next;
        for (const k of childKinds(caps)) startChildInformer(k.apiVersion, k.kind);
        for (const o of pipelineInformer.list())
          if (isWatched(o.metadata?.namespace)) queue.add(objectKey(o));
      })
      .catch((e: unknown) => log.warn({ err: errorText(e) }, "capability detection failed"));
  }, config.capabilityRefreshMs);
  capsTimer.unref();

  let workers: Promise<void> | undefined;
  const startWorkers = async () => {
    await Promise.all([pipelineInformer, ...children.values()].map((i) => i.waitForSync(60_000)));
    workers = runWorkers(
      queue,
      config.concurrency,
      async (key) => {
        const end = metrics.reconcileDuration.startTimer();
        try {
          const r = await reconcile(key, deps);
          metrics.reconciles.inc({ result: "success" });
          return r;
        } catch (e) {
          metrics.reconciles.inc({ result: "error" });
          const [pipelineNamespace = "", pipeline = ""] = key.split("/");
          metrics.reconcileErrors.inc({ pipeline_namespace: pipelineNamespace, pipeline });
          throw e;
        } finally {
          end();
        }
      },
      (key, e) =>
        log.warn(
          {
            key,
            err: errorText(e),
            status: e instanceof KubeError ? e.status : undefined,
          },
          "reconcile failed; retrying with backoff",
        ),
    );
  };

  // Workers that cannot start (the caches never synced) end the process like a lost
  // leadership does: said in the log, then a restart, never an unhandled rejection.
  const launchWorkers = (): void => {
    startWorkers().catch((e: unknown) => {
      log.error({ err: errorText(e) }, "reconcile workers could not start; exiting");
      resolveLost();
    });
  };
  let resolveLost: () => void = () => undefined;
  const lostLeadership = new Promise<void>((r) => (resolveLost = r));
  let elector: LeaderElector | undefined;
  // Leader election's own connections: a stalled one is dropped without touching the rest.
  const leaseKube = config.leaderElection.enabled
    ? await KubeClient.fromEnvironment(config.kubeconfig, { impersonate: config.impersonate })
    : undefined;
  if (config.leaderElection.enabled && leaseKube) {
    const { namespace, name } = config.leaderElection;
    elector = new LeaderElector(leaseStore(leaseKube, namespace, name, LEASE_ATTEMPT_TIMEOUT_MS), {
      identity,
      leaseDurationSeconds: 15,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      attemptTimeoutMs: LEASE_ATTEMPT_TIMEOUT_MS,
      now: clock,
      onStartedLeading: () => {
        log.info({ identity }, "became leader");
        leaderGauge.set(1);
        launchWorkers();
      },
      onStoppedLeading: () => {
        // At the renew deadline: no new reconcile or probe starts from here on, and the
        // process exits (main.ts) without waiting for the ones under way.
        log.error({ identity }, "lost leadership");
        leaderGauge.set(0);
        queue.shutDown();
        deps.probes.stop();
        resolveLost();
      },
      onError: (e) => log.warn({ err: errorText(e) }, "leader election"),
    });
    void elector.run();
  } else {
    leaderGauge.set(1);
    launchWorkers();
  }

  return {
    registry,
    kube,
    calls: () => {
      const all = new Map(kube.calls);
      for (const [k, v] of leaseKube?.calls ?? []) all.set(k, (all.get(k) ?? 0) + v);
      return all;
    },
    deps,
    lostLeadership,
    capabilities: () => caps,
    isLeader: () => elector?.isLeader ?? true,
    ready: () => [pipelineInformer, ...children.values()].every((i) => i.healthy()),
    async stop() {
      clearInterval(capsTimer);
      queue.shutDown();
      deps.probes.stop();
      await workers;
      await elector?.stop();
      await leaseKube?.close();
      await Promise.all([pipelineInformer, ...children.values()].map((i) => i.stop()));
      await kube.close();
    },
  };
}

/** One lease attempt's bound: under the 10-s renew deadline, over a healthy API server's worst answer. */
const LEASE_ATTEMPT_TIMEOUT_MS = 4_000;

/**
 * The Lease through the API on a client of its own, each request cancelled with its attempt.
 * A cancelled attempt drops the client's connections: the stream timeouts that would let
 * undici replace a connection that stalled without closing are longer than an attempt, so
 * without this every later attempt would go down the same dead connection (a standby would
 * never take over).
 */
function leaseStore(kube: KubeClient, namespace: string, name: string, timeoutMs: number): LeaseStore {
  const path = resourcePath(LEASE_API, "Lease", namespace, name);
  const send = async <T>(
    method: "GET" | "POST" | "PUT",
    to: string,
    signal: AbortSignal | undefined,
    body?: unknown,
  ): Promise<T> => {
    try {
      return await kube.request<T>(method, to, { signal, timeoutMs, ...(body ? { body } : {}) });
    } catch (e) {
      if (signal?.aborted) kube.resetConnections();
      throw e;
    }
  };
  return {
    get: async (signal) => {
      try {
        return await send<Lease>("GET", path, signal);
      } catch (e) {
        if (e instanceof KubeError && e.notFound) return undefined;
        throw e;
      }
    },
    create: (spec: LeaseSpec, signal) =>
      send<Lease>("POST", resourcePath(LEASE_API, "Lease", namespace), signal, {
        apiVersion: LEASE_API,
        kind: "Lease",
        metadata: { name, namespace },
        spec,
      }),
    update: (lease: Lease, signal) =>
      send<Lease>("PUT", path, signal, { apiVersion: LEASE_API, kind: "Lease", ...lease }),
  };
}

const LEASE_API = "coordination.k8s.io/v1";

/**
 * What the operator calls, per watched namespace (or cluster-wide): checked at start, so an
 * install whose RBAC does not cover a watched namespace refuses to start with the list of
 * what is missing instead of running with caches that never sync.
 */
function requiredPermissions(config: ManagerConfig, caps: Capabilities): Permission[] {
  const scopes: (string | undefined)[] =
    config.watchNamespaces.length > 0 ? config.watchNamespaces : [undefined];
  const namespaced = config.installMode === "namespaced";
  const inScopes = (
    verbs: string[],
    apiVersion: string,
    kind: string,
    subresource?: string,
    where: (string | undefined)[] = scopes,
  ): Permission[] =>
    where.flatMap((namespace) =>
      verbs.map((verb) => ({ verb, apiVersion, kind, namespace, ...(subresource ? { subresource } : {}) })),
    );
  return [
    // Cluster-wide: a pipeline outside the watched namespaces is seen, to be logged as ignored.
    { verb: "list", apiVersion: API_VERSION, kind: KIND },
    { verb: "watch", apiVersion: API_VERSION, kind: KIND },
    // Namespaced: cluster-wide too, for a finalizer whose namespace's Role is gone (finalize).
    ...inScopes(["patch"], API_VERSION, KIND, undefined, namespaced ? [undefined] : scopes),
    ...inScopes(["patch"], API_VERSION, KIND, "status"),
    ...inScopes(["get", "create", "patch"], "v1", "Secret"),
    ...inScopes(["create"], "v1", "Event"),
    // Whether a pipeline's namespace is terminating (deletion): each namespace its own.
    ...scopes.map((namespace) => ({
      verb: "get",
      apiVersion: "v1",
      kind: "Namespace",
      namespace,
      name: namespace,
    })),
    ...childKinds(caps).flatMap((k) => {
      const where: (string | undefined)[] = childScopes(config, k.kind) ?? [undefined];
      return [
        ...inScopes(["list", "watch"], k.apiVersion, k.kind, undefined, where),
        ...(k.kind === "KafkaTopic" ? [] : inScopes(["create", "patch"], k.apiVersion, k.kind)),
      ];
    }),
    ...(config.leaderElection.enabled
      ? (["get", "create", "update"] as const).map((verb) => ({
          verb,
          apiVersion: LEASE_API,
          kind: "Lease",
          namespace: config.leaderElection.namespace,
        }))
      : []),
  ];
}

/**
 * Where a kind of child is watched (and must be allowed): everywhere (undefined), or in the
 * namespaced install namespace by namespace, KafkaTopics also in the allowed Strimzi ones.
 */
function childScopes(config: ManagerConfig, kind: string): string[] | undefined {
  if (config.installMode !== "namespaced") return undefined;
  return kind === "KafkaTopic"
    ? [...new Set([...config.watchNamespaces, ...config.policy.strimziNamespaces])]
    : config.watchNamespaces;
}

/** What is kept of a LogPipeline in a namespace this operator does not watch. */
const ignoredMetadata = (o: KubeObjectLike): NonNullable<KubeObjectLike["metadata"]> => {
  const { name, namespace, uid, resourceVersion } = o.metadata ?? {};
  return {
    ...(name ? { name } : {}),
    ...(namespace ? { namespace } : {}),
    ...(uid ? { uid } : {}),
    ...(resourceVersion ? { resourceVersion } : {}),
  };
};
