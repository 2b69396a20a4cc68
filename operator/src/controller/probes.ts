import {
  errorText,
  type KafkaSecurity,
  usesSasl,
  usesTls,
} from "../../../workloads/common/src/connections.js";
import { API_VERSION, KIND, type LogPipeline } from "../api/logpipeline.js";
import type { DesiredTopic } from "../builders/index.js";
import { bootstrapServers, recordedTopics, statusTopicNames } from "../builders/kafka-topics.js";
import type { KafkaConnection, TopicAdmin, TopicOwnership, TopicResult } from "../kafka/topic-admin.js";
import { readDelivery, secretValue } from "./delivery.js";
import { hashOf } from "./applied.js";
import type { ControllerDeps, ProbeRequest, ProbeScheduler } from "./deps.js";
import { runDivergenceCheck } from "./divergence.js";
import { ensureManagedRoles } from "./postgres-roles.js";
import { Reason } from "../status/reasons.js";

interface TopicsState {
  hash: string;
  at: number;
  results: TopicResult[];
}

/**
 * The tenants' Kafka and PostgreSQL, off the reconcile path. A reconcile asks for what is
 * due (topics in external mode, a delivery read, a divergence check) and goes on with the
 * results it has; the reads run here, at most `concurrency` pipelines at a time, first asked
 * first served, one pass per pipeline at a time. A pass that takes longer than `timeoutMs`
 * is reported as timed out and its slot goes to the next pipeline (its late results are
 * dropped; the pipeline gets no new pass until it has ended). When a pass ends, `onDone`
 * queues the pipeline, whose next reconcile writes the results into its status. So a
 * broker that accepts connections and never answers holds one slot, never a reconcile
 * worker, and never another tenant.
 */
/** Every topic reported as not ready because of Kafka, with why. */
const topicsFailed = (topics: DesiredTopic[], message: string): TopicResult[] =>
  topics.map((t) => ({ name: t.name, ready: "False", reason: Reason.KafkaError, message }));

export class Probes implements ProbeScheduler {
  private readonly waiting: string[] = [];
  private readonly requests = new Map<string, { p: LogPipeline; want: ProbeRequest }>();
  /** Pipelines with a pass alive (in a slot, or timed out and still ending). */
  private readonly alive = new Set<string>();
  private active = 0;
  private readonly topicStates = new Map<string, TopicsState>();
  /** Topics this process recorded as created, per pipeline (the status has them too, once written). */
  private readonly createdTopics = new Map<string, Set<string>>();
  /** What each managed server's roles were last made from (controller/postgres-roles.ts). */
  private readonly rolesMade = new Map<string, string>();
  private stopped = false;

  constructor(
    private readonly deps: ControllerDeps,
    private readonly opts: { concurrency: number; timeoutMs: number; onDone: (key: string) => void },
  ) {}

  /** The last topic results of an external-mode pipeline (undefined before its first pass). */
  topics(key: string): TopicResult[] | undefined {
    return this.topicStates.get(key)?.results;
  }

  /** True when the topics should be ensured again: new or changed, not all ready, or a resync old. */
  topicsDue(key: string, topics: DesiredTopic[]): boolean {
    const s = this.topicStates.get(key);
    return (
      !s ||
      s.hash !== hashOf(topics) ||
      s.results.some((t) => t.ready !== "True") ||
      this.deps.now().getTime() - s.at >= this.deps.config.resyncMs
    );
  }

  /** Asks for a pass; merged into one already waiting, ignored while one is alive. */
  request(key: string, p: LogPipeline, want: ProbeRequest): void {
    if (this.stopped || (!want.topics && !want.delivery && !want.check)) return;
    if (this.alive.has(key)) return;
    const queued = this.requests.get(key);
    if (queued) {
      queued.p = p;
      queued.want = {
        topics: want.topics ?? queued.want.topics,
        delivery: want.delivery || queued.want.delivery,
        check: want.check || queued.want.check,
      };
      return;
    }
    this.requests.set(key, { p, want });
    this.waiting.push(key);
    this.next();
  }

