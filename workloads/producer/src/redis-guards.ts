import type { Redis } from "ioredis";

/**
 * Redis-backed guards of the gateway: idempotency keys and per-client token buckets.
 * Redis is never the exactly-once guarantee (PostgreSQL's unique key is); when it is down,
 * the gateway goes on (fail-open, the default) or refuses (fail-closed), and says so.
 */
export class RedisUnavailable extends Error {
  constructor(cause: unknown) {
    super(`redis unavailable: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

function usable(redis: Redis | undefined): redis is Redis {
  return redis?.status === "ready";
}

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

// Token bucket in one atomic script: refill by elapsed time, take `cost` tokens or report
// how long until they exist.
const TOKEN_BUCKET = `
local key, rate, burst, cost, now = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local b = redis.call('HMGET', key, 't', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', key, 't', tokens, 'ts', now)
redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}
`;

/** The token-bucket script as a command: sent by its SHA (EVALSHA), its text only once. */
type WithTokenBucket = Redis & {
  tokenBucket(key: string, rate: number, burst: number, cost: number, now: number): Promise<[number, number]>;
};

export class RateLimiter {
  constructor(
    private readonly redis: Redis | undefined,
    private readonly prefix: string,
  ) {
    if (redis && !("tokenBucket" in redis))
      redis.defineCommand("tokenBucket", { numberOfKeys: 1, lua: TOKEN_BUCKET });
  }

  /** Takes `cost` tokens from the client's bucket; `retryAfterMs` when refused. */
  async take(
    client: string,
    route: string,
    perSecond: number,
    burst: number,
    cost = 1,
  ): Promise<{ allowed: boolean; retryAfterMs: number }> {
    if (perSecond <= 0) return { allowed: true, retryAfterMs: 0 };
    if (!usable(this.redis)) throw new RedisUnavailable("not connected");
    try {
      const r = await (this.redis as WithTokenBucket).tokenBucket(
        `${this.prefix}${route}:${client}`,
        perSecond,
        Math.max(burst, cost, perSecond),
        cost,
        Date.now(),
      );
      return { allowed: r[0] === 1, retryAfterMs: r[1] };
    } catch (e) {
      throw new RedisUnavailable(e);
    }
  }
}
