import confluent from "@confluentinc/kafka-javascript";
import { storedTime } from "../../../workloads/common/src/storage.js";
import { type KafkaConnection, librdkafkaSecurity } from "../kafka/topic-admin.js";

export interface OffsetRange {
  partition: number;
  /** First offset to read (inclusive). */
  from: number;
  /** End (exclusive): the last stable offset. */
  to: number;
}

/**
 * Counts the committed data records in offset ranges. Transaction markers and aborted
 * records are not delivered, so they are not counted: this is what tells a drained
 * partition (a gap of markers only) from a lagging one.
 */
export async function countCommittedRecords(
  c: KafkaConnection,
  topic: string,
  ranges: OffsetRange[],
  timeoutMs = 10_000,
): Promise<Map<number, number>> {
  const counts = new Map(ranges.map((r) => [r.partition, 0]));
  await scanCommitted(c, topic, ranges, timeoutMs, (m) =>
    counts.set(m.partition, (counts.get(m.partition) ?? 0) + 1),
  );
  return counts;
}

/**
 * A committed record's position, the event id in its value and the event's own time (both
 * undefined when the value is not an event).
 */
export interface CommittedRecord {
  partition: number;
  offset: number;
  eventId: string | undefined;
  /**
   * The time the event is stored under (its `timestamp` after the out-of-range rule, from its
   * `receivedAt`), ms since the epoch: what retention drops partitions by.
   */
  eventTime?: number | undefined;
  /** Key + value bytes, as read (after decompression): what the capacity advice counts. */
  bytes?: number;
}

function eventOf(value: Buffer | null | undefined): { eventId?: string; eventTime?: number } {
  if (!value) return {};
  try {
    const v = JSON.parse(value.toString("utf8")) as {
      eventId?: unknown;
      timestamp?: unknown;
      receivedAt?: unknown;
    };
    const own = typeof v.timestamp === "string" ? Date.parse(v.timestamp) : NaN;
    const received = typeof v.receivedAt === "string" ? Date.parse(v.receivedAt) : NaN;
    const time = Number.isFinite(received) && Number.isFinite(own) ? storedTime(own, received).ms : own;
    return {
      ...(typeof v.eventId === "string" ? { eventId: v.eventId } : {}),
      ...(Number.isFinite(time) ? { eventTime: time } : {}),
    };
  } catch {
    return {};
  }
}

/** The committed records in offset ranges, with their event ids and times, by partition. */
export async function readCommittedRecords(
  c: KafkaConnection,
  topic: string,
  ranges: OffsetRange[],
  timeoutMs = 20_000,
): Promise<Map<number, CommittedRecord[]>> {
  const out = new Map<number, CommittedRecord[]>(ranges.map((r) => [r.partition, []]));
  await scanCommitted(c, topic, ranges, timeoutMs, (m) =>
    out.get(m.partition)?.push({
      partition: m.partition,
      offset: m.offset,
      eventId: undefined,
      bytes: (m.key?.length ?? 0) + (m.value?.length ?? 0),
      ...eventOf(m.value),
    }),
  );
  return out;
}

/**
 * A native consumer that never joins its group nor commits, connected for `fn` and
 * disconnected after it (whatever `fn` does). `settings` adds to the shared ones.
 */
