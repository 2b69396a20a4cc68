import { createHash, getRandomValues } from "node:crypto";
import { v7 as uuidv7 } from "uuid";
import { z } from "zod";

/** Log levels, in increasing severity. */
export const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] as const;
export type Level = (typeof LEVELS)[number];

/** The event schema version the gateway writes. Older versions stay accepted (see upgrade). */
export const CURRENT_SCHEMA_VERSION = 1;

const MAX_MESSAGE = 32 * 1024;
const MAX_STACK = 64 * 1024;
/**
 * How deep objects and arrays may nest inside an event (`metadata` is at 1). PostgreSQL's jsonb
 * parser recurses, and so does JSON.stringify.
 */
export const MAX_METADATA_DEPTH = 16;

/**
 * Why a value could not be stored as text or jsonb by PostgreSQL, or undefined. PostgreSQL
 * refuses NUL in text and jsonb, and a lone UTF-16 surrogate in jsonb ("Unicode low
 * surrogate must follow a high surrogate"); deep nesting costs its recursive parser stack.
 * Found here, such a value is a 400 for the request that sent it, not a poison record the
 * consumer must isolate later. Iterative: a hostile depth cannot overflow this stack either.
 */
export function unstorable(value: unknown, maxDepth = MAX_METADATA_DEPTH): string | undefined {
  // The common case, every value fine, without building a path: two parallel stacks.
  const values: unknown[] = [value];
  const depths: number[] = [0];
  let bad = false;
  while (values.length > 0 && !bad) {
    const v = values.pop();
    const depth = depths.pop() ?? 0;
    if (typeof v === "string") bad = badString(v) !== undefined;
    else if (typeof v === "object" && v !== null) {
      if (depth > maxDepth) bad = true;
      else if (Array.isArray(v))
        for (const child of v) {
          values.push(child);
          depths.push(depth + 1);
        }
      else
        for (const k in v) {
          if (badString(k)) {
            bad = true;
            break;
          }
          values.push((v as Record<string, unknown>)[k]);
          depths.push(depth + 1);
        }
    }
  }
  return bad ? whereUnstorable(value, maxDepth) : undefined;
}

const badString = (s: string) =>
  s.includes("\0")
    ? "must not contain NUL (\\u0000)"
    : s.isWellFormed()
      ? undefined
      : "must not contain a lone UTF-16 surrogate";

/** The same walk, naming where the first refused value is (run only when there is one). */
function whereUnstorable(value: unknown, maxDepth: number): string | undefined {
  const stack: { v: unknown; path: string; depth: number }[] = [{ v: value, path: "", depth: 0 }];
  for (let item = stack.pop(); item; item = stack.pop()) {
    const { v, path, depth } = item;
    if (typeof v === "string") {
      const why = badString(v);
      if (why) return `${path || "value"}: ${why}`;
    } else if (typeof v === "object" && v !== null) {
      if (depth > maxDepth) return `${path}: nested deeper than ${maxDepth} levels`;
      for (const [k, child] of Object.entries(v)) {
        const at = Array.isArray(v) ? `${path}[${k}]` : path ? `${path}.${k}` : k;
        const why = Array.isArray(v) ? undefined : badString(k);
        if (why) return `${at} (a key): ${why}`;
        stack.push({ v: child, path: at, depth: depth + 1 });
      }
    }
  }
  return undefined;
}

/** One log event as a client sends it. Unknown fields are refused, so typos surface as 400s. */
export const LogEventInput = z
  .strictObject({
    eventId: z.uuid().optional(),
    timestamp: z.iso.datetime({ offset: true }).optional(),
    level: z.enum(LEVELS, { error: `level must be one of ${LEVELS.join(", ")}` }),
    source: z.string().min(1).max(256),
    message: z.string().min(1).max(MAX_MESSAGE),
    metadata: z.record(z.string(), z.unknown()).optional(),
    stackTrace: z.string().max(MAX_STACK).optional(),
    userId: z.string().max(256).optional(),
    traceId: z.string().max(128).optional(),
    spanId: z.string().max(64).optional(),
    schemaVersion: z.number().int().min(1).max(CURRENT_SCHEMA_VERSION).optional(),
  })
  .check((ctx) => {
    // Only strings and metadata: the other fields are short strings checked the same way.
    const why = unstorable(ctx.value);
    if (why) ctx.issues.push({ code: "custom", message: why, input: ctx.value, continue: false });
  });
export type LogEventInput = z.infer<typeof LogEventInput>;

