import { createHash } from "node:crypto";
import protobuf from "protobufjs";
import { LEVELS, type Level, type LogEvent, unstorable } from "../../common/src/event.js";

/**
 * OTLP/HTTP logs (https://opentelemetry.io/docs/specs/otlp/): the ExportLogsServiceRequest
 * in binary protobuf or OTLP/JSON, decoded into one shape, and each LogRecord mapped to an
 * event (docs/otlp.md has the table). The messages are declared below from the OTLP
 * specification's field numbers (opentelemetry-proto v1: collector/logs, logs, common,
 * resource); protobufjs compiles a decoder for them at start-up.
 */
const repeated = (type: string, id: number) => ({ rule: "repeated", type, id });
const SCHEMA = {
  nested: {
    otlp: {
      nested: {
        AnyValue: {
          oneofs: {
            value: {
              oneof: [
                "stringValue",
                "boolValue",
                "intValue",
                "doubleValue",
                "arrayValue",
                "kvlistValue",
                "bytesValue",
              ],
            },
          },
          fields: {
            stringValue: { type: "string", id: 1 },
            boolValue: { type: "bool", id: 2 },
            intValue: { type: "int64", id: 3 },
            doubleValue: { type: "double", id: 4 },
            arrayValue: { type: "ArrayValue", id: 5 },
            kvlistValue: { type: "KeyValueList", id: 6 },
            bytesValue: { type: "bytes", id: 7 },
          },
        },
        ArrayValue: { fields: { values: repeated("AnyValue", 1) } },
        KeyValueList: { fields: { values: repeated("KeyValue", 1) } },
        KeyValue: { fields: { key: { type: "string", id: 1 }, value: { type: "AnyValue", id: 2 } } },
        Resource: { fields: { attributes: repeated("KeyValue", 1) } },
        InstrumentationScope: {
          fields: {
            name: { type: "string", id: 1 },
            version: { type: "string", id: 2 },
            attributes: repeated("KeyValue", 3),
          },
        },
        LogRecord: {
          fields: {
            timeUnixNano: { type: "fixed64", id: 1 },
            severityNumber: { type: "int32", id: 2 },
            severityText: { type: "string", id: 3 },
            body: { type: "AnyValue", id: 5 },
            attributes: repeated("KeyValue", 6),
            flags: { type: "fixed32", id: 8 },
            traceId: { type: "bytes", id: 9 },
            spanId: { type: "bytes", id: 10 },
            observedTimeUnixNano: { type: "fixed64", id: 11 },
            eventName: { type: "string", id: 12 },
          },
        },
        ScopeLogs: {
          fields: { scope: { type: "InstrumentationScope", id: 1 }, logRecords: repeated("LogRecord", 2) },
        },
        ResourceLogs: {
          fields: { resource: { type: "Resource", id: 1 }, scopeLogs: repeated("ScopeLogs", 2) },
        },
        ExportLogsServiceRequest: { fields: { resourceLogs: repeated("ResourceLogs", 1) } },
        ExportLogsPartialSuccess: {
          fields: { rejectedLogRecords: { type: "int64", id: 1 }, errorMessage: { type: "string", id: 2 } },
        },
        ExportLogsServiceResponse: {
          fields: { partialSuccess: { type: "ExportLogsPartialSuccess", id: 1 } },
        },
        /** google.rpc.Status, the body of an OTLP error response. */
        Status: { fields: { code: { type: "int32", id: 1 }, message: { type: "string", id: 2 } } },
      },
    },
  },
};
const root = protobuf.Root.fromJSON(SCHEMA);
const RequestType = root.lookupType("otlp.ExportLogsServiceRequest");
const ResponseType = root.lookupType("otlp.ExportLogsServiceResponse");
const StatusType = root.lookupType("otlp.Status");

/** A value of an attribute or a body, as JSON: kvlists become objects, bytes base64. */
export type Value = string | number | boolean | null | Value[] | { [k: string]: Value };

/** One LogRecord, from either encoding. Times are nanoseconds since the epoch, as decimal strings. */
export interface OtlpRecord {
  time: bigint;
  observed: bigint;
  severityNumber: number;
  severityText: string;
  body: Value | undefined;
  attributes: Record<string, Value>;
  traceId: string;
  spanId: string;
  flags: number;
  eventName: string;
}
export interface OtlpScope {
  name: string;
  version: string;
  attributes: Record<string, Value>;
}
export interface OtlpBatch {
  resource: Record<string, Value>;
  scope: OtlpScope;
  records: OtlpRecord[];
}