async function withConsumer<T>(
  c: KafkaConnection,
  settings: confluent.ConsumerGlobalConfig,
  topicSettings: confluent.ConsumerTopicConfig,
  timeoutMs: number,
  fn: (consumer: confluent.KafkaConsumer) => Promise<T>,
): Promise<T> {
  const consumer = new confluent.KafkaConsumer(
    {
      ...librdkafkaSecurity(c),
      "bootstrap.servers": c.bootstrapServers,
      "enable.auto.commit": false,
      "socket.timeout.ms": timeoutMs,
      ...settings,
    },
    topicSettings,
  );
  await new Promise<void>((resolve, reject) =>
    // Typed as always set; librdkafka passes null on success.
    consumer.connect({ timeout: timeoutMs }, (err: { message: string } | null) =>
      err ? reject(new Error(err.message)) : resolve(),
    ),
  );
  try {
    return await fn(consumer);
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
}

/**
 * A consumer group's committed offsets on a topic's partitions (absent: nothing committed),
 * read through a consumer handle of that group which never joins it (no subscription, no
 * assignment, nothing committed). Not through librdkafka's admin ListConsumerGroupOffsets:
 * when the coordinator answers NOT_COORDINATOR (a fresh cluster creating __consumer_offsets,
 * a coordinator moving in a rolling restart) that path dereferences the admin handle's
 * missing group (librdkafka issue 5040, confluent-kafka-javascript issue 374) and killed the
 * operator with SIGSEGV on a fresh stack; a consumer's own group code asks for the
 * coordinator again instead.
 */
export async function readGroupOffsets(
  c: KafkaConnection,
  groupId: string,
  topic: string,
  partitions: number[],
  timeoutMs = 10_000,
): Promise<Map<number, number>> {
  if (partitions.length === 0) return new Map();
  return withConsumer(c, { "group.id": groupId }, {}, timeoutMs, async (consumer) => {
    // The call returns once librdkafka answered or timed out: nothing is in flight for the
    // disconnect after it.
    const committed = await new Promise<confluent.TopicPartitionOffsetAndMetadata[]>((resolve, reject) =>
      consumer.committed(
        partitions.map((partition) => ({ topic, partition })),
        timeoutMs,
        (err: { message: string } | null, tps) => (err ? reject(new Error(err.message)) : resolve(tps)),
      ),
    );
    return new Map(committed.filter((tp) => tp.offset >= 0).map((tp) => [tp.partition, tp.offset] as const));
  });
}

/**
 * Visits every committed record in the ranges, reading read_committed with a group-less
 * assignment (it joins no group and commits nothing, so the pipeline's consumer group never
 * sees it).
 */
async function scanCommitted(
  c: KafkaConnection,
  topic: string,
  ranges: OffsetRange[],
  timeoutMs: number,
  visit: (m: confluent.Message) => void,
): Promise<void> {
  const pending = new Map(ranges.filter((r) => r.to > r.from).map((r) => [r.partition, r]));
  if (pending.size === 0) return;
  const byPartition = new Map(pending);
  const settings = {
    // Required by librdkafka even for a manual assignment; never joined, never committed.
    "group.id": "logpipeline-operator.reader",
    "enable.partition.eof": true,
    "isolation.level": "read_committed",
  } as const;
  await withConsumer(c, settings, { "auto.offset.reset": "earliest" }, timeoutMs, async (consumer) => {
    consumer.on("partition.eof", (eof) => {
      const r = pending.get(eof.partition);
      if (r && eof.offset >= r.to) pending.delete(eof.partition);
    });
    consumer.assign([...pending.values()].map((r) => ({ topic, partition: r.partition, offset: r.from })));
    // A bound on real I/O (how long the broker may take), not a time the operator reasons
    // about: the wall clock, like the socket timeout above.
    // eslint-disable-next-line no-restricted-properties
    const deadline = Date.now() + timeoutMs;
    while (pending.size > 0) {
      // eslint-disable-next-line no-restricted-properties
      if (Date.now() > deadline)
        throw new Error(`reading ${topic} timed out with ${pending.size} partitions unread`);
      const messages = await new Promise<confluent.Message[]>((resolve, reject) =>
        consumer.consume(500, (err: { message: string } | null, m) =>
          err ? reject(new Error(err.message)) : resolve(m),
        ),
      );
      // EOF events of a batch may be emitted before its messages reach this callback: count
      // against the ranges, not against what is still pending.
      for (const m of messages) {
        const r = byPartition.get(m.partition);
        if (!r || m.offset < r.from) continue;
        // Past the range (its last offsets were markers or aborted records): done with it.
        if (m.offset >= r.to) {
          pending.delete(m.partition);
          continue;
        }
        visit(m);
        if (m.offset + 1 >= r.to) pending.delete(m.partition);
      }
    }
  });
}
