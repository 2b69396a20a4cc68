import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { type LogEvent, readEvent, unstorable } from "../../common/src/event.js";
import { failpoint } from "../../common/src/failpoints.js";
import type { LedgerNames } from "../../common/src/ledger.js";
import { bucketOf, DAY_MS, KEY_OVERLAP_MS, KEY_SPAN_MS, storedTime } from "../../common/src/storage.js";

/** A record as read from Kafka (read_committed). */
export interface SinkRecord {
  offset: string;
  value: Buffer | null;
}

/**
 * Why a record cannot be stored: its value, its JSON, the event schema, PostgreSQL refusing
 * it, or its stored time older than the retention (its partition is gone).
 */
export type ErrorClass = "empty" | "json" | "schema" | "unstorable" | "postgres" | "expired";

export interface DeadLetter {
  offset: string;
  eventId: string | null;
  reason: string;
  errorClass: ErrorClass;
  /** The first schema issue's code, or PostgreSQL's SQLSTATE. */
  errorCode: string | null;
  payload: Buffer | null;
}

export interface BatchOutcome {
  /** Rows inserted. */
  applied: number;
  /** Records whose event id was already stored (client or producer retries). */
  duplicates: number;
  /** Poison records: recorded in dead_letters (and later published to the DLQ). */
  deadLettered: DeadLetter[];
  /** Records below the stored position: a redelivery after a crash or rebalance; not counted. */
  stale: number;
  /** The partition's next offset after this batch. */
  nextOffset: bigint;
  /** Events applied (for the end-to-end latency written after the commit). */
  events: LogEvent[];
  /** Events stored under a clamped time (outside the late window or the clock skew). */
  clamped: number;
}

export interface ApplyOptions {
  /** Which attempt at this batch this is (1, then 2 after a transient failure …): dead letters keep it. */
  attempt: number;
  /**
   * Makes sure the events partitions of these buckets exist before the batch's transaction
   * (consumer/src/partitions.ts); returns the buckets that are past the retention, whose
   * events are dead-lettered as expired.
   */
  ensureBuckets: (buckets: number[]) => Promise<Set<number>>;
  /** postgres.retentionDays, for the expired reason (0: none). */
  retentionDays: number;
  /** An upgraded pipeline's old table still holds rows: ids are looked up there too. */
  legacy: boolean;
}

/** An event as it is stored: its Kafka offset, and its time after the out-of-range rule. */
interface Row {
  offset: string;
  event: LogEvent;
  /** The stored time (ms) and, when it was clamped, the event's own timestamp. */
  ts: number;
  original: string | null;
}

type Decoded = { kind: "event"; row: Row } | { kind: "dead"; letter: DeadLetter };

