import type { LogEvent } from "../../common/src/event.js";

/** FNV-1a, 32 bit: stable across processes and versions (a partitioner must never change). */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export interface PartitionPlan {
  partitions: number;
  /** Levels routed to the reserved partitions (default ERROR, FATAL). */
  priorityLevels: ReadonlySet<string>;
  /** The first `reserved` partitions carry only priority events (0 disables). */
  reserved: number;
}

/**
 * Priority levels go to the reserved partitions (so a flood of INFO never delays an ERROR);
 * every other event goes by hash of its source, so one source's events stay in order.
 */
export function choosePartition(event: Pick<LogEvent, "level" | "source">, plan: PartitionPlan): number {
  const reserved = plan.reserved > 0 && plan.reserved < plan.partitions ? plan.reserved : 0;
  const h = fnv1a(event.source);
  if (reserved > 0 && plan.priorityLevels.has(event.level)) return h % reserved;
  return reserved + (h % (plan.partitions - reserved));
}
