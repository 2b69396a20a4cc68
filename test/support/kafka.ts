import confluent from "@confluentinc/kafka-javascript";
import { kafkaClient as workloadKafka } from "../../workloads/common/src/clients.js";
import { createLogger } from "../../workloads/common/src/logger.js";

const { Kafka, logLevel } = confluent.KafkaJS;
export type KafkaClient = InstanceType<typeof Kafka>;
export type Admin = ReturnType<KafkaClient["admin"]>;

export function kafkaClient(bootstrap: string, clientId = "logpipeline-tests"): KafkaClient {
  return new Kafka({ kafkaJS: { brokers: [bootstrap], clientId, logLevel: logLevel.ERROR } });
}

export interface Received {
  value: string;
  partition: number;
  offset: string;
  headers: Record<string, string>;
}

/**
 * Reads `topic` from the beginning with the given isolation level until `expected` records
 * arrived or `idleMs` passed without a new one; returns what it read.
 */
export async function readAll(
  kafka: KafkaClient,
  topic: string,
  opts: { groupId: string; readCommitted: boolean; expected: number; idleMs?: number; timeoutMs?: number },
): Promise<Received[]> {
  const consumer = kafka.consumer({
    kafkaJS: { groupId: opts.groupId, fromBeginning: true, autoCommit: false },
    "isolation.level": opts.readCommitted ? "read_committed" : "read_uncommitted",
  });
  const got: Received[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic] });
    let last = Date.now();
    const start = Date.now();
    void consumer.run({
      eachMessage: ({ message, partition }) => {
        const headers = Object.fromEntries(
          Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]),
        );
        got.push({ value: message.value?.toString() ?? "", partition, offset: message.offset, headers });
        last = Date.now();
        return Promise.resolve();
      },
    });
    const idleMs = opts.idleMs ?? 3000;
    const timeoutMs = opts.timeoutMs ?? 60_000;
    while (Date.now() - start < timeoutMs) {
      await new Promise((r) => setTimeout(r, 100));
      if (got.length >= opts.expected && Date.now() - last > idleMs) break;
    }
  } finally {
    await consumer.disconnect();
  }
  return got;
}

/** The workloads' Kafka client (as the producer and consumer build it), logging errors only. */
export function workloadKafkaClient(bootstrap: string, topic: string, name = "t"): KafkaClient {
  return workloadKafka(
    { KAFKA_BOOTSTRAP_SERVERS: bootstrap, KAFKA_TOPIC: topic, KAFKA_SECURITY_PROTOCOL: "PLAINTEXT" },
    name,
    createLogger(name, "error"),
  );
}

/**
 * A transactional writer for tests: `write` commits the values in transactions of
 * `perTxn`, each transaction's records spread round-robin over `partitions`; with
 * `abortEvery: n`, every n-th transaction is sent and then aborted (its records never count).
 */
export async function transactionalWriter(kafka: KafkaClient, transactionalId: string) {
  const producer = kafka.producer({ kafkaJS: { transactionalId, idempotent: true, maxInFlightRequests: 1 } });
  await producer.connect();
  return {
    write: async (
      topic: string,
      values: (string | Buffer)[],
      o: { perTxn: number; partitions: number; abortEvery?: number },
    ) => {
      let n = 0;
      for (let i = 0; i < values.length; i += o.perTxn) {
        const tx = await producer.transaction();
        await tx.send({
          topic,
          messages: values.slice(i, i + o.perTxn).map((value, j) => ({ value, partition: j % o.partitions })),
        });
        await tx.commit();
        n++;
        if (o.abortEvery && n % o.abortEvery === 0) {
          const aborted = await producer.transaction();
          await aborted.send({
            topic,
            messages: values
              .slice(i, i + o.perTxn)
              .map((value, j) => ({ value, partition: j % o.partitions })),
          });
          await aborted.abort();
        }
      }
    },
    close: () => producer.disconnect(),
  };
}
