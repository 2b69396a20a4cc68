import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ApiKeys } from "../../../workloads/common/src/auth.js";
import { parseEnv, QueryEnv } from "../../../workloads/common/src/config.js";
import { createLogger } from "../../../workloads/common/src/logger.js";
import { createRegistry } from "../../../workloads/common/src/metrics.js";
import { applyBatch } from "../../../workloads/consumer/src/sink.js";
import { buildQueryApp } from "../../../workloads/query/src/app.js";
import { makeEvent } from "../../support/events.js";
import { eventually, uniqueSuffix, pipelineEnv } from "../../support/kube.js";
import { listPartitions } from "../../../workloads/common/src/storage.js";
import { testBatchOptions, testLedger, testPartitions } from "../../support/pipeline-db.js";
import { promtoolCheckMetrics } from "../../support/promtool.js";

const stack = inject("stack");
const KEY = "read-key";
let db: Awaited<ReturnType<typeof testLedger>>;
let app: FastifyInstance;
let redis: Redis;
const HOUR = 3_600_000;
// 250 events a minute apart from six hours ago: five hourly partitions, all closed (indexed).
const base = Math.floor(Date.now() / HOUR) * HOUR - 6 * HOUR;
const STEP = 60_000;
const events = Array.from({ length: 250 }, (_, i) =>
  makeEvent(i, {
    timestamp: new Date(base + i * STEP).toISOString(),
    receivedAt: new Date(base + i * STEP).toISOString(),
    message: i % 50 === 0 ? `payment declined for order ${i}` : `request served ${i}`,
    level: i % 10 === 0 ? "ERROR" : "INFO",
    ...(i % 25 === 0 ? { traceId: `trace-${String(i)}`, userId: "user-7" } : {}),
  }),
);

/** The main app's registry (each app registers its metrics in its own). */
const queryRegistry = createRegistry("query", "t");
const get = (url: string) => app.inject({ method: "GET", url, headers: { "x-api-key": KEY } });
const queryApp = async (extra: Record<string, string> = {}, registry = createRegistry("query", "t")) =>
  buildQueryApp({
    env: parseEnv(QueryEnv, {
      ...pipelineEnv(`q-${uniqueSuffix()}`),
      PG_HOST: "unused",
      PG_USER: "unused",
      API_KEYS_FILE: "/dev/null",
      REDIS_URL: stack.redisUrl,
      MAX_PAGE_SIZE: "100",
      MAX_RANGE_HOURS: "48",
      ...extra,
    }),
    pool: db.pool,
    redis,
    names: db.names,
    apiKeys: new ApiKeys(`reader:${KEY}`),
    log: createLogger("query-test", "warn"),
    registry,
  });

beforeAll(async () => {
  db = await testLedger(stack.postgresUrl, "t_query");
  const client = await db.pool.connect();
  try {
    await applyBatch(
      client,
      db.names,
      "t",
      0,
      events.map((e, i) => ({ offset: String(i), value: Buffer.from(JSON.stringify(e)) })),
      testBatchOptions(db),
    );
  } finally {
    client.release();
  }
  // The maintainer's pass: every closed partition gets its full-text index.
  await testPartitions(db).runOnce();
  redis = new Redis(stack.redisUrl);
  app = await queryApp({}, queryRegistry);
});

afterAll(async () => {
  await app.close();
  redis.disconnect();
  await db.drop();
});

const range = `from=${new Date(base - 1000).toISOString()}&to=${new Date(base + 250 * STEP).toISOString()}`;
type Page = { items: { eventId: string; timestamp: string; message: string }[]; nextCursor: string | null };
type Partial = Page & { partial: { reason: string; searchedBackTo: string } | null };

