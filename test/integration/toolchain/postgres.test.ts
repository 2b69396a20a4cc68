import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { uniqueSuffix } from "../../support/kube.js";

const stack = inject("stack");
const schema = `t_pg_${uniqueSuffix()}`;
const pool = new pg.Pool({ connectionString: stack.postgresUrl, max: 2 });

beforeAll(async () => {
  await pool.query(`CREATE SCHEMA ${schema}`);
});
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await pool.end();
});

describe("PostgreSQL", () => {
  it("round-trips rows inside a transaction, and a rolled-back one leaves nothing", async () => {
    await pool.query(`CREATE TABLE ${schema}.events (event_id uuid PRIMARY KEY, message text NOT NULL)`);
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      await client.query(`INSERT INTO ${schema}.events VALUES (gen_random_uuid(), 'kept')`);
      await client.query("COMMIT");
      await client.query("BEGIN");
      await client.query(`INSERT INTO ${schema}.events VALUES (gen_random_uuid(), 'rolled back')`);
      await client.query("ROLLBACK");
    } finally {
      client.release();
    }
    const { rows } = await pool.query<{ message: string }>(`SELECT message FROM ${schema}.events`);
    expect(rows.map((r) => r.message)).toEqual(["kept"]);
  });

  it("requires a password over TCP", async () => {
    const url = new URL(stack.postgresUrl);
    url.password = "wrong";
    const bad = new pg.Client({ connectionString: url.toString() });
    await expect(bad.connect()).rejects.toThrow(/password authentication failed/);
    await bad.end().catch(() => undefined);
  });
});
