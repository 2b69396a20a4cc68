import http from "node:http";
import net from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DataPlane, startDataPlane } from "../../support/data-plane.js";
import { eventually } from "../../support/kube.js";
import { ledgerCounts } from "../../support/pipeline-db.js";

/**
 * The hostile-input corpus: each case is something a broken or hostile client sends to the
 * ingest or the query API over a real socket. For each, the answer's status and reason, the
 * refusal counted under its reason, both processes still answering, and the stored rows
 * unchanged: after the case a marker event from another key is sent and awaited (the
 * barrier), and the rows must have grown by exactly the marker (and what the case itself may
 * accept).
 */
const stack = inject("stack");
const KEYS = {
  attacker: "attacker-key-0001",
  greedy: "greedy-key-0002",
  slow: "slow-key-0003",
  marker: "marker-key-0004",
};
const QUERY_KEY = "reader-key-0005";
const SCOPED_KEY = "scoped-key-0006";
const LIMITS = {
  RATE_LIMIT_PER_SECOND: "30",
  RATE_LIMIT_BURST: "30",
  INGEST_MAX_IN_FLIGHT_PER_CLIENT: "3",
  HTTP_MAX_CONNECTIONS: "40",
  REQUEST_MAX_EVENTS: "100",
};
let dp: DataPlane;
let stored = 0;

interface Answer {
  status: number;
  text: string;
  headers: http.IncomingHttpHeaders;
}

/** One request on its own connection; `partial` sends only the first bytes of a body it declares in full. */
function raw(
  base: string,
  o: {
    method?: string;
    path: string;
    headers?: Record<string, string>;
    body?: Buffer | string;
    partial?: { declared: number };
  },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = typeof o.body === "string" ? Buffer.from(o.body) : o.body;
    const req = http.request(
      `${base}${o.path}`,
      {
        method: o.method ?? (body ? "POST" : "GET"),
        agent: false,
        headers: {
          ...(body && { "content-type": "application/json" }),
          ...(body && { "content-length": String(o.partial?.declared ?? body.length) }),
          ...o.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString(),
            headers: res.headers,
          }),
        );
      },
    );
    // The server may close while a body it refused is still being written.
    req.on("error", (e: NodeJS.ErrnoException) => (e.code === "EPIPE" ? undefined : reject(e)));
    if (body) req.write(body);
    if (!o.partial) req.end();
  });
}

/** `key` null sends none. */
const ingest = (path: string, body: unknown, key: string | null = KEYS.attacker, headers = {}) =>
  raw(dp.gatewayUrl, {
    path,
    body: typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    headers: { ...(key !== null && { "x-api-key": key }), ...headers },
  });
const query = (path: string, key: string | null = QUERY_KEY) =>
  raw(dp.queryUrl, { path, headers: key !== null ? { "x-api-key": key } : {} });
const event = (extra: Record<string, unknown> = {}) => ({
  level: "INFO",
  source: "hostile",
  message: "m",
  ...extra,
});
const nested = (depth: number) => JSON.parse(`${"[".repeat(depth)}1${"]".repeat(depth)}`) as unknown;

const refusals = async (registryOf: "gateway" | "query") => {
  const registry = registryOf === "gateway" ? dp.gatewayRegistry : dp.queryRegistry;
  const text = await registry.metrics();
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^log_(?:producer|query)_http_refused_total\{.*reason="([^"]+)".*\} (\d+)/.exec(line);
    if (m?.[1]) out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
  }
  return out;
};

interface Case {
  name: string;
  api: "ingest" | "query";
  send: () => Promise<Answer>;
  status: number;
  reason: RegExp;
  /** The refusal's reason in <prefix>_http_refused_total (4xx cases answered by the error handler). */
  counted?: string;
  /** Events the case itself may store (a partly valid batch). */
  accepts?: number;
}

