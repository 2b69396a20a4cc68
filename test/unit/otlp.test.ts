import { context, SeverityNumber, TraceFlags, trace } from "@opentelemetry/api";
import { JsonLogsSerializer, ProtobufLogsSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  InMemoryLogRecordExporter,
  LoggerProvider,
  type ReadableLogRecord,
  SimpleLogRecordProcessor,
} from "@opentelemetry/sdk-logs";
import pb from "protobufjs";
import { describe, expect, it } from "vitest";
import { LogEvent, readEvent, UNKNOWN_FIELDS_KEY } from "../../workloads/common/src/event.js";
import {
  decodeJson,
  decodeProtobuf,
  levelOf,
  type Mapped,
  OtlpPayloadError,
  toEvents,
} from "../../workloads/producer/src/otlp.js";

const TRACE_ID = "5b8efff798038103d269b633813fc60c";
const SPAN_ID = "eee19b7ec3c1b174";

/** Records as the OpenTelemetry JS SDK makes them (the same the exporters serialize). */
async function sdkRecords(
  emit: (logger: ReturnType<LoggerProvider["getLogger"]>) => void,
): Promise<ReadableLogRecord[]> {
  const exporter = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ "service.name": "checkout", "deployment.environment": "test" }),
    processors: [new SimpleLogRecordProcessor({ exporter })],
  });
  emit(provider.getLogger("unit", "1.2.3"));
  await provider.forceFlush();
  return exporter.getFinishedLogRecords();
}

const sample = () =>
  sdkRecords((logger) => {
    const ctx = trace.setSpanContext(context.active(), {
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      traceFlags: TraceFlags.SAMPLED,
    });
    logger.emit({
      severityNumber: SeverityNumber.WARN,
      severityText: "WARN",
      body: "disk almost full",
      attributes: { "disk.free_bytes": 1024, "host.name": "a" },
      timestamp: new Date("2026-12-01T10:00:00.123Z"),
      context: ctx,
    });
    logger.emit({
      severityNumber: SeverityNumber.ERROR2,
      body: { order: { id: 7, lines: [1, 2] }, ok: false },
      timestamp: new Date("2026-12-01T10:00:01Z"),
    });
  });

const protobuf = (records: ReadableLogRecord[]) =>
  Buffer.from(ProtobufLogsSerializer.serializeRequest(records) ?? new Uint8Array());
const json = (records: ReadableLogRecord[]) =>
  JSON.parse(
    Buffer.from(JsonLogsSerializer.serializeRequest(records) ?? new Uint8Array()).toString("utf8"),
  ) as unknown;

/**
 * The events as they travel: their Kafka JSON (what the consumer reads), each a valid
 * LogEvent with nothing else in it, whose id, source and level are the ones the gateway
 * routes it by.
 */
const events = (mapped: Mapped[]): LogEvent[] =>
  mapped.map((m) => {
    if (!m.ok) throw new Error(m.reason);
    const e = JSON.parse(m.json) as LogEvent;
    expect(LogEvent.strict().parse(e)).toEqual(e);
    expect({ eventId: e.eventId, source: e.source, level: e.level }).toEqual(m.event);
    return e;
  });
const ctx = { receivedAt: "2026-12-01T10:00:05.000Z", writer: "agent" };