/** A payload that is not an ExportLogsServiceRequest: the request is answered 400. */
export class OtlpPayloadError extends Error {}

// ---- protobuf ----

type Long = { toString(): string };
interface PbAnyValue {
  value?: string;
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | Long;
  doubleValue?: number;
  arrayValue?: { values?: PbAnyValue[] };
  kvlistValue?: { values?: PbKeyValue[] };
  bytesValue?: Uint8Array;
}
interface PbKeyValue {
  key?: string;
  value?: PbAnyValue;
}
interface PbRecord {
  timeUnixNano?: number | Long;
  severityNumber?: number;
  severityText?: string;
  body?: PbAnyValue;
  attributes?: PbKeyValue[];
  flags?: number;
  traceId?: Uint8Array;
  spanId?: Uint8Array;
  observedTimeUnixNano?: number | Long;
  eventName?: string;
}
interface PbRequest {
  resourceLogs?: {
    resource?: { attributes?: PbKeyValue[] };
    scopeLogs?: {
      scope?: { name?: string; version?: string; attributes?: PbKeyValue[] };
      logRecords?: PbRecord[];
    }[];
  }[];
}

const int64 = (v: number | Long | undefined): Value => {
  if (v === undefined) return 0;
  if (typeof v === "number") return v;
  const s = v.toString();
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : s;
};
const nanos = (v: number | Long | string | undefined): bigint => {
  if (v === undefined || v === "") return 0n;
  try {
    const n = BigInt(typeof v === "object" ? v.toString() : v);
    return n < 0n ? 0n : n;
  } catch {
    throw new OtlpPayloadError(`a time is not an unsigned integer of nanoseconds: ${String(v)}`);
  }
};
const double = (d: number): Value => (Number.isFinite(d) ? d : String(d));

function pbValue(v: PbAnyValue | undefined): Value {
  if (!v) return null;
  switch (v.value) {
    case "stringValue":
      return v.stringValue ?? "";
    case "boolValue":
      return v.boolValue ?? false;
    case "intValue":
      return int64(v.intValue);
    case "doubleValue":
      return double(v.doubleValue ?? 0);
    case "arrayValue":
      return (v.arrayValue?.values ?? []).map(pbValue);
    case "kvlistValue":
      return pbAttributes(v.kvlistValue?.values);
    case "bytesValue":
      return Buffer.from(v.bytesValue ?? []).toString("base64");
    default:
      return null;
  }
}
function pbAttributes(kvs: PbKeyValue[] | undefined): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const kv of kvs ?? []) out[kv.key ?? ""] = pbValue(kv.value);
  return out;
}
const hex = (b: Uint8Array | undefined) => (b && b.length > 0 ? Buffer.from(b).toString("hex") : "");

/** Decodes a binary protobuf ExportLogsServiceRequest. */
export function decodeProtobuf(body: Buffer): OtlpBatch[] {
  let msg: PbRequest;
  try {
    // protobufjs verifies proto3 string fields as UTF-8 (Reader.stringVerify): invalid bytes
    // are a decode error here, never U+FFFD stored as text the client did not send.
    msg = RequestType.decode(body) as unknown as PbRequest;
  } catch (e) {
    throw new OtlpPayloadError(`not a protobuf ExportLogsServiceRequest: ${(e as Error).message}`);
  }
  const out: OtlpBatch[] = [];
  for (const rl of msg.resourceLogs ?? []) {
    const resource = pbAttributes(rl.resource?.attributes);
    for (const sl of rl.scopeLogs ?? []) {
      const scope = {
        name: sl.scope?.name ?? "",
        version: sl.scope?.version ?? "",
        attributes: pbAttributes(sl.scope?.attributes),
      };
      out.push({
        resource,
        scope,
        records: (sl.logRecords ?? []).map((r) => ({
          time: nanos(r.timeUnixNano),
          observed: nanos(r.observedTimeUnixNano),
          severityNumber: r.severityNumber ?? 0,
          severityText: r.severityText ?? "",
          body: r.body?.value ? pbValue(r.body) : undefined,
          attributes: pbAttributes(r.attributes),
          traceId: hex(r.traceId),
          spanId: hex(r.spanId),
          flags: r.flags ?? 0,
          eventName: r.eventName ?? "",
        })),
      });
    }
  }
  return out;
}

