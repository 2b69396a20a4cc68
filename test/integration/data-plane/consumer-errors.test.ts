import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRegistry } from "../../../workloads/common/src/metrics.js";
import type { Sink } from "../../../workloads/consumer/src/consumer.js";
import { makeEvent } from "../../support/events.js";
import { type Admin, kafkaClient, workloadKafkaClient } from "../../support/kafka.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import { exactlyOnceAudit, ledgerCounts, testLedger } from "../../support/pipeline-db.js";
import { startSink } from "../../support/sink.js";

/**
 * The consumer's handling of PostgreSQL's errors by SQLSTATE class, against the real server:
 * a row trigger on the events table raises the SQLSTATE a test asks for (on rows whose
 * message says `raise-<code>`, or, while a row in `fault` names a code, on rows saying
 * `flaky`), so each class is met exactly as the consumer meets it from PostgreSQL.
 */
const stack = inject("stack");
const id = uniqueSuffix();
const topic = `t-errors-${id}`;
const kafka = kafkaClient(stack.kafkaBootstrap);
const registry = createRegistry("consumer", "t");
let admin: Admin;
let db: Awaited<ReturnType<typeof testLedger>>;
let sink: Sink;

const metric = async (name: string, labels: string) => {
  const line = (await registry.metrics())
    .split("\n")
    .find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(" ").at(-1)) : 0;
};

beforeAll(async () => {
  admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] });
  db = await testLedger(stack.postgresUrl, "t_errors");
  const fault = `"${db.schema}".fault`;
  await db.pool.query(`
    CREATE TABLE ${fault} (code text NOT NULL);
    CREATE FUNCTION "${db.schema}".refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE c text;
    BEGIN
      IF NEW.message LIKE 'raise-%' THEN
        RAISE EXCEPTION 'refused for the test' USING ERRCODE = substr(NEW.message, 7, 5);
      END IF;
      IF NEW.message = 'flaky' THEN
        SELECT code INTO c FROM ${fault} LIMIT 1;
        IF c IS NOT NULL THEN RAISE EXCEPTION 'refused while the fault lasts' USING ERRCODE = c; END IF;
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER refuse BEFORE INSERT ON ${db.names.events} FOR EACH ROW EXECUTE FUNCTION "${db.schema}".refuse();`);
  sink = await startSink({
    kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "t"),
    db,
    topic,
    groupId: `g-${id}`,
    registry,
    batchMaxEvents: 2000,
  });
});

afterAll(async () => {
  await sink.stop();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
  await db.drop();
});

let sent = 0;
const send = async (messages: string[]) => {
  const events = messages.map((m) => makeEvent(1_000_000 + sent++, { message: m }));
  const producer = kafka.producer({
    kafkaJS: { transactionalId: `tx-${id}-${String(sent)}`, idempotent: true, maxInFlightRequests: 1 },
  });
  await producer.connect();
  const tx = await producer.transaction();
  await tx.send({ topic, messages: events.map((e) => ({ value: JSON.stringify(e), partition: 0 })) });
  await tx.commit();
  await producer.disconnect();
  return events.map((e) => e.eventId);
};
const deadLetters = async () =>
  (
    await db.pool.query<{ error_code: string }>(
      `SELECT error_code FROM ${db.names.deadLetters} ORDER BY "offset"`,
    )
  ).rows.map((r) => r.error_code);

