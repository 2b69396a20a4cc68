import { randomUUID } from "node:crypto";
import type { LogEvent } from "../../workloads/common/src/event.js";

/** A valid event as the gateway would produce it. */
export function makeEvent(i: number, overrides: Partial<LogEvent> = {}): LogEvent {
  const now = new Date().toISOString();
  return {
    eventId: randomUUID(),
    timestamp: now,
    level: (["INFO", "WARN", "ERROR", "DEBUG"] as const)[i % 4] ?? "INFO",
    source: `svc-${i % 7}`,
    message: `event number ${i}`,
    metadata: { i },
    schemaVersion: 1,
    receivedAt: now,
    ...overrides,
  };
}
