import { describe, expect, it } from "vitest";
import {
  eventIdFromIdempotencyKey,
  LogEventInput,
  MAX_METADATA_DEPTH,
  normalizeEvent,
  reasons,
  unstorable,
} from "./event.js";

describe("LogEventInput", () => {
  it("accepts a minimal event and refuses unknown fields, levels and wrong types with reasons", () => {
    expect(LogEventInput.safeParse({ level: "INFO", source: "s", message: "m" }).success).toBe(true);
    const bad = LogEventInput.safeParse({ level: "LOUD", source: 1, message: "m", sevrity: 2 });
    expect(bad.success).toBe(false);
    if (!bad.success) {
      const r = reasons(bad.error).join("\n");
      expect(r).toMatch(/level: level must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL/);
      expect(r).toMatch(/source:/);
      expect(r).toMatch(/sevrity/);
    }
  });

  it("accepts the current schema version and refuses a future one", () => {
    expect(
      LogEventInput.safeParse({ level: "INFO", source: "s", message: "m", schemaVersion: 1 }).success,
    ).toBe(true);
    expect(
      LogEventInput.safeParse({ level: "INFO", source: "s", message: "m", schemaVersion: 2 }).success,
    ).toBe(false);
  });
});

describe("normalizeEvent", () => {
  const now = new Date("2026-11-22T10:00:00.000Z");

  it("assigns a time-ordered id, the receipt time and defaults", () => {
    const a = normalizeEvent({ level: "INFO", source: "s", message: "m" }, { now });
    const b = normalizeEvent(
      { level: "INFO", source: "s", message: "m" },
      { now: new Date(now.getTime() + 1) },
    );
    expect(a.eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(a.eventId < b.eventId).toBe(true);
    expect(a).toMatchObject({
      timestamp: now.toISOString(),
      receivedAt: now.toISOString(),
      metadata: {},
      schemaVersion: 1,
    });
  });

  it("keeps a client's event id, else uses the Idempotency-Key's", () => {
    const id = "01890000-0000-7000-8000-000000000001";
    expect(
      normalizeEvent(
        { level: "INFO", source: "s", message: "m", eventId: id },
        { now, idempotencyEventId: "x" },
      ).eventId,
    ).toBe(id);
    expect(
      normalizeEvent({ level: "INFO", source: "s", message: "m" }, { now, idempotencyEventId: "k" }).eventId,
    ).toBe("k");
  });
});

describe("eventIdFromIdempotencyKey", () => {
  it("is deterministic per client and key, a valid UUID, and differs across clients", () => {
    const a = eventIdFromIdempotencyKey("key:alice", "order-1");
    expect(eventIdFromIdempotencyKey("key:alice", "order-1")).toBe(a);
    expect(eventIdFromIdempotencyKey("key:bob", "order-1")).not.toBe(a);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe("unstorable values", () => {
  const base = { level: "INFO", source: "s", message: "m" };
  const refused = (e: unknown) => {
    const r = LogEventInput.safeParse(e);
    return r.success ? undefined : reasons(r.error).join("; ");
  };

  it("refuses NUL and lone surrogates in any string or key, naming where", () => {
    expect(refused({ ...base, message: "a\u0000b" })).toMatch(/message: must not contain NUL/);
    expect(refused({ ...base, metadata: { a: { b: ["ok", "x\ud800"] } } })).toMatch(
      /metadata\.a\.b\[1\]: must not contain a lone UTF-16 surrogate/,
    );
    expect(refused({ ...base, metadata: { "k\udc00": 1 } })).toMatch(/\(a key\): must not contain a lone/);
    // A surrogate pair is a well-formed character and is stored.
    expect(refused({ ...base, message: "emoji \ud83d\ude00" })).toBeUndefined();
  });

  it("bounds nesting without recursion, so a hostile depth cannot overflow the stack", () => {
    const nest = (n: number) => {
      let v: unknown = 1;
      for (let i = 0; i < n; i++) v = { a: v };
      return v as Record<string, unknown>;
    };
    expect(refused({ ...base, metadata: nest(MAX_METADATA_DEPTH) })).toBeUndefined();
    expect(refused({ ...base, metadata: nest(MAX_METADATA_DEPTH + 1) })).toMatch(
      /nested deeper than 16 levels/,
    );
    expect(unstorable(nest(200_000))).toMatch(/nested deeper/);
  });
});
