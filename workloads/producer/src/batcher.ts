import { type NativeProducer, RecordRefused } from "../../common/src/kafka-producer.js";
import type { Logger } from "../../common/src/logger.js";
import { errorText } from "../../common/src/connections.js";

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

/** The group holding the index-th message of the groups' messages laid end to end. */
function groupOf(groups: Group[], index: number): Group | undefined {
  let at = index;
  for (const g of groups) {
    if (at < g.messages.length) return g;
    at -= g.messages.length;
  }
  return undefined;
}

export class BufferFullError extends Error {
  constructor() {
    super("ingest buffer is full");
  }
}

export interface BatcherOptions {
  topic: string;
  delivery: "exactlyOnce" | "atLeastOnce";
  /** Base transactional id; lane i uses `<id>-<i>`, stable across restarts (fencing). */
  transactionalId?: string | undefined;
  /** Transactions in flight at once, each on its own producer. */
  lanes: number;
  maxBatchEvents: number;
  lingerMs: number;
  bufferMaxEvents: number;
  deliveryTimeoutMs: number;
}

/** Makes a producer; transactional when given an id. */
export type ProducerFactory = (transactionalId: string | undefined) => NativeProducer;

export interface BatcherHooks {
  /** Runs each send through the circuit breaker; rejects at once while it is open. */
  guard: <T>(fn: () => Promise<T>) => Promise<T>;
  onBatch: (events: number, seconds: number) => void;
  onAbort: () => void;
}

/** One producer and the batch it has in flight. */
class Lane {
  producer: NativeProducer | undefined;
  connecting: Promise<NativeProducer> | undefined;
  busy = false;
  constructor(readonly transactionalId: string | undefined) {}
}

/**
 * Gathers events across requests into micro-batches. With `exactlyOnce`, each batch is one
 * Kafka transaction and callers are answered only after its commit; one request's events
 * are never split across transactions (they become visible together or not at all).
 * Several lanes (producers with their own transactional ids) overlap their transactions,
 * so a commit's round trip does not idle the broker. Order is kept within a request, not
 * across concurrent requests. Memory is bounded: past `bufferMaxEvents` queued events,
 * `submit` refuses at once.
 */