describe("OTLP logs: both encodings decode to the same events", () => {
  it("maps the SDK's records: level, source, body, attributes, ids, time", async () => {
    const records = await sample();
    const fromPb = events(toEvents(decodeProtobuf(protobuf(records)), ctx));
    const fromJson = events(toEvents(decodeJson(json(records)), ctx));
    expect(fromJson).toEqual(fromPb);
    const [warn, err] = fromPb;
    expect(warn).toMatchObject({
      level: "WARN",
      source: "checkout",
      message: "disk almost full",
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      timestamp: "2026-12-01T10:00:00.123000Z",
      writer: "agent",
      receivedAt: ctx.receivedAt,
    });
    expect(warn?.metadata).toMatchObject({
      "disk.free_bytes": 1024,
      "host.name": "a",
      "otel.resource": { "service.name": "checkout", "deployment.environment": "test" },
      "otel.scope": { name: "unit", version: "1.2.3" },
      "otel.severity_text": "WARN",
    });
    // A structured body is kept as structure, and readable as the message.
    expect(err?.level).toBe("ERROR");
    expect(err?.metadata["otel.body"]).toEqual({ order: { id: 7, lines: [1, 2] }, ok: false });
    expect(JSON.parse(err?.message ?? "")).toEqual({ order: { id: 7, lines: [1, 2] }, ok: false });
    expect(err?.traceId).toBeUndefined();
    // What the consumer reads back is a valid event.
    for (const e of fromPb) expect(LogEvent.safeParse(JSON.parse(JSON.stringify(e))).success).toBe(true);
  });

  it("names the same records the same events on a retry, and identical records in one request apart", async () => {
    const twins = await sdkRecords((logger) => {
      for (let i = 0; i < 3; i++)
        logger.emit({
          severityNumber: SeverityNumber.INFO,
          body: "same",
          timestamp: new Date("2026-12-01T10:00:00Z"),
        });
    });
    const first = events(toEvents(decodeProtobuf(protobuf(twins)), ctx)).map((e) => e.eventId);
    const retry = events(
      toEvents(decodeProtobuf(protobuf(twins)), { ...ctx, receivedAt: "2026-12-01T10:01:00.000Z" }),
    );
    expect(new Set(first).size).toBe(3);
    expect(retry.map((e) => e.eventId)).toEqual(first);
    // Another writer's identical records are other events.
    const other = events(toEvents(decodeProtobuf(protobuf(twins)), { ...ctx, writer: "other" }));
    expect(other.map((e) => e.eventId).filter((id) => first.includes(id))).toEqual([]);
  });

  it("takes the observed time when the record has none, and the receive time when neither is set", () => {
    const body = (t?: string, o?: string) => ({
      resourceLogs: [
        {
          scopeLogs: [
            {
              logRecords: [
                {
                  body: { stringValue: "x" },
                  ...(t && { timeUnixNano: t }),
                  ...(o && { observedTimeUnixNano: o }),
                },
              ],
            },
          ],
        },
      ],
    });
    const [observed] = events(toEvents(decodeJson(body(undefined, "1764583200000000000")), ctx));
    expect(observed?.timestamp).toBe("2025-12-01T10:00:00.000000Z");
    expect(observed?.metadata["otel.time_source"]).toBe("observed");
    expect(observed?.source).toBe("unknown_service");
    const [none] = events(toEvents(decodeJson(body()), ctx));
    expect(none?.timestamp).toBe(ctx.receivedAt);
    // No time of its own: each delivery is a new event (never lost, not deduplicated).
    const [again] = events(toEvents(decodeJson(body()), { ...ctx, receivedAt: "2026-12-01T10:00:06.000Z" }));
    expect(again?.eventId).not.toBe(none?.eventId);
    // A file re-read after a Collector restart: the line's own time, a new observed time.
    const [a] = events(toEvents(decodeJson(body("1764583200000000001", "1")), ctx));
    const [b] = events(toEvents(decodeJson(body("1764583200000000001", "2")), ctx));
    expect(a?.eventId).toBe(b?.eventId);
  });

  it("refuses payloads that are not requests, and records that cannot be events, naming why", async () => {
    const pb = protobuf(await sample());
    expect(() => decodeProtobuf(pb.subarray(0, pb.length - 7))).toThrow(OtlpPayloadError);
    expect(() => decodeJson({ resourceLogs: {} })).toThrow(/resourceLogs must be an array/);
    expect(() =>
      decodeJson({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ traceId: "not-hex" }] }] }] }),
    ).toThrow(/traceId must be 32 hex digits/);
    // Invalid UTF-8 inside a protobuf string: the bytes of "disk" in the body become 0xff.
    const at = pb.indexOf(Buffer.from("disk almost full"));
    const bad = Buffer.from(pb);
    bad[at] = 0xff;
    expect(() => decodeProtobuf(bad)).toThrow(/not valid for encoding utf-8/);
    const refused = toEvents(
      decodeJson({
        resourceLogs: [
          {
            scopeLogs: [
              {
                logRecords: [
                  { body: { stringValue: "nul \u0000 inside" } },
                  { body: { stringValue: "x".repeat(40_000) } },
                  { body: { stringValue: "fine" } },
                ],
              },
            ],
          },
        ],
      }),
      ctx,
    );
    expect(refused.map((m) => (m.ok ? "ok" : m.reason))).toEqual([
      expect.stringMatching(/NUL/),
      expect.stringMatching(/at most 32768/),
      "ok",
    ]);
  });

  it("reads severity from the number, else from the text", () => {
    expect([1, 5, 9, 13, 17, 21, 24].map((n) => levelOf(n, ""))).toEqual([
      "TRACE",
      "DEBUG",
      "INFO",
      "WARN",
      "ERROR",
      "FATAL",
      "FATAL",
    ]);
    expect(levelOf(0, "warning")).toBe("WARN");
    expect(levelOf(0, "error")).toBe("ERROR");
    expect(levelOf(0, "whatever")).toBe("INFO");
  });
});