const cases: Case[] = [
  // Authentication, before anything is read.
  {
    name: "no key",
    api: "ingest",
    send: () => ingest("/api/logs", event(), null),
    status: 401,
    reason: /missing or invalid API key/,
    counted: "unauthenticated",
  },
  {
    name: "a wrong key",
    api: "ingest",
    send: () => ingest("/api/logs", event(), "nope"),
    status: 401,
    reason: /invalid API key/,
    counted: "unauthenticated",
  },
  {
    name: "a query key on ingest",
    api: "ingest",
    send: () => ingest("/api/logs", event(), QUERY_KEY),
    status: 401,
    reason: /invalid API key/,
    counted: "unauthenticated",
  },
  {
    name: "no key and a malformed body: 401, the body never parsed",
    api: "ingest",
    send: () => ingest("/api/logs", "{not json", null),
    status: 401,
    reason: /API key/,
    counted: "unauthenticated",
  },
  {
    name: "no key and a 5 MB body declared: 401 after the first bytes, connection closed",
    api: "ingest",
    send: async () => {
      const a = await raw(dp.gatewayUrl, {
        path: "/api/logs",
        body: Buffer.alloc(64 * 1024, 32),
        partial: { declared: 5_000_000 },
      });
      expect(a.headers.connection).toBe("close");
      return a;
    },
    status: 401,
    reason: /API key/,
    counted: "unauthenticated",
  },
  // Body framing and encoding.
  {
    name: "malformed JSON",
    api: "ingest",
    send: () => ingest("/api/logs", "{not json"),
    status: 400,
    reason: /JSON/i,
    counted: "invalid_json",
  },
  {
    name: "an empty JSON body",
    api: "ingest",
    send: () => ingest("/api/logs", ""),
    status: 400,
    reason: /empty|JSON/i,
  },
  {
    name: "text/plain",
    api: "ingest",
    send: () => ingest("/api/logs", "hello", KEYS.attacker, { "content-type": "text/plain" }),
    status: 400,
    reason: /body|invalid/i,
  },
  {
    name: "an unknown content type",
    api: "ingest",
    send: () => ingest("/api/logs", "<x/>", KEYS.attacker, { "content-type": "application/xml" }),
    status: 415,
    reason: /media type|content-type/i,
    counted: "unsupported_media_type",
  },
  {
    name: "a body over the request limit",
    api: "ingest",
    send: () => ingest("/api/logs", JSON.stringify(event({ message: "x".repeat(1_100_000) }))),
    status: 413,
    reason: /too large/,
    counted: "body_too_large",
  },
  {
    name: "a gzip bomb (50 MB of zeros in 50 kB)",
    api: "ingest",
    send: () =>
      ingest("/api/logs", gzipSync(Buffer.alloc(50_000_000, 48)), KEYS.attacker, {
        "content-encoding": "gzip",
      }),
    status: 413,
    reason: /after decompression/,
    counted: "body_too_large",
  },
  {
    name: "a body that is not gzip",
    api: "ingest",
    send: () => ingest("/api/logs", "plain", KEYS.attacker, { "content-encoding": "gzip" }),
    status: 400,
    reason: /not valid gzip/,
  },
  {
    name: "content-encoding br",
    api: "ingest",
    send: () => ingest("/api/logs", "x", KEYS.attacker, { "content-encoding": "br" }),
    status: 415,
    reason: /unsupported content-encoding br/,
    counted: "unsupported_media_type",
  },
  {
    name: "prototype poisoning",
    api: "ingest",
    send: () => ingest("/api/logs", '{"level":"INFO","source":"s","message":"m","__proto__":{"x":1}}'),
    // secure-json-parse refuses the key while parsing: nothing is built from it.
    status: 400,
    reason: /not valid JSON/,
    counted: "invalid_json",
  },
  // The event's fields.
  {
    name: "an unknown field",
    api: "ingest",
    send: () => ingest("/api/logs", event({ sevrity: 1 })),
    status: 400,
    reason: /sevrity/,
    counted: "invalid",
  },
  {
    name: "an unknown level",
    api: "ingest",
    send: () => ingest("/api/logs", event({ level: "LOUD" })),
    status: 400,
    reason: /level must be one of/,
    counted: "invalid",
  },
  {
    name: "a message over 32 KiB",
    api: "ingest",
    send: () => ingest("/api/logs", event({ message: "x".repeat(33_000) })),
    status: 400,
    reason: /message/,
    counted: "invalid",
  },
  {
    name: "an eventId that is not a UUID",
    api: "ingest",
    send: () => ingest("/api/logs", event({ eventId: "1; DROP TABLE logs" })),
    status: 400,
    reason: /eventId/,
    counted: "invalid",
  },
  {
    name: "NUL in the message",
    api: "ingest",
    send: () => ingest("/api/logs", event({ message: "a\u0000b" })),
    status: 400,
    reason: /message: must not contain NUL/,
    counted: "invalid",
  },
  {
    name: "a lone surrogate in metadata",
    api: "ingest",
    send: () => ingest("/api/logs", '{"level":"INFO","source":"s","message":"m","metadata":{"k":"\\ud800"}}'),
    status: 400,
    reason: /metadata\.k: must not contain a lone UTF-16 surrogate/,
    counted: "invalid",
  },
  {
    name: "a lone surrogate in a metadata key",
    api: "ingest",
    send: () => ingest("/api/logs", '{"level":"INFO","source":"s","message":"m","metadata":{"\\udc00":1}}'),
    status: 400,
    reason: /\(a key\)/,
    counted: "invalid",
  },
  {
    name: "metadata nested 17 deep",
    api: "ingest",
    send: () => ingest("/api/logs", event({ metadata: { a: nested(16) } })),
    status: 400,
    reason: /nested deeper than 16/,
    counted: "invalid",
  },
  {
    name: "metadata nested 100,000 deep",
    api: "ingest",
    // Written as text: JSON.stringify of such a value would overflow this process's stack.
    send: () =>
      ingest(
        "/api/logs",
        `{"level":"INFO","source":"s","message":"m","metadata":{"a":${"[".repeat(100_000)}1${"]".repeat(100_000)}}}`,
      ),
    status: 400,
    reason: /nested deeper than 16/,
    counted: "invalid",
  },
  {
    name: "one event over the per-event cap",
    api: "ingest",
    send: () => ingest("/api/logs", event({ metadata: { blob: "x".repeat(300_000) } })),
    status: 413,
    reason: /the event is \d+ bytes serialized; at most 262144/,
    counted: "event_too_large",
  },
  {
    name: "an Idempotency-Key over 256 characters",
    api: "ingest",
    send: () => ingest("/api/logs", event(), KEYS.attacker, { "idempotency-key": "k".repeat(300) }),
    status: 400,
    reason: /idempotency-key/,
    counted: "invalid",
  },
  // Batches.
  {
    name: "a batch that is not an array",
    api: "ingest",
    send: () => ingest("/api/logs/batch", event()),
    status: 400,
    reason: /array/i,
    counted: "invalid",
  },
  {
    name: "an empty batch",
    api: "ingest",
    send: () => ingest("/api/logs/batch", []),
    status: 400,
    reason: /at least|>=1|too small/i,
    counted: "invalid",
  },
  {
    name: "a batch over REQUEST_MAX_EVENTS",
    api: "ingest",
    send: () =>
      ingest(
        "/api/logs/batch",
        Array.from({ length: 101 }, () => event()),
      ),
    status: 400,
    reason: /100|too big/i,
    counted: "invalid",
  },
  {
    name: "an atomic batch with one bad event",
    api: "ingest",
    send: () => ingest("/api/logs/batch?atomic=true", [event(), event({ level: "LOUD" })]),
    status: 400,
    reason: /atomic batch refused/,
    counted: "invalid",
  },
  {
    name: "a batch with one oversized event: only that event fails",
    api: "ingest",
    send: async () => {
      const a = await ingest("/api/logs/batch", [
        event({ message: "kept" }),
        event({ metadata: { blob: "x".repeat(300_000) } }),
      ]);
      expect(JSON.parse(a.text)).toMatchObject({ accepted: 1, failed: [{ index: 1 }] });
      return a;
    },
    status: 202,
    reason: /bytes serialized; at most/,
    accepts: 1,
  },
  // Load one client makes.
  {
    name: "a batch past the client's rate: 429, another client unaffected",
    api: "ingest",
    send: async () => {
      // A batch may take the whole bucket (burst 30); the next one finds it empty.
      const first = await ingest(
        "/api/logs/batch",
        Array.from({ length: 30 }, () => event()),
        KEYS.greedy,
      );
      expect(first.status).toBe(202);
      const a = await ingest(
        "/api/logs/batch",
        Array.from({ length: 10 }, () => event()),
        KEYS.greedy,
      );
      expect(a.headers["retry-after"]).toBeDefined();
      return a;
    },
    status: 429,
    reason: /rate limit exceeded/,
    counted: "rate_limited",
    accepts: 30,
  },
  {
    name: "more requests in flight than a client may have: 429, another client unaffected",
    api: "ingest",
    send: async () => {
      // Three requests that stay in flight: authenticated, their bodies still arriving.
      const hung = Array.from({ length: 3 }, () => {
        const req = http.request(`${dp.gatewayUrl}/api/logs`, {
          method: "POST",
          agent: false,
          headers: { "x-api-key": KEYS.slow, "content-type": "application/json", "content-length": "100" },
        });
        req.on("error", () => undefined);
        req.write("{");
        return req;
      });
      // Barrier: the three hold their places.
      await eventually("three requests in flight", async () =>
        /^log_producer_ingest_in_flight(\{[^}]*\})? 3$/m.test(await dp.gatewayRegistry.metrics())
          ? true
          : undefined,
      );
      const fourth = await ingest("/api/logs", event(), KEYS.slow);
      for (const r of hung) r.destroy();
      return fourth;
    },
    status: 429,
    reason: /too many requests in progress for this client/,
    counted: "client_in_flight",
  },
  {
    name: "connections past the cap are closed as they arrive",
    api: "ingest",
    send: async () => {
      const sockets = await Promise.all(
        Array.from(
          { length: 45 },
          () =>
            new Promise<net.Socket>((resolve) => {
              const s = net.connect(Number(new URL(dp.gatewayUrl).port), "127.0.0.1", () => resolve(s));
              s.on("error", () => undefined);
            }),
        ),
      );
      const closed = await Promise.all(
        sockets.map(
          (s) =>
            new Promise<boolean>((resolve) => {
              s.once("close", () => resolve(true));
              s.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
              s.once("data", () => resolve(false));
            }),
        ),
      );
      for (const s of sockets) s.destroy();
      // Barrier: the server has seen them go (a new connection is served again).
      await eventually("a new connection served", () =>
        raw(dp.gatewayUrl, { path: "/healthz" }).then(
          (a) => (a.status === 200 ? true : undefined),
          () => undefined,
        ),
      );
      const dropped = closed.filter(Boolean).length;
      expect(dropped).toBeGreaterThanOrEqual(5);
      return { status: 503, text: `${String(dropped)} of 45 connections closed at the cap`, headers: {} };
    },
    status: 503,
    reason: /connections closed at the cap/,
    counted: "connections",
  },
  // The query API.
  {
    name: "query: no key",
    api: "query",
    send: () => query("/api/logs", null),
    status: 401,
    reason: /missing or invalid API key/,
    counted: "unauthenticated",
  },
  {
    name: "query: an ingest key",
    api: "query",
    send: () => query("/api/logs", KEYS.attacker),
    status: 401,
    reason: /ingest keys cannot read/,
    counted: "unauthenticated",
  },
  {
    name: "query: a forged cursor",
    api: "query",
    send: () => query("/api/logs?cursor=eyJ4IjoxfQ"),
    status: 400,
    reason: /invalid cursor/,
    counted: "invalid",
  },
  {
    name: "query: from after to",
    api: "query",
    send: () => query("/api/logs?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
    status: 400,
    reason: /from must be before to/,
    counted: "invalid",
  },
  {
    name: "query: a range over the maximum",
    api: "query",
    send: () => query("/api/logs?from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"),
    status: 400,
    reason: /time range too large/,
    counted: "invalid",
  },
  {
    name: "query: an unknown parameter",
    api: "query",
    send: () => query("/api/logs?sql=select"),
    status: 400,
    reason: /sql|unrecognized/i,
    counted: "invalid",
  },
  {
    name: "query: an unknown level",
    api: "query",
    send: () => query("/api/logs?level=LOUD"),
    status: 400,
    reason: /level/,
    counted: "invalid",
  },
  {
    name: "query: a search text over 512 characters",
    api: "query",
    send: () => query(`/api/logs?q=${"a".repeat(600)}`),
    status: 400,
    reason: /q: /,
    counted: "invalid",
  },
  {
    name: "query: a page over the maximum",
    api: "query",
    send: () => query("/api/logs?limit=100000"),
    status: 400,
    reason: /limit: /,
    counted: "invalid",
  },
  {
    name: "query: an event id that is not a UUID",
    api: "query",
    send: () => query("/api/logs/1%20OR%201=1"),
    status: 400,
    reason: /eventId: /,
    counted: "invalid",
  },
  {
    name: "query: SQL in a filter is only a value",
    api: "query",
    send: () => query(`/api/logs?source=${encodeURIComponent("' OR 1=1 --")}`),
    status: 200,
    reason: /"items":\[\]/,
  },
  {
    name: "query: a scoped key asks for counts",
    api: "query",
    send: () => query("/api/stats", SCOPED_KEY),
    status: 403,
    reason: /counts cover every writer/,
    counted: "scoped_key",
  },
];

