import type pg from "pg";

/** The request's time budget ran out, or its client went away: the caller answers with what it has. */
export class BudgetExhausted extends Error {
  constructor(readonly clientGone: boolean) {
    super(clientGone ? "client went away" : "time budget exhausted");
  }
}

const QUERY_CANCELED = "57014";

/**
 * One request's PostgreSQL session: every statement runs with a statement timeout of what is
 * left of the request's budget, and is cancelled (pg_cancel_backend) when the client goes
 * away. Released to the pool with its timeout reset; a session whose statement was cancelled
 * is destroyed rather than reused.
 */
export class QuerySession {
  private readonly deadline: number;
  private gone = false;
  private busy = false;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly client: pg.PoolClient,
    budgetMs: number,
  ) {
    this.deadline = performance.now() + budgetMs;
  }

  static async open(
    pool: pg.Pool,
    budgetMs: number,
    clientClosed: (cb: () => void) => void,
  ): Promise<QuerySession> {
    const s = new QuerySession(pool, await pool.connect(), budgetMs);
    clientClosed(() => s.cancel());
    return s;
  }

  remainingMs(): number {
    return Math.max(0, Math.floor(this.deadline - performance.now()));
  }

  async query<R extends pg.QueryResultRow>(sql: string, args: unknown[] = []): Promise<R[]> {
    const left = this.remainingMs();
    if (this.gone || left < 1) throw new BudgetExhausted(this.gone);
    this.busy = true;
    try {
      await this.client.query("SELECT set_config('statement_timeout', $1, false)", [String(left)]);
      return (await this.client.query<R>(sql, args)).rows;
    } catch (e) {
      if ((e as { code?: unknown }).code === QUERY_CANCELED) throw new BudgetExhausted(this.gone);
      throw e;
    } finally {
      this.busy = false;
    }
  }

  private cancel(): void {
    if (this.gone) return;
    this.gone = true;
    if (!this.busy) return;
    const pid = (this.client as unknown as { processID?: number }).processID;
    if (pid !== undefined) void this.pool.query("SELECT pg_cancel_backend($1)", [pid]).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.gone) {
      this.client.release(true);
      return;
    }
    try {
      await this.client.query("RESET statement_timeout");
      this.client.release();
    } catch (e) {
      this.client.release(e as Error);
    }
  }
}
