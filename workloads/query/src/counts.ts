import type { LedgerNames } from "../../common/src/ledger.js";
import { HOUR_MS } from "../../common/src/storage.js";
import type { QuerySession } from "./session.js";

/**
 * Answers from the count tables the consumer writes in each batch's transaction (exactly
 * once, like the rows): whole hours from the hourly counts, the ragged edges from the
 * per-minute counts. Ranges widen to whole minutes (from rounded down, to rounded up), so
 * "the last hour" includes the minute now running.
 */
export const MINUTE_MS = 60_000;

export interface CountRange {
  from: number;
  to: number;
}

export const minuteRange = ({ from, to }: { from: Date; to: Date }): CountRange => ({
  from: Math.floor(from.getTime() / MINUTE_MS) * MINUTE_MS,
  to: Math.ceil(to.getTime() / MINUTE_MS) * MINUTE_MS,
});

/**
 * The rows (t, level, source, n) covering the range, as a SQL relation with its arguments
 * starting at `$<first>`: hourly rows for the whole hours, minute rows for the edges.
 */
function coveringCounts(n: LedgerNames, r: CountRange, first: number): { sql: string; args: Date[] } {
  const { countsMinute, countsHour } = n.storage.parents;
  const hFrom = Math.ceil(r.from / HOUR_MS) * HOUR_MS;
  const hTo = Math.floor(r.to / HOUR_MS) * HOUR_MS;
  const $ = (i: number) => `$${String(first + i)}`;
  if (hFrom >= hTo)
    return {
      sql: `SELECT t, level, source, n FROM ${countsMinute.qualified} WHERE t >= ${$(0)} AND t < ${$(1)}`,
      args: [new Date(r.from), new Date(r.to)],
    };
  return {
    sql: `SELECT t, level, source, n FROM ${countsHour.qualified} WHERE t >= ${$(0)} AND t < ${$(1)}
          UNION ALL SELECT t, level, source, n FROM ${countsMinute.qualified}
           WHERE (t >= ${$(2)} AND t < ${$(0)}) OR (t >= ${$(1)} AND t < ${$(3)})`,
    args: [new Date(hFrom), new Date(hTo), new Date(r.from), new Date(r.to)],
  };
}

export async function stats(
  s: QuerySession,
  n: LedgerNames,
  r: CountRange,
): Promise<{
  total: number;
  byLevel: Record<string, number>;
  bySource: { source: string; count: number }[];
}> {
  const c = coveringCounts(n, r, 1);
  const rows = await s.query<{ level: string | null; source: string | null; c: string }>(
    `SELECT level, source, sum(n) AS c FROM (${c.sql}) x GROUP BY GROUPING SETS ((level), (source))`,
    c.args,
  );
  const byLevel: Record<string, number> = {};
  const bySource: { source: string; count: number }[] = [];
  for (const row of rows) {
    if (row.level !== null) byLevel[row.level] = Number(row.c);
    else if (row.source !== null) bySource.push({ source: row.source, count: Number(row.c) });
  }
  bySource.sort((a, b) => b.count - a.count || a.source.localeCompare(b.source));
  return {
    total: Object.values(byLevel).reduce((a, x) => a + x, 0),
    byLevel,
    bySource: bySource.slice(0, 50),
  };
}

/** Bucket widths a histogram may use, in minutes: the smallest that gives at most the buckets asked for. */
const WIDTHS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];

export function histogramWidthMs(r: CountRange, buckets: number): number {
  const want = (r.to - r.from) / buckets / MINUTE_MS;
  return (WIDTHS.find((w) => w >= want) ?? Math.ceil(want / 1440) * 1440) * MINUTE_MS;
}

/**
 * Counts per time bucket (aligned on the epoch), split by level or by source: the volume
 * bar a log view draws. Sources beyond the `top` largest are summed as "(other)".
 */
export async function histogram(
  s: QuerySession,
  n: LedgerNames,
  r: CountRange,
  widthMs: number,
  by: "level" | "source",
  top = 10,
): Promise<{ t: string; total: number; counts: Record<string, number> }[]> {
  const c = coveringCounts(n, r, 2);
  const rows = await s.query<{ b: Date; k: string; c: string }>(
    `SELECT date_bin(make_interval(secs => $1::double precision / 1000), t, 'epoch'::timestamptz) AS b, ${by} AS k, sum(n) AS c
       FROM (${c.sql}) x GROUP BY 1, 2 ORDER BY 1`,
    [widthMs, ...c.args],
  );
  const totals = new Map<string, number>();
  for (const row of rows) totals.set(row.k, (totals.get(row.k) ?? 0) + Number(row.c));
  const kept = new Set(
    [...totals]
      .sort((a, b) => b[1] - a[1])
      .slice(0, by === "level" ? Infinity : top)
      .map(([k]) => k),
  );
  const out = new Map<number, { t: string; total: number; counts: Record<string, number> }>();
  // Every bucket of the range, empty ones included, so a chart's x axis has no holes.
  const start = Math.floor(r.from / widthMs) * widthMs;
  for (let t = start; t < r.to; t += widthMs)
    out.set(t, { t: new Date(t).toISOString(), total: 0, counts: {} });
  for (const row of rows) {
    const b = out.get(row.b.getTime());
    if (!b) continue;
    const k = kept.has(row.k) ? row.k : "(other)";
    b.counts[k] = (b.counts[k] ?? 0) + Number(row.c);
    b.total += Number(row.c);
  }
  return [...out.values()];
}

/** Distinct values of a label in the range, with their counts, most frequent first. */
export async function labelValues(
  s: QuerySession,
  n: LedgerNames,
  r: CountRange,
  label: "level" | "source",
  prefix: string | undefined,
  limit: number,
): Promise<{ value: string; count: number }[]> {
  const c = coveringCounts(n, r, 3);
  const rows = await s.query<{ v: string; c: string }>(
    `SELECT ${label} AS v, sum(n) AS c FROM (${c.sql}) x
      WHERE $1::text IS NULL OR starts_with(${label}, $1::text)
      GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2`,
    [prefix ?? null, limit, ...c.args],
  );
  return rows.map((x) => ({ value: x.v, count: Number(x.c) }));
}