function decode(r: SinkRecord): Decoded {
  const dead = (
    errorClass: ErrorClass,
    reason: string,
    errorCode: string | null = null,
    eventId: string | null = null,
  ): Decoded => ({
    kind: "dead",
    letter: { offset: r.offset, eventId, reason, errorClass, errorCode, payload: r.value },
  });
  if (!r.value) return dead("empty", "empty record value");
  let json: unknown;
  try {
    json = JSON.parse(r.value.toString("utf8"));
  } catch {
    return dead("json", "value is not valid JSON");
  }
  // Tolerant: a field of a newer gateway is kept in metadata, not dropped (rolling upgrades).
  const parsed = readEvent(json);
  if (!parsed.success) {
    const id = (json as { eventId?: unknown } | null)?.eventId;
    const uuid = typeof id === "string" && /^[0-9a-f-]{36}$/i.test(id) ? id : null;
    return dead(
      "schema",
      `schema: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
      parsed.error.issues[0]?.code ?? null,
      uuid,
    );
  }
  const event = parsed.data;
  // What the gateway refuses (a writer that does not check, an older gateway): NUL and lone
  // surrogates PostgreSQL refuses anyway, and a nesting deep enough to overflow a stack here
  // (JSON.stringify) or in PostgreSQL's jsonb parser. Found without a round trip.
  const why = unstorable(event);
  if (why) return dead("unstorable", `unstorable: ${why}`, null, event.eventId);
  const t = storedTime(Date.parse(event.timestamp), Date.parse(event.receivedAt));
  return {
    kind: "event",
    row: { offset: r.offset, event, ts: t.ms, original: t.clamped ? event.timestamp : null },
  };
}

const UNIQUE_VIOLATION = "23505";

/**
 * 23514: the tables have no CHECK constraint, so it means "no partition of relation … found
 * for row": a partition not made yet, transient (the retry makes it), never the data's fault.
 */
const NO_PARTITION = "23514";

/** What the consumer does about an error, by its SQLSTATE class. */
export type ErrorHandling =
  /** The data can never be stored (22 data exception, 23 integrity, 54 limit exceeded): isolate the record, dead-letter it. */
  | "isolate"
  /** A passing condition (08 connection, 40 rollback, 53 resources, 57 operator intervention, 58 system; no SQLSTATE: the network): retry with backoff. */
  | "retry"
  /** Anything else (a permission taken away, a table altered): stall the partition, say so, retry slowly; never dead-letter. */
  | "stall";

const RETRY_CLASSES = new Set(["08", "40", "53", "57", "58"]);
const ISOLATE_CLASSES = new Set(["22", "23", "54"]);

/** The handling of an error from a batch's transaction. */
export function errorHandling(e: unknown): ErrorHandling {
  // Not an error PostgreSQL answered: the connection or the network (ECONNRESET, a timeout,
  // the pool), a failpoint, or the batch this code rolls back itself (LP001, KEY_OVERLAP_MS).
  if (!(e instanceof pg.DatabaseError)) return "retry";
  const code = e.code;
  if (typeof code !== "string" || code.length !== 5) return "retry";
  if (code === UNIQUE_VIOLATION || code === NO_PARTITION) return "retry";
  // lock_not_available (a lock_timeout): another session holds the lock for now.
  if (code === "55P03") return "retry";
  const cls = code.slice(0, 2);
  if (ISOLATE_CLASSES.has(cls)) return "isolate";
  if (RETRY_CLASSES.has(cls)) return "retry";
  return "stall";
}

/** SQLSTATE classes that mean "this data can never be stored": isolate the record, do not retry. */
export function isDataError(e: unknown): boolean {
  return errorHandling(e) === "isolate";
}

const COLUMNS =
  "event_id, ts, level, source, message, metadata, stack_trace, user_id, trace_id, schema_version, received_at, kafka_partition, kafka_offset, ts_original, writer, span_id";

/**
 * Applies one batch of one partition in ONE PostgreSQL transaction: the rows, their counts,
 * the deduplication keys of client-named events, the partition's next position and its
 * counters, the duplicate and dead-letter ledgers. The position row is locked first, so a
 * zombie consumer (after a rebalance) that holds the same records serializes behind the
 * owner and then skips them as stale: exactly once.
 */
export async function applyBatch(
  client: pg.PoolClient,
  n: LedgerNames,
  topic: string,
  partition: number,
  records: SinkRecord[],
  options: ApplyOptions,
): Promise<BatchOutcome> {
  const last = records.at(-1);
  if (!last) throw new Error("applyBatch: empty batch");
  // Decoding is pure: done first, so the partitions the rows need are made before the
  // transaction opens (a batch never waits inside its transaction for DDL).
  const decoded = records.map(decode);
  const expired = await options.ensureBuckets([
    ...new Set(decoded.flatMap((d) => (d.kind === "event" ? [bucketOf(d.row.ts)] : []))),
  ]);
  // One round trip: begin, lock the partition's position row (made on first use) and read
  // it, and the savepoint the rows' insert can roll back to without losing the lock.
  // Literals, not parameters (a multi-statement query takes none): the topic is escaped by
  // the driver, the partition is an integer.
  const [topicLiteral, partitionLiteral] = [client.escapeLiteral(topic), String(Math.trunc(partition))];
  const where = `topic = ${topicLiteral} AND partition = ${partitionLiteral}`;
  try {
    const opened = (await client.query(
      `BEGIN;
     INSERT INTO ${n.offsets} (topic, partition, next_offset)
       VALUES (${topicLiteral}, ${partitionLiteral}, 0) ON CONFLICT DO NOTHING;
     SELECT next_offset FROM ${n.offsets} WHERE ${where} FOR UPDATE;
     SAVEPOINT rows;`,
    )) as unknown as pg.QueryResult<{ next_offset: string }>[];
    const stored = BigInt(opened[2]?.rows[0]?.next_offset ?? "0");
    const isFresh = (offset: string) => BigInt(offset) >= stored;
    const fresh = records.filter((r) => isFresh(r.offset));
    const outcome: BatchOutcome = {
      applied: 0,
      duplicates: 0,
      deadLettered: [],
      stale: records.length - fresh.length,
      nextOffset: stored,
      events: [],
      clamped: 0,
    };
    if (fresh.length === 0) {
      await client.query("COMMIT");
      return outcome;
    }
    const rows: Row[] = [];
    for (const d of decoded) {
      if (d.kind === "dead") {
        if (isFresh(d.letter.offset)) outcome.deadLettered.push(d.letter);
      } else if (!isFresh(d.row.offset)) continue;
      else if (expired.has(bucketOf(d.row.ts)))
        outcome.deadLettered.push(expiredLetter(d.row, fresh, options));
      else rows.push(d.row);
    }

    failpoint("mid-batch");
    const keyed = { at: performance.now() };
    let storedRows: Row[];
    let duplicates: Row[];
    try {
      ({ stored: storedRows, duplicates } = await insertDeduplicated(
        client,
        n,
        partition,
        rows,
        keyed,
        options.legacy,
      ));
    } catch (e) {
      if (!isDataError(e)) throw e;
      // A record cannot be stored: find it by halves, each half under its own savepoint, so
      // one bad value costs about 2·log2(batch) inserts, not one per row.
      await client.query("ROLLBACK TO SAVEPOINT rows");
      storedRows = [];
      duplicates = [];
      const isolate = async (part: Row[], known?: unknown): Promise<void> => {
        if (part.length === 0) return;
        let failure = known;
        if (failure === undefined) {
          await client.query("SAVEPOINT part");
          try {
            const done = await insertDeduplicated(client, n, partition, part, keyed, options.legacy);
            storedRows.push(...done.stored);
            duplicates.push(...done.duplicates);
            await client.query("RELEASE SAVEPOINT part");
            return;
          } catch (e1) {
            if (!isDataError(e1)) throw e1;
            await client.query("ROLLBACK TO SAVEPOINT part");
            failure = e1;
          }
        }
        const [row] = part;
        if (part.length === 1 && row) {
          outcome.deadLettered.push({
            offset: row.offset,
            eventId: row.event.eventId,
            reason: `postgres: ${(failure as Error).message}`,
            errorClass: "postgres",
            errorCode: (failure as { code?: string }).code ?? null,
            payload: fresh.find((r) => r.offset === row.offset)?.value ?? null,
          });
          return;
        }
        const half = Math.ceil(part.length / 2);
        await isolate(part.slice(0, half));
        await isolate(part.slice(half));
      };
      await isolate(rows, e);
    }
    await writeCounts(client, n, partition, storedRows);
    outcome.applied = storedRows.length;
    outcome.events = storedRows.map((r) => r.event);
    outcome.clamped = storedRows.filter((r) => r.original !== null).length;
    outcome.duplicates = duplicates.length;
    if (duplicates.length > 0) {
      await client.query(
        `INSERT INTO ${n.duplicates} (topic, partition, "offset", event_id)
         SELECT $1, $2, * FROM unnest($3::bigint[], $4::uuid[]) ON CONFLICT DO NOTHING`,
        [topic, partition, duplicates.map((d) => d.offset), duplicates.map((d) => d.event.eventId)],
      );
    }
    if (outcome.deadLettered.length > 0) {
      const d = outcome.deadLettered;
      await client.query(
        `INSERT INTO ${n.deadLetters} (topic, partition, "offset", event_id, reason, error_class, error_code, attempts, payload)
         SELECT $1, $2, o, e, r, c, k, $3, p
           FROM unnest($4::bigint[], $5::uuid[], $6::text[], $7::text[], $8::text[], $9::bytea[]) AS x(o, e, r, c, k, p)
         ON CONFLICT DO NOTHING`,
        [
          topic,
          partition,
          options.attempt,
          d.map((x) => x.offset),
          d.map((x) => x.eventId),
          d.map((x) => x.reason),
          d.map((x) => x.errorClass),
          d.map((x) => x.errorCode),
          d.map((x) => x.payload),
        ],
      );
    }
    outcome.nextOffset = BigInt(last.offset) + 1n;
    failpoint("before-pg-commit");
    // The deduplication argument needs every key-writing transaction to commit within
    // KEY_OVERLAP_MS of its key insert (docs/storage.md): a batch that took half of it is
    // rolled back and retried instead.
    if (performance.now() - keyed.at > KEY_OVERLAP_MS / 2)
      throw Object.assign(new Error("batch transaction ran too long after its key insert; retried"), {
        code: "LP001",
      });
    // The position and counters, and the commit, in one round trip (all integers). No
    // NOTIFY here: a notifying commit takes a database-wide lock, which would serialize the
    // partitions' commits; live tails read the committed positions instead (query/src/tail.ts).
    await client.query(
      `UPDATE ${n.offsets} SET next_offset = ${outcome.nextOffset.toString()}, applied = applied + ${String(outcome.applied)},
         duplicates_skipped = duplicates_skipped + ${String(outcome.duplicates)},
         dead_lettered = dead_lettered + ${String(outcome.deadLettered.length)}, updated_at = now(),
         stalled_code = NULL, stalled_reason = NULL, stalled_since = NULL WHERE ${where};
       COMMIT;`,
    );
    return outcome;
  } catch (e) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw e;
  }
}

function expiredLetter(row: Row, fresh: SinkRecord[], options: ApplyOptions): DeadLetter {
  return {
    offset: row.offset,
    eventId: row.event.eventId,
    reason: `expired: stored time ${new Date(row.ts).toISOString()} is older than the retention (${String(options.retentionDays)} days); its partition is dropped`,
    errorClass: "expired",
    errorCode: null,
    payload: fresh.find((r) => r.offset === row.offset)?.value ?? null,
  };
}

/**
 * Inserts rows, skipping client-named events whose id is already stored. Keys first: the
 * ids of events a client named go into the key table (one statement; docs/storage.md says
 * why it is race-free), the rows whose key is new, and every gateway-named row, are COPYed
 * into the events table, which routes each to its time partition.
 */
async function insertDeduplicated(
  client: pg.PoolClient,
  n: LedgerNames,
  partition: number,
  rows: Row[],
  keyed: { at: number },
  legacy: boolean,
): Promise<{ stored: Row[]; duplicates: Row[] }> {
  if (rows.length === 0) return { stored: [], duplicates: [] };
  const named = rows.filter((r) => r.event.idOrigin !== "gateway");
  let fresh: Set<string> | undefined;
  if (named.length > 0) {
    keyed.at = performance.now();
    fresh = await insertKeys(client, n, [...new Set(named.map((r) => r.event.eventId))], legacy);
  }
  const stored: Row[] = [];
  const duplicates: Row[] = [];
  for (const r of rows) {
    if (r.event.idOrigin === "gateway") stored.push(r);
    // The first record carrying a new id is stored; every other is a duplicate.
    else if (fresh?.delete(r.event.eventId)) stored.push(r);
    else duplicates.push(r);
  }
  if (stored.length > 0) await copyRows(client, n.events, partition, stored);
  return { stored, duplicates };
}

/**
 * Writes the keys of `ids` into the key partition of the statement's time (PostgreSQL's clock,
 * one clock for every replica), and into the neighbouring partition as well within
 * KEY_OVERLAP_MS of a boundary; an id already in any other key partition is not written.
 * Returns the ids that were new in every partition written: those are stored, the rest are
 * duplicates. ON CONFLICT waits for a concurrent transaction holding the same key and skips
 * it if that one commits. While an upgraded pipeline's old table exists, an id stored there
 * counts as seen (its rows move with their keys in one transaction: one of the two has it).
 */
export async function insertKeys(
  client: pg.ClientBase,
  n: LedgerNames,
  ids: string[],
  legacy: boolean,
): Promise<Set<string>> {
  const keys = n.storage.parents.keys.qualified;
  const span = `${String(KEY_SPAN_MS / DAY_MS)} days`;
  const overlap = `${String(KEY_OVERLAP_MS / 1000)} seconds`;
  const r = await client.query<{ event_id: string }>(
    `WITH now AS (SELECT t, date_bin('${span}', t, 'epoch'::timestamptz) AS d FROM (SELECT clock_timestamp() AS t) x),
     buckets AS (
       SELECT d AS b FROM now
       UNION SELECT d - interval '${span}' FROM now WHERE t - d < interval '${overlap}'
       UNION SELECT d + interval '${span}' FROM now WHERE d + interval '${span}' - t <= interval '${overlap}'),
     seen AS (SELECT k.event_id FROM ${keys} k WHERE k.event_id = ANY($1::uuid[]) AND k.bucket NOT IN (SELECT b FROM buckets)${
       legacy
         ? ` UNION ALL SELECT event_id FROM ${n.storage.legacy.qualified} WHERE event_id = ANY($1::uuid[])`
         : ""
     }),
     ins AS (
       INSERT INTO ${keys} (event_id, bucket)
       SELECT id, b FROM unnest($1::uuid[]) AS id CROSS JOIN buckets
        WHERE id NOT IN (SELECT event_id FROM seen)
       ON CONFLICT DO NOTHING RETURNING event_id)
     SELECT event_id FROM ins GROUP BY event_id HAVING count(*) = (SELECT count(*) FROM buckets)`,
    [ids],
  );
  return new Set(r.rows.map((x) => x.event_id));
}

const MINUTE_MS = 60_000;

/**
 * Counts per minute and per hour, by Kafka partition, level and source, in the batch's
 * transaction: exactly once, like the rows. Only this partition's rows are touched (the key
 * has the Kafka partition), so the consumer's concurrent transactions never wait on each other.
 */
export async function writeCounts(
  client: pg.ClientBase,
  n: LedgerNames,
  partition: number,
  rows: { ts: number; event: { level: string; source: string } }[],
): Promise<void> {
  if (rows.length === 0) return;
  const group = (span: number) => {
    const m = new Map<string, { t: number; level: string; source: string; n: number }>();
    for (const r of rows) {
      const t = bucketOf(r.ts, span);
      const k = `${String(t)}\0${r.event.level}\0${r.event.source}`;
      const g = m.get(k);
      if (g) g.n++;
      else m.set(k, { t, level: r.event.level, source: r.event.source, n: 1 });
    }
    return [...m.values()];
  };
  const arrays = (g: ReturnType<typeof group>) => [
    g.map((x) => new Date(x.t).toISOString()),
    g.map((x) => x.level),
    g.map((x) => x.source),
    g.map((x) => x.n),
  ];
  const { countsMinute, countsHour } = n.storage.parents;
  const upsert = (table: string, from: number) =>
    `INSERT INTO ${table} AS c (t, kafka_partition, level, source, n)
       SELECT t, ${String(Math.trunc(partition))}, l, s, k
         FROM unnest($${String(from)}::timestamptz[], $${String(from + 1)}::text[], $${String(from + 2)}::text[], $${String(from + 3)}::bigint[]) AS x(t, l, s, k)
     ON CONFLICT (t, kafka_partition, level, source) DO UPDATE SET n = c.n + EXCLUDED.n`;
  await client.query(
    `WITH m AS (${upsert(countsMinute.qualified, 1)} RETURNING 1) ${upsert(countsHour.qualified, 5)}`,
    [...arrays(group(MINUTE_MS)), ...arrays(group(60 * MINUTE_MS))],
  );
}

/** COPY's text format: backslash, tab, newline and carriage return escaped; null is \N. */
const NEEDS_ESCAPE = /[\\\t\n\r]/;
const copyText = (v: string | null | undefined) =>
  v === null || v === undefined
    ? "\\N"
    : !NEEDS_ESCAPE.test(v) // most values: one scan instead of four replacements
      ? v
      : v.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n").replace(/\r/g, "\\r");

/** COPYs rows into the events table (routed to their partitions by `ts`). */
async function copyRows(client: pg.PoolClient, table: string, partition: number, rows: Row[]): Promise<void> {
  const text = rows
    .map(({ offset, event: e, ts, original }) =>
      [
        e.eventId,
        new Date(ts).toISOString(),
        e.level,
        copyText(e.source),
        copyText(e.message),
        copyText(JSON.stringify(e.metadata)),
        copyText(e.stackTrace),
        copyText(e.userId),
        copyText(e.traceId),
        String(e.schemaVersion),
        e.receivedAt,
        String(partition),
        offset,
        original ?? "\\N",
        copyText(e.writer),
        copyText(e.spanId),
      ].join("\t"),
    )
    .join("\n");
  await pipeline(
    Readable.from([`${text}\n`]),
    client.query(copyFrom(`COPY ${table} (${COLUMNS}) FROM STDIN`)),
  );
}

/**
 * Records that a partition is stalled (best effort, outside any batch: the error that stalled
 * it may deny this too, and the metric and the log still say so). The reason is PostgreSQL's
 * message, which names objects, never data or credentials.
 */
export async function recordStall(
  pool: pg.Pool,
  n: LedgerNames,
  topic: string,
  partition: number,
  code: string,
  reason: string,
): Promise<void> {
  await pool.query(
    `INSERT INTO ${n.offsets} (topic, partition, next_offset, stalled_code, stalled_reason, stalled_since)
     VALUES ($1, $2, 0, $3, $4, now())
     ON CONFLICT (topic, partition) DO UPDATE SET stalled_code = $3, stalled_reason = $4,
       stalled_since = coalesce(${n.offsets}.stalled_since, now())`,
    [topic, partition, code, reason.slice(0, 500)],
  );
}

/** The stored next offset of each given partition (absent: never applied). */
export async function storedPositions(
  pool: pg.Pool,
  n: LedgerNames,
  topic: string,
  partitions: number[],
): Promise<Map<number, bigint>> {
  const r = await pool.query<{ partition: number; next_offset: string }>(
    `SELECT partition, next_offset FROM ${n.offsets} WHERE topic = $1 AND partition = ANY($2::int[])`,
    [topic, partitions],
  );
  return new Map(r.rows.map((x) => [x.partition, BigInt(x.next_offset)]));
}
