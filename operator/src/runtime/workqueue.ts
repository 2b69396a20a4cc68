/**
 * A work queue with client-go's contract (k8s.io/client-go/util/workqueue), for
 * level-triggered reconcilers. It knows nothing of what the keys name.
 *
 * - Fair: FIFO.
 * - Repeated adds of a waiting key collapse into one.
 * - Never the same key twice at once: a key added while it is being processed is queued
 *   again when `done` is called for it, once.
 * - Scheduled adds (`addAfter`): one waiting entry per key, at its earliest deadline; an
 *   `add` of the key cancels it (the processing that follows schedules again if it must).
 * - Per-key exponential backoff for failures (`addRateLimited`, reset by `forget`), bounded
 *   by a global token bucket, as client-go's default controller rate limiter.
 * - `shutDown` stops new work; `drain` resolves when nothing is in flight.
 */
import { systemClock } from "../time.js";

export interface RateLimiterOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  /** Global limit on rate-limited adds: tokens per second and bucket size. */
  qps: number;
  burst: number;
}

export const DEFAULT_RATE_LIMITER: RateLimiterOptions = {
  baseDelayMs: 5,
  maxDelayMs: 1000 * 1000,
  qps: 10,
  burst: 100,
};

export class WorkQueue<K = string> {
  private readonly queue: K[] = [];
  private readonly dirty = new Set<K>();
  private readonly processing = new Set<K>();
  private readonly failures = new Map<K, number>();
  /** Scheduled adds: one per key, at its earliest deadline. */
  private readonly waiting = new Map<K, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: K | undefined) => void)[] = [];
  private readonly drained: (() => void)[] = [];
  private shuttingDown = false;
  private tokens: number;
  private lastRefill: number;

  constructor(
    private readonly limiter: RateLimiterOptions = DEFAULT_RATE_LIMITER,
    private readonly now: () => number = () => systemClock().getTime(),
  ) {
    this.tokens = limiter.burst;
    this.lastRefill = now();
  }

  /** Keys waiting (not counting those being processed). */
  get length(): number {
    return this.queue.length;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  add(key: K): void {
    // An add wins over a scheduled one: the processing it causes schedules again if needed.
    this.cancelWaiting(key);
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return; // queued again by done()
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queue.push(key);
  }

  /** The next key, or undefined once the queue is shut down and empty. */
  get(): Promise<K | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks a key's processing finished; a key added meanwhile is queued again. */
  done(key: K): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
    if (this.processing.size === 0) for (const d of this.drained.splice(0)) d();
  }

  /**
   * Adds the key after `delayMs`. A key has at most one waiting entry, at its earliest
   * deadline: a later deadline for a waiting key changes nothing, an earlier one replaces it
   * (client-go's delaying queue). A key already queued or processing still gets its entry.
   */
  addAfter(key: K, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.now() + delayMs;
    const existing = this.waiting.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.waiting.delete(key);
      this.add(key);
    }, delayMs);
    this.waiting.set(key, { at, timer });
  }

  /** Keys with a scheduled add waiting. */
  get waitingCount(): number {
    return this.waiting.size;
  }

  private cancelWaiting(key: K): void {
    const w = this.waiting.get(key);
    if (!w) return;
    clearTimeout(w.timer);
    this.waiting.delete(key);
  }

  /** Re-adds after the key's backoff (base × 2^failures, capped) or the global bucket's wait, whichever is longer. */
  addRateLimited(key: K): void {
    this.addAfter(key, this.when(key));
  }

  /** How long `addRateLimited` would wait now; counts a failure for the key. */
  when(key: K): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const perKey = Math.min(this.limiter.maxDelayMs, this.limiter.baseDelayMs * 2 ** Math.min(failures, 40));
    return Math.max(perKey, this.bucketDelay());
  }

  /** Failures counted for a key since its last `forget`. */
  retries(key: K): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: K): void {
    this.failures.delete(key);
  }

  private bucketDelay(): number {
    const now = this.now();
    this.tokens = Math.min(
      this.limiter.burst,
      this.tokens + ((now - this.lastRefill) / 1000) * this.limiter.qps,
    );
    this.lastRefill = now;
    this.tokens -= 1; // reserve a token, possibly in the future
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.limiter.qps) * 1000);
  }

  /** Stops accepting keys; waiting `get` calls resolve undefined once the queue is empty. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const w of this.waiting.values()) clearTimeout(w.timer);
    this.waiting.clear();
    if (this.queue.length === 0) for (const w of this.waiters.splice(0)) w(undefined);
  }

  /** Resolves when no key is being processed. */
  drain(): Promise<void> {
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }
}

export type ReconcileResult = { requeueAfterMs?: number } | undefined;

/**
 * Runs `workers` loops over the queue: success forgets the key's failures (and requeues it
 * after `requeueAfterMs` when asked), an error re-adds it with backoff. Resolves when the
 * queue is shut down and every worker has finished its last key.
 */
export async function runWorkers<K>(
  queue: WorkQueue<K>,
  workers: number,
  handle: (key: K) => Promise<ReconcileResult>,
  onError: (key: K, err: unknown) => void = () => undefined,
): Promise<void> {
  const loop = async () => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        const result = await handle(key);
        queue.forget(key);
        if (result?.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      } catch (e) {
        onError(key, e);
        queue.addRateLimited(key);
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, loop));
}
