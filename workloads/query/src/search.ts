import type pg from "pg";
import type { LedgerNames } from "../../common/src/ledger.js";
import {
  EVENT_READ_COLUMNS,
  eventsRelation,
  FTS_EXPR,
  legacyExists,
  listPartitions,
  type PartitionInfo,
} from "../../common/src/storage.js";
import { BudgetExhausted, type QuerySession } from "./session.js";

/** Where a page stops: the (time, event id) of the last item, newest first; the next page is older. */
export interface Cursor {
  ts: string;
  id: string;
}

export interface SearchFilters {
  levels?: string[] | undefined;
  source?: string | undefined;
  q?: string | undefined;
  traceId?: string | undefined;
  userId?: string | undefined;
  /** A scoped reader's writers: only their events. */
  writers?: string[] | undefined;
}

export interface SearchResult<R> {
  rows: R[];
  /** More may exist: continue from here. */
  next: Cursor | undefined;
  /** The budget ran out before the range was searched: `next` continues where it stopped. */
  partial: { reason: string; searchedBackTo: string } | undefined;
}

/** The smallest event id: a cursor (t, MIN_ID) continues with everything strictly before t. */
export const MIN_ID = "00000000-0000-0000-0000-000000000000";

/**
 * A partition not yet indexed (the one taking writes, or one closed moments ago) is searched
 * in slices this long, newest first, each a bounded statement; an indexed one as a whole.
 */
const SLICE_MS = 10 * 60_000;

/** The catalog is read at most this often per process. */
const CATALOG_TTL_MS = 5_000;

export class Catalog {
  private at = 0;
  private value: { partitions: PartitionInfo[]; legacy: boolean } | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly names: LedgerNames,
  ) {}

  async get(): Promise<{ partitions: PartitionInfo[]; legacy: boolean }> {
    if (!this.value || performance.now() - this.at > CATALOG_TTL_MS) {
      const [all, legacy] = await Promise.all([
        listPartitions(this.pool, this.names.storage),
        legacyExists(this.pool, this.names.storage),
      ]);
      this.value = { partitions: all.filter((p) => p.table === "events"), legacy };
      this.at = performance.now();
    }
    return this.value;
  }
}

interface Slice {
  relation: string;
  from: number;
  to: number;
}

/**
 * Events in [from, to) matching the filters, newest first, `limit` at most, continuing after
 * `cursor`. Walks the time partitions newest first, each one by its own indexes (the
 * full-text index once the partition is closed), until the page is full, the range is done,
 * or the budget runs out — then the answer says so and its cursor continues exactly where
 * the search stopped: never an error, never silently incomplete.
 */
export async function search<R extends pg.QueryResultRow>(
  session: QuerySession,
  names: LedgerNames,
  catalog: Catalog,
  range: { from: Date; to: Date },
  filters: SearchFilters,
  limit: number,
  cursor: Cursor | undefined,
): Promise<SearchResult<R>> {
  const { partitions, legacy } = await catalog.get();
  const upper = Math.min(range.to.getTime(), cursor ? Date.parse(cursor.ts) + 1 : Infinity);
  const lower = range.from.getTime();
  const slices: Slice[] = legacy
    ? [{ relation: eventsRelation(names, true), from: lower, to: upper }]
    : slicesOf(names, partitions, lower, upper, filters);
  const rows: R[] = [];
  for (const slice of slices) {
    const need = limit + 1 - rows.length;
    const where = [`ts >= $1`, `ts < $2`];
    const args: unknown[] = [new Date(slice.from), new Date(slice.to)];
    const arg = (v: unknown) => `$${String(args.push(v))}`;
    if (filters.levels) where.push(`level = ANY(${arg(filters.levels)}::text[])`);
    if (filters.source) where.push(`source = ${arg(filters.source)}`);
    if (filters.traceId) where.push(`trace_id = ${arg(filters.traceId)}`);
    if (filters.userId) where.push(`user_id = ${arg(filters.userId)}`);
    if (filters.writers) where.push(`writer = ANY(${arg(filters.writers)}::text[])`);
    if (filters.q) where.push(`${FTS_EXPR} @@ websearch_to_tsquery('simple', ${arg(filters.q)})`);
    if (cursor) where.push(`(ts, event_id) < (${arg(cursor.ts)}::timestamptz, ${arg(cursor.id)}::uuid)`);
    try {
      rows.push(
        ...(await session.query<R>(
          `SELECT ${EVENT_READ_COLUMNS} FROM ${slice.relation} WHERE ${where.join(" AND ")}
            ORDER BY ts DESC, event_id DESC LIMIT ${String(need)}`,
          args,
        )),
      );
    } catch (e) {
      if (!(e instanceof BudgetExhausted)) throw e;
      // Everything newer than this slice is in `rows`: continue from its upper edge (or
      // from the request's own cursor, if that lies inside it).
      const edge = { ts: new Date(slice.to).toISOString(), id: MIN_ID };
      const next = cursor && Date.parse(cursor.ts) < slice.to ? cursor : edge;
      return {
        rows,
        next,
        partial: {
          reason: e.clientGone
            ? "client went away"
            : "the search's time budget ran out before the range was searched",
          searchedBackTo: new Date(slice.to).toISOString(),
        },
      };
    }
    if (rows.length > limit) break;
  }
  const page = rows.slice(0, limit);
  const last = page.at(-1) as { ts: Date; event_id: string } | undefined;
  return {
    rows: page,
    next: rows.length > limit && last ? { ts: last.ts.toISOString(), id: last.event_id } : undefined,
    partial: undefined,
  };
}

/** The slices to search, newest first, within [lower, upper). */
function slicesOf(
  names: LedgerNames,
  partitions: PartitionInfo[],
  lower: number,
  upper: number,
  filters: SearchFilters,
): Slice[] {
  const filtered = Boolean(
    filters.levels ?? filters.source ?? filters.q ?? filters.traceId ?? filters.userId ?? filters.writers,
  );
  const out: Slice[] = [];
  for (const p of [...partitions].sort((a, b) => b.from - a.from)) {
    const from = Math.max(p.from, lower);
    const to = Math.min(p.to, upper);
    if (from >= to) continue;
    const relation = `${names.schema}."${p.name}"`;
    // One statement per partition where an index narrows the search (the full-text index of
    // a closed partition, the source, trace or user index) or nothing filters (the time
    // index, read backwards, stops at the page); otherwise bounded slices.
    const served = Boolean((filters.q && p.indexed) || filters.source || filters.traceId || filters.userId);
    if (!filtered || served) {
      out.push({ relation, from, to });
      continue;
    }
    for (let t = to; t > from; t -= SLICE_MS)
      out.push({ relation, from: Math.max(from, t - SLICE_MS), to: t });
  }
  return out;
}
