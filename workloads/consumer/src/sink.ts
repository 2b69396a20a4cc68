import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { LogEvent } from "../../common/src/event.js";
import { failpoint } from "../../common/src/failpoints.js";
import type { LedgerNames } from "../../common/src/ledger.js";

/** A record as read from Kafka (read_committed). */
export interface SinkRecord {
  offset: string;
  value: Buffer | null;
}

/** Why a record cannot be stored: its value, its JSON, the event schema, or PostgreSQL refusing it. */
export type ErrorClass = "empty" | "json" | "schema" | "postgres";

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
  /** Events applied, for aggregates written after the commit. */
  events: LogEvent[];
  /** The direct COPY met an event id already stored and the batch went the deduplicating way. */
  conflicted: boolean;
}

export interface ApplyOptions {
  /**
   * Try the fast path first: COPY the batch straight into the events table (a bulk insert,
   * about twice the deduplicating insert's rate). A stored event id fails it with a unique
   * violation; the batch then rolls back to its savepoint and goes the deduplicating way.
   */
  directCopy: boolean;
  /** Which attempt at this batch this is (1, then 2 after a transient failure …): dead letters keep it. */
  attempt: number;
}

type Decoded = { kind: "event"; offset: string; event: LogEvent } | { kind: "dead"; letter: DeadLetter };

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
  const parsed = LogEvent.safeParse(json);
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
  return { kind: "event", offset: r.offset, event: parsed.data };
}

const UNIQUE_VIOLATION = "23505";

/** SQLSTATE classes that mean "this data can never be stored": isolate the record, do not retry. */
export function isDataError(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return (
    typeof code === "string" &&
    (code.startsWith("22") || (code.startsWith("23") && code !== UNIQUE_VIOLATION))
  );
}

const COLUMNS =
  "event_id, ts, level, source, message, metadata, stack_trace, user_id, trace_id, schema_version, received_at, kafka_partition, kafka_offset";
const UNNEST =
  "unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::text[], $8::text[], $9::text[], $10::int[], $11::timestamptz[], $12::int[], $13::bigint[])";

function columnArrays(partition: number, rows: { offset: string; event: LogEvent }[]): unknown[] {
  return [
    rows.map((r) => r.event.eventId),
    rows.map((r) => r.event.timestamp),
    rows.map((r) => r.event.level),
    rows.map((r) => r.event.source),
    rows.map((r) => r.event.message),
    rows.map((r) => JSON.stringify(r.event.metadata)),
    rows.map((r) => r.event.stackTrace ?? null),
    rows.map((r) => r.event.userId ?? null),
    rows.map((r) => r.event.traceId ?? null),
    rows.map((r) => r.event.schemaVersion),
    rows.map((r) => r.event.receivedAt),
    rows.map(() => partition),
    rows.map((r) => r.offset),
  ];
}

/**
 * Applies one batch of one partition in ONE PostgreSQL transaction: the rows, the
 * partition's next position and its counters, the duplicate and dead-letter ledgers.
 * The position row is locked first, so a zombie consumer (after a rebalance) that holds the
 * same records serializes behind the owner and then skips them as stale: exactly once.
 */
