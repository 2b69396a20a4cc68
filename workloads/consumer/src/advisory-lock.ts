import type pg from "pg";

/**
 * Runs `fn` on one pooled session while that session holds the advisory lock named `key`
 * (released after, and by PostgreSQL if the process dies); undefined, without running `fn`,
 * when another session holds it. One replica at a time does the work.
 */
export async function withAdvisoryLock<T>(
  pool: pg.Pool,
  key: string,
  fn: (session: pg.PoolClient) => Promise<T>,
): Promise<T | undefined> {
  const session = await pool.connect();
  try {
    const lock = await session.query<{ ok: boolean }>("SELECT pg_try_advisory_lock(hashtext($1)) AS ok", [
      key,
    ]);
    if (!lock.rows[0]?.ok) return undefined;
    try {
      return await fn(session);
    } finally {
      await session.query("SELECT pg_advisory_unlock(hashtext($1))", [key]);
    }
  } finally {
    session.release();
  }
}