// ---- OTLP/JSON: lowerCamelCase names, ids in hex, 64-bit integers as numbers or strings ----

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const arr = (v: unknown, what: string): unknown[] => {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new OtlpPayloadError(`${what} must be an array`);
  return v;
};
const obj = (v: unknown, what: string): Json => {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw new OtlpPayloadError(`${what} must be an object`);
  return v;
};
const str = (v: unknown, what: string): string => {
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw new OtlpPayloadError(`${what} must be a string`);
  return v;
};

function jsonValue(v: unknown, what: string): Value {
  if (!isObj(v)) return null;
  if ("stringValue" in v) return str(v.stringValue, what);
  if ("boolValue" in v) return v.boolValue === true;
  if ("intValue" in v) {
    const i = v.intValue;
    if (typeof i === "number" && Number.isInteger(i)) return i;
    if (typeof i === "string" && /^-?\d+$/.test(i)) return int64({ toString: () => i });
    throw new OtlpPayloadError(`${what}.intValue must be an integer`);
  }
  if ("doubleValue" in v) {
    const d = v.doubleValue;
    if (typeof d === "number") return double(d);
    if (typeof d === "string" && ["NaN", "Infinity", "-Infinity"].includes(d)) return d;
    throw new OtlpPayloadError(`${what}.doubleValue must be a number`);
  }
  if ("arrayValue" in v)
    return arr(obj(v.arrayValue, what).values, `${what}.arrayValue.values`).map((x, i) =>
      jsonValue(x, `${what}[${i}]`),
    );
  if ("kvlistValue" in v) return jsonAttributes(obj(v.kvlistValue, what).values, `${what}.kvlistValue`);
  if ("bytesValue" in v) return str(v.bytesValue, `${what}.bytesValue`);
  return null;
}
function jsonAttributes(kvs: unknown, what: string): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const [i, kv] of arr(kvs, what).entries()) {
    const o = obj(kv, `${what}[${i}]`);
    out[str(o.key, `${what}[${i}].key`)] = jsonValue(o.value, `${what}[${i}].value`);
  }
  return out;
}
const jsonId = (v: unknown, bytes: number, what: string): string => {
  const s = str(v, what).toLowerCase();
  if (s === "") return "";
  if (!new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(s))
    throw new OtlpPayloadError(`${what} must be ${bytes * 2} hex digits (OTLP/JSON encodes ids in hex)`);
  return s;
};
const jsonNanos = (v: unknown, what: string): bigint => {
  if (v === undefined || v === null) return 0n;
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === "string" && /^\d+$/.test(v)) return BigInt(v);
  throw new OtlpPayloadError(`${what} must be an unsigned integer of nanoseconds`);
};
const SEVERITY_NAMES = new Map<string, number>(
  ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].flatMap((l, i) =>
    [1, 2, 3, 4].map((k) => [`SEVERITY_NUMBER_${l}${k === 1 ? "" : k}`, i * 4 + k] as [string, number]),
  ),
);

/** Decodes an OTLP/JSON ExportLogsServiceRequest (already parsed from the body). */
export function decodeJson(body: unknown): OtlpBatch[] {
  const req = obj(body, "the request");
  const out: OtlpBatch[] = [];
  for (const [i, rlRaw] of arr(req.resourceLogs, "resourceLogs").entries()) {
    const rl = obj(rlRaw, `resourceLogs[${i}]`);
    const resource = jsonAttributes(
      obj(rl.resource, "resource").attributes,
      `resourceLogs[${i}].resource.attributes`,
    );
    for (const [j, slRaw] of arr(rl.scopeLogs, `resourceLogs[${i}].scopeLogs`).entries()) {
      const at = `resourceLogs[${i}].scopeLogs[${j}]`;
      const sl = obj(slRaw, at);
      const sc = obj(sl.scope, `${at}.scope`);
      const scope = {
        name: str(sc.name, `${at}.scope.name`),
        version: str(sc.version, `${at}.scope.version`),
        attributes: jsonAttributes(sc.attributes, `${at}.scope.attributes`),
      };
      const records = arr(sl.logRecords, `${at}.logRecords`).map((rRaw, k) => {
        const w = `${at}.logRecords[${k}]`;
        const r = obj(rRaw, w);
        const sev = r.severityNumber;
        const severityNumber =
          typeof sev === "number" && Number.isInteger(sev)
            ? sev
            : typeof sev === "string"
              ? (SEVERITY_NAMES.get(sev) ?? 0)
              : 0;
        const flags = r.flags;
        return {
          time: jsonNanos(r.timeUnixNano, `${w}.timeUnixNano`),
          observed: jsonNanos(r.observedTimeUnixNano, `${w}.observedTimeUnixNano`),
          severityNumber,
          severityText: str(r.severityText, `${w}.severityText`),
          body: r.body === undefined || r.body === null ? undefined : jsonValue(r.body, `${w}.body`),
          attributes: jsonAttributes(r.attributes, `${w}.attributes`),
          traceId: jsonId(r.traceId, 16, `${w}.traceId`),
          spanId: jsonId(r.spanId, 8, `${w}.spanId`),
          flags: typeof flags === "number" && Number.isInteger(flags) ? flags : 0,
          eventName: str(r.eventName, `${w}.eventName`),
        };
      });
      out.push({ resource, scope, records });
    }
  }
  return out;
}