describe("the protobuf reader and the Kafka JSON", () => {
  /** A LogRecord written field by field, in the order given (protobufjs's Writer). */
  const writer = () => pb.Writer.create();
  const kv = (key: string, value: (w: pb.Writer) => void) => {
    const w = writer().uint32(10).string(key).uint32(18).fork();
    value(w);
    return w.ldelim().finish();
  };
  const str = (s: string) => (w: pb.Writer) => w.uint32(10).string(s);
  const request = (record: Uint8Array, opts: { resourceLast?: boolean; unknown?: boolean } = {}) => {
    const scopeLogs = writer().uint32(18).bytes(record).finish();
    const resource = writer()
      .uint32(10)
      .bytes(kv("service.name", str("svc")))
      .finish();
    const rl = writer();
    if (opts.unknown) rl.uint32((15 << 3) | 2).string("a field of a later release");
    if (opts.resourceLast) rl.uint32(18).bytes(scopeLogs).uint32(10).bytes(resource);
    else rl.uint32(10).bytes(resource).uint32(18).bytes(scopeLogs);
    return Buffer.from(writer().uint32(10).bytes(rl.finish()).finish());
  };
  const record = (build: (w: pb.Writer) => void) => {
    const w = writer();
    build(w);
    return w.finish();
  };
  const ns = (w: pb.Writer, tag: number, value: bigint) =>
    w
      .uint32(tag)
      .fixed32(Number(value & 0xffffffffn))
      .fixed32(Number(value >> 32n));

  it("splits 64-bit nanoseconds into exact milliseconds and nanoseconds", () => {
    for (const t of [1n, 999_999n, 1_000_000n, 1764583200123456789n, 2n ** 53n + 1n, 2n ** 64n - 1n]) {
      const [b] = decodeProtobuf(request(record((w) => ns(w, 9, t).uint32(26).string("x"))));
      expect(b?.records[0]).toMatchObject({
        timeMs: Number(t / 1_000_000n),
        timeNs: Number(t % 1_000_000n),
        observedMs: 0,
      });
    }
  });

  it("reads fields in any order, skips fields it does not know, and refuses what runs past its message", () => {
    const rec = record((w) =>
      ns(w.uint32((99 << 3) | 0).uint64(7), 9, 1764583200000000000n)
        .uint32(42)
        .bytes(writer().uint32(10).string("hello").finish()),
    );
    for (const opts of [{}, { resourceLast: true }, { unknown: true }]) {
      const [b] = decodeProtobuf(request(rec, opts));
      expect(b?.resource).toEqual({ "service.name": "svc" });
      expect(b?.records[0]?.body).toBe("hello");
    }
    // A body whose declared length is longer than its record.
    const bad = record((w) => w.uint32(42).bytes(writer().uint32(10).string("hello").finish()));
    const payload = request(bad);
    const at = payload.indexOf(Buffer.from("hello")) - 1; // the string's length byte
    payload[at] = 40;
    expect(() => decodeProtobuf(payload)).toThrow(OtlpPayloadError);
    // Values nested deeper than protoc's recursion limit: a 400, not a stack overflow.
    let deep = writer().uint32(10).string("leaf").finish();
    for (let i = 0; i < 150; i++)
      deep = writer().uint32(42).bytes(writer().uint32(10).bytes(deep).finish()).finish();
    expect(() => decodeProtobuf(request(record((w) => w.uint32(42).bytes(deep))))).toThrow(
      /nested deeper than 100/,
    );
  });

  it("writes Kafka JSON that parses to exactly the event, whatever the record holds", async () => {
    const records = await sdkRecords((logger) => {
      logger.emit({
        severityNumber: SeverityNumber.INFO,
        severityText: "notice",
        body: 'quotes " and \\ and \u2028 and ünïcödé',
        // Attributes named like the mapping's own keys: the mapping's win, in the object as in the JSON.
        attributes: { "otel.resource": "mine", "otel.severity_text": 1, nested: { a: [1, { b: null }] } },
        eventName: "checkout.paid",
        timestamp: new Date("2026-12-01T10:00:00.5Z"),
      });
      logger.emit({ body: { k: "v" }, observedTimestamp: new Date("2026-12-01T10:00:01Z") });
      logger.emit({ body: 42 });
    });
    for (const decoded of [decodeProtobuf(protobuf(records)), decodeJson(json(records))]) {
      const mapped = events(toEvents(decoded, ctx));
      expect(mapped).toHaveLength(3);
      const [first] = mapped;
      // An attribute named like an otel.* member is overridden by it (JSON's last member wins).
      expect(first?.metadata["otel.resource"]).toEqual({
        "service.name": "checkout",
        "deployment.environment": "test",
      });
      expect(first?.metadata["otel.severity_text"]).toBe("notice");
      expect(first?.metadata.nested).toEqual({ a: [1, { b: null }] });
      expect(first?.timestamp).toBe("2026-12-01T10:00:00.500000Z");
    }
  });
});

