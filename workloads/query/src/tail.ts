import type pg from "pg";
import type { LedgerNames } from "../../common/src/ledger.js";
import type { Logger } from "../../common/src/logger.js";
import { EVENT_READ_COLUMNS, FTS_EXPR, tailChannel, type TailNotice } from "../../common/src/storage.js";

export interface TailFilter {
  levels?: string[] | undefined;
  source?: string | undefined;
  q?: string | undefined;
}

export interface Tail<R> {
  filter: TailFilter;
  send: (row: R) => void;
}

/**
 * Live tails: one LISTEN session per process on the channel the consumer notifies in each
 * batch's transaction. PostgreSQL delivers a notification only when its transaction commits,
 * so a tail sees committed rows only — never a rolled-back batch, and (the consumer reads
 * read_committed) never a record of an aborted Kafka transaction. On a notice the committed
 * rows are read by their Kafka positions and sent to every tail whose filter they match.
 */
export class TailHub<R extends { level: string; source: string; event_id: string }> {
  private readonly tails = new Set<Tail<R>>();
  private listener: pg.PoolClient | undefined;
  private starting: Promise<void> | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly pool: pg.Pool,
    private readonly names: LedgerNames,
    private readonly max: number,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.tails.size;
  }

  /** Adds a tail; false when the bound is reached. Resolves once the LISTEN is in place. */
  async add(tail: Tail<R>): Promise<boolean> {
    if (this.tails.size >= this.max) return false;
    this.tails.add(tail);
    try {
      await this.listen();
    } catch (e) {
      this.tails.delete(tail);
      throw e;
    }
    return true;
  }

  remove(tail: Tail<R>): void {
    this.tails.delete(tail);
    if (this.tails.size === 0) this.unlisten();
  }

  private listen(): Promise<void> {
    if (this.listener) return Promise.resolve();
    this.starting ??= (async () => {
      const c = await this.pool.connect();
      c.on("notification", (m) => {
        if (m.channel !== tailChannel(this.names) || !m.payload) return;
        const notice = JSON.parse(m.payload) as TailNotice;
        // One notice at a time, in the order PostgreSQL delivered them (commit order).
        this.queue = this.queue
          .then(() => this.deliver(notice))
          .catch((e: unknown) => this.log.warn({ err: (e as Error).message }, "tail delivery failed"));
      });
      c.on("error", () => this.unlisten());
      await c.query(`LISTEN ${tailChannel(this.names)}`);
      this.listener = c;
    })().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private unlisten(): void {
    const c = this.listener;
    this.listener = undefined;
    c?.release(true); // a LISTENing session is never reused
  }

  private async deliver(n: TailNotice): Promise<void> {
    if (this.tails.size === 0) return;
    const { rows } = await this.pool.query<R>(
      `SELECT ${EVENT_READ_COLUMNS} FROM ${this.names.events}
        WHERE kafka_partition = $1 AND kafka_offset BETWEEN $2 AND $3 ORDER BY kafka_offset`,
      [n.p, n.from, n.to],
    );
    const matchedText = new Map<string, Set<string>>();
    for (const tail of this.tails) {
      const f = tail.filter;
      let text: Set<string> | undefined;
      if (f.q !== undefined) {
        text = matchedText.get(f.q);
        if (!text) {
          const r = await this.pool.query<{ event_id: string }>(
            `SELECT event_id FROM ${this.names.events}
              WHERE kafka_partition = $1 AND kafka_offset BETWEEN $2 AND $3
                AND ${FTS_EXPR} @@ websearch_to_tsquery('simple', $4)`,
            [n.p, n.from, n.to, f.q],
          );
          text = new Set(r.rows.map((x) => x.event_id));
          matchedText.set(f.q, text);
        }
      }
      for (const row of rows) {
        if (f.levels && !f.levels.includes(row.level)) continue;
        if (f.source !== undefined && row.source !== f.source) continue;
        if (text && !text.has(row.event_id)) continue;
        tail.send(row);
      }
    }
  }

  close(): void {
    this.tails.clear();
    this.unlisten();
  }
}