// ---- LogRecord → event ----

/** severity_number 1–4 TRACE … 21–24 FATAL; unset: severity_text when it names a level; else INFO. */
export function levelOf(n: number, text: string): Level {
  if (n >= 1 && n <= 24) return LEVELS[Math.floor((n - 1) / 4)] as Level;
  const t = text.trim().toUpperCase();
  if (t === "WARNING") return "WARN";
  if (t === "ERR") return "ERROR";
  if (t === "CRITICAL" || t === "EMERGENCY" || t === "PANIC") return "FATAL";
  return (LEVELS as readonly string[]).includes(t) ? (t as Level) : "INFO";
}

/** Nanoseconds → ISO 8601 (microseconds, what PostgreSQL keeps); out of JS's range → undefined. */
function isoOf(ns: bigint): string | undefined {
  const ms = Number(ns / 1_000_000n);
  if (!Number.isFinite(ms) || ms > 8.64e15) return undefined;
  const iso = new Date(ms).toISOString();
  const micros = Number((ns / 1000n) % 1000n);
  return `${iso.slice(0, 23)}${String(micros).padStart(3, "0")}Z`;
}

/** JSON with object keys sorted: the same content always hashes the same. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (isObj(v))
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(",")}}`;
  // Values here are JSON values (Value): never undefined, functions or symbols.
  return v === undefined ? "null" : JSON.stringify(v);
}

/** A UUID (version 8 layout) over SHA-256 of the parts. */
function uuidOf(h: Buffer): string {
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x80;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

const MAX_MESSAGE = 32 * 1024;
const MAX_SOURCE = 256;

export type Mapped = { ok: true; event: LogEvent } | { ok: false; reason: string };

/**
 * Maps every record of a request to an event, or to why it is refused (reported in
 * partial_success). The event id derives from the writer, the resource, the scope, the
 * record's time (time_unix_nano, else observed_time_unix_nano) and content, and the record's
 * occurrence among identical records of the request: an exporter's retry of the same
 * request names the same events (PostgreSQL's unique key drops the copies), and identical
 * records in one request stay distinct events. When both times are zero the gateway's
 * receive time takes their place: such a record is never lost, but a retry of it is a new
 * event (docs/otlp.md).
 */
export function toEvents(
  batches: OtlpBatch[],
  ctx: { receivedAt: string; writer: string | undefined },
): Mapped[] {
  const out: Mapped[] = [];
  const seen = new Map<string, number>();
  for (const b of batches) {
    const serviceName = b.resource["service.name"];
    const source = (
      typeof serviceName === "string" && serviceName.length > 0 ? serviceName : "unknown_service"
    ).slice(0, MAX_SOURCE);
    // What every record of the batch shares is hashed once; each record's id continues from a
    // copy of it (Hash.copy), and the resource is checked for unstorable strings once.
    const batchHash = createHash("sha256")
      .update("otlp\0")
      .update(ctx.writer ?? "")
      .update("\0")
      .update(canonical(b.resource))
      .update("\0")
      .update(canonical(b.scope))
      .update("\0");
    const sharedWhy = unstorable({ resource: b.resource, scope: b.scope });
    const hasResource = Object.keys(b.resource).length > 0;
    const scopeMeta =
      b.scope.name || b.scope.version || Object.keys(b.scope.attributes).length > 0
        ? {
            "otel.scope": {
              ...(b.scope.name && { name: b.scope.name }),
              ...(b.scope.version && { version: b.scope.version }),
              ...(Object.keys(b.scope.attributes).length > 0 && { attributes: b.scope.attributes }),
            },
          }
        : {};
    for (const r of b.records) {
      if (sharedWhy) {
        out.push({ ok: false, reason: `resource or scope: ${sharedWhy}` });
        continue;
      }
      const when = r.time > 0n ? r.time : r.observed;
      const timestamp = when > 0n ? isoOf(when) : ctx.receivedAt;
      if (timestamp === undefined) {
        out.push({ ok: false, reason: `time ${when} ns is out of range` });
        continue;
      }
      const structured = r.body !== undefined && typeof r.body !== "string";
      const bodyJson = r.body === undefined ? "null" : JSON.stringify(r.body);
      const message = typeof r.body === "string" ? r.body : r.body === undefined ? "" : bodyJson;
      if (message.length > MAX_MESSAGE) {
        out.push({ ok: false, reason: `body is ${message.length} characters; at most ${MAX_MESSAGE}` });
        continue;
      }
      const why = unstorable([
        message,
        r.severityText,
        r.eventName,
        r.attributes,
        structured ? r.body : null,
      ]);
      if (why) {
        out.push({ ok: false, reason: why });
        continue;
      }
      // The record's content. JSON in the order the sender wrote it: a retry of the same
      // request, or the same line read again, is the same bytes in the same order. The time
      // is the record's own when it has one (a file re-read after a Collector restart names
      // the same events: only the observed time differs); else the observed time; else the
      // receive time (a new event on every retry, never a lost one).
      const digest = batchHash
        .copy()
        .update(
          `${r.time > 0n ? `t${r.time}` : r.observed > 0n ? `o${r.observed}` : `r${ctx.receivedAt}`}\0${r.severityNumber}\0${r.severityText}\0${bodyJson}\0${JSON.stringify(r.attributes)}\0${r.traceId}\0${r.spanId}\0${r.flags}\0${r.eventName}`,
        )
        .digest();
      const key = digest.toString("base64");
      const occurrence = seen.get(key) ?? 0;
      seen.set(key, occurrence + 1);
      const eventId = uuidOf(
        occurrence === 0 ? digest : createHash("sha256").update(digest).update(`\0${occurrence}`).digest(),
      );
      const metadata: Record<string, unknown> = {
        ...r.attributes,
        ...(hasResource && { "otel.resource": b.resource }),
        ...scopeMeta,
        ...(structured && { "otel.body": r.body }),
        ...(r.severityText && { "otel.severity_text": r.severityText }),
        ...(r.severityNumber && { "otel.severity_number": r.severityNumber }),
        ...(r.eventName && { "otel.event_name": r.eventName }),
        ...(r.flags && { "otel.flags": r.flags }),
        ...(r.time === 0n && r.observed > 0n && { "otel.time_source": "observed" }),
      };
      const event: LogEvent = {
        eventId,
        timestamp,
        level: levelOf(r.severityNumber, r.severityText),
        source,
        message,
        metadata,
        ...(r.traceId && { traceId: r.traceId }),
        ...(r.spanId && { spanId: r.spanId }),
        schemaVersion: 1,
        receivedAt: ctx.receivedAt,
        ...(ctx.writer !== undefined && { writer: ctx.writer }),
      };
      out.push({ ok: true, event });
    }
  }
  return out;
}

/** The success answer, in the request's encoding. */
export function encodeResponse(
  kind: "protobuf" | "json",
  rejected: number,
  errorMessage: string,
): Buffer | string {
  const partial = rejected > 0 ? { partialSuccess: { rejectedLogRecords: rejected, errorMessage } } : {};
  if (kind === "json")
    return JSON.stringify(
      rejected > 0 ? { partialSuccess: { rejectedLogRecords: String(rejected), errorMessage } } : {},
    );
  return Buffer.from(ResponseType.encode(ResponseType.fromObject(partial)).finish());
}

/** An error answer (google.rpc.Status), in the request's encoding. */
export function encodeStatus(kind: "protobuf" | "json", code: number, message: string): Buffer | string {
  if (kind === "json") return JSON.stringify({ code, message });
  return Buffer.from(StatusType.encode(StatusType.fromObject({ code, message })).finish());
}
