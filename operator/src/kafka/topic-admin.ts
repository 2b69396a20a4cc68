import confluent from "@confluentinc/kafka-javascript";
import {
  errorText,
  type KafkaSecurity,
  librdkafkaSecurity as securitySettings,
} from "../../../workloads/common/src/connections.js";
import type { DesiredTopic } from "../builders/index.js";

const { Kafka, logLevel, IsolationLevel } = confluent.KafkaJS;

/** Connection settings for the Admin API; secret values arrive from Secrets, in memory only. */
export interface KafkaConnection {
  bootstrapServers: string;
  security: KafkaSecurity;
}

export interface TopicResult {
  name: string;
  ready: "True" | "False";
  reason: "TopicsReady" | "Created" | "PartitionsIncreased" | "NotSupported" | "NotOwned" | "KafkaError";
  message: string;
}

/**
 * Which existing topics a pipeline may use: those the operator created for it, or any with
 * `kafka.topic.adopt`. A creation is recorded before it is made, so a topic the operator
 * made is never left unrecorded (and so never refused or left behind) by a crash between the two.
 */
export interface TopicOwnership {
  created: ReadonlySet<string>;
  adopt: boolean;
  recordCreation(name: string): Promise<void>;
  /** The topic appeared meanwhile (someone else made it): the record is withdrawn. */
  withdrawCreation(name: string): Promise<void>;
}

export const notOwnedMessage =
  "exists and was not created by the operator for this pipeline: set kafka.topic.adopt: true to use it (it is then deleted with the pipeline under deletionPolicy topics: Delete)";

/** librdkafka settings for a connection's security (TLS material as PEM strings, never files). */
export const librdkafkaSecurity = (c: KafkaConnection): Record<string, string> =>
  securitySettings(c.security);

/**
 * Topics for `kafka.mode: external`, through the Kafka Admin API: create when missing,
 * grow partitions, never shrink (Kafka cannot) and never change the replication factor
 * (a reassignment is an operator's decision) — both reported as NotSupported.
 */
export class TopicAdmin {
  private constructor(
    private readonly admin: ReturnType<InstanceType<typeof Kafka>["admin"]>,
    /** The KafkaJS-style admin lacks CreatePartitions; librdkafka's own admin client has it. */
    private readonly native: confluent.IAdminClient,
  ) {}

  static async connect(c: KafkaConnection, timeoutMs = 10_000): Promise<TopicAdmin> {
    const config = { ...librdkafkaSecurity(c), "socket.timeout.ms": timeoutMs };
    const kafka = new Kafka({
      kafkaJS: {
        brokers: c.bootstrapServers.split(","),
        clientId: "logpipeline-operator",
        logLevel: logLevel.NOTHING,
      },
      ...config,
    });
    const admin = kafka.admin();
    await admin.connect();
    const native = confluent.AdminClient.create({ "bootstrap.servers": c.bootstrapServers, ...config });
    return new TopicAdmin(admin, native);
  }

  async close(): Promise<void> {
    this.native.disconnect();
    await this.admin.disconnect();
  }

  private createPartitions(topic: string, count: number): Promise<void> {
    return new Promise((resolve, reject) => {
      // Typed as always set; librdkafka passes null on success.
      this.native.createPartitions(topic, count, 15_000, (err: { message: string } | null) => {
        if (err) reject(new Error(err.message));
        else resolve();
      });
    });
  }

  /**
   * Brings each topic to the desired state where Kafka allows it, one result per topic; a
   * topic someone else made is left alone unless the pipeline owns or adopts it.
   */
  async ensure(topics: DesiredTopic[], ownership: TopicOwnership): Promise<TopicResult[]> {
    const existing = new Set(await this.admin.listTopics());
    const results: TopicResult[] = [];
    const notOwned = (name: string): TopicResult => ({
      name,
      ready: "False",
      reason: "NotOwned",
      message: notOwnedMessage,
    });
    for (const t of topics) {
      try {
        if (!existing.has(t.name)) {
          await ownership.recordCreation(t.name);
          const created = await this.admin.createTopics({
            topics: [
              {
                topic: t.name,
                numPartitions: t.partitions,
                replicationFactor: t.replicationFactor,
                configEntries: Object.entries(t.config).map(([name, value]) => ({ name, value })),
              },
            ],
          });
          if (!created && !ownership.adopt) {
            await ownership.withdrawCreation(t.name);
            results.push(notOwned(t.name));
            continue;
          }
          results.push({
            name: t.name,
            ready: "True",
            reason: "Created",
            message: `created with ${t.partitions} partitions`,
          });
          continue;
        }
        if (!ownership.created.has(t.name) && !ownership.adopt) {
          results.push(notOwned(t.name));
          continue;
        }
        const [meta] = await this.admin.fetchTopicMetadata({ topics: [t.name] });
        const partitions = meta?.partitions.length ?? 0;
        const rf = meta?.partitions[0]?.replicas.length ?? t.replicationFactor;
        if (partitions > t.partitions) {
          results.push({
            name: t.name,
            ready: "False",
            reason: "NotSupported",
            message: `has ${partitions} partitions; Kafka cannot decrease them to ${t.partitions}`,
          });
        } else if (rf !== t.replicationFactor) {
          results.push({
            name: t.name,
            ready: "False",
            reason: "NotSupported",
            message: `replication factor is ${rf}; changing it to ${t.replicationFactor} needs a partition reassignment`,
          });
        } else if (partitions < t.partitions) {
          await this.createPartitions(t.name, t.partitions);
          results.push({
            name: t.name,
            ready: "True",
            reason: "PartitionsIncreased",
            message: `partitions increased from ${partitions} to ${t.partitions}`,
          });
        } else {
          results.push({
            name: t.name,
            ready: "True",
            reason: "TopicsReady",
            message: `${partitions} partitions`,
          });
        }
      } catch (e) {
        results.push({ name: t.name, ready: "False", reason: "KafkaError", message: errorText(e) });
      }
    }
    return results;
  }

  /** Per partition, the last stable offset (read_committed end: open transactions excluded). */
  async lastStableOffsets(topic: string): Promise<Map<number, number>> {
    const offsets = await this.admin.fetchTopicOffsets(topic, {
      isolationLevel: IsolationLevel.READ_COMMITTED,
      timeout: 10_000,
    });
    return new Map(offsets.map((o) => [o.partition, Number(o.offset)]));
  }

  /** Each partition's log start offset: where Kafka's retention has left the log. */
  async logStartOffsets(topic: string): Promise<Map<number, number>> {
    const offsets = await this.admin.fetchTopicOffsets(topic, {
      isolationLevel: IsolationLevel.READ_COMMITTED,
      timeout: 10_000,
    });
    return new Map(offsets.map((o) => [o.partition, Number(o.low)]));
  }

  async delete(names: string[]): Promise<void> {
    const existing = new Set(await this.admin.listTopics());
    const present = names.filter((n) => existing.has(n));
    if (present.length > 0) await this.admin.deleteTopics({ topics: present });
  }
}
