import type { Redis } from "ioredis";
import { RedisUnavailable, usable } from "../../common/src/rate-limit.js";

/**
 * Redis-backed idempotency keys of the gateway (its per-client token buckets are in
 * common/src/rate-limit.ts). Redis is never the exactly-once guarantee (the consumer's key
 * table in PostgreSQL is, docs/storage.md); when it is down, the gateway goes on (fail-open,
 * the default) or refuses (fail-closed), and says so.
 */
export type Reservation =
  { kind: "reserved" } | { kind: "duplicate"; eventId: string } | { kind: "in-flight" } | { kind: "skipped" };

/**
 * Reserve-then-confirm: a key is reserved (short TTL) before the event is produced and
 * confirmed only after its transaction committed; a failed commit releases it, so the
 * client's retry is produced again instead of being answered as a false duplicate.
 */
export class IdempotencyKeys {
  constructor(
    private readonly redis: Redis | undefined,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
    private readonly pendingTtlSeconds = 60,
  ) {}

  /** Reserves many keys in two pipelined round trips. */
  async reserveMany(
    eventIds: string[],
  ): Promise<{ reserved: string[]; duplicates: string[]; inFlight: string[] }> {
    const redis = this.redis;
    if (!usable(redis)) throw new RedisUnavailable("not connected");
    try {
      const setPipe = redis.pipeline();
      for (const id of eventIds) setPipe.set(this.prefix + id, "pending", "EX", this.pendingTtlSeconds, "NX");
      const set = (await setPipe.exec()) ?? [];
      const reserved: string[] = [];
      const taken: string[] = [];
      eventIds.forEach((id, i) => {
        const [err, res] = set[i] ?? [new Error("no reply"), null];
        if (err) throw err;
        (res === "OK" ? reserved : taken).push(id);
      });
      if (taken.length === 0) return { reserved, duplicates: [], inFlight: [] };
      const getPipe = redis.pipeline();
      for (const id of taken) getPipe.get(this.prefix + id);
      const states = (await getPipe.exec()) ?? [];
      const duplicates: string[] = [];
      const inFlight: string[] = [];
      taken.forEach((id, i) => {
        const state = states[i]?.[1];
        // "done": committed before; "pending": another request is writing it right now.
        // A key that expired between the two calls counts as in flight: the client retries.
        (state === "done" ? duplicates : inFlight).push(id);
      });
      return { reserved, duplicates, inFlight };
    } catch (e) {
      throw new RedisUnavailable(e);
    }
  }

  async confirm(eventIds: string[]): Promise<void> {
    if (!usable(this.redis) || eventIds.length === 0) return;
    const pipe = this.redis.pipeline();
    for (const id of eventIds) pipe.set(this.prefix + id, "done", "EX", this.ttlSeconds);
    await pipe.exec().catch(() => undefined);
  }

  async release(eventIds: string[]): Promise<void> {
    if (!usable(this.redis) || eventIds.length === 0) return;
    await this.redis.del(...eventIds.map((id) => this.prefix + id)).catch(() => undefined);
  }
}