  /** Drops what is known of a deleted pipeline. */
  forget(key: string): void {
    this.topicStates.delete(key);
    this.requests.delete(key);
    this.createdTopics.delete(key);
    this.rolesMade.delete(key);
  }

  /** The topics the operator created for a pipeline: its status's record and this process's. */
  created(key: string, p: LogPipeline): string[] {
    return [...new Set([...recordedTopics(p), ...(this.createdTopics.get(key) ?? [])])].sort();
  }

  /**
   * What ensure() may use: the recorded topics, or any with adopt. A creation is written into
   * the status (status.topics.created) before the topic is made.
   */
  private ownership(key: string, p: LogPipeline): TopicOwnership {
    const mine = this.createdTopics.get(key) ?? new Set<string>();
    this.createdTopics.set(key, mine);
    const write = () =>
      this.deps.kube.mergePatch(
        API_VERSION,
        KIND,
        p.metadata.namespace,
        p.metadata.name,
        {
          status: { topics: { ...statusTopicNames(p), created: this.created(key, p) } },
        },
        "status",
      );
    return {
      created: new Set(this.created(key, p)),
      adopt: p.spec.kafka.topic.adopt,
      recordCreation: async (name) => {
        mine.add(name);
        await write();
      },
      withdrawCreation: async (name) => {
        mine.delete(name);
        await write();
      },
    };
  }

  stop(): void {
    this.stopped = true;
    this.waiting.length = 0;
    this.requests.clear();
  }

  /** Passes waiting for a slot, and running. */
  get load(): { waiting: number; active: number } {
    return { waiting: this.waiting.length, active: this.active };
  }

  private next(): void {
    while (!this.stopped && this.active < this.opts.concurrency && this.waiting.length > 0) {
      const key = this.waiting.shift() as string;
      const r = this.requests.get(key);
      this.requests.delete(key);
      if (!r) continue;
      this.active++;
      this.alive.add(key);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this.active--;
        this.next();
      };
      const timer = setTimeout(() => {
        this.deps.log.warn(
          { pipeline: key, timeoutMs: this.opts.timeoutMs },
          "Kafka/PostgreSQL reads timed out",
        );
        this.deps.metrics.probeTimeouts.inc();
        if (r.want.topics)
          this.topicStates.set(key, {
            hash: hashOf(r.want.topics),
            at: this.deps.now().getTime(),
            results: topicsFailed(
              r.want.topics,
              `no answer from Kafka within ${Math.round(this.opts.timeoutMs / 1000)} s`,
            ),
          });
        release();
        this.opts.onDone(key);
      }, this.opts.timeoutMs);
      timer.unref();
      void this.pass(key, r.p, r.want, () => released)
        .catch((e: unknown) => this.deps.log.warn({ pipeline: key, err: errorText(e) }, "probe failed"))
        .finally(() => {
          clearTimeout(timer);
          this.alive.delete(key);
          const late = released;
          release();
          if (!late && !this.stopped) this.opts.onDone(key);
        });
    }
  }

  private async pass(key: string, p: LogPipeline, want: ProbeRequest, late: () => boolean): Promise<void> {
    // A managed server's roles first: the workloads log in as them, the reads below too.
    await ensureManagedRoles(key, p, this.deps, this.rolesMade).catch((e: unknown) =>
      this.deps.log.warn(
        { pipeline: key, err: errorText(e) },
        "PostgreSQL roles not made yet; retried next pass",
      ),
    );
    await withKafka(p, this.deps, true, async (kafka) => {
      if (want.topics) {
        const topics = want.topics;
        // A broker that cannot be reached (or reached, and then fails) is the topics' status.
        const results = kafka.admin
          ? await kafka.admin
              .ensure(topics, this.ownership(key, p))
              .catch((e: unknown) => topicsFailed(topics, errorText(e)))
          : topicsFailed(topics, kafka.error ?? "");
        if (!late())
          this.topicStates.set(key, { hash: hashOf(want.topics), at: this.deps.now().getTime(), results });
      }
      if (want.check && !late()) await runDivergenceCheck(key, p, this.deps, kafka);
      if (want.delivery && !late()) await refreshDelivery(key, p, this.deps, kafka);
    });
  }
}

