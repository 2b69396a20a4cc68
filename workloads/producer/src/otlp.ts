import { isUtf8 } from "node:buffer";
import { createHash, hash } from "node:crypto";
import protobuf from "protobufjs";
import { LEVELS, type Level, type LogEvent, unstorable } from "../../common/src/event.js";

/**
 * OTLP/HTTP logs (https://opentelemetry.io/docs/specs/otlp/): the ExportLogsServiceRequest
 * in binary protobuf or OTLP/JSON, decoded into one shape, and each LogRecord mapped to an
 * event (docs/otlp.md has the table). The request is read with protobufjs's Reader (below,
 * field numbers from opentelemetry-proto v1: collector/logs, logs, common, resource); the
 * answers, declared here, are encoded by protobufjs.
 */
const SCHEMA = {
  nested: {
    otlp: {
      nested: {
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
const ResponseType = root.lookupType("otlp.ExportLogsServiceResponse");
const StatusType = root.lookupType("otlp.Status");

/** A value of an attribute or a body, as JSON: kvlists become objects, bytes base64. */
export type Value = string | number | boolean | null | Value[] | { [k: string]: Value };

/**
 * One LogRecord, from either encoding. A time is two exact numbers: milliseconds since the
 * epoch and the nanoseconds within that millisecond (both 0: unset); no BigInt on the hot path.
 */
export interface OtlpRecord {
  timeMs: number;
  timeNs: number;
  observedMs: number;
  observedNs: number;
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
//
// The request is read field by field with protobufjs's Reader, straight into OtlpRecords: no
// message objects, no Long, no second copy. Field numbers and wire types are the
// specification's (opentelemetry-proto v1); a tag is (field << 3) | wire type.
// Unknown fields are skipped, as protobuf requires.

type Reader = protobuf.Reader & { buf: Buffer };
/** AnyValue and KeyValueList nest; deeper than protoc's default recursion limit is refused. */
const MAX_NESTING = 100;

/** After a message's fields: a field that ran past the message's own end is a bad payload. */
function ended(r: Reader, end: number, what: string): void {
  if (r.pos !== end) throw new OtlpPayloadError(`${what} runs past the end of its message`);
}

/** The end offset of the length-delimited field at the reader's position. */
function sub(r: Reader): number {
  const len = r.uint32();
  const end = r.pos + len;
  if (end > r.len) throw new OtlpPayloadError(`a field of ${len} bytes runs past the end of its message`);
  return end;
}

/** A proto3 string: UTF-8, verified (invalid bytes are a 400, never U+FFFD stored as text). */
function string(r: Reader): string {
  const end = sub(r);
  const start = r.pos;
  r.pos = end;
  if (!isUtf8(r.buf.subarray(start, end)))
    throw new OtlpPayloadError("a string field is not valid for encoding utf-8");
  return r.buf.toString("utf8", start, end);
}

function bytesHex(r: Reader): string {
  const end = sub(r);
  const start = r.pos;
  r.pos = end;
  return r.buf.toString("hex", start, end);
}

/** A fixed64 of nanoseconds, split exactly into milliseconds and nanoseconds within it. */
function fixedNanos(r: Reader, out: OtlpRecord, observed: boolean): void {
  const lo = r.fixed32();
  const hi = r.fixed32();
  // hi * 2^32 + lo, with 2^32 = 4294 * 10^6 + 967296: every product stays below 2^53.
  const rest = hi * 967_296 + lo;
  const ms = hi * 4294 + Math.floor(rest / 1_000_000);
  const ns = rest % 1_000_000;
  if (observed) {
    out.observedMs = ms;
    out.observedNs = ns;
  } else {
    out.timeMs = ms;
    out.timeNs = ns;
  }
}

/** An int64 attribute: a number, or its decimal string beyond 2^53. */
function int64(r: Reader): Value {
  const v = r.int64() as number | { toString(): string };
  if (typeof v === "number") return v;
  const s = v.toString();
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : s;
}

const double = (d: number): Value => (Number.isFinite(d) ? d : String(d));

/** AnyValue up to `end`; undefined when no value is set (the last one set wins). */
function anyValue(r: Reader, end: number, depth: number): Value | undefined {
  if (depth > MAX_NESTING) throw new OtlpPayloadError(`values nested deeper than ${MAX_NESTING} levels`);
  let v: Value | undefined;
  while (r.pos < end) {
    const tag = r.uint32();
    switch (tag) {
      case 10: // string_value
        v = string(r);
        break;
      case 16: // bool_value
        v = r.bool();
        break;
      case 24: // int_value
        v = int64(r);
        break;
      case 33: // double_value
        v = double(r.double());
        break;
      case 42: {
        // array_value: ArrayValue { repeated AnyValue values = 1 }
        const e = sub(r);
        const items: Value[] = [];
        while (r.pos < e) {
          const t = r.uint32();
          if (t === 10) items.push(anyValue(r, sub(r), depth + 1) ?? null);
          else r.skipType(t & 7);
        }
        ended(r, e, "an array value");
        v = items;
        break;
      }
      case 50: // kvlist_value: KeyValueList { repeated KeyValue values = 1 }
        v = keyValues(r, sub(r), 10, {}, depth + 1);
        break;
      case 58: {
        // bytes_value
        const e = sub(r);
        v = r.buf.toString("base64", r.pos, e);
        r.pos = e;
        break;
      }
      default:
        r.skipType(tag & 7);
    }
  }
  ended(r, end, "a value");
  return v;
}

/** KeyValue { string key = 1; AnyValue value = 2 } into `out`. */
function keyValue(r: Reader, end: number, out: Record<string, Value>, depth: number): void {
  let key = "";
  let value: Value = null;
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag === 10) key = string(r);
    else if (tag === 18) value = anyValue(r, sub(r), depth + 1) ?? null;
    else r.skipType(tag & 7);
  }
  ended(r, end, "an attribute");
  out[key] = value;
}

/** The repeated KeyValue field `tag` of a message up to `end`, into `out`; other fields skipped. */
function keyValues(
  r: Reader,
  end: number,
  tag: number,
  out: Record<string, Value>,
  depth: number,
): Record<string, Value> {
  while (r.pos < end) {
    const t = r.uint32();
    if (t === tag) keyValue(r, sub(r), out, depth);
    else r.skipType(t & 7);
  }
  ended(r, end, "a list of attributes");
  return out;
}

function logRecord(r: Reader, end: number): OtlpRecord {
  const out: OtlpRecord = {
    timeMs: 0,
    timeNs: 0,
    observedMs: 0,
    observedNs: 0,
    severityNumber: 0,
    severityText: "",
    body: undefined,
    attributes: {},
    traceId: "",
    spanId: "",
    flags: 0,
    eventName: "",
  };
  while (r.pos < end) {
    const tag = r.uint32();
    switch (tag) {
      case 9: // time_unix_nano, fixed64
        fixedNanos(r, out, false);
        break;
      case 16: // severity_number
        out.severityNumber = r.int32();
        break;
      case 26: // severity_text
        out.severityText = string(r);
        break;
      case 42: // body
        out.body = anyValue(r, sub(r), 0);
        break;
      case 50: // attributes, one KeyValue each
        keyValue(r, sub(r), out.attributes, 0);
        break;
      case 69: // flags, fixed32
        out.flags = r.fixed32();
        break;
      case 74: // trace_id
        out.traceId = bytesHex(r);
        break;
      case 82: // span_id
        out.spanId = bytesHex(r);
        break;
      case 89: // observed_time_unix_nano, fixed64
        fixedNanos(r, out, true);
        break;
      case 98: // event_name
        out.eventName = string(r);
        break;
      default:
        r.skipType(tag & 7);
    }
  }
  ended(r, end, "a log record");
  return out;
}

/** ScopeLogs { InstrumentationScope scope = 1; repeated LogRecord log_records = 2 }. */
function scopeLogs(r: Reader, end: number, resource: Record<string, Value>): OtlpBatch {
  const batch: OtlpBatch = { resource, scope: { name: "", version: "", attributes: {} }, records: [] };
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag === 18) batch.records.push(logRecord(r, sub(r)));
    else if (tag === 10) {
      // InstrumentationScope { name = 1; version = 2; repeated KeyValue attributes = 3 }
      const e = sub(r);
      while (r.pos < e) {
        const t = r.uint32();
        if (t === 10) batch.scope.name = string(r);
        else if (t === 18) batch.scope.version = string(r);
        else if (t === 26) keyValue(r, sub(r), batch.scope.attributes, 0);
        else r.skipType(t & 7);
      }
      ended(r, e, "a scope");
    } else r.skipType(tag & 7);
  }
  ended(r, end, "a scope's logs");
  return batch;
}

/** Decodes a binary protobuf ExportLogsServiceRequest. */
export function decodeProtobuf(body: Buffer): OtlpBatch[] {
  const r = protobuf.Reader.create(body) as Reader;
  const out: OtlpBatch[] = [];
  try {
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag !== 10) {
        r.skipType(tag & 7);
        continue;
      }
      // ResourceLogs { Resource resource = 1; repeated ScopeLogs scope_logs = 2 }; the resource
      // may come after its scopes (protobuf fields are in any order).
      const end = sub(r);
      const resource: Record<string, Value> = {};
      const batches: OtlpBatch[] = [];
      while (r.pos < end) {
        const t = r.uint32();
        if (t === 18) batches.push(scopeLogs(r, sub(r), resource));
        else if (t === 10)
          keyValues(r, sub(r), 10, resource, 0); // Resource { repeated KeyValue attributes = 1 }
        else r.skipType(t & 7);
      }
      ended(r, end, "a resource's logs");
      out.push(...batches);
    }
  } catch (e) {
    // The Reader's own errors (a truncated varint, a bad wire type) and ours alike.
    throw new OtlpPayloadError(`not a protobuf ExportLogsServiceRequest: ${(e as Error).message}`);
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
    if (typeof i === "string" && /^-?\d+$/.test(i)) {
      const n = Number(i);
      return Number.isSafeInteger(n) ? n : i;
    }
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
/** Unsigned nanoseconds (a number or a decimal string) as [milliseconds, nanoseconds within]. */
const jsonNanos = (v: unknown, what: string): [number, number] => {
  if (v === undefined || v === null) return [0, 0];
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return [Math.floor(v / 1e6), v % 1e6];
  if (typeof v === "string" && /^\d+$/.test(v))
    return v.length <= 6 ? [0, Number(v)] : [Number(v.slice(0, -6)), Number(v.slice(-6))];
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
        const [timeMs, timeNs] = jsonNanos(r.timeUnixNano, `${w}.timeUnixNano`);
        const [observedMs, observedNs] = jsonNanos(r.observedTimeUnixNano, `${w}.observedTimeUnixNano`);
        return {
          timeMs,
          timeNs,
          observedMs,
          observedNs,
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

/** The ISO 8601 text of the last second formatted (records of a batch mostly share seconds). */
let isoSecond = -1;
let isoPrefix = "";
const pad3 = (n: number) => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n));

/** Milliseconds and nanoseconds → ISO 8601 to the microsecond (what PostgreSQL keeps); beyond JS's dates → undefined. */
function isoOf(ms: number, ns: number): string | undefined {
  if (ms > 8.64e15) return undefined;
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20); // 2026-12-01T10:00:00.
    isoSecond = second;
  }
  return `${isoPrefix}${pad3(ms - second * 1000)}${pad3(Math.floor(ns / 1000))}Z`;
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