export class Batcher {
  private queue: Group[] = [];
  private queued = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly lanes: Lane[];
  private inFlight = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly newProducer: ProducerFactory,
    private readonly opts: BatcherOptions,
    private readonly hooks: BatcherHooks,
    private readonly log: Logger,
  ) {
    const n = opts.delivery === "exactlyOnce" ? Math.max(1, opts.lanes) : 1;
    this.lanes = Array.from(
      { length: n },
      (_, i) =>
        new Lane(
          opts.delivery === "exactlyOnce" && opts.transactionalId
            ? `${opts.transactionalId}-${i}`
            : undefined,
        ),
    );
  }

  get bufferedEvents(): number {
    return this.queued;
  }

  /** Connects every lane's producer (a restart fences the previous instance's transactions). */
  async connect(): Promise<void> {
    await Promise.all(this.lanes.map((l) => this.ensureProducer(l)));
  }

  /**
   * Connects a lane's producer if it has none (at start, or after one was dropped). While
   * Kafka is down, connecting (initTransactions) can wait for a long time: callers wait at
   * most the delivery timeout, and one attempt is shared meanwhile.
   */
  private async ensureProducer(lane: Lane): Promise<NativeProducer> {
    if (lane.producer) return lane.producer;
    if (!lane.connecting) {
      const fresh = this.newProducer(lane.transactionalId);
      const attempt = fresh.connect().then(
        () => {
          lane.producer = fresh;
          return fresh;
        },
        async (e: unknown) => {
          await fresh.disconnect().catch(() => undefined);
          throw e;
        },
      );
      lane.connecting = attempt.finally(() => (lane.connecting = undefined));
      lane.connecting.catch(() => undefined); // a late failure is seen by the next caller, not unhandled
    }
    return withTimeout(lane.connecting, this.opts.deliveryTimeoutMs, "connect");
  }

  /** Resolves once the messages are durably in Kafka (committed, with exactlyOnce). */
  submit(messages: OutMessage[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error("shutting down"));
    if (this.queued + messages.length > this.opts.bufferMaxEvents)
      return Promise.reject(new BufferFullError());
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ messages, resolve, reject });
      this.queued += messages.length;
      if (this.queued >= this.opts.maxBatchEvents) this.dispatch();
      else this.timer ??= setTimeout(() => this.dispatch(), this.opts.lingerMs);
    });
  }

  /** Hands queued groups to free lanes, one batch per lane. */
  private dispatch(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const lane of this.lanes) {
      if (this.queue.length === 0) return;
      if (lane.busy) continue;
      const groups = this.takeBatch();
      lane.busy = true;
      const run = this.runBatch(lane, groups).finally(() => {
        lane.busy = false;
        this.inFlight.delete(run);
        // Events gathered while this batch was in flight go out at once.
        if (this.queue.length > 0) this.dispatch();
      });
      this.inFlight.add(run);
    }
  }

  private takeBatch(): Group[] {
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
    return groups;
  }

  /**
   * Sends the groups as one transaction. A record Kafka refuses as it is handed over fails only
   * the request it came from: the transaction is aborted (nothing of it was visible) and sent
   * again without that request, at most once per request in the batch.
   */
  private async runBatch(lane: Lane, groups: Group[]): Promise<void> {
    let pending = groups;
    const started = process.hrtime.bigint();
    while (pending.length > 0) {
      const messages = pending.flatMap((g) => g.messages);
      try {
        await this.hooks.guard(() => this.sendWithin(lane, messages));
        this.hooks.onBatch(messages.length, Number(process.hrtime.bigint() - started) / 1e9);
        for (const g of pending) g.resolve();
        return;
      } catch (e) {
        const culprit = e instanceof RecordRefused ? groupOf(pending, e.index) : undefined;
        if (!culprit) {
          for (const g of pending) g.reject(e instanceof Error ? e : new Error(String(e)));
          return;
        }
        culprit.reject(e as RecordRefused);
        pending = pending.filter((g) => g !== culprit);
      }
    }
  }

  /**
   * A batch that gets no answer within twice the delivery timeout fails; its outcome is
   * unknown (a commit may still land), so the lane's producer is dropped and its next batch
   * starts a new one, which fences this one. Clients retry with the same event ids.
   */
  private async sendWithin(lane: Lane, messages: OutMessage[]): Promise<void> {
    const attempt = this.send(lane, messages);
    try {
      await withTimeout(attempt, this.opts.deliveryTimeoutMs * 2, "batch");
    } catch (e) {
      attempt.catch(() => undefined);
      const stale = lane.producer;
      if (stale && this.opts.delivery === "exactlyOnce") {
        lane.producer = undefined;
        void stale.disconnect().catch(() => undefined);
      }
      throw e;
    }
  }

  private async send(lane: Lane, messages: OutMessage[]): Promise<void> {
    const producer = await this.ensureProducer(lane);
    if (this.opts.delivery === "atLeastOnce") {
      await producer.send(this.opts.topic, messages);
      return;
    }
    try {
      await producer.sendTransaction(this.opts.topic, messages);
    } catch (e) {
      this.hooks.onAbort();
      if (e instanceof RecordRefused) {
        // Refused before the commit: the transaction holds nothing committed and the producer
        // stays good. (If the abort fails, the next send finds the producer unusable and the
        // lane starts a new one then.)
        await producer.abort().catch(() => {
          if (lane.producer === producer) lane.producer = undefined;
        });
        throw e;
      }
      // After a failed commit the outcome is unknown (it may have committed): never retry
      // blindly. Abort if possible, and start a new producer, which fences the old one.
      await producer.abort().catch(() => undefined);
      this.log.warn(
        { err: errorText(e), lane: lane.transactionalId },
        "transaction failed; the lane's next batch uses a new producer",
      );
      if (lane.producer === producer) lane.producer = undefined;
      await producer.disconnect().catch(() => undefined);
      throw e;
    }
  }

  /** Graceful shutdown: refuse new work, send what is queued, wait for commits, disconnect. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.queue.length > 0 || this.inFlight.size > 0) {
      this.dispatch();
      await Promise.race([...this.inFlight, new Promise((r) => setTimeout(r, 50))]);
    }
    await Promise.all(
      this.lanes.flatMap((l) => (l.producer ? [l.producer.disconnect().catch(() => undefined)] : [])),
    );
  }
}