export async function kafkaConnection(p: LogPipeline, deps: ControllerDeps): Promise<KafkaConnection> {
  const { auth } = p.spec.kafka;
  const readKey = (name: string, key: string) => secretValue(deps.secrets, p, name, key);
  // Only the Secrets the protocol uses are read.
  const security: KafkaSecurity = { protocol: auth.securityProtocol };
  if (auth.sasl && usesSasl(auth.securityProtocol))
    security.sasl = {
      mechanism: auth.sasl.mechanism,
      username: auth.sasl.username,
      password: await readKey(auth.sasl.passwordSecretRef.name, auth.sasl.passwordSecretRef.key),
    };
  if (auth.tls && usesTls(auth.securityProtocol)) {
    const client = auth.tls.clientCertSecretName;
    security.tls = {
      ca: { pem: await readKey(auth.tls.caSecretRef.name, auth.tls.caSecretRef.key) },
      ...(client && {
        cert: { pem: await readKey(client, "tls.crt") },
        key: { pem: await readKey(client, "tls.key") },
      }),
    };
  }
  return { bootstrapServers: bootstrapServers(p), security };
}

export interface KafkaPass {
  admin?: TopicAdmin;
  connection?: KafkaConnection;
  error?: string;
}

/**
 * Runs `fn` with a Kafka Admin connection for this pass when one is needed (a failure to
 * connect is reported to `fn`, not thrown), and closes it afterwards.
 */
export async function withKafka(
  p: LogPipeline,
  deps: ControllerDeps,
  needed: boolean,
  fn: (kafka: KafkaPass) => Promise<void>,
): Promise<void> {
  let kafka: KafkaPass = {};
  if (needed)
    try {
      const connection = await kafkaConnection(p, deps);
      kafka = { connection, admin: await deps.connectTopicAdmin(connection) };
    } catch (e) {
      kafka = { error: errorText(e) };
    }
  try {
    await fn(kafka);
  } finally {
    await kafka.admin?.close().catch(() => undefined);
  }
}

/**
 * The last delivery read is older than deliveryIntervalMs; after reads that failed, older
 * than twice as long for each failure in a row, up to 8 intervals (2 minutes by default) or
 * the resync period when shorter. A pipeline whose Kafka or PostgreSQL cannot be reached
 * costs a connection attempt (a librdkafka client) every two minutes, not every interval
 * (docs/benchmarks.md, The operator at scale), and its status.delivery is read again at most
 * two minutes after they are back.
 */
export const deliveryDue = (key: string, deps: ControllerDeps): boolean => {
  const last = deps.deliveryReads.get(key);
  return deps.now().getTime() - (last?.at ?? 0) >= deliveryWaitMs(last?.failures ?? 0, deps.config);
};

export const deliveryWaitMs = (
  failures: number,
  config: Pick<ControllerDeps["config"], "deliveryIntervalMs" | "resyncMs">,
): number =>
  failures === 0
    ? config.deliveryIntervalMs
    : Math.max(
        config.deliveryIntervalMs,
        Math.min(config.resyncMs, config.deliveryIntervalMs * 2 ** Math.min(failures, 3)),
      );

/** Reads Kafka and the ledger again when due; deps.deliveryReads keeps the latest read. */
export async function refreshDelivery(
  key: string,
  p: LogPipeline,
  deps: ControllerDeps,
  kafka: KafkaPass,
): Promise<void> {
  if (deliveryDue(key, deps))
    deps.deliveryReads.set(key, await readDelivery(p, deps, kafka.admin, kafka.connection));
}
