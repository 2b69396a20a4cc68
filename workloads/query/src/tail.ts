import type pg from "pg";
import type { LedgerNames } from "../../common/src/ledger.js";
import type { Logger } from "../../common/src/logger.js";
import { EVENT_READ_COLUMNS, FTS_EXPR } from "../../common/src/storage.js";
import { errorText } from "../../common/src/connections.js";

export interface TailFilter {
  levels?: string[] | undefined;
  source?: string | undefined;
  q?: string | undefined;
  /** A scoped reader's writers: only their events. */
  writers?: string[] | undefined;
}

export interface Tail<R> {
  filter: TailFilter;
  send: (row: R) => void;
}

/** How often the committed positions are read while a tail is open. */
const POLL_MS = 500;

type Positions = Map<number, bigint>;

/**
 * Live tails. The consumer stores each batch's rows and its partition's next offset in one
 * transaction, so the rows below the stored positions are exactly the committed ones. While a
 * tail is open, this reads the positions every 500 ms and, in the same snapshot, the rows
 * between the last positions and the new ones — never a rolled-back batch's, and (the consumer
 * reads read_committed) never a record of an aborted Kafka transaction — and sends each tail
 * the rows its filter matches, in offset order per partition. Nothing is asked of the
 * consumer (a NOTIFY per batch would serialize its commits). At most `max` tails per process.
 */
export class TailHub<R extends { level: string; source: string; event_id: string; writer: string | null }> {
  private readonly tails = new Set<Tail<R>>();
  private positions: Positions | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly names: LedgerNames,
    private readonly max: number,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.tails.size;
  }

  /** Adds a tail; false when the bound is reached. Resolves once the tail's starting positions are read. */
  async add(tail: Tail<R>): Promise<boolean> {
    if (this.tails.size >= this.max) return false;
    if (!this.positions) this.positions = await this.readPositions(this.pool);
    this.tails.add(tail);
    this.timer ??= setInterval(() => {
      this.polling ??= this.poll()
        .catch((e: unknown) =>
          this.log.warn({ err: errorText(e) }, "live tail read failed; next read retries"),
        )
        .finally(() => (this.polling = undefined));
    }, POLL_MS);
    return true;
  }

  remove(tail: Tail<R>): void {
    this.tails.delete(tail);
    if (this.tails.size === 0) this.close();
  }

  private async readPositions(c: pg.Pool | pg.ClientBase): Promise<Positions> {
    const r = await c.query<{ partition: number; next_offset: string }>(
      `SELECT partition, next_offset FROM ${this.names.offsets}`,
    );
    return new Map(r.rows.map((x) => [x.partition, BigInt(x.next_offset)]));
  }

  private async poll(): Promise<void> {
    const from = this.positions;
    if (!from || this.tails.size === 0) return;
    const client = await this.pool.connect();
    try {
      // One snapshot: the positions and the rows below them agree.
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      const to = await this.readPositions(client);
      const ranges = [...to].filter(([p, next]) => next > (from.get(p) ?? 0n));
      const rows: R[] = [];
      const texts = new Map<string, Set<string>>();
      for (const [p, next] of ranges) {
        const start = (from.get(p) ?? 0n).toString();
        const range = [p, start, next.toString()];
        rows.push(
          ...(
            await client.query<R>(
              `SELECT ${EVENT_READ_COLUMNS} FROM ${this.names.events}
                WHERE kafka_partition = $1 AND kafka_offset >= $2 AND kafka_offset < $3 ORDER BY kafka_offset`,
              range,
            )
          ).rows,
        );
        for (const q of new Set([...this.tails].flatMap((t) => (t.filter.q ? [t.filter.q] : [])))) {
          const hit = await client.query<{ event_id: string }>(
            `SELECT event_id FROM ${this.names.events}
              WHERE kafka_partition = $1 AND kafka_offset >= $2 AND kafka_offset < $3
                AND ${FTS_EXPR} @@ websearch_to_tsquery('simple', $4)`,
            [...range, q],
          );
          const set = texts.get(q) ?? new Set<string>();
          for (const x of hit.rows) set.add(x.event_id);
          texts.set(q, set);
        }
      }
      await client.query("COMMIT");
      this.positions = to;
      for (const tail of this.tails) {
        const f = tail.filter;
        const text = f.q === undefined ? undefined : texts.get(f.q);
        for (const row of rows) {
          if (f.levels && !f.levels.includes(row.level)) continue;
          if (f.source !== undefined && row.source !== f.source) continue;
          if (f.q !== undefined && !text?.has(row.event_id)) continue;
          if (f.writers && (row.writer === null || !f.writers.includes(row.writer))) continue;
          tail.send(row);
        }
      }
    } catch (e) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }

  close(): void {
    this.tails.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.positions = undefined;
  }
}
