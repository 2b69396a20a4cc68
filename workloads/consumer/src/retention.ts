import type pg from "pg";
import { Counter, type Registry } from "prom-client";
import type { LedgerNames } from "../../common/src/ledger.js";
import type { Logger } from "../../common/src/logger.js";
import { withAdvisoryLock } from "./advisory-lock.js";

export interface RetentionOptions {
  /** Events whose own timestamp (`ts`) is older than this many days are deleted; 0 keeps them. */
  days: number;
  /** Time between passes. */
  intervalMs: number;
  /** Rows per DELETE: short transactions that never hold many locks at once. */
  batchRows: number;
}

/**
 * The retention job: deletes events older than `days` (by the event's own timestamp, the
 * column the query API filters on, indexed) in batches of `batchRows`, one replica at a time
 * (a PostgreSQL advisory lock), every `intervalMs`. Only events rows go: the ledger (stored
 * positions, skipped duplicates, dead letters) stays, so offsets never move back. The
 * divergence check applies the same cutoff to Kafka's records (an expired event is not
 * missing).
 */
export class RetentionJob {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly deleted: Counter;

  constructor(
    private readonly pool: pg.Pool,
    private readonly names: LedgerNames,
    private readonly opts: RetentionOptions,
    private readonly log: Logger,
    registry: Registry,
  ) {
    this.deleted = new Counter({
      name: "log_consumer_retention_deleted_total",
      help: "Events deleted by the retention job (older than the pipeline's retention).",
      registers: [registry],
    });
  }

  start(): void {
    if (this.opts.days <= 0) return;
    const tick = () => {
      if (this.stopped) return;
      this.running = this.runOnce()
        .then(() => undefined)
        .catch((e: unknown) =>
          this.log.warn(
            { err: e instanceof Error ? e.message : String(e) },
            "retention pass failed; next pass retries",
          ),
        )
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(tick, this.opts.intervalMs);
        });
    };
    // The first pass soon after start, not at once: migrations and assignment go first.
    this.timer = setTimeout(tick, Math.min(this.opts.intervalMs, 5_000));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One pass; returns the rows it deleted (0 when another replica holds the lock). */
  async runOnce(): Promise<number> {
    const deleted = await withAdvisoryLock(
      this.pool,
      `logpipeline-retention:${this.names.events}`,
      async (session) => {
        // One cutoff for the whole pass, so a pass ends even while old events keep arriving.
        const { rows } = await session.query<{ cutoff: Date }>(
          "SELECT now() - make_interval(days => $1::int) AS cutoff",
          [this.opts.days],
        );
        const cutoff = rows[0]?.cutoff;
        let total = 0;
        while (!this.stopped) {
          const r = await session.query(
            `DELETE FROM ${this.names.events} WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM ${this.names.events} WHERE ts < $1 LIMIT $2))`,
            [cutoff, this.opts.batchRows],
          );
          const n = r.rowCount ?? 0;
          total += n;
          this.deleted.inc(n);
          if (n < this.opts.batchRows) break;
        }
        return total;
      },
    );
    if (deleted) this.log.info({ deleted, days: this.opts.days }, "retention pass");
    return deleted ?? 0; // undefined: another replica holds the lock
  }
}
