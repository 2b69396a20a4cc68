import type { Redis } from "ioredis";
import { errorText } from "./connections.js";

/**
 * Per-client token buckets in Redis, shared by the gateway (ingest) and the query API
 * (reads). Redis down: the caller decides (the gateway's failure mode; the query API fails
 * open and its concurrency bound still holds).
 */
export class RedisUnavailable extends Error {
  constructor(cause: unknown) {
    super(`redis unavailable: ${errorText(cause)}`);
  }
}

export function usable(redis: Redis | undefined): redis is Redis {
  return redis?.status === "ready";
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
