import type { FastifyReply, FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import type pg from "pg";
import { Counter, Gauge, type Registry } from "prom-client";
import { z } from "zod";
import type { ApiKeys } from "../../common/src/auth.js";
import type { QueryEnv } from "../../common/src/config.js";
import { LEVELS } from "../../common/src/event.js";
import { presentedKey } from "../../common/src/auth.js";
import { createHttpApp, ErrorBody, HttpError } from "../../common/src/http.js";
import type { LedgerNames } from "../../common/src/ledger.js";
import type { Logger } from "../../common/src/logger.js";
import { RateLimiter, RedisUnavailable } from "../../common/src/rate-limit.js";
import { EVENT_READ_COLUMNS, eventsRelation } from "../../common/src/storage.js";
import { histogram, histogramWidthMs, labelValues, minuteRange, stats } from "./counts.js";
import { Catalog, type Cursor, search } from "./search.js";
import { BudgetExhausted, QuerySession } from "./session.js";
import { TailHub } from "./tail.js";
import { Completeness, CompletenessSource } from "./completeness.js";
import { defaultExplorerDir, serveExplorer } from "./explorer.js";

export interface QueryDeps {
  env: QueryEnv;
  pool: pg.Pool;
  redis?: Redis | undefined;
  names: LedgerNames;
  apiKeys?: ApiKeys | undefined;
  log: Logger;
  registry: Registry;
  /** Reads the operator's completeness document (undefined: none yet); unset: the banner says unknown. */
  readCompleteness?: (() => Promise<string | undefined>) | undefined;
}

const LogRow = z.object({
  eventId: z.string(),
  timestamp: z.string(),
  /** The client's own timestamp when it was outside the late window or the skew (docs/storage.md). */
  originalTimestamp: z.string().nullable(),
  level: z.enum(LEVELS),
  source: z.string(),
  message: z.string(),
  metadata: z.record(z.string(), z.unknown()),
  stackTrace: z.string().nullable(),
  userId: z.string().nullable(),
  traceId: z.string().nullable(),
  /** The OpenTelemetry span id (events that came in over OTLP). */
  spanId: z.string().nullable(),
  /** The name of the ingest key that wrote the event (null: written without authentication). */
  writer: z.string().nullable(),
});

declare module "fastify" {
  interface FastifyRequest {
    /** The reader: its client id, and for a scoped key the ingest keys whose events it may read. */
    reader: { client: string; writers?: string[] | undefined };
  }
}

/** The writer filter of a reader: undefined reads every event. */
const scopeOf = (req: FastifyRequest) => req.reader.writers;

/** An opaque cursor: the (timestamp, event id) the next page starts below, newest first. */
const encodeCursor = (c: Cursor) => Buffer.from(JSON.stringify([c.ts, c.id])).toString("base64url");
function decodeCursor(c: string): Cursor {
  try {
    const v = JSON.parse(Buffer.from(c, "base64url").toString("utf8")) as unknown;
    if (
      Array.isArray(v) &&
      v.length === 2 &&
      typeof v[0] === "string" &&
      typeof v[1] === "string" &&
      !Number.isNaN(Date.parse(v[0])) &&
      z.uuid().safeParse(v[1]).success
    )
      return { ts: v[0], id: v[1] };
  } catch {
    // fall through
  }
  throw new HttpError(400, "invalid cursor", [
    "cursor: pass back the nextCursor of a previous page unchanged",
  ]);
}

interface DbRow {
  event_id: string;
  ts: Date;
  ts_original: Date | null;
  level: (typeof LEVELS)[number];
  source: string;
  message: string;
  metadata: Record<string, unknown>;
  stack_trace: string | null;
  user_id: string | null;
  trace_id: string | null;
  writer: string | null;
  span_id: string | null;
}

const toItem = (r: DbRow) => ({
  eventId: r.event_id,
  timestamp: r.ts.toISOString(),
  originalTimestamp: r.ts_original?.toISOString() ?? null,
  level: r.level,
  source: r.source,
  message: r.message,
  metadata: r.metadata,
  stackTrace: r.stack_trace,
  userId: r.user_id,
  traceId: r.trace_id,
  spanId: r.span_id,
  writer: r.writer,
});

const Partial = z
  .object({ reason: z.string(), searchedBackTo: z.string() })
  .nullable()
  .describe(
    "Set when the time budget ran out before the range was searched: nextCursor continues from there",
  );

/** The read API over PostgreSQL's partitions and counts (docs/storage.md). */
export async function buildQueryApp(deps: QueryDeps) {
  const { env, pool, names, redis, log } = deps;
  const m = {
    cacheHits: new Counter({
      name: "log_query_cache_hit_total",
      help: "Stats answered from the Redis cache",
      registers: [deps.registry],
    }),
    partial: new Counter({
      name: "log_query_partial_total",
      help: "Answers cut short by their time budget (or a client that went away), with a cursor to continue",
      registers: [deps.registry],
    }),
    refused: new Counter({
      name: "log_query_refused_total",
      help: "Requests refused with 429: the key's rate, this replica's concurrency, or its live tails",
      labelNames: ["reason"],
      registers: [deps.registry],
    }),
    inFlight: new Gauge({
      name: "log_query_in_flight",
      help: "Reads running now in this replica",
      registers: [deps.registry],
    }),
    tails: new Gauge({
      name: "log_query_tails",
      help: "Live tails open in this replica",
      registers: [deps.registry],
    }),
  };
  const app = await createHttpApp({
    title: "LogPipeline query API",
    description:
      "Read the pipeline's events from PostgreSQL: search across time partitions with a budget and a cursor, exact counts and histograms, label values, context, lookups by id, trace and user, and a live tail of committed events.",
    bodyLimit: 64 * 1024,
    registry: deps.registry,
    log,
    metricsPrefix: "log_query_http",
    maxConnections: env.HTTP_MAX_CONNECTIONS,
  });
  // Every /api route authenticates before its request is read further. Query keys come from
  // their own Secret: an ingest key (embedded in apps and agents) reads nothing.
  app.decorateRequest("reader", undefined as unknown as FastifyRequest["reader"]);
  const identify = (req: FastifyRequest): FastifyRequest["reader"] => {
    if (env.AUTH_DISABLED) return { client: `ip:${req.ip}` };
    const id = deps.apiKeys?.identify(presentedKey(req.headers));
    if (!id)
      throw new HttpError(401, "missing or invalid API key", [
        "send a query key as X-API-Key: <key> or Authorization: Bearer <key> (ingest keys cannot read)",
      ]);
    return { client: `key:${id.name}`, writers: id.writers };
  };
  app.addHook("onRequest", (req, _reply, done) => {
    if (!req.url.startsWith("/api/")) {
      done();
      return;
    }
    try {
      req.reader = identify(req);
      done();
    } catch (e) {
      done(e as HttpError);
    }
  });
  /** Counts are kept for all writers together: a key scoped to some writers cannot read them. */
  const refuseScoped = (req: FastifyRequest) => {
    if (scopeOf(req))
      throw new HttpError(
        403,
        "this key may read only some writers' events; counts cover every writer",
        ["use /api/logs (filtered to your writers), or a query key without a scope"],
        undefined,
        "scoped_key",
      );
  };
  const limiter = new RateLimiter(redis, `${env.REDIS_KEY_PREFIX}qrl:`);
  const catalog = new Catalog(pool, names);
  const tails = new TailHub<DbRow & { kafka_partition: number }>(pool, names, env.MAX_TAILS, log);
  let inFlight = 0;

  /** Authentication, then the key's token bucket (Redis down: fails open; the concurrency bound still holds). */
  const admit = async (req: FastifyRequest): Promise<string> => {
    const client = req.reader.client;
    try {
      const r = await limiter.take(client, "read", env.QUERY_RATE_PER_SECOND, env.QUERY_RATE_BURST);
      if (!r.allowed) {
        m.refused.inc({ reason: "rate" });
        throw new HttpError(
          429,
          "rate limit exceeded",
          [`at most ${String(env.QUERY_RATE_PER_SECOND)} reads per second per API key`],
          Math.max(1, Math.ceil(r.retryAfterMs / 1000)),
        );
      }
    } catch (e) {
      if (!(e instanceof RedisUnavailable)) throw e;
    }
    return client;
  };

  /** Runs a read in a budgeted session, within this replica's concurrency bound. */
  const read = async <T>(
    req: FastifyRequest,
    reply: FastifyReply,
    budgetMs: number,
    fn: (s: QuerySession) => Promise<T>,
  ): Promise<T> => {
    await admit(req);
    if (inFlight >= env.QUERY_CONCURRENCY) {
      m.refused.inc({ reason: "concurrency" });
      throw new HttpError(
        429,
        "too many reads at once",
        [`this replica runs at most ${String(env.QUERY_CONCURRENCY)} reads at once; retry shortly`],
        1,
      );
    }
    inFlight++;
    m.inFlight.set(inFlight);
    const session = await QuerySession.open(pool, budgetMs, (cb) =>
      reply.raw.on("close", () => {
        if (!reply.raw.writableEnded) cb();
      }),
    ).catch((e: unknown) => {
      inFlight--;
      m.inFlight.set(inFlight);
      throw e;
    });
    try {
      return await fn(session);
    } catch (e) {
      if (e instanceof BudgetExhausted)
        throw new HttpError(503, "the read did not finish within its time budget", [
          `budget ${String(budgetMs)} ms; narrow the range or retry`,
        ]);
      throw e;
    } finally {
      inFlight--;
      m.inFlight.set(inFlight);
      await session.close();
    }
  };

  const Range = {
    from: z.iso
      .datetime({ offset: true })
      .optional()
      .describe("Start of the time range (inclusive); default: MAX_RANGE_HOURS before `to`"),
    to: z.iso
      .datetime({ offset: true })
      .optional()
      .describe("End of the time range (exclusive); default: now"),
  };
  const rangeOf = (q: { from?: string | undefined; to?: string | undefined }, defaultHours: number) => {
    const to = q.to ? new Date(q.to) : new Date();
    const from = q.from ? new Date(q.from) : new Date(to.getTime() - defaultHours * 3_600_000);
    if (from >= to) throw new HttpError(400, "invalid time range", ["from must be before to"]);
    if (to.getTime() - from.getTime() > env.MAX_RANGE_HOURS * 3_600_000)
      throw new HttpError(400, "time range too large", [`at most ${String(env.MAX_RANGE_HOURS)} hours`]);
    return { from, to };
  };
  const levels = z
    .string()
    .transform((s) => s.split(",").map((x) => x.trim().toUpperCase()))
    .pipe(z.array(z.enum(LEVELS)))
    .optional()
    .describe("Comma-separated levels");
  const budget = z.coerce
    .number()
    .int()
    .min(10)
    .max(env.QUERY_BUDGET_MAX_MS)
    .optional()
    .describe(
      `Time budget in ms (default ${String(env.QUERY_BUDGET_MS)}): past it, a partial page with a cursor`,
    );

  const SearchQuery = z
    .object({
      ...Range,
      level: levels,
      source: z.string().max(256).optional(),
      q: z
        .string()
        .min(1)
        .max(512)
        .optional()
        .describe("Full-text search in the message (web search syntax)"),
      traceId: z.string().min(1).max(128).optional(),
      userId: z.string().min(1).max(256).optional(),
      limit: z.coerce.number().int().min(1).max(env.MAX_PAGE_SIZE).default(Math.min(100, env.MAX_PAGE_SIZE)),
      cursor: z.string().max(512).optional(),
      budgetMs: budget,
    })
    .strict();

  app.get(
    "/api/logs",
    {
      schema: {
        summary:
          "Events in a time range, newest first, with filters, a cursor across partitions and a time budget",
        querystring: SearchQuery,
        response: {
          200: z.object({ items: z.array(LogRow), nextCursor: z.string().nullable(), partial: Partial }),
          400: ErrorBody,
          401: ErrorBody,
          429: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      const q = req.query;
      const range = rangeOf(q, env.MAX_RANGE_HOURS);
      const cursor = q.cursor ? decodeCursor(q.cursor) : undefined;
      const result = await read(req, reply, q.budgetMs ?? env.QUERY_BUDGET_MS, (s) =>
        search<DbRow>(
          s,
          names,
          catalog,
          range,
          {
            levels: q.level,
            source: q.source,
            q: q.q,
            traceId: q.traceId,
            userId: q.userId,
            writers: scopeOf(req),
          },
          q.limit,
          cursor,
        ),
      );
      if (result.partial) m.partial.inc();
      return {
        items: result.rows.map(toItem),
        nextCursor: result.next ? encodeCursor(result.next) : null,
        partial: result.partial ?? null,
      };
    },
  );

  /** One event by id: the id index of every partition (one probe each), and an old table while an upgrade moves it. */
  const byId = async (s: QuerySession, id: string, writers: string[] | undefined): Promise<DbRow> => {
    const { legacy } = await catalog.get();
    // Outside a reader's scope an event does not exist for it (404, as for an unknown id).
    const rows = await s.query<DbRow>(
      `SELECT ${EVENT_READ_COLUMNS} FROM ${eventsRelation(names, legacy)}
        WHERE event_id = $1 AND ($2::text[] IS NULL OR writer = ANY($2::text[])) ORDER BY ts LIMIT 1`,
      [id, writers ?? null],
    );
    const row = rows[0];
    if (!row) throw new HttpError(404, "no such event", [id]);
    return row;
  };

  app.get(
    "/api/logs/:eventId",
    {
      schema: {
        summary: "One event by id",
        params: z.object({ eventId: z.uuid() }),
        response: { 200: LogRow, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 429: ErrorBody },
      },
    },
    async (req, reply) =>
      toItem(await read(req, reply, env.QUERY_BUDGET_MS, (s) => byId(s, req.params.eventId, scopeOf(req)))),
  );

  app.get(
    "/api/logs/:eventId/context",
    {
      schema: {
        summary: "Events of the same source just before and after one event, oldest first",
        params: z.object({ eventId: z.uuid() }),
        querystring: z
          .object({
            before: z.coerce.number().int().min(0).max(500).default(20),
            after: z.coerce.number().int().min(0).max(500).default(20),
          })
          .strict(),
        response: {
          200: z.object({ event: LogRow, before: z.array(LogRow), after: z.array(LogRow) }),
          400: ErrorBody,
          401: ErrorBody,
          404: ErrorBody,
          429: ErrorBody,
        },
      },
    },
    async (req, reply) =>
      read(req, reply, env.QUERY_BUDGET_MS, async (s) => {
        const writers = scopeOf(req);
        const e = await byId(s, req.params.eventId, writers);
        const { legacy } = await catalog.get();
        const rel = eventsRelation(names, legacy);
        // Within a day either side: the partitions outside are pruned, the (source, ts) index serves the rest.
        const window = 86_400_000;
        const around = (dir: "<" | ">", n: number) =>
          n === 0
            ? Promise.resolve([] as DbRow[])
            : s.query<DbRow>(
                `SELECT ${EVENT_READ_COLUMNS} FROM ${rel}
                  WHERE source = $1 AND (ts, event_id) ${dir} ($2, $3::uuid) AND ts ${dir === "<" ? ">=" : "<="} $4
                    AND ($6::text[] IS NULL OR writer = ANY($6::text[]))
                  ORDER BY ts ${dir === "<" ? "DESC" : "ASC"}, event_id ${dir === "<" ? "DESC" : "ASC"} LIMIT $5`,
                [
                  e.source,
                  e.ts,
                  e.event_id,
                  new Date(e.ts.getTime() + (dir === "<" ? -window : window)),
                  n,
                  writers ?? null,
                ],
              );
        const before = await around("<", req.query.before);
        const after = await around(">", req.query.after);
        return { event: toItem(e), before: before.reverse().map(toItem), after: after.map(toItem) };
      }),
  );

  const Stats = z.object({
    hours: z.number(),
    from: z.string(),
    to: z.string(),
    total: z.number(),
    byLevel: z.record(z.string(), z.number()),
    bySource: z.array(z.object({ source: z.string(), count: z.number() })),
  });
  app.get(
    "/api/stats",
    {
      schema: {
        summary:
          "Exact counts by level and by source (top 50) over the last N hours, or a range, widened to whole minutes",
        querystring: z
          .object({ hours: z.coerce.number().int().min(1).max(env.MAX_RANGE_HOURS).default(24), ...Range })
          .strict(),
        response: { 200: Stats, 400: ErrorBody, 401: ErrorBody, 429: ErrorBody },
      },
    },
    async (req, reply) => {
      refuseScoped(req);
      const { hours } = req.query;
      const r = minuteRange(rangeOf(req.query, hours));
      // Cached per range (whole minutes): a new minute is a new key.
      const key = `${env.REDIS_KEY_PREFIX}stats:${String(r.from)}:${String(r.to)}`;
      if (redis?.status === "ready" && env.CACHE_TTL_SECONDS > 0) {
        const hit = await redis.get(key).catch(() => null);
        if (hit) {
          await admit(req);
          m.cacheHits.inc();
          return Stats.parse(JSON.parse(hit));
        }
      }
      const answer = {
        hours: req.query.from === undefined ? hours : (r.to - r.from) / 3_600_000,
        from: new Date(r.from).toISOString(),
        to: new Date(r.to).toISOString(),
        ...(await read(req, reply, env.QUERY_BUDGET_MS, (s) => stats(s, names, r))),
      };
      if (redis?.status === "ready" && env.CACHE_TTL_SECONDS > 0)
        await redis.set(key, JSON.stringify(answer), "EX", env.CACHE_TTL_SECONDS).catch(() => undefined);
      return answer;
    },
  );

  app.get(
    "/api/histogram",
    {
      schema: {
        summary: "Exact counts per time bucket, split by level or by source (the volume bar of a log view)",
        querystring: z
          .object({
            ...Range,
            buckets: z.coerce
              .number()
              .int()
              .min(1)
              .max(1440)
              .default(60)
              .describe("At most this many buckets"),
            by: z.enum(["level", "source"]).default("level"),
          })
          .strict(),
        response: {
          200: z.object({
            from: z.string(),
            to: z.string(),
            intervalSeconds: z.number(),
            by: z.enum(["level", "source"]),
            buckets: z.array(
              z.object({ t: z.string(), total: z.number(), counts: z.record(z.string(), z.number()) }),
            ),
          }),
          400: ErrorBody,
          401: ErrorBody,
          429: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      refuseScoped(req);
      const q = req.query;
      const r = minuteRange(rangeOf(q, 24));
      const width = histogramWidthMs(r, q.buckets);
      const buckets = await read(req, reply, env.QUERY_BUDGET_MS, (s) => histogram(s, names, r, width, q.by));
      return {
        from: new Date(r.from).toISOString(),
        to: new Date(r.to).toISOString(),
        intervalSeconds: width / 1000,
        by: q.by,
        buckets,
      };
    },
  );

  app.get(
    "/api/labels/:label/values",
    {
      schema: {
        summary: "Distinct sources or levels in a range, most frequent first (for autocomplete)",
        params: z.object({ label: z.enum(["level", "source"]) }),
        querystring: z
          .object({
            ...Range,
            prefix: z.string().max(256).optional(),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
          })
          .strict(),
        response: {
          200: z.object({ values: z.array(z.object({ value: z.string(), count: z.number() })) }),
          400: ErrorBody,
          401: ErrorBody,
          429: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      refuseScoped(req);
      const r = minuteRange(rangeOf(req.query, 24));
      return {
        values: await read(req, reply, env.QUERY_BUDGET_MS, (s) =>
          labelValues(s, names, r, req.params.label, req.query.prefix, req.query.limit),
        ),
      };
    },
  );

  app.get(
    "/api/tail",
    {
      schema: {
        summary:
          "A live tail: newly committed events matching the filter, as Server-Sent Events (event: log)",
        querystring: z
          .object({
            level: levels,
            source: z.string().max(256).optional(),
            q: z.string().min(1).max(512).optional(),
          })
          .strict(),
        response: {
          200: z
            .string()
            .describe("text/event-stream; each `data:` line is one event as /api/logs returns it"),
          401: ErrorBody,
          429: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      await admit(req);
      const q = req.query;
      const tail = {
        filter: { levels: q.level, source: q.source, q: q.q, writers: scopeOf(req) },
        send: (row: DbRow) => reply.raw.write(`event: log\ndata: ${JSON.stringify(toItem(row))}\n\n`),
      };
      if (!(await tails.add(tail))) {
        m.refused.inc({ reason: "tails" });
        throw new HttpError(
          429,
          "too many live tails",
          [`this replica serves at most ${String(env.MAX_TAILS)} live tails`],
          5,
        );
      }
      m.tails.set(tails.size);
      reply.hijack();
      reply.raw.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      // The first comment tells the client the tail is listening: events committed after it arrive.
      reply.raw.write(": listening\n\n");
      const heartbeat = setInterval(() => reply.raw.write(": keep-alive\n\n"), 15_000);
      reply.raw.on("close", () => {
        clearInterval(heartbeat);
        tails.remove(tail);
        m.tails.set(tails.size);
      });
    },
  );

  const completeness = new CompletenessSource(deps.readCompleteness, env.STATUS_REFRESH_SECONDS * 1000);
  app.get(
    "/api/status",
    {
      schema: {
        summary:
          "Whether the data is complete: the pipeline's DataConsistent condition (the divergence check) and its lag",
        response: { 200: Completeness, 401: ErrorBody, 429: ErrorBody },
      },
    },
    async (req) => {
      await admit(req);
      const c = await completeness.get();
      // A key scoped to some writers sees whether the data is complete, not the pipeline-wide figures.
      return scopeOf(req) ? { ...c, message: null, lagAtLeast: null } : c;
    },
  );
  const explorerDir = env.EXPLORER_DIR ?? defaultExplorerDir();
  const explorerConfig = {
    pipeline: env.PIPELINE_NAME,
    traceUrlTemplate: env.TRACE_URL_TEMPLATE ?? null,
    statusRefreshSeconds: env.STATUS_REFRESH_SECONDS,
  };
  if (!serveExplorer(app, explorerDir, explorerConfig))
    log.warn({ explorerDir }, "the explorer is not built: / answers 404 (the API is unaffected)");

  let dbUp = false;
  app.get("/readyz", { schema: { hide: true } }, async (_req, reply) => {
    dbUp = await pool.query("SELECT 1").then(
      () => true,
      () => false,
    );
    return reply.status(dbUp ? 200 : 503).send({
      postgres: dbUp ? "up" : "down",
      redis: redis ? (redis.status === "ready" ? "up" : "down") : "disabled",
    });
  });
  app.addHook("onClose", () => tails.close());

  await app.ready();
  return app;
}
