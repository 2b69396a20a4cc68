import type { Redis } from "ioredis";
import type pg from "pg";
import { Counter, type Registry } from "prom-client";
import { z } from "zod";
import type { ApiKeys } from "../../common/src/auth.js";
import type { QueryEnv } from "../../common/src/config.js";
import { LEVELS } from "../../common/src/event.js";
import { authenticator, createHttpApp, ErrorBody, HttpError } from "../../common/src/http.js";
import type { LedgerNames } from "../../common/src/ledger.js";
import type { Logger } from "../../common/src/logger.js";

export interface QueryDeps {
  env: QueryEnv;
  pool: pg.Pool;
  redis?: Redis | undefined;
  names: LedgerNames;
  apiKeys?: ApiKeys | undefined;
  log: Logger;
  registry: Registry;
}

const LogRow = z.object({
  eventId: z.string(),
  timestamp: z.string(),
  level: z.enum(LEVELS),
  source: z.string(),
  message: z.string(),
  metadata: z.record(z.string(), z.unknown()),
  stackTrace: z.string().nullable(),
  userId: z.string().nullable(),
  traceId: z.string().nullable(),
});

/** An opaque cursor: the (timestamp, event id) of the last item of a page, newest first. */
const encodeCursor = (ts: string, id: string) => Buffer.from(JSON.stringify([ts, id])).toString("base64url");
function decodeCursor(c: string): [string, string] {
  try {
    const v = JSON.parse(Buffer.from(c, "base64url").toString("utf8")) as unknown;
    if (
      Array.isArray(v) &&
      v.length === 2 &&
      typeof v[0] === "string" &&
      typeof v[1] === "string" &&
      !Number.isNaN(Date.parse(v[0]))
    )
      return [v[0], v[1]];
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
  level: (typeof LEVELS)[number];
  source: string;
  message: string;
  metadata: Record<string, unknown>;
  stack_trace: string | null;
  user_id: string | null;
  trace_id: string | null;
}

const toItem = (r: DbRow) => ({
  eventId: r.event_id,
  timestamp: r.ts.toISOString(),
  level: r.level,
  source: r.source,
  message: r.message,
  metadata: r.metadata,
  stackTrace: r.stack_trace,
  userId: r.user_id,
  traceId: r.trace_id,
});

/** The read API over PostgreSQL, with a Redis cache for stats. */
export async function buildQueryApp(deps: QueryDeps) {
  const { env, pool, names, redis, log } = deps;
  const cacheHits = new Counter({
    name: "log_query_cache_hit_total",
    help: "Stats answered from the Redis cache",
    registers: [deps.registry],
  });
  const app = await createHttpApp({
    title: "LogPipeline query API",
    description: "Read the pipeline's events from PostgreSQL: time ranges, filters, full-text search, stats.",
    bodyLimit: 64 * 1024,
    registry: deps.registry,
    log,
    metricsPrefix: "log_query_http",
  });
  const authenticate = authenticator(deps.apiKeys, env.AUTH_DISABLED);

  const SearchQuery = z
    .object({
      from: z.iso
        .datetime({ offset: true })
        .optional()
        .describe("Start of the time range (inclusive); default: MAX_RANGE_HOURS before `to`"),
      to: z.iso
        .datetime({ offset: true })
        .optional()
        .describe("End of the time range (exclusive); default: now"),
      level: z
        .string()
        .transform((s) => s.split(",").map((x) => x.trim().toUpperCase()))
        .pipe(z.array(z.enum(LEVELS)))
        .optional()
        .describe("Comma-separated levels"),
      source: z.string().max(256).optional(),
      q: z
        .string()
        .min(1)
        .max(512)
        .optional()
        .describe("Full-text search in the message (web search syntax)"),
      limit: z.coerce.number().int().min(1).max(env.MAX_PAGE_SIZE).default(Math.min(100, env.MAX_PAGE_SIZE)),
      cursor: z.string().max(512).optional(),
    })
    .strict();

  app.get(
    "/api/logs",
    {
      schema: {
        summary: "Events in a time range, newest first, with filters and cursor paging",
        querystring: SearchQuery,
        response: {
          200: z.object({ items: z.array(LogRow), nextCursor: z.string().nullable() }),
          400: ErrorBody,
          401: ErrorBody,
        },
      },
    },
    async (req) => {
      authenticate(req);
      const q = req.query;
      const to = q.to ? new Date(q.to) : new Date();
      const from = q.from ? new Date(q.from) : new Date(to.getTime() - env.MAX_RANGE_HOURS * 3_600_000);
      if (from >= to) throw new HttpError(400, "invalid time range", ["from must be before to"]);
      if (to.getTime() - from.getTime() > env.MAX_RANGE_HOURS * 3_600_000)
        throw new HttpError(400, "time range too large", [`at most ${env.MAX_RANGE_HOURS} hours`]);
      const where = ["ts >= $1", "ts < $2"];
      const args: unknown[] = [from, to];
      const arg = (v: unknown) => `$${args.push(v)}`;
      if (q.level) where.push(`level = ANY(${arg(q.level)}::text[])`);
      if (q.source) where.push(`source = ${arg(q.source)}`);
      if (q.q) where.push(`to_tsvector('simple', message) @@ websearch_to_tsquery('simple', ${arg(q.q)})`);
      if (q.cursor) {
        const [ts, id] = decodeCursor(q.cursor);
        where.push(`(ts, event_id) < (${arg(ts)}::timestamptz, ${arg(id)}::uuid)`);
      }
      const sql = `SELECT event_id, ts, level, source, message, metadata, stack_trace, user_id, trace_id FROM ${names.events}
        WHERE ${where.join(" AND ")} ORDER BY ts DESC, event_id DESC LIMIT ${arg(q.limit + 1)}`;
      const { rows } = await pool.query<DbRow>(sql, args);
      const page = rows.slice(0, q.limit);
      const last = page.at(-1);
      return {
        items: page.map(toItem),
        nextCursor: rows.length > q.limit && last ? encodeCursor(last.ts.toISOString(), last.event_id) : null,
      };
    },
  );

  app.get(
    "/api/logs/:eventId",
    {
      schema: {
        summary: "One event by id",
        params: z.object({ eventId: z.uuid() }),
        response: { 200: LogRow, 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (req) => {
      authenticate(req);
      const { rows } = await pool.query<DbRow>(
        `SELECT event_id, ts, level, source, message, metadata, stack_trace, user_id, trace_id FROM ${names.events} WHERE event_id = $1`,
        [req.params.eventId],
      );
      const row = rows[0];
      if (!row) throw new HttpError(404, "no such event", [req.params.eventId]);
      return toItem(row);
    },
  );

  const Stats = z.object({
    hours: z.number(),
    total: z.number(),
    byLevel: z.record(z.string(), z.number()),
    bySource: z.array(z.object({ source: z.string(), count: z.number() })),
  });
  app.get(
    "/api/stats",
    {
      schema: {
        summary: "Counts by level and by source over the last N hours (cached)",
        querystring: z
          .object({ hours: z.coerce.number().int().min(1).max(env.MAX_RANGE_HOURS).default(24) })
          .strict(),
        response: { 200: Stats, 400: ErrorBody },
      },
    },
    async (req) => {
      authenticate(req);
      const { hours } = req.query;
      const key = `lp:${env.PIPELINE_NAME}:stats:${hours}`;
      if (redis?.status === "ready" && env.CACHE_TTL_SECONDS > 0) {
        const hit = await redis.get(key).catch(() => null);
        if (hit) {
          cacheHits.inc();
          return Stats.parse(JSON.parse(hit));
        }
      }
      const since = new Date(Date.now() - hours * 3_600_000);
      const byLevel = await pool.query<{ level: string; c: string }>(
        `SELECT level, count(*) AS c FROM ${names.events} WHERE ts >= $1 GROUP BY level`,
        [since],
      );
      const bySource = await pool.query<{ source: string; c: string }>(
        `SELECT source, count(*) AS c FROM ${names.events} WHERE ts >= $1 GROUP BY source ORDER BY count(*) DESC LIMIT 50`,
        [since],
      );
      const stats = {
        hours,
        total: byLevel.rows.reduce((a, r) => a + Number(r.c), 0),
        byLevel: Object.fromEntries(byLevel.rows.map((r) => [r.level, Number(r.c)])),
        bySource: bySource.rows.map((r) => ({ source: r.source, count: Number(r.c) })),
      };
      if (redis?.status === "ready" && env.CACHE_TTL_SECONDS > 0)
        await redis.set(key, JSON.stringify(stats), "EX", env.CACHE_TTL_SECONDS).catch(() => undefined);
      return stats;
    },
  );

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

  await app.ready();
  return app;
}