describe("the consumer's tolerant reader", () => {
  const base = {
    eventId: "0190a4c8-0000-7000-8000-000000000001",
    timestamp: "2026-12-01T10:00:00.000Z",
    level: "INFO",
    source: "s",
    message: "m",
    metadata: { a: 1 },
    schemaVersion: 1,
    receivedAt: "2026-12-01T10:00:00.000Z",
  };

  it("keeps a field it does not know in metadata (a newer gateway's), losslessly", () => {
    // Control: the plain schema, as the previous release read events, drops the field.
    expect(LogEvent.parse({ ...base, futureField: 1 })).not.toHaveProperty("futureField");
    const r = readEvent({ ...base, futureField: { nested: [1, "two"] }, other: "x" });
    expect(r.success).toBe(true);
    expect(r.data?.metadata).toEqual({
      a: 1,
      [UNKNOWN_FIELDS_KEY]: { futureField: { nested: [1, "two"] }, other: "x" },
    });
    expect(Object.keys(r.data ?? {})).not.toContain("futureField");
  });

  it("reads spanId as a field of its own, and an event without it (an older gateway's) as before", () => {
    expect(readEvent({ ...base, spanId: SPAN_ID }).data?.spanId).toBe(SPAN_ID);
    const old = readEvent(base);
    expect(old.data).toEqual(base);
  });

  it("still refuses what is not an event", () => {
    expect(readEvent({ ...base, level: "LOUD" }).success).toBe(false);
  });
});
