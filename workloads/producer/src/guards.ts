import type { FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import type { Redis } from "ioredis";
import type { ApiKeys } from "../../common/src/auth.js";
import type { ProducerEnv } from "../../common/src/config.js";
import { authenticator, HttpError } from "../../common/src/http.js";
import { RateLimiter, RedisUnavailable } from "../../common/src/rate-limit.js";
import type { Prepared } from "./kafka.js";
import type { GatewayMetrics } from "./metrics.js";
import { IdempotencyKeys } from "./redis-guards.js";

/** What a request passes before its events are produced, and the keys it holds meanwhile. */
export interface Guards {
  /**
   * The ingest routes' onRequest hook, before the body is read: authenticates (401), then
   * holds a place under the replica's and the client's in-flight caps (429) until the
   * response is sent or the connection closes. Sets `req.client`.
   */
  admit: (req: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /** Takes `cost` events from the client's one bucket (both routes), or a 429 (503 when Redis is down and fail-closed). */
  rateLimit(client: string, route: "single" | "batch" | "otlp", cost: number): Promise<void>;
  /**
   * Reserves idempotency keys for the events a client named (its eventId or an
   * Idempotency-Key): only those can be retried as the same event. Events the gateway named
   * itself are new by construction and skip Redis.
   */
  reserve(
    events: Prepared[],
    clientNamed: ReadonlySet<string>,
  ): Promise<{ toProduce: Prepared[]; duplicates: Set<string>; reserved: string[] }>;
  /** After the commit: the reserved keys now name written events. */
  confirm(reserved: string[]): Promise<void>;
  /** After a failed commit: the keys are free for the client's retry. */
  release(reserved: string[]): Promise<void>;
  /** "up", "down" or "disabled"; also sets the Redis gauge. */
  redisState(): "up" | "down" | "disabled";
}

declare module "fastify" {
  interface FastifyInstance {
    guards: Guards;
  }
  interface FastifyRequest {
    /** The authenticated client ("key:<name>", or "ip:<address>" with authentication off). */
    client: string;
  }
}

export interface GuardsPluginOptions {
  env: ProducerEnv;
  redis?: Redis | undefined;
  apiKeys?: ApiKeys | undefined;
  metrics: GatewayMetrics;
}

/**
 * Authentication, rate limits and idempotency keys. Redis is the caller's (shared with
 * nothing else here, closed by the process); with Redis down the guards fail open or closed
 * as REDIS_FAILURE_MODE says, and PostgreSQL's unique key still deduplicates.
 */
export const guardsPlugin = fp<GuardsPluginOptions>(
  (app, { env, redis, apiKeys, metrics: m }, done) => {
    const idem = new IdempotencyKeys(redis, `${env.REDIS_KEY_PREFIX}idem:`, env.IDEMPOTENCY_TTL_SECONDS);
    const limiter = new RateLimiter(redis, `${env.REDIS_KEY_PREFIX}rl:`);
    const failClosed = env.REDIS_FAILURE_MODE === "closed";

    const redisState = () => {
      const up = redis?.status === "ready";
      m.redisUp.set(up ? 1 : 0);
      return redis ? (up ? "up" : "down") : "disabled";
    };

    // One bucket per client for both routes, charged per event: a batch of n events costs n,
    // so /api/logs/batch is no way around the client's rate.
    const rateLimit = async (client: string, route: "single" | "batch" | "otlp", cost: number) => {
      const perSecond = env.RATE_LIMIT_PER_SECOND;
      try {
        const r = await limiter.take(client, "events", perSecond, env.RATE_LIMIT_BURST, cost);
        if (!r.allowed) {
          m.rateLimited.inc({ route });
          throw new HttpError(
            429,
            "rate limit exceeded",
            [`limit ${perSecond} events/s for ${client}; this request has ${cost}`],
            Math.max(1, Math.ceil(r.retryAfterMs / 1000)),
            "rate_limited",
          );
        }
      } catch (e) {
        if (!(e instanceof RedisUnavailable)) throw e;
        redisState();
        if (failClosed)
          throw new HttpError(503, "rate limiter unavailable (redis down, fail-closed)", undefined, 1);
      }
    };

    const reserve: Guards["reserve"] = async (events, clientNamed) => {
      const named = events.filter((e) => clientNamed.has(e.event.eventId));
      const fresh = events.filter((e) => !clientNamed.has(e.event.eventId));
      const none = { toProduce: events, duplicates: new Set<string>(), reserved: [] as string[] };
      if (named.length === 0) return none;
      try {
        const r = await idem.reserveMany(named.map((e) => e.event.eventId));
        if (r.inFlight.length > 0) {
          await idem.release(r.reserved);
          throw new HttpError(409, "an event with this id is being written", r.inFlight, 1);
        }
        m.idemHits.inc(r.duplicates.length);
        const duplicates = new Set(r.duplicates);
        return {
          toProduce: [...fresh, ...named.filter((e) => !duplicates.has(e.event.eventId))],
          duplicates,
          reserved: r.reserved,
        };
      } catch (err) {
        if (!(err instanceof RedisUnavailable)) throw err;
        redisState();
        if (failClosed)
          throw new HttpError(503, "idempotency store unavailable (redis down, fail-closed)", undefined, 1);
        return none; // fail-open: PostgreSQL's unique key still deduplicates
      }
    };

    const authenticate = authenticator(apiKeys, env.AUTH_DISABLED);
    let inFlight = 0;
    const perClient = new Map<string, number>();
    // async: a throw becomes the hook's rejection, which fastify answers with the error.
    const admit: Guards["admit"] = async (req, reply) => {
      const client = authenticate(req);
      const mine = perClient.get(client) ?? 0;
      if (inFlight >= env.INGEST_MAX_IN_FLIGHT)
        throw new HttpError(
          429,
          "too many requests in progress",
          [`this replica takes ${env.INGEST_MAX_IN_FLIGHT} at once`],
          1,
          "in_flight",
        );
      if (mine >= env.INGEST_MAX_IN_FLIGHT_PER_CLIENT)
        throw new HttpError(
          429,
          "too many requests in progress for this client",
          [`at most ${env.INGEST_MAX_IN_FLIGHT_PER_CLIENT} at once per client; wait for answers`],
          1,
          "client_in_flight",
        );
      req.client = client;
      inFlight++;
      m.inFlight.set(inFlight);
      perClient.set(client, mine + 1);
      let held = true;
      // "close" comes once the response is sent or the connection is gone, whichever first.
      reply.raw.once("close", () => {
        if (!held) return;
        held = false;
        inFlight--;
        m.inFlight.set(inFlight);
        const n = (perClient.get(client) ?? 1) - 1;
        if (n === 0) perClient.delete(client);
        else perClient.set(client, n);
      });
    };

    app.decorateRequest("client", "");
    app.decorate("guards", {
      admit,
      rateLimit,
      reserve,
      confirm: (reserved) => idem.confirm(reserved),
      release: (reserved) => idem.release(reserved),
      redisState,
    } satisfies Guards);
    m.probes.redisUp = () => (redisState() === "up" ? 1 : 0);
    done();
  },
  { name: "logpipeline-guards" },
);