/**
 * A UUID (version 8 layout) over the first 16 bytes of a SHA-256 digest, from its hex: the
 * version nibble set to 8, the variant's two top bits to 10. (Hex is the digest's fast path
 * out of OpenSSL: a Buffer costs Node about a microsecond more.)
 */
function uuidOf(hex: string): string {
  const variant = ((parseInt(hex.charAt(16), 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

const MAX_MESSAGE = 32 * 1024;
const MAX_SOURCE = 256;

/**
 * What the gateway needs of an event to route it (its id, source and level), and the JSON it
 * travels in through Kafka, made here once (see toEvents): the JSON is the event; no object
 * copy of it is built.
 */
export type Mapped =
  | { ok: true; event: Pick<LogEvent, "eventId" | "source" | "level">; json: string }
  | { ok: false; reason: string };

/** A JSON object's text with more members: `{"a":1}` + `"b":2` → `{"a":1,"b":2}`. */
const withMembers = (objectJson: string, members: string): string =>
  members === ""
    ? objectJson
    : objectJson === "{}"
      ? `{${members.slice(1)}}`
      : `${objectJson.slice(0, -1)}${members}}`;

/**
 * Maps every record of a request to an event, or to why it is refused (reported in
 * partial_success). The event id derives from the writer, the resource, the scope, the
 * record's time (time_unix_nano, else observed_time_unix_nano) and content, and the record's
 * occurrence among identical records of the request: an exporter's retry of the same
 * request names the same events (PostgreSQL's unique key drops the copies), and identical
 * records in one request stay distinct events. When both times are zero the gateway's
 * receive time takes their place: such a record is never lost, but a retry of it is a new
 * event (docs/otlp.md).
 *
 * The Kafka JSON is assembled from parts serialized once: the resource and the scope once
 * per batch, the attributes once per record (also what the id hashes). It parses to exactly
 * `event` (an attribute named like an `otel.*` key is overridden, as in the object: JSON's
 * last member wins).
 */
export function toEvents(
  batches: OtlpBatch[],
  ctx: { receivedAt: string; writer: string | undefined },
): Mapped[] {
  const out: Mapped[] = [];
  const seen = new Map<string, number>();
  const tail = `,"schemaVersion":1,"receivedAt":${JSON.stringify(ctx.receivedAt)}${
    ctx.writer !== undefined ? `,"writer":${JSON.stringify(ctx.writer)}` : ""
  }}`;
  for (const b of batches) {
    const serviceName = b.resource["service.name"];
    const source = (
      typeof serviceName === "string" && serviceName.length > 0 ? serviceName : "unknown_service"
    ).slice(0, MAX_SOURCE);
    const sourceJson = JSON.stringify(source);
    // What every record of the batch shares is hashed once; each record's id hashes this
    // digest with the record's own content. The resource is checked for unstorable strings once.
    const batchDigest = createHash("sha256")
      .update(`otlp\0${ctx.writer ?? ""}\0${canonical(b.resource)}\0${canonical(b.scope)}\0`)
      .digest("hex");
    const sharedWhy = unstorable({ resource: b.resource, scope: b.scope });
    const scopeValue =
      b.scope.name || b.scope.version || Object.keys(b.scope.attributes).length > 0
        ? {
            ...(b.scope.name && { name: b.scope.name }),
            ...(b.scope.version && { version: b.scope.version }),
            ...(Object.keys(b.scope.attributes).length > 0 && { attributes: b.scope.attributes }),
          }
        : undefined;
    const hasResource = Object.keys(b.resource).length > 0;
    const sharedMembers = `${hasResource ? `,"otel.resource":${JSON.stringify(b.resource)}` : ""}${
      scopeValue ? `,"otel.scope":${JSON.stringify(scopeValue)}` : ""
    }`;
    for (const r of b.records) {
      if (sharedWhy) {
        out.push({ ok: false, reason: `resource or scope: ${sharedWhy}` });
        continue;
      }
      const hasTime = r.timeMs > 0 || r.timeNs > 0;
      const hasObserved = r.observedMs > 0 || r.observedNs > 0;
      const timestamp = hasTime
        ? isoOf(r.timeMs, r.timeNs)
        : hasObserved
          ? isoOf(r.observedMs, r.observedNs)
          : ctx.receivedAt;
      if (timestamp === undefined) {
        out.push({ ok: false, reason: "its time is out of range" });
        continue;
      }
      const structured = r.body !== undefined && typeof r.body !== "string";
      const bodyJson = r.body === undefined ? "null" : JSON.stringify(r.body);
      const message = typeof r.body === "string" ? r.body : r.body === undefined ? "" : bodyJson;
      // A string body is the message as is: its JSON is the one serialized above.
      const messageJson = typeof r.body === "string" ? bodyJson : JSON.stringify(message);
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
      const attributesJson = JSON.stringify(r.attributes);
      // The record's content, in the order the sender wrote it: a retry of the same request,
      // or the same line read again, is the same content in the same order. The time is the
      // record's own when it has one (a file re-read after a Collector restart names the same
      // events: only the observed time differs); else the observed time; else the receive
      // time (a new event on every retry, never a lost one).
      const when = hasTime
        ? `t${r.timeMs}.${r.timeNs}`
        : hasObserved
          ? `o${r.observedMs}.${r.observedNs}`
          : `r${ctx.receivedAt}`;
      const digest = hash(
        "sha256",
        `${batchDigest}\0${when}\0${r.severityNumber}\0${r.severityText}\0${bodyJson}\0${attributesJson}\0${r.traceId}\0${r.spanId}\0${r.flags}\0${r.eventName}`,
        "hex",
      );
      let eventId = uuidOf(digest);
      const occurrence = seen.get(eventId) ?? 0;
      seen.set(eventId, occurrence + 1);
      if (occurrence > 0) eventId = uuidOf(hash("sha256", `${eventId}\0${occurrence}`, "hex"));
      const level = levelOf(r.severityNumber, r.severityText);
      // metadata: the attributes, then the otel.* members (they win over a same-named
      // attribute: JSON's last member wins, as the consumer's parser reads it).
      let members = sharedMembers;
      if (structured) members += `,"otel.body":${bodyJson}`;
      if (r.severityText) members += `,"otel.severity_text":${JSON.stringify(r.severityText)}`;
      if (r.severityNumber) members += `,"otel.severity_number":${r.severityNumber}`;
      if (r.eventName) members += `,"otel.event_name":${JSON.stringify(r.eventName)}`;
      if (r.flags) members += `,"otel.flags":${r.flags}`;
      if (!hasTime && hasObserved) members += ',"otel.time_source":"observed"';
      const json = `{"eventId":"${eventId}","timestamp":"${timestamp}","level":"${level}","source":${sourceJson},"message":${messageJson},"metadata":${withMembers(attributesJson, members)}${r.traceId ? `,"traceId":"${r.traceId}"` : ""}${
        r.spanId ? `,"spanId":"${r.spanId}"` : ""
      }${tail}`;
      const event = { eventId, source, level };
      out.push({ ok: true, event, json });
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
