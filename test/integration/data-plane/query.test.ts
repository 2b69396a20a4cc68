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
import { uniqueSuffix } from "../../support/kube.js";
import { testBatchOptions, testLedger } from "../../support/pipeline-db.js";
import { promtoolCheckMetrics } from "../../support/promtool.js";

const stack = inject("stack");
const KEY = "read-key";
let db: Awaited<ReturnType<typeof testLedger>>;
let app: FastifyInstance;
let redis: Redis;
const base = Date.parse("2026-11-01T12:00:00Z");

const get = (url: string) => app.inject({ method: "GET", url, headers: { "x-api-key": KEY } });

beforeAll(async () => {
  db = await testLedger(stack.postgresUrl, "t_query");
  // 250 events, one second apart, written the way the consumer writes them.
  const events = Array.from({ length: 250 }, (_, i) =>
    makeEvent(i, {
      timestamp: new Date(base + i * 1000).toISOString(),
      receivedAt: new Date(base + i * 1000).toISOString(),
      message: i % 50 === 0 ? `payment declined for order ${i}` : `request served ${i}`,
      level: i % 10 === 0 ? "ERROR" : "INFO",
    }),
  );
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
  redis = new Redis(stack.redisUrl);
  const env = parseEnv(QueryEnv, {
    PIPELINE_NAME: `q-${uniqueSuffix()}`,
    PG_HOST: "unused",
    PG_USER: "unused",
    API_KEYS_FILE: "/dev/null",
    REDIS_URL: stack.redisUrl,
    MAX_PAGE_SIZE: "100",
    MAX_RANGE_HOURS: "48",
  });
  app = await buildQueryApp({
    env,
    pool: db.pool,
    redis,
    names: db.names,
    apiKeys: new ApiKeys(`reader:${KEY}`),
    log: createLogger("query-test", "warn"),
    registry: createRegistry("query", "t"),
  });
});

afterAll(async () => {
  await app.close();
  redis.disconnect();
  await db.drop();
});

const range = `from=${new Date(base - 1000).toISOString()}&to=${new Date(base + 300_000).toISOString()}`;

describe("query API", () => {
  it("pages through a time range newest first with a cursor, without gaps or overlaps", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await get(`/api/logs?${range}&limit=100${cursor ? `&cursor=${cursor}` : ""}`);
      expect(r.statusCode, r.body).toBe(200);
      const body = r.json<{ items: { eventId: string; timestamp: string }[]; nextCursor: string | null }>();
      seen.push(...body.items.map((i) => i.timestamp));
      cursor = body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(250);
    expect(new Set(seen).size).toBe(250);
    expect([...seen].sort().reverse()).toEqual(seen);
  });

  it("filters by level and source, and searches the message text", async () => {
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
    const found = (await get(`/api/logs?${range}&q=payment%20declined`)).json<{
      items: { message: string }[];
    }>();
    expect(found.items.map((i) => i.message).sort()).toEqual(
      [0, 50, 100, 150, 200].map((i) => `payment declined for order ${i}`).sort(),
    );
  });

  it("returns one event by id, and 404 for an unknown one", async () => {
    const page = (await get(`/api/logs?${range}&limit=1`)).json<{
      items: { eventId: string; message: string }[];
    }>();
    const first = page.items[0];
    expect(first).toBeDefined();
    const one = await get(`/api/logs/${first?.eventId ?? ""}`);
    expect(one.json()).toMatchObject({ eventId: first?.eventId, message: first?.message });
    expect((await get("/api/logs/00000000-0000-4000-8000-000000000000")).statusCode).toBe(404);
  });

  it("answers stats, the second time from the cache", async () => {
    const r1 = (await get("/api/stats?hours=48")).json<{ total: number; byLevel: Record<string, number> }>();
    const r2 = (await get("/api/stats?hours=48")).json<{ total: number }>();
    expect(r2).toEqual(r1);
    const metrics = (await app.inject("/metrics")).body;
    expect(metrics).toMatch(/log_query_cache_hit_total\{[^}]*\} 1/);
    expect(promtoolCheckMetrics(metrics)).toEqual({ status: 0, findings: "" });
  });

  it.each([
    ["limit=0", /limit/],
    ["limit=100000", /limit/],
    ["level=LOUD", /level/],
    ["cursor=garbage", /cursor/],
    [`from=${new Date(base).toISOString()}&to=${new Date(base - 1000).toISOString()}`, /before/],
    [`from=2026-01-01T00:00:00Z&to=2026-11-01T00:00:00Z`, /at most 48 hours/],
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
