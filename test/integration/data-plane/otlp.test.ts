import { gzipSync } from "node:zlib";
import { context, SeverityNumber, TraceFlags, trace } from "@opentelemetry/api";
import { OTLPLogExporter as JsonExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPLogExporter as ProtoExporter } from "@opentelemetry/exporter-logs-otlp-proto";
import { ProtobufLogsSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchLogRecordProcessor,
  InMemoryLogRecordExporter,
  type LogRecordExporter,
  LoggerProvider,
  type ReadableLogRecord,
  SimpleLogRecordProcessor,
} from "@opentelemetry/sdk-logs";
import protobuf from "protobufjs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DataPlane, startDataPlane } from "../../support/data-plane.js";
import { eventually } from "../../support/kube.js";

/**
 * OTLP/HTTP into the exactly-once pipeline, with the OpenTelemetry JS SDK's own exporters
 * (protobuf and JSON) as the clients: POST /v1/logs on the gateway, the consumer's sink,
 * PostgreSQL, the query API — on real sockets against the stack's Kafka, Redis and PostgreSQL.
 */
const stack = inject("stack");
const KEY = "otlp-agent-key";
let dp: DataPlane;

const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const SPAN_ID = "b7ad6b7169203331";

/** A LoggerProvider whose records go through `exporter` (batched, as an application's would). */
function provider(service: string, exporter: LogRecordExporter) {
  return new LoggerProvider({
    resource: resourceFromAttributes({ "service.name": service }),
    processors: [
      new BatchLogRecordProcessor({
        exporter,
        scheduledDelayMillis: 20,
        maxExportBatchSize: 100,
        maxQueueSize: 10_000,
      }),
    ],
  });
}
const exporterOptions = (headers: Record<string, string> = { authorization: `Bearer ${KEY}` }) => ({
  url: `${dp.gatewayUrl}/v1/logs`,
  headers,
  timeoutMillis: 15_000,
});

/** Per run: rows, distinct sequence numbers, and rows beyond one per sequence number. */
async function rowsOf(service: string) {
  const r = await dp.db.pool.query<{ n: string; seqs: string; dup: string }>(
    `SELECT count(*) AS n, count(DISTINCT metadata->>'seq') AS seqs,
            count(*) - count(DISTINCT metadata->>'seq') AS dup
       FROM ${dp.db.names.events} WHERE source = $1`,
    [service],
  );
  const row = r.rows[0];
  return { rows: Number(row?.n), seqs: Number(row?.seqs), duplicates: Number(row?.dup) };
}
const settled = (service: string, n: number) =>
  eventually(`${n} rows of ${service}`, async () => {
    const r = await rowsOf(service);
    return r.rows >= n ? r : undefined;
  });

/** Records the SDK made, for requests built by hand (the serializer its exporters use). */
async function sdkRecords(
  service: string,
  n: number,
  body = (i: number) => `line ${i}`,
  attributes = (i: number): Record<string, string | number> => ({ seq: i }),
) {
  const exporter = new InMemoryLogRecordExporter();
  const p = new LoggerProvider({
    resource: resourceFromAttributes({ "service.name": service }),
    processors: [new SimpleLogRecordProcessor({ exporter })],
  });
  const logger = p.getLogger("hand");
  for (let i = 0; i < n; i++)
    logger.emit({ severityNumber: SeverityNumber.INFO, body: body(i), attributes: attributes(i) });
  await p.forceFlush();
  return exporter.getFinishedLogRecords();
}
const pbRequest = (records: ReadableLogRecord[]) =>
  Buffer.from(ProtobufLogsSerializer.serializeRequest(records) ?? new Uint8Array());
const post = (body: Buffer | string, headers: Record<string, string>, key: string | null = KEY) =>
  fetch(`${dp.gatewayUrl}/v1/logs`, {
    method: "POST",
    headers: { ...(key && { authorization: `Bearer ${key}` }), ...headers },
    body,
  });
const PB = { "content-type": "application/x-protobuf" };
const JSON_CT = { "content-type": "application/json" };
const Status = protobuf.Root.fromJSON({
  nested: { Status: { fields: { code: { type: "int32", id: 1 }, message: { type: "string", id: 2 } } } },
}).lookupType("Status");