describe("consumer: PostgreSQL errors by SQLSTATE class", () => {
  it("isolates records refused for their data (classes 22, 23, 54) and stores the rest of the batch once", async () => {
    const messages = Array.from({ length: 1000 }, (_, i) => `fine ${String(i)}`);
    messages[137] = "raise-22023"; // invalid_parameter_value
    messages[500] = "raise-23502"; // not_null_violation
    messages[998] = "raise-54000"; // program_limit_exceeded
    const ids = await send(messages);
    const good = ids.filter((_, i) => ![137, 500, 998].includes(i));
    await eventually("the batch accounted for", async () => {
      const c = await ledgerCounts(db.pool, db.names);
      return c.applied + c.deadLettered >= 1000 ? c : undefined;
    });
    expect(await deadLetters()).toEqual(["22023", "23502", "54000"]);
    const audit = await exactlyOnceAudit(db.pool, db.names, good);
    expect(audit).toEqual({ lost: 0, duplicated: 0, spurious: 0, rows: 997 });
  });

  it("retries a passing error (class 40) with backoff, never dead-letters, and stores once it passes", async () => {
    await db.pool.query(`INSERT INTO "${db.schema}".fault VALUES ('40001')`);
    const before = await ledgerCounts(db.pool, db.names);
    const retriesBefore = await metric("log_consumer_batch_retries_total", 'reason="40001"');
    const ids = await send(["ok before", "flaky", "ok after"]);
    // Barrier: the consumer has met the error at least twice.
    await eventually("two retries", async () =>
      (await metric("log_consumer_batch_retries_total", 'reason="40001"')) >= retriesBefore + 2
        ? true
        : undefined,
    );
    const during = await ledgerCounts(db.pool, db.names);
    expect(during.applied).toBe(before.applied); // the batch is all or nothing
    expect(during.deadLettered).toBe(before.deadLettered);
    expect(await metric("log_consumer_partition_stalled", 'partition="0"')).toBe(0);
    await db.pool.query(`DELETE FROM "${db.schema}".fault`);
    await eventually("stored once the error passes", async () =>
      (await ledgerCounts(db.pool, db.names)).applied === before.applied + 3 ? true : undefined,
    );
    expect((await exactlyOnceAudit(db.pool, db.names, ids)).lost).toBe(0);
    expect((await ledgerCounts(db.pool, db.names)).deadLettered).toBe(before.deadLettered);
  });

  it("stalls on an error that is neither the data's nor passing (42501), says so, and resumes when it is fixed", async () => {
    await db.pool.query(`INSERT INTO "${db.schema}".fault VALUES ('42501')`);
    const before = await ledgerCounts(db.pool, db.names);
    const ids = await send(["flaky", "also fine"]);
    const stall = await eventually("the stall recorded in the ledger", async () => {
      const r = await db.pool.query<{ stalled_code: string | null; stalled_reason: string | null }>(
        `SELECT stalled_code, stalled_reason FROM ${db.names.offsets} WHERE topic = $1 AND partition = 0`,
        [topic],
      );
      return r.rows[0]?.stalled_code ? r.rows[0] : undefined;
    });
    expect(stall).toEqual({
      stalled_code: "42501",
      stalled_reason: expect.stringMatching(/refused while the fault lasts/) as unknown,
    });
    expect(await metric("log_consumer_partition_stalled", 'partition="0"')).toBe(1);
    // Barrier: a further attempt after the stall was recorded; still nothing stored or dead-lettered.
    const retries = await metric("log_consumer_batch_retries_total", 'reason="42501"');
    await eventually("another attempt", async () =>
      (await metric("log_consumer_batch_retries_total", 'reason="42501"')) > retries ? true : undefined,
    );
    expect(await ledgerCounts(db.pool, db.names)).toMatchObject({
      applied: before.applied,
      deadLettered: before.deadLettered,
    });
    await db.pool.query(`DELETE FROM "${db.schema}".fault`);
    await eventually("resumed", async () =>
      (await ledgerCounts(db.pool, db.names)).applied === before.applied + 2 ? true : undefined,
    );
    expect((await exactlyOnceAudit(db.pool, db.names, ids)).lost).toBe(0);
    const cleared = await db.pool.query<{ stalled_code: string | null }>(
      `SELECT stalled_code FROM ${db.names.offsets} WHERE topic = $1 AND partition = 0`,
      [topic],
    );
    expect(cleared.rows[0]?.stalled_code).toBeNull();
    expect(await metric("log_consumer_partition_stalled", 'partition="0"')).toBe(0);
  });
});
