import type { KafkaClient, KafkaProducer } from "../../common/src/clients.js";
import { failpoint } from "../../common/src/failpoints.js";
import type { Logger } from "../../common/src/logger.js";

export interface OutMessage {
  key: string;
  value: Buffer;
  partition: number;
}

interface Group {
  messages: OutMessage[];
  resolve: () => void;
  reject: (e: Error) => void;
}

/** Rejects after `ms` (the work itself goes on; callers treat the outcome as unknown). */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from Kafka within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export class BufferFullError extends Error {
  constructor() {
    super("ingest buffer is full");
  }
}

export interface BatcherOptions {
  topic: string;
  delivery: "exactlyOnce" | "atLeastOnce";
  transactionalId?: string | undefined;
  maxBatchEvents: number;
  lingerMs: number;
  bufferMaxEvents: number;
  deliveryTimeoutMs: number;
}

export interface BatcherHooks {
  /** Runs each send through the circuit breaker; rejects at once while it is open. */
  guard: <T>(fn: () => Promise<T>) => Promise<T>;
  onBatch: (events: number, seconds: number) => void;
  onAbort: () => void;
}

/**
 * Gathers events across requests into micro-batches. With `exactlyOnce`, each batch is one
 * Kafka transaction and callers are answered only after the commit; one request's events
 * are never split across transactions (they become visible together or not at all).
 * Memory is bounded: past `bufferMaxEvents` queued events, `submit` refuses at once.
 */
export class Batcher {
  private queue: Group[] = [];
  private queued = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private producer: KafkaProducer | undefined;
  private connecting: Promise<KafkaProducer> | undefined;
  private closed = false;

  constructor(
    private readonly kafka: KafkaClient,
    private readonly opts: BatcherOptions,
    private readonly hooks: BatcherHooks,
    private readonly log: Logger,
  ) {}

  get bufferedEvents(): number {
    return this.queued;
  }

  async connect(): Promise<void> {
    await this.ensureProducer();
  }

  /**
   * Connects a producer if there is none (at start, or after one was dropped). While Kafka
   * is down, connecting (initTransactions) can wait for a long time: callers wait at most
   * the delivery timeout, and one attempt is shared by every batch meanwhile.
   */
  private async ensureProducer(): Promise<KafkaProducer> {
    if (this.producer) return this.producer;
    if (!this.connecting) {
      const fresh = this.newProducer();
      const attempt = fresh.connect().then(
        () => {
          this.producer = fresh;
          return fresh;
        },
        async (e: unknown) => {
          await fresh.disconnect().catch(() => undefined);
          throw e;
        },
      );
      this.connecting = attempt.finally(() => (this.connecting = undefined));
      this.connecting.catch(() => undefined); // a late failure is seen by the next caller, not unhandled
    }
    return withTimeout(this.connecting, this.opts.deliveryTimeoutMs, "connect");
  }

  private newProducer(): KafkaProducer {
    return this.kafka.producer({
      kafkaJS: {
        idempotent: true,
        acks: -1,
        maxInFlightRequests: this.opts.delivery === "exactlyOnce" ? 1 : 5,
        transactionTimeout: Math.max(this.opts.deliveryTimeoutMs * 2, 10_000),
        ...(this.opts.delivery === "exactlyOnce" && this.opts.transactionalId
          ? { transactionalId: this.opts.transactionalId }
          : {}),
      },
      "linger.ms": 2,
      // Fail a batch after this long without Kafka, rather than holding requests for minutes.
      "message.timeout.ms": this.opts.deliveryTimeoutMs,
      "compression.type": "lz4",
    });
  }

  /** Resolves once the messages are durably in Kafka (committed, with exactlyOnce). */
  submit(messages: OutMessage[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error("shutting down"));
    if (this.queued + messages.length > this.opts.bufferMaxEvents)
      return Promise.reject(new BufferFullError());
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ messages, resolve, reject });
      this.queued += messages.length;
      if (this.queued >= this.opts.maxBatchEvents) this.kick();
      else this.timer ??= setTimeout(() => this.kick(), this.opts.lingerMs);
    });
  }

  private kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.flushing) return; // the running flush loops until the queue is empty
    this.flushing = this.flushLoop().finally(() => (this.flushing = undefined));
  }

  private async flushLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const groups: Group[] = [];
      let count = 0;
      while (this.queue.length > 0) {
        const next = this.queue[0];
        if (!next || (count > 0 && count + next.messages.length > this.opts.maxBatchEvents)) break;
        this.queue.shift();
        groups.push(next);
        count += next.messages.length;
      }
      this.queued -= count;
      const started = process.hrtime.bigint();
      try {
        await this.hooks.guard(() => this.sendWithin(groups.flatMap((g) => g.messages)));
        this.hooks.onBatch(count, Number(process.hrtime.bigint() - started) / 1e9);
        for (const g of groups) g.resolve();
      } catch (e) {
        for (const g of groups) g.reject(e instanceof Error ? e : new Error(String(e)));
      }
    }
  }

  /**
   * A batch that gets no answer within twice the delivery timeout fails; its outcome is
   * unknown (a commit may still land), so the producer is dropped and the next batch starts
   * a new one, which fences this one. Clients retry with the same event ids.
   */
  private async sendWithin(messages: OutMessage[]): Promise<void> {
    const attempt = this.send(messages);
    try {
      await withTimeout(attempt, this.opts.deliveryTimeoutMs * 2, "batch");
    } catch (e) {
      attempt.catch(() => undefined);
      const stale = this.producer;
      if (stale && this.opts.delivery === "exactlyOnce") {
        this.producer = undefined;
        void stale.disconnect().catch(() => undefined);
      }
      throw e;
    }
  }

  private async send(messages: OutMessage[]): Promise<void> {
    const producer = await this.ensureProducer();
    const batch = { topic: this.opts.topic, messages };
    if (this.opts.delivery === "atLeastOnce") {
      await producer.send(batch);
      return;
    }
    const tx = await producer.transaction();
    try {
      await tx.send(batch);
      failpoint("before-kafka-commit");
      await tx.commit();
    } catch (e) {
      this.hooks.onAbort();
      // After a failed commit the outcome is unknown (it may have committed): never retry
      // blindly. Abort if possible, and start a new producer, which fences the old one.
      await tx.abort().catch(() => undefined);
      this.log.warn({ err: (e as Error).message }, "transaction failed; the next batch uses a new producer");
      this.producer = undefined;
      await producer.disconnect().catch(() => undefined);
      throw e;
    }
  }

  /** Graceful shutdown: refuse new work, flush what is queued, then disconnect. */
  async close(): Promise<void> {
    this.closed = true;
    this.kick();
    await this.flushing;
    await this.producer?.disconnect();
  }
}