beforeAll(async () => {
  dp = await startDataPlane(stack, {
    name: "otlp",
    ingestKeys: `agent:${KEY}\nother:other-agent-key\n`,
    queryKeys: "reader:otlp-read-key\n",
    // Small, so a record over the per-event cap is cheap to make.
    gatewayEnv: { EVENT_MAX_BYTES: "16384" },
  });
});
afterAll(async () => {
  await dp.stop();
});

describe("OTLP/HTTP with the OpenTelemetry JS SDK's exporters", () => {
  for (const [encoding, Exporter] of [
    ["protobuf", ProtoExporter],
    ["json", JsonExporter],
  ] as const) {
    it(`${encoding}: every record lands once, with its trace and span ids, readable by service.name`, async () => {
      const service = `svc-${encoding}`;
      const p = provider(service, new Exporter(exporterOptions()));
      const logger = p.getLogger("checkout", "2.0.0");
      const traced = trace.setSpanContext(context.active(), {
        traceId: TRACE_ID,
        spanId: SPAN_ID,
        traceFlags: TraceFlags.SAMPLED,
      });
      const n = 400;
      for (let i = 0; i < n; i++)
        logger.emit({
          severityNumber: i % 2 ? SeverityNumber.ERROR : SeverityNumber.INFO,
          body: i % 10 === 0 ? { kind: "structured", i } : `record ${i}`,
          attributes: { seq: i, "http.route": "/pay" },
          ...(i === 7 && { context: traced }),
        });
      await p.forceFlush();
      await p.shutdown();
      const rows = await settled(service, n);
      expect(rows).toEqual({ rows: n, seqs: n, duplicates: 0 });
      const stored = await dp.db.pool.query<{
        trace_id: string;
        span_id: string;
        writer: string;
        level: string;
      }>(
        `SELECT trace_id, span_id, writer, level FROM ${dp.db.names.events} WHERE source = $1 AND metadata->>'seq' = '7'`,
        [service],
      );
      expect(stored.rows[0]).toEqual({
        trace_id: TRACE_ID,
        span_id: SPAN_ID,
        writer: "agent",
        level: "ERROR",
      });
      // The query API finds them by service.name (the source) and returns the OTLP fields.
      const r = await fetch(`${dp.queryUrl}/api/logs?source=${service}&traceId=${TRACE_ID}`, {
        headers: { "x-api-key": "otlp-read-key" },
      });
      expect(r.status, await r.clone().text()).toBe(200);
      const items = ((await r.json()) as { items: { spanId: string; metadata: Record<string, unknown> }[] })
        .items;
      expect(items.map((i) => i.spanId)).toEqual([SPAN_ID]);
      expect(items[0]?.metadata["otel.scope"]).toEqual({ name: "checkout", version: "2.0.0" });
      expect(items[0]?.metadata["otel.resource"]).toMatchObject({ "service.name": service });
    });
  }

  it("an exporter retrying through a gateway restart delivers every record once", async () => {
    const service = "svc-restart";
    const p = provider(service, new ProtoExporter(exporterOptions()));
    const logger = p.getLogger("restart");
    const n = 1200;
    const emitting = (async () => {
      for (let i = 0; i < n; i++) {
        logger.emit({ severityNumber: SeverityNumber.INFO, body: `r ${i}`, attributes: { seq: i } });
        if (i % 50 === 49) await new Promise((r) => setTimeout(r, 10));
      }
    })();
    // Barrier: the gateway has stored some of the run before it goes down.
    await eventually("the first rows", async () => ((await rowsOf(service)).rows > 0 ? true : undefined));
    await dp.restartGateway(1500);
    await emitting;
    await p.forceFlush();
    await p.shutdown();
    expect(await settled(service, n)).toEqual({ rows: n, seqs: n, duplicates: 0 });
  });

  it("a request sent again is stored once; identical records within it are kept apart", async () => {
    const service = "svc-resend";
    const records = await sdkRecords(service, 20, (i) => (i < 3 ? "same body" : `line ${i}`));
    // Three identical records (same body, attributes differ only by seq): make them identical.
    const twins = await sdkRecords(
      service,
      3,
      () => "twin",
      () => ({ seq: "twin" }),
    );
    // The SDK stamps each record's own time: give the twins one time, as a coarse clock would.
    const at = twins[0]?.hrTime ?? [0, 0];
    for (const t of twins) Object.assign(t, { hrTime: at, hrTimeObserved: at });
    const body = pbRequest([...records, ...twins]);
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await post(body, PB);
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toMatch(/application\/x-protobuf/);
    }
    const counted = await settled(service, 23);
    // 20 distinct seqs + 3 identical twins, each once: 23 rows, of which 2 share seq "twin".
    expect(counted).toEqual({ rows: 23, seqs: 21, duplicates: 2 });
    // Control: the same request from another key is other events (the id includes the
    // writer), so the count above could see copies if they were stored.
    expect((await post(body, PB, "other-agent-key")).status).toBe(200);
    expect(await settled(service, 46)).toMatchObject({ rows: 46 });
  });
});

