/**
 * The data-divergence comparison, pure: one partition's closed window of offsets, the
 * committed records Kafka holds there against what the ledger holds there (rows, skipped
 * duplicates, dead letters — each keeps the partition and offset of the record it came
 * from, written in the same transaction as the consumer's position).
 *
 * Per committed record (offset o, event id e):
 *   - no ledger entry at o matches it (a row or skipped duplicate with id e, or a dead
 *     letter) → the event is missing; any other entries at o are spurious;
 *   - one matches → delivered; every further entry at o is a duplicate (the record stored
 *     more than once).
 * Entries at offsets with no committed record (aborted transactions, transaction markers,
 * or rows no record ever produced) are spurious. Aborted records and markers are never
 * read (read_committed), so they can never count as missing.
 */

export interface KafkaRecordRef {
  offset: number;
  /** The event id in the record's value; undefined for a record that is not an event (poison). */
  eventId?: string | undefined;
  /** The event's stored time (ms): the retention drops partitions by it. */
  eventTime?: number | undefined;
}

export interface LedgerEntry {
  offset: number;
  eventId: string | null;
  kind: "row" | "duplicate" | "deadLetter";
}

export interface WindowFindings {
  kafkaRecords: number;
  ledgerEntries: number;
  missing: number;
  duplicated: number;
  spurious: number;
  /** Records with no entry whose event is older than the retention: deleted by it, not missing. */
  expired: number;
  /** Event ids (or `offset N` when a record has none), at most `sampleLimit` each. */
  samples: { missing: string[]; duplicated: string[]; spurious: string[] };
}

const describe = (offset: number, eventId: string | null | undefined) => eventId ?? `offset ${offset}`;

function matches(entry: LedgerEntry, record: KafkaRecordRef): boolean {
  if (entry.kind === "deadLetter")
    return entry.eventId === null || record.eventId === undefined || entry.eventId === record.eventId;
  return record.eventId !== undefined && entry.eventId === record.eventId;
}

/**
 * `expiredBefore` (ms), when the pipeline has a retention: a record whose event is older had
 * its partition dropped by the retention, so no entry for it is expected.
 */
export function compareWindow(
  records: KafkaRecordRef[],
  entries: LedgerEntry[],
  sampleLimit = 10,
  expiredBefore?: number,
): WindowFindings {
  const byOffset = new Map<number, LedgerEntry[]>();
  for (const e of entries) {
    const list = byOffset.get(e.offset);
    if (list) list.push(e);
    else byOffset.set(e.offset, [e]);
  }
  const f: WindowFindings = {
    kafkaRecords: records.length,
    ledgerEntries: entries.length,
    missing: 0,
    duplicated: 0,
    spurious: 0,
    expired: 0,
    samples: { missing: [], duplicated: [], spurious: [] },
  };
  const note = (kind: "missing" | "duplicated" | "spurious", what: string) => {
    f[kind]++;
    if (f.samples[kind].length < sampleLimit) f.samples[kind].push(what);
  };
  const committed = new Set<number>();
  for (const r of records) {
    committed.add(r.offset);
    const at = byOffset.get(r.offset) ?? [];
    const matching = at.filter((e) => matches(e, r));
    if (matching.length === 0) {
      const expired = expiredBefore !== undefined && r.eventTime !== undefined && r.eventTime < expiredBefore;
      if (expired) f.expired++;
      else note("missing", describe(r.offset, r.eventId));
      for (const e of at) note("spurious", describe(e.offset, e.eventId));
    } else {
      for (let i = 1; i < at.length; i++) note("duplicated", describe(r.offset, r.eventId));
    }
  }
  for (const e of entries) if (!committed.has(e.offset)) note("spurious", describe(e.offset, e.eventId));
  return f;
}

/** The window each partition is checked over: the latest `maxRecords` offsets the consumer has passed. */
export function closedWindow(
  logStart: number,
  storedNext: number,
  maxOffsets: number,
): { from: number; to: number } {
  const to = Math.max(0, storedNext);
  return { from: Math.max(logStart, to - maxOffsets, 0), to };
}

/**
 * The older window a check sweeps besides the latest one, so that over successive checks
 * every offset the consumer has passed is compared, not only the latest: it walks down from
 * just below the latest window to the log start, one window per check, then starts again
 * below the (by then higher) latest window. `cursor` is where the previous sweep window
 * began (undefined at first); the next cursor is the returned window's `from`. Undefined
 * when nothing lies below the latest window.
 */
export function sweepWindow(
  logStart: number,
  latest: { from: number; to: number },
  cursor: number | undefined,
  maxOffsets: number,
): { from: number; to: number } | undefined {
  const top = cursor !== undefined && cursor > logStart && cursor <= latest.from ? cursor : latest.from;
  if (top <= logStart) return undefined;
  return { from: Math.max(logStart, top - maxOffsets), to: top };
}

/** Where a partition's stored position stood, and since when. */
export interface PositionMark {
  storedNext: number;
  since: number;
}

/**
 * A partition is stuck when its stored position has not moved for `stuckAfterMs` while
 * committed work waits beyond it (lag > 0). Returns the new mark to keep.
 */
export function stuckState(
  previous: PositionMark | undefined,
  current: { storedNext: number; lag: number },
  now: number,
  stuckAfterMs: number,
): { stuck: boolean; mark: PositionMark } {
  const mark =
    previous && previous.storedNext === current.storedNext
      ? previous
      : { storedNext: current.storedNext, since: now };
  return { stuck: current.lag > 0 && previous !== undefined && now - mark.since >= stuckAfterMs, mark };
}