export async function applyBatch(
  client: pg.PoolClient,
  n: LedgerNames,
  topic: string,
  partition: number,
  records: SinkRecord[],
  options: ApplyOptions = { directCopy: true, attempt: 1 },
): Promise<BatchOutcome> {
  const last = records.at(-1);
  if (!last) throw new Error("applyBatch: empty batch");
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
    const fresh = records.filter((r) => BigInt(r.offset) >= stored);
    const outcome: BatchOutcome = {
      applied: 0,
      duplicates: 0,
      deadLettered: [],
      stale: records.length - fresh.length,
      nextOffset: stored,
      events: [],
      conflicted: false,
    };
    if (fresh.length === 0) {
      await client.query("COMMIT");
      return outcome;
    }
    const decoded = fresh.map(decode);
    const rows = decoded.flatMap((d) => (d.kind === "event" ? [{ offset: d.offset, event: d.event }] : []));
    outcome.deadLettered = decoded.flatMap((d) => (d.kind === "dead" ? [d.letter] : []));

    failpoint("mid-batch");
    let insertedIds: Set<string> | undefined;
    try {
      if (options.directCopy && rows.length > 1) {
        try {
          await copyRows(client, n.events, partition, rows);
          insertedIds = new Set(rows.map((r) => r.event.eventId));
        } catch (e) {
          if ((e as { code?: unknown }).code !== UNIQUE_VIOLATION) throw e;
          await client.query("ROLLBACK TO SAVEPOINT rows");
          outcome.conflicted = true;
        }
      }
      insertedIds ??= await insertRows(client, n, partition, rows);
    } catch (e) {
      if (!isDataError(e)) throw e;
      // One record cannot be stored: insert one by one, dead-lettering those that fail.
      await client.query("ROLLBACK TO SAVEPOINT rows");
      staged.delete(client); // a staging table made after the savepoint is gone with it
      insertedIds = new Set();
      const storable: typeof rows = [];
      for (const row of rows) {
        await client.query("SAVEPOINT one");
        try {
          for (const id of await insertRows(client, n, partition, [row])) insertedIds.add(id);
          storable.push(row);
          await client.query("RELEASE SAVEPOINT one");
        } catch (e1) {
          if (!isDataError(e1)) throw e1;
          await client.query("ROLLBACK TO SAVEPOINT one");
          outcome.deadLettered.push({
            offset: row.offset,
            eventId: row.event.eventId,
            reason: `postgres: ${(e1 as Error).message}`,
            errorClass: "postgres",
            errorCode: (e1 as { code?: string }).code ?? null,
            payload: fresh.find((r) => r.offset === row.offset)?.value ?? null,
          });
        }
      }
      rows.splice(0, rows.length, ...storable);
    }

    // The first record carrying an inserted id is the applied one; every other is a duplicate.
    const duplicates: { offset: string; eventId: string }[] = [];
    for (const row of rows) {
      if (insertedIds.delete(row.event.eventId)) {
        outcome.applied++;
        outcome.events.push(row.event);
      } else duplicates.push({ offset: row.offset, eventId: row.event.eventId });
    }
    outcome.duplicates = duplicates.length;
    if (duplicates.length > 0) {
      await client.query(
        `INSERT INTO ${n.duplicates} (topic, partition, "offset", event_id)
         SELECT $1, $2, * FROM unnest($3::bigint[], $4::uuid[]) ON CONFLICT DO NOTHING`,
        [topic, partition, duplicates.map((d) => d.offset), duplicates.map((d) => d.eventId)],
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
    // The position and counters, and the commit, in one round trip (all integers).
    await client.query(
      `UPDATE ${n.offsets} SET next_offset = ${outcome.nextOffset.toString()}, applied = applied + ${String(outcome.applied)},
         duplicates_skipped = duplicates_skipped + ${String(outcome.duplicates)},
         dead_lettered = dead_lettered + ${String(outcome.deadLettered.length)}, updated_at = now() WHERE ${where};
       COMMIT;`,
    );
    return outcome;
  } catch (e) {
    staged.delete(client); // a staging table made in this transaction is gone with it
    await client.query("ROLLBACK").catch(() => undefined);
    throw e;
  }
}

/** COPY's text format: backslash, tab, newline and carriage return escaped; null is \N. */
const NEEDS_ESCAPE = /[\\\t\n\r]/;
const copyText = (v: string | null | undefined) =>
  v === null || v === undefined
    ? "\\N"
    : !NEEDS_ESCAPE.test(v) // most values: one scan instead of four replacements
      ? v
      : v.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n").replace(/\r/g, "\\r");

/** COPYs rows into `table` (the events table, or the session's staging table). */
async function copyRows(
  client: pg.PoolClient,
  table: string,
  partition: number,
  rows: { offset: string; event: LogEvent }[],
): Promise<void> {
  const text = rows
    .map(({ offset, event: e }) =>
      [
        e.eventId,
        e.timestamp,
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
      ].join("\t"),
    )
    .join("\n");
  await pipeline(
    Readable.from([`${text}\n`]),
    client.query(copyFrom(`COPY ${table} (${COLUMNS}) FROM STDIN`)),
  );
}

/** Connections whose session already has the staging table. */
const staged = new WeakSet<pg.ClientBase>();

/**
 * Inserts rows, skipping event ids already stored; returns the ids inserted. A batch is
 * COPYed into a session-local staging table and inserted from there (about twice as fast
 * as binding the rows as parameters: 40 against 79 ms per 2,000 rows, measured on this
 * machine); a single row (the isolation path) is bound directly.
 */
async function insertRows(
  client: pg.PoolClient,
  n: LedgerNames,
  partition: number,
  rows: { offset: string; event: LogEvent }[],
): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  if (rows.length > 1) {
    // Temporary: per session, emptied at each commit; created once per pooled connection.
    if (!staged.has(client)) {
      await client.query(
        `CREATE TEMP TABLE IF NOT EXISTS lp_stage_events (LIKE ${n.events} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`,
      );
      staged.add(client);
    }
    await copyRows(client, "lp_stage_events", partition, rows);
    const r = await client.query<{ event_id: string }>(
      `WITH moved AS (DELETE FROM lp_stage_events RETURNING ${COLUMNS})
       INSERT INTO ${n.events} (${COLUMNS}) SELECT ${COLUMNS} FROM moved ON CONFLICT (event_id) DO NOTHING RETURNING event_id`,
    );
    return new Set(r.rows.map((x) => x.event_id));
  }
  const r = await client.query<{ event_id: string }>(
    `INSERT INTO ${n.events} (${COLUMNS}) SELECT * FROM ${UNNEST} ON CONFLICT (event_id) DO NOTHING RETURNING event_id`,
    columnArrays(partition, rows),
  );
  return new Set(r.rows.map((x) => x.event_id));
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