describe("OTLP refusals: the specification's answers, the process alive, nothing stored", () => {
  const alive = async () => expect((await fetch(`${dp.gatewayUrl}/readyz`)).status).toBe(200);
  const count = async () =>
    Number(
      (await dp.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${dp.db.names.events}`)).rows[0]?.n,
    );
  const status = async (r: Response) =>
    r.headers.get("content-type")?.startsWith("application/x-protobuf")
      ? (Status.toObject(Status.decode(Buffer.from(await r.arrayBuffer()))) as {
          code: number;
          message: string;
        })
      : ((await r.json()) as { code: number; message: string });

  it.each([
    [
      "truncated protobuf",
      async () => post(pbRequest(await sdkRecords("bad", 3)).subarray(0, 40), PB),
      400,
      /not a protobuf/,
    ],
    ["a body that is not JSON", () => post("{not json", JSON_CT), 400, /not JSON/],
    [
      "JSON that is not a request",
      () => post(JSON.stringify({ resourceLogs: "x" }), JSON_CT),
      400,
      /must be an array/,
    ],
    [
      "a trace id that is not hex",
      () =>
        post(
          JSON.stringify({
            resourceLogs: [{ scopeLogs: [{ logRecords: [{ traceId: "zz", body: { stringValue: "x" } }] }] }],
          }),
          JSON_CT,
        ),
      400,
      /hex/,
    ],
    [
      "a content type OTLP does not have",
      () => post("hello", { "content-type": "text/plain" }),
      415,
      /content-type|media type/i,
    ],
    [
      "invalid UTF-8 in a body (protobuf)",
      async () => {
        const b = pbRequest(await sdkRecords("bad-utf8", 1, () => "abcdef"));
        b[b.indexOf(Buffer.from("abcdef"))] = 0xff;
        return post(b, PB);
      },
      400,
      /utf-8/i,
    ],
    [
      "invalid UTF-8 in a body (JSON)",
      () =>
        post(
          Buffer.concat([
            Buffer.from('{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"'),
            Buffer.from([0xc3, 0x28]),
            Buffer.from('"}}]}]}]}'),
          ]),
          JSON_CT,
        ),
      400,
      /UTF-8/,
    ],
    [
      "a 10 MB gzip bomb",
      () => post(gzipSync(Buffer.alloc(10 * 1024 * 1024)), { ...PB, "content-encoding": "gzip" }),
      413,
      /too large/,
    ],
    ["no API key (refused before the body is read)", () => post(Buffer.alloc(64), PB, null), 401, /.+/],
    ["a wrong API key", () => post(Buffer.alloc(64), PB, "nope"), 401, /.+/],
  ] as const)("%s", async (_what, send, code, why) => {
    const before = await count();
    const r = await send();
    const s = await status(r);
    expect(r.status, JSON.stringify(s)).toBe(code);
    expect(s.message).toMatch(why);
    expect(s.code).toBeGreaterThan(0);
    await alive();
    expect(await count()).toBe(before);
  });

  it("a record over the per-event cap is refused in partial_success; the others are stored", async () => {
    const service = "svc-partial";
    const records = await sdkRecords(service, 3, undefined, (i) => ({
      seq: i,
      ...(i === 1 && { blob: "x".repeat(20_000) }),
    }));
    const r = await post(pbRequest(records), PB);
    expect(r.status).toBe(200);
    const Response = protobuf.Root.fromJSON({
      nested: {
        Partial: {
          fields: { rejectedLogRecords: { type: "int64", id: 1 }, errorMessage: { type: "string", id: 2 } },
        },
        Res: { fields: { partialSuccess: { type: "Partial", id: 1 } } },
      },
    }).lookupType("Res");
    const answer = Response.toObject(Response.decode(Buffer.from(await r.arrayBuffer())), {
      longs: Number,
    }) as {
      partialSuccess?: { rejectedLogRecords: number; errorMessage: string };
    };
    expect(answer.partialSuccess?.rejectedLogRecords).toBe(1);
    expect(answer.partialSuccess?.errorMessage).toMatch(/at most 16384/);
    expect(await settled(service, 2)).toEqual({ rows: 2, seqs: 2, duplicates: 0 });
    // JSON: the answer in JSON, rejectedLogRecords as the specification encodes int64.
    const j = await post(
      JSON.stringify({
        resourceLogs: [
          {
            resource: { attributes: [{ key: "service.name", value: { stringValue: "svc-partial-json" } }] },
            scopeLogs: [
              { logRecords: [{ body: { stringValue: "nul \u0000" } }, { body: { stringValue: "ok" } }] },
            ],
          },
        ],
      }),
      JSON_CT,
    );
    expect(j.status).toBe(200);
    expect(j.headers.get("content-type")).toMatch(/application\/json/);
    const partial = (
      (await j.json()) as { partialSuccess: { rejectedLogRecords: string; errorMessage: string } }
    ).partialSuccess;
    expect(partial.rejectedLogRecords).toBe("1");
    expect(partial.errorMessage).toMatch(/NUL/);
  });
});

describe("OTLP: the client's rate, charged per record", () => {
  let limited: DataPlane | undefined;
  beforeAll(async () => {
    limited = await startDataPlane(stack, {
      name: "otlp-rate",
      ingestKeys: `agent:${KEY}\n`,
      queryKeys: "reader:otlp-rate-read\n",
      gatewayEnv: { RATE_LIMIT_PER_SECOND: "2", RATE_LIMIT_BURST: "10" },
    });
  });
  afterAll(async () => {
    await limited?.stop();
  });

  it("once the client's records use up its bucket, the next request is 429 with Retry-After and a Status, nothing of it stored", async () => {
    const plane = limited as DataPlane;
    const send = async (n: number, service: string) =>
      fetch(`${plane.gatewayUrl}/v1/logs`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, ...PB },
        body: pbRequest(await sdkRecords(service, n)),
      });
    // Barrier: the gateway's Redis is connected (before that, the limiter fails open).
    await eventually("the gateway's Redis up", async () => {
      const r = (await (await fetch(`${plane.gatewayUrl}/readyz`)).json()) as { redis?: string };
      return r.redis === "up" ? true : undefined;
    });
    // Ten records take the whole bucket (ten tokens); the next ten, at once, find it empty.
    expect((await send(10, "svc-rate-first")).status).toBe(200);
    const refused = await send(10, "svc-rate-second");
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    const s = Status.toObject(Status.decode(Buffer.from(await refused.arrayBuffer()))) as {
      code: number;
      message: string;
    };
    expect(s.code).toBe(8); // RESOURCE_EXHAUSTED
    expect(s.message).toMatch(/rate limit/);
    const stored = await eventually("the first request's records", async () => {
      const r = await plane.db.pool.query<{ source: string; n: string }>(
        `SELECT source, count(*) AS n FROM ${plane.db.names.events} GROUP BY source`,
      );
      return r.rows.length > 0 && Number(r.rows[0]?.n) >= 10 ? r.rows : undefined;
    });
    expect(stored).toEqual([{ source: "svc-rate-first", n: "10" }]);
  });
});
