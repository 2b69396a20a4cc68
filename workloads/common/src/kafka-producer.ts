import confluent from "@confluentinc/kafka-javascript";
import { failpoint } from "./failpoints.js";

/**
 * The gateway's Kafka producer, on librdkafka's own (callback) API of
 * @confluentinc/kafka-javascript rather than its KafkaJS-compatible layer: `produce` hands a
 * message to librdkafka's queue without a promise per message, and `commitTransaction`
 * flushes them all. Measured here 3-4x faster for transactions of 1,000-2,000 events
 * (docs/benchmarks.md). This file is the only place that knows the API.
 */
export interface ProducedMessage {
  partition: number;
  key: string;
  value: Buffer;
}

export interface ProducerSettings {
  /** librdkafka properties: bootstrap.servers, security, compression … */
  config: Record<string, string | number | boolean>;
  transactionalId?: string | undefined;
  timeoutMs: number;
}

function toError(err: unknown): Error {
  if (err instanceof Error) return err;
  const message = (err as { message?: unknown }).message;
  return new Error(typeof message === "string" ? message : JSON.stringify(err));
}

/** Promisifies a librdkafka call whose callback gets an error or nothing. */
const call = (fn: (cb: (err: unknown) => void) => void) =>
  new Promise<void>((resolve, reject) => {
    fn((err) => (err ? reject(toError(err)) : resolve()));
  });

/**
 * librdkafka refused one message as it was handed over for what the message is (larger than
 * message.max.bytes): nothing of the transaction is committed yet, and the transaction can be
 * aborted and sent again without the message. `index` is the message's place in the send.
 * Other refusals at hand-over (an unknown partition while librdkafka's metadata lags a grown
 * topic) are not the message's fault and fail the send as before: retried.
 */
export class RecordRefused extends Error {
  constructor(
    readonly index: number,
    override readonly cause: Error,
  ) {
    super(`Kafka refused record ${index}: ${cause.message}`);
    this.name = "RecordRefused";
  }
}

export class NativeProducer {
  private readonly producer: confluent.Producer;
  private deliveryErrors: Error[] = [];

  constructor(private readonly s: ProducerSettings) {
    this.producer = new confluent.Producer(
      {
        ...s.config,
        "enable.idempotence": true, // implies acks=all
        ...(s.transactionalId
          ? {
              "transactional.id": s.transactionalId,
              "transaction.timeout.ms": Math.max(s.timeoutMs * 2, 10_000),
              dr_cb: false,
            }
          : { dr_cb: true }),
      },
      { "message.timeout.ms": s.timeoutMs },
    );
    if (!s.transactionalId) {
      this.producer.on("delivery-report", (err: unknown) => {
        if (err) this.deliveryErrors.push(toError(err));
      });
    }
  }

  /** Connects and, when transactional, initialises transactions (fencing an earlier instance). */
  async connect(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.producer.connect({ timeout: this.s.timeoutMs }, (err: unknown) =>
        err ? reject(toError(err)) : resolve(),
      );
    });
    this.producer.setPollInterval(100);
    if (this.s.transactionalId) await call((cb) => this.producer.initTransactions(this.s.timeoutMs, cb));
  }

  /** One transaction holding every message; resolves once committed. */
  async sendTransaction(topic: string, messages: ProducedMessage[]): Promise<void> {
    await call((cb) => this.producer.beginTransaction(cb));
    this.produceAll(topic, messages);
    failpoint("before-kafka-commit");
    await call((cb) => this.producer.commitTransaction(this.s.timeoutMs, cb));
  }

  private produceAll(topic: string, messages: ProducedMessage[]): void {
    messages.forEach((m, i) => {
      try {
        this.producer.produce(topic, m.partition, m.value, m.key);
      } catch (e) {
        if ((e as { code?: unknown }).code === confluent.CODES.ERRORS.ERR_MSG_SIZE_TOO_LARGE)
          throw new RecordRefused(i, toError(e));
        throw e;
      }
    });
  }

  async abort(): Promise<void> {
    await call((cb) => this.producer.abortTransaction(this.s.timeoutMs, cb));
  }

  /** Without transactions: resolves once every message is acknowledged (acks=all). */
  async send(topic: string, messages: ProducedMessage[]): Promise<void> {
    this.deliveryErrors = [];
    this.produceAll(topic, messages);
    await call((cb) => this.producer.flush(this.s.timeoutMs, cb));
    const failed = this.deliveryErrors;
    if (failed.length > 0)
      throw new Error(`${failed.length} messages not delivered: ${failed[0]?.message ?? ""}`);
  }

  async disconnect(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.producer.disconnect(this.s.timeoutMs, () => resolve());
    });
  }
}
