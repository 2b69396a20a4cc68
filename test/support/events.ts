import { randomUUID } from "node:crypto";
import type { LogEvent } from "../../workloads/common/src/event.js";

/** The test client's sequence number: one per event made in this process, never reused. */
let clientSeq = 0;

/**
 * A valid event as the gateway would produce it. Its metadata carries `seq`, the client's
 * sequence number, so an audit can count a duplicate even when it was stored under another
 * event id or Kafka position.
 */
export function makeEvent(i: number, overrides: Partial<LogEvent> = {}): LogEvent {
  const now = new Date().toISOString();
  return {
    eventId: randomUUID(),
    timestamp: now,
    level: (["INFO", "WARN", "ERROR", "DEBUG"] as const)[i % 4] ?? "INFO",
    source: `svc-${i % 7}`,
    message: `event number ${i}`,
    metadata: { i, seq: ++clientSeq },
    schemaVersion: 1,
    receivedAt: now,
    ...overrides,
  };
}
