import pg from "pg";

/**
 * PostgreSQL roles of a managed pipeline, made by the operator with the server's superuser
 * (the only use of it):
 *
 * - `<prefix>_owner` owns the pipeline's schema and every table in it: DDL, partition
 *   maintenance and retention (the consumer's maintainer, which acts as it by SET ROLE);
 * - `<prefix>_writer` reads and writes rows (the consumer's batches), never DDL;
 * - `<prefix>_reader` only reads (the query API, the operator's own checks).
 *
 * Each of the three is a group role without login; two logins belong to each (`…_a`, `…_b`),
 * and a workload's Secret names one of them. Rotating a password sets a new one on the login
 * the Secret does not name, then points the Secret at it: pods still running with the other
 * login keep working until they are replaced, so a rotation has no outage.
 */
export const ROLE_KINDS = ["owner", "writer", "reader"] as const;
export type RoleKind = (typeof ROLE_KINDS)[number];
export type LoginSlot = "a" | "b";

export const groupRole = (prefix: string, kind: RoleKind) => `${prefix}_${kind}`;
export const loginRole = (prefix: string, kind: RoleKind, slot: LoginSlot) => `${prefix}_${kind}_${slot}`;
export const otherSlot = (slot: LoginSlot): LoginSlot => (slot === "a" ? "b" : "a");

/** The slot a login's name ends with (the Secret's username). */
export function slotOf(username: string): LoginSlot {
  return username.endsWith("_b") ? "b" : "a";
}

export interface ActiveLogin {
  username: string;
  password: string;
}

const id = pg.escapeIdentifier;
const lit = pg.escapeLiteral;

/**
 * Makes the roles and their grants, idempotently, and sets each active login's password (the
 * one its Secret holds). An existing schema and tables (a pipeline made before roles) are
 * given to the owner role. One transaction: a failure leaves what was there.
 */
export async function ensureRoles(
  client: pg.ClientBase,
  o: { prefix: string; schema: string; active: Record<RoleKind, ActiveLogin> },
): Promise<void> {
  const owner = groupRole(o.prefix, "owner");
  const writer = groupRole(o.prefix, "writer");
  const reader = groupRole(o.prefix, "reader");
  const statements: string[] = [];
  for (const kind of ROLE_KINDS) {
    const group = groupRole(o.prefix, kind);
    statements.push(
      `DO $$ BEGIN
         IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${lit(group)}) THEN CREATE ROLE ${id(group)} NOLOGIN; END IF;
         IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${lit(loginRole(o.prefix, kind, "a"))}) THEN
           CREATE ROLE ${id(loginRole(o.prefix, kind, "a"))} LOGIN INHERIT IN ROLE ${id(group)};
         END IF;
         IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${lit(loginRole(o.prefix, kind, "b"))}) THEN
           CREATE ROLE ${id(loginRole(o.prefix, kind, "b"))} LOGIN INHERIT IN ROLE ${id(group)};
         END IF;
       END $$`,
    );
    const active = o.active[kind];
    if (active.username !== loginRole(o.prefix, kind, slotOf(active.username)))
      throw new Error(`the ${kind} Secret names ${active.username}, not one of this pipeline's logins`);
    statements.push(`ALTER ROLE ${id(active.username)} PASSWORD ${lit(active.password)}`);
  }
  const schema = id(o.schema);
  const database = id(await currentDatabase(client));
  statements.push(
    `GRANT CONNECT ON DATABASE ${database} TO ${id(owner)}, ${id(writer)}, ${id(reader)}`,
    // The owner makes the schema if it is missing (the consumer's DDL says IF NOT EXISTS, which
    // PostgreSQL checks against CREATE on the database first).
    `GRANT CREATE ON DATABASE ${database} TO ${id(owner)}`,
    `CREATE SCHEMA IF NOT EXISTS ${schema} AUTHORIZATION ${id(owner)}`,
    `ALTER SCHEMA ${schema} OWNER TO ${id(owner)}`,
    // Tables made before the roles (by the superuser) become the owner's; partitions included.
    `DO $$ DECLARE r record; BEGIN
       FOR r IN SELECT c.oid::regclass AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = ${lit(o.schema)} AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                   AND pg_get_userbyid(c.relowner) <> ${lit(owner)} LOOP
         EXECUTE format('ALTER TABLE %s OWNER TO %I', r.t, ${lit(owner)});
       END LOOP;
     END $$`,
    `GRANT USAGE ON SCHEMA ${schema} TO ${id(writer)}, ${id(reader)}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${id(writer)}`,
    `GRANT SELECT ON ALL TABLES IN SCHEMA ${schema} TO ${id(reader)}`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${id(owner)} IN SCHEMA ${schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${id(writer)}`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${id(owner)} IN SCHEMA ${schema} GRANT SELECT ON TABLES TO ${id(reader)}`,
  );
  await client.query("BEGIN");
  try {
    for (const s of statements) await client.query(s);
    await client.query("COMMIT");
  } catch (e) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw e;
  }
}

/** Sets a new password on the login the Secret does not name; the caller then points the Secret at it. */
export async function rotateLogin(
  client: pg.ClientBase,
  o: { prefix: string; kind: RoleKind; current: string; password: string },
): Promise<string> {
  const next = loginRole(o.prefix, o.kind, otherSlot(slotOf(o.current)));
  await client.query(`ALTER ROLE ${id(next)} PASSWORD ${lit(o.password)}`);
  return next;
}

async function currentDatabase(client: pg.ClientBase): Promise<string> {
  const r = await client.query<{ d: string }>("SELECT current_database() AS d");
  return r.rows[0]?.d ?? "postgres";
}