/** The event as it travels through Kafka into PostgreSQL: every field the sink needs is set. */
export const LogEvent = z.object({
  eventId: z.uuid(),
  timestamp: z.iso.datetime({ offset: true }),
  level: z.enum(LEVELS),
  source: z.string().min(1).max(256),
  message: z.string().max(MAX_MESSAGE),
  metadata: z.record(z.string(), z.unknown()).default({}),
  stackTrace: z.string().max(MAX_STACK).optional(),
  userId: z.string().max(256).optional(),
  traceId: z.string().max(128).optional(),
  /** The OpenTelemetry span id (hex) of an event that came in over OTLP, or a client's. */
  spanId: z.string().max(64).optional(),
  schemaVersion: z.number().int().min(1),
  receivedAt: z.iso.datetime({ offset: true }),
  /**
   * "gateway" when the gateway named the event (no eventId, no Idempotency-Key): such an
   * event is committed to Kafka once and never retried under the same id, so the sink skips
   * its deduplication key. Absent (a client-named event, or a writer that does not say):
   * deduplicated by id (docs/storage.md).
   */
  idOrigin: z.literal("gateway").optional(),
  /** The name of the API key that wrote the event (never the key); absent without authentication. */
  writer: z.string().min(1).max(128).optional(),
});
export type LogEvent = z.infer<typeof LogEvent>;

/**
 * Where a reader keeps the fields of an event it does not know (a newer gateway's, during a
 * rolling upgrade): `metadata["logpipeline.unknownFields"]`, losslessly, rather than dropping
 * them as a plain schema would.
 */
export const UNKNOWN_FIELDS_KEY = "logpipeline.unknownFields";
const KNOWN_FIELDS = new Set(Object.keys(LogEvent.shape));
const LooseLogEvent = LogEvent.loose();

/**
 * The tolerant reader of an event from Kafka: validated as LogEvent, with any field this
 * release does not know moved into metadata under UNKNOWN_FIELDS_KEY (kept with those a
 * previous hop kept there already).
 */
export function readEvent(json: unknown): ReturnType<typeof LogEvent.safeParse> {
  const parsed = LooseLogEvent.safeParse(json);
  if (!parsed.success) return parsed;
  const data: Record<string, unknown> = parsed.data;
  const unknownKeys = Object.keys(data).filter((k) => !KNOWN_FIELDS.has(k));
  if (unknownKeys.length === 0) return parsed;
  const known = Object.fromEntries(Object.entries(data).filter(([k]) => KNOWN_FIELDS.has(k))) as LogEvent;
  const kept = known.metadata[UNKNOWN_FIELDS_KEY];
  known.metadata = {
    ...known.metadata,
    [UNKNOWN_FIELDS_KEY]: {
      ...(typeof kept === "object" && kept !== null ? kept : {}),
      ...Object.fromEntries(unknownKeys.map((k) => [k, data[k]])),
    },
  };
  return { success: true, data: known };
}

/**
 * An event id derived from a client's Idempotency-Key: the same key from the same client
 * always names the same event, so a retry deduplicates even without Redis (the database's
 * unique key catches it). UUID version 8 layout over SHA-256.
 */
export function eventIdFromIdempotencyKey(clientId: string, key: string): string {
  const h = createHash("sha256").update(clientId).update("\0").update(key).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x80; // version 8
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80; // RFC 4122 variant
  const hex = h.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

// Random bits for event ids from a pool refilled 1,024 ids at a time: the uuid package asks
// the system for 16 bytes per id, which was 12 % of the gateway's CPU under batch load.
const randomPool = new Uint8Array(16 * 1024);
let randomAt = randomPool.length;
function random16(): Uint8Array {
  if (randomAt + 16 > randomPool.length) {
    getRandomValues(randomPool);
    randomAt = 0;
  }
  const r = randomPool.subarray(randomAt, randomAt + 16);
  randomAt += 16;
  return r;
}

/** Completes a validated input into the event that is produced. */
export function normalizeEvent(
  input: LogEventInput,
  ctx: {
    now: Date;
    idempotencyEventId?: string | undefined;
    receivedAt?: string;
    /** The writing API key's name. */
    writer?: string | undefined;
  },
): LogEvent {
  // A batch passes `receivedAt` (now as ISO 8601) made once for all its events.
  const receivedAt = ctx.receivedAt ?? ctx.now.toISOString();
  const named = input.eventId ?? ctx.idempotencyEventId;
  return {
    eventId: named ?? uuidv7({ msecs: ctx.now.getTime(), random: random16() }),
    timestamp: input.timestamp ?? receivedAt,
    level: input.level,
    source: input.source,
    message: input.message,
    metadata: input.metadata ?? {},
    ...(input.stackTrace !== undefined && { stackTrace: input.stackTrace }),
    ...(input.userId !== undefined && { userId: input.userId }),
    ...(input.traceId !== undefined && { traceId: input.traceId }),
    ...(input.spanId !== undefined && { spanId: input.spanId }),
    schemaVersion: input.schemaVersion ?? CURRENT_SCHEMA_VERSION,
    receivedAt,
    ...(named === undefined && { idOrigin: "gateway" as const }),
    ...(ctx.writer !== undefined && { writer: ctx.writer }),
  };
}

/** Turns a zod error into short reasons a client can act on ("level: must be one of …"). */
export function reasons(error: z.ZodError): string[] {
  return error.issues.map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message));
}
