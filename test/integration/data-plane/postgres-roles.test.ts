import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ledgerDdl, ledgerNames } from "../../../workloads/common/src/ledger.js";
import { applyBatch } from "../../../workloads/consumer/src/sink.js";
import { ensureRoles, loginRole, rotateLogin, type RoleKind } from "../../../operator/src/postgres/roles.js";
import { makeEvent } from "../../support/events.js";
import { uniqueSuffix } from "../../support/kube.js";
import { testPartitions } from "../../support/pipeline-db.js";

/**
 * The managed pipeline's PostgreSQL roles against the real server: the owner makes and
 * maintains the schema, the writer stores rows and cannot change the schema, the reader only
 * reads; a rotation leaves the old login working until its pods are gone. Role names carry a
 * prefix of their own (roles are server-wide; a managed pipeline has its server to itself).
 */
const stack = inject("stack");
const prefix = `lpt_${uniqueSuffix()}`;
const schema = `${prefix}_data`;
const names = ledgerNames(schema, "logs");
const superuser = new pg.Pool({ connectionString: stack.postgresUrl, max: 2 });
const pw = (kind: string) => `pw-${kind}-${uniqueSuffix()}`;
const active: Record<RoleKind, { username: string; password: string }> = {
  owner: { username: loginRole(prefix, "owner", "a"), password: pw("owner") },
  writer: { username: loginRole(prefix, "writer", "a"), password: pw("writer") },
  reader: { username: loginRole(prefix, "reader", "a"), password: pw("reader") },
};
const pools: pg.Pool[] = [];
const as = (login: { username: string; password: string }, role?: string) => {
  const u = new URL(stack.postgresUrl);
  const pool = new pg.Pool({
    host: u.hostname,
    port: Number(u.port),
    database: u.pathname.slice(1),
    user: login.username,
    password: login.password,
    max: 2,
  });
  if (role) pool.on("connect", (c) => void c.query(`SET ROLE ${role}`));
  pools.push(pool);
  return pool;
};

beforeAll(async () => {
  const c = await superuser.connect();
  try {
    await ensureRoles(c, { prefix, schema, active });
    // Idempotent: a second pass changes nothing and fails on nothing.
    await ensureRoles(c, { prefix, schema, active });
  } finally {
    c.release();
  }
});

afterAll(async () => {
  for (const p of pools) await p.end();
  await superuser.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  for (const kind of ["owner", "writer", "reader"] as const)
    for (const r of [loginRole(prefix, kind, "a"), loginRole(prefix, kind, "b"), `${prefix}_${kind}`]) {
      await superuser.query(`DROP OWNED BY "${r}"`).catch(() => undefined);
      await superuser.query(`DROP ROLE IF EXISTS "${r}"`);
    }
  await superuser.end();
});

describe("PostgreSQL roles of a managed pipeline", () => {
  it("the owner migrates and makes partitions; the writer stores rows; the reader reads; none is a superuser", async () => {
    const owner = as(active.owner, `${prefix}_owner`);
    await owner.query(ledgerDdl(names));
    const partitions = testPartitions({ pool: owner, names });
    const writer = as(active.writer);
    const client = await writer.connect();
    const events = Array.from({ length: 20 }, (_, i) => makeEvent(i));
    try {
      const out = await applyBatch(
        client,
        names,
        "t",
        0,
        events.map((e, i) => ({ offset: String(i), value: Buffer.from(JSON.stringify(e)) })),
        { attempt: 1, ensureBuckets: (b) => partitions.ensureBuckets(b), retentionDays: 0, legacy: false },
      );
      expect(out.applied).toBe(20);
    } finally {
      client.release();
    }
    const reader = as(active.reader);
    const rows = await reader.query<{ n: string }>(`SELECT count(*) AS n FROM ${names.events}`);
    expect(Number(rows.rows[0]?.n)).toBe(20);
    // Partitions the owner made are readable by the reader (default privileges).
    const parts = await reader.query<{ relname: string }>(
      `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`,
      [names.events],
    );
    expect(parts.rows.length).toBeGreaterThan(0);
    const first = parts.rows[0]?.relname ?? "";
    await reader.query(`SELECT 1 FROM "${schema}"."${first}" LIMIT 1`);
    const owners = await superuser.query<{ o: string }>(
      `SELECT DISTINCT pg_get_userbyid(c.relowner) AS o FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1`,
      [schema],
    );
    expect(owners.rows.map((r) => r.o)).toEqual([`${prefix}_owner`]);
    const supers = await superuser.query<{ rolname: string }>(
      `SELECT rolname FROM pg_roles WHERE rolname LIKE $1 AND (rolsuper OR rolcreaterole OR rolcreatedb)`,
      [`${prefix}%`],
    );
    expect(supers.rows).toEqual([]);
  });

  it("refuses what each role may not do, with PostgreSQL's own permission error (42501)", async () => {
    const writer = as(active.writer);
    const reader = as(active.reader);
    const code = (p: Promise<unknown>) =>
      p.then(
        () => "ok",
        (e: unknown) => (e as { code?: string }).code ?? "error",
      );
    expect(await code(writer.query(`DROP TABLE ${names.events}`))).toBe("42501");
    expect(await code(writer.query(`ALTER TABLE ${names.events} ADD COLUMN x int`))).toBe("42501");
    expect(await code(writer.query(`CREATE TABLE "${schema}".x (a int)`))).toBe("42501");
    expect(await code(reader.query(`DELETE FROM ${names.events}`))).toBe("42501");
    expect(await code(reader.query(`UPDATE ${names.offsets} SET next_offset = 0`))).toBe("42501");
    expect(
      await code(
        reader.query(
          `INSERT INTO ${names.deadLetters} (topic, partition, "offset", reason) VALUES ('t', 0, 0, 'x')`,
        ),
      ),
    ).toBe("42501");
    // And what they may: a control that the refusals above are about the role, not the SQL.
    expect(await code(reader.query(`SELECT count(*) FROM ${names.offsets}`))).toBe("ok");
    expect(await code(writer.query(`UPDATE ${names.offsets} SET updated_at = now() WHERE false`))).toBe("ok");
  });

  it("rotates a password with no moment where neither login works", async () => {
    const old = active.writer;
    const before = as(old);
    await before.query("SELECT 1");
    const c = await superuser.connect();
    let next: string;
    const password = pw("writer-2");
    try {
      next = await rotateLogin(c, { prefix, kind: "writer", current: old.username, password });
    } finally {
      c.release();
    }
    expect(next).toBe(loginRole(prefix, "writer", "b"));
    // Both work now: pods still on the old Secret, and pods started with the new one.
    const oldAgain = as(old);
    await oldAgain.query(`SELECT 1 FROM ${names.offsets} LIMIT 1`);
    const fresh = as({ username: next, password });
    await fresh.query(
      `INSERT INTO ${names.offsets} (topic, partition, next_offset) VALUES ('rotated', 0, 0)`,
    );
    // A wrong password is refused (the control: logins are checked).
    const wrong = as({ username: next, password: "not-it" });
    await expect(wrong.query("SELECT 1")).rejects.toMatchObject({ code: "28P01" });
  });
});