describe("query API", () => {
  it("pages newest first across five partitions with a cursor, without gaps or overlaps", async () => {
    const parts = await listPartitions(db.pool, db.names.storage);
    expect(parts.filter((p) => p.table === "events" && p.indexed).length).toBeGreaterThanOrEqual(5);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await get(`/api/logs?${range}&limit=40${cursor ? `&cursor=${cursor}` : ""}`);
      expect(r.statusCode, r.body).toBe(200);
      const body = r.json<Page>();
      seen.push(...body.items.map((i) => i.timestamp));
      cursor = body.nextCursor;
      pages++;
    } while (cursor && pages < 20);
    expect(pages).toBe(7);
    expect(seen).toHaveLength(250);
    expect(new Set(seen).size).toBe(250);
    expect([...seen].sort().reverse()).toEqual(seen);
  });

  it("filters by level, source, trace and user, and searches the message text across partitions", async () => {
    const errors = (await get(`/api/logs?${range}&level=error&limit=100`)).json<{
      items: { level: string }[];
    }>();
    expect(errors.items).toHaveLength(25);
    expect(errors.items.every((i) => i.level === "ERROR")).toBe(true);
    const bySource = (await get(`/api/logs?${range}&source=svc-3&limit=100`)).json<{
      items: { source: string }[];
    }>();
    expect(bySource.items.length).toBeGreaterThan(0);
    expect(bySource.items.every((i) => i.source === "svc-3")).toBe(true);
    const found = (await get(`/api/logs?${range}&q=payment%20declined`)).json<Page>();
    expect(found.items.map((i) => i.message).sort()).toEqual(
      [0, 50, 100, 150, 200].map((i) => `payment declined for order ${String(i)}`).sort(),
    );
    const trace = (await get(`/api/logs?${range}&traceId=trace-75`)).json<Page>();
    expect(trace.items.map((i) => i.message)).toEqual(["request served 75"]);
    const user = (await get(`/api/logs?${range}&userId=user-7&limit=100`)).json<Page>();
    expect(user.items).toHaveLength(10);
  });

  it("returns a partial page with a cursor when the budget runs out, and the cursor continues exactly", async () => {
    // A partition locked by another session: the search's statement there waits until its
    // budget ends. Everything newer comes back, marked partial, with a cursor at that partition.
    const parts = (await listPartitions(db.pool, db.names.storage)).filter(
      (p) => p.table === "events" && p.from >= base && p.from < base + 250 * STEP,
    );
    const locked = parts[2];
    expect(locked).toBeDefined();
    const locker = await db.pool.connect();
    let first: Partial;
    try {
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE ${db.names.schema}."${locked?.name ?? ""}" IN ACCESS EXCLUSIVE MODE`);
      const r = await get(`/api/logs?${range}&limit=100&budgetMs=1500`);
      expect(r.statusCode, r.body).toBe(200);
      first = r.json<Partial>();
    } finally {
      await locker.query("ROLLBACK");
      locker.release();
    }
    const newer = events.filter((e) => Date.parse(e.timestamp) >= (locked?.to ?? 0));
    expect(first.partial?.searchedBackTo).toBe(new Date(locked?.to ?? 0).toISOString());
    expect(first.items.map((i) => i.eventId).sort()).toEqual(newer.map((e) => e.eventId).sort());
    expect(first.nextCursor).not.toBeNull();
    const rest: string[] = [];
    let cursor = first.nextCursor;
    for (let pages = 0; cursor && pages < 10; pages++) {
      const body = (await get(`/api/logs?${range}&limit=100&cursor=${cursor}`)).json<Partial>();
      expect(body.partial).toBeNull();
      rest.push(...body.items.map((i) => i.eventId));
      cursor = body.nextCursor;
    }
    const all = [...first.items.map((i) => i.eventId), ...rest];
    expect(all).toHaveLength(250);
    expect(new Set(all).size).toBe(250);
  });

  it("cancels a search's statement when its client goes away", async () => {
    // A partition locked by another session holds the search's statement; with a 30 s budget
    // only the cancellation can end it within the wait below.
    const parts = (await listPartitions(db.pool, db.names.storage)).filter(
      (p) => p.table === "events" && p.from >= base && p.from < base + 250 * STEP,
    );
    const locked = parts[0];
    const locker = await db.pool.connect();
    const server = await queryApp();
    try {
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE ${db.names.schema}."${locked?.name ?? ""}" IN ACCESS EXCLUSIVE MODE`);
      await server.listen({ host: "127.0.0.1", port: 0 });
      const port = (server.server.address() as AddressInfo).port;
      const aborted = new AbortController();
      const only = `from=${new Date(locked?.from ?? 0).toISOString()}&to=${new Date(locked?.to ?? 0).toISOString()}`;
      const request = fetch(`http://127.0.0.1:${String(port)}/api/logs?${only}&limit=100&budgetMs=30000`, {
        headers: { "x-api-key": KEY },
        signal: aborted.signal,
      }).catch(() => undefined);
      const waiting = async () =>
        (
          await db.pool.query<{ n: string }>(
            `SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`,
            [`%${locked?.name ?? ""}%`],
          )
        ).rows[0]?.n;
      await eventually("the search waiting on the locked partition", async () =>
        (await waiting()) === "1" ? true : undefined,
      );
      aborted.abort();
      await request;
      await eventually(
        "the search's statement cancelled while the lock is still held",
        async () => ((await waiting()) === "0" ? true : undefined),
        5_000,
      );
    } finally {
      await locker.query("ROLLBACK");
      locker.release();
      await server.close();
    }
  });

  it("returns one event by id with its context from the same source, and 404 for an unknown one", async () => {
    const target = events[100];
    const one = await get(`/api/logs/${target?.eventId ?? ""}`);
    expect(one.json()).toMatchObject({ eventId: target?.eventId, message: target?.message });
    const ctx = (await get(`/api/logs/${target?.eventId ?? ""}/context?before=2&after=3`)).json<{
      before: { message: string }[];
      after: { message: string }[];
    }>();
    // Same source (svc-<i mod 7>): the events 7 apart.
    expect(ctx.before.map((i) => i.message)).toEqual(["request served 86", "request served 93"]);
    expect(ctx.after.map((i) => i.message)).toEqual([
      "request served 107",
      "request served 114",
      "request served 121",
    ]);
    expect((await get("/api/logs/00000000-0000-4000-8000-000000000000")).statusCode).toBe(404);
  });

  it("answers exact stats, histograms and label values from the counts, equal to count(*)", async () => {
    const s1 = (await get("/api/stats?hours=48")).json<{ total: number; byLevel: Record<string, number> }>();
    expect(s1).toMatchObject({ total: 250, byLevel: { ERROR: 25, INFO: 225 } });
    const s2 = (await get("/api/stats?hours=48")).json<{ total: number }>();
    expect(s2).toEqual(s1);
    const metrics = await queryRegistry.metrics();
    expect(metrics).toMatch(/log_query_cache_hit_total\{[^}]*\} 1/);
    expect(promtoolCheckMetrics(metrics)).toEqual({ status: 0, findings: "" });
    // A range that starts and ends inside hours: whole hours from the hourly counts, the edges per minute.
    const from = new Date(base + 30 * STEP).toISOString();
    const to = new Date(base + 200 * STEP).toISOString();
    const h = (await get(`/api/histogram?from=${from}&to=${to}&buckets=4&by=level`)).json<{
      intervalSeconds: number;
      buckets: { t: string; total: number; counts: Record<string, number> }[];
    }>();
    expect(h.intervalSeconds).toBe(3600);
    expect(h.buckets.reduce((a, b) => a + b.total, 0)).toBe(170);
    const rows = await db.pool.query<{ t: Date; c: string }>(
      `SELECT date_bin('1 hour', ts, 'epoch'::timestamptz) AS t, count(*) AS c FROM ${db.names.events}
        WHERE ts >= $1 AND ts < $2 GROUP BY 1 ORDER BY 1`,
      [from, to],
    );
    expect(h.buckets.map((b) => [b.t, b.total])).toEqual(
      rows.rows.map((r) => [r.t.toISOString(), Number(r.c)]),
    );
    const sources = (await get(`/api/labels/source/values?${range}&prefix=svc-`)).json<{
      values: { value: string; count: number }[];
    }>();
    expect(sources.values.map((v) => v.value).sort()).toEqual([
      "svc-0",
      "svc-1",
      "svc-2",
      "svc-3",
      "svc-4",
      "svc-5",
      "svc-6",
    ]);
    expect(sources.values.reduce((a, v) => a + v.count, 0)).toBe(250);
  });

  it("limits each API key's reads: 429 with Retry-After", async () => {
    const limited = await queryApp({ QUERY_RATE_PER_SECOND: "1", QUERY_RATE_BURST: "1" });
    try {
      const call = () =>
        limited.inject({ method: "GET", url: `/api/logs?${range}&limit=1`, headers: { "x-api-key": KEY } });
      expect((await call()).statusCode).toBe(200);
      const refused = await call();
      expect(refused.statusCode).toBe(429);
      expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(refused.json<{ reasons: string[] }>().reasons[0]).toMatch(/per second per API key/);
    } finally {
      await limited.close();
    }
  });

  it.each([
    ["limit=0", /limit/],
    ["limit=100000", /limit/],
    ["level=LOUD", /level/],
    ["cursor=garbage", /cursor/],
    [`from=${new Date(base).toISOString()}&to=${new Date(base - 1000).toISOString()}`, /before/],
    [`from=2026-01-01T00:00:00Z&to=2026-11-01T00:00:00Z`, /at most 48 hours/],
    ["budgetMs=0", /budgetMs/],
    ["traceId=", /traceId/],
    ["frm=2026-01-01", /frm|Unrecognized/i],
  ])("refuses %s with 400 and a reason", async (qs, reason) => {
    const r = await get(`/api/logs?${qs}`);
    expect(r.statusCode).toBe(400);
    expect(r.body).toMatch(reason);
  });

  it("requires an API key and reports readiness", async () => {
    expect((await app.inject("/api/logs")).statusCode).toBe(401);
    const ready = await app.inject("/readyz");
    expect(ready.json()).toEqual({ postgres: "up", redis: "up" });
  });
});