beforeAll(async () => {
  dp = await startDataPlane(stack, {
    name: "hostile",
    ingestKeys: Object.entries(KEYS)
      .map(([n, k]) => `${n}:${k}`)
      .join("\n"),
    queryKeys: `reader:${QUERY_KEY}\nscoped[marker]:${SCOPED_KEY}\n`,
    gatewayEnv: LIMITS,
  });
});

afterAll(async () => {
  await dp.stop();
});

describe("the hostile-input corpus", () => {
  it("holds at least 30 cases across ingest and query", () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
    expect(cases.filter((c) => c.api === "ingest").length).toBeGreaterThanOrEqual(20);
    expect(cases.filter((c) => c.api === "query").length).toBeGreaterThanOrEqual(10);
  });

  it.each(cases)("$api: $name → $status", async (c) => {
    const counted = c.counted && (await refusals(c.api === "ingest" ? "gateway" : "query"))[c.counted];
    const answer = await c.send();
    expect(answer.status, answer.text).toBe(c.status);
    expect(answer.text).toMatch(c.reason);
    if (c.counted) {
      const after = (await refusals(c.api === "ingest" ? "gateway" : "query"))[c.counted] ?? 0;
      expect(after, `refusals counted as ${c.counted}`).toBeGreaterThan(Number(counted ?? 0));
    }
    // Both processes still answer.
    expect((await raw(dp.gatewayUrl, { path: "/healthz" })).status).toBe(200);
    expect((await raw(dp.queryUrl, { path: "/healthz" })).status).toBe(200);
    // Another client is served at once, and the rows grow by its marker alone (and what the case accepted).
    const marker = await ingest("/api/logs", event({ message: `marker after ${c.name}` }), KEYS.marker);
    expect(marker.status, marker.text).toBe(202);
    stored += 1 + (c.accepts ?? 0);
    await eventually("the marker stored", async () =>
      (await ledgerCounts(dp.db.pool, dp.db.names)).applied >= stored ? true : undefined,
    );
    const counts = await ledgerCounts(dp.db.pool, dp.db.names);
    expect({ applied: counts.applied, rows: counts.rows, deadLettered: counts.deadLettered }).toEqual({
      applied: stored,
      rows: stored,
      deadLettered: 0,
    });
  });
});
