import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Sink } from "../../../workloads/consumer/src/consumer.js";
import { type Admin, kafkaClient, workloadKafkaClient } from "../../support/kafka.js";
import { eventually, uniqueSuffix, pipelineEnv } from "../../support/kube.js";
import { testLedger } from "../../support/pipeline-db.js";
import { startSink } from "../../support/sink.js";
import { startWorkload } from "../../support/workload-process.js";

const stack = inject("stack");
const id = uniqueSuffix();
const topic = `t-gwfault-${id}`;
const dir = mkdtempSync(path.join(tmpdir(), "lp-gateway-faults-"));
const keysFile = path.join(dir, "keys");
const KEY = "k-" + id;
const port = 21_000 + Math.floor(Math.random() * 9000);
let admin: Admin;
let db: Awaited<ReturnType<typeof testLedger>>;
let sink: Sink;

const gatewayEnv = (extra: Record<string, string> = {}) => ({
  ...pipelineEnv(`gwf-${id}`),
  KAFKA_BOOTSTRAP_SERVERS: stack.kafkaBootstrap,
  KAFKA_TOPIC: topic,
  TRANSACTIONAL_ID: `gwf-${id}`,
  API_KEYS_FILE: keysFile,
  REDIS_URL: stack.redisUrl,
  HOST: "127.0.0.1",
  PORT: String(port),
  METRICS_PORT: String(port + 1),
  BATCH_MAX_EVENTS: "500",
  LOG_LEVEL: "warn",
  ...extra,
});

async function waitReady() {
  await eventually(
    "the gateway to be ready",
    async () =>
      (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok ? true : undefined,
    30_000,
  );
}

beforeAll(async () => {
  writeFileSync(keysFile, `load:${KEY}\n`);
  admin = kafkaClient(stack.kafkaBootstrap).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }] });
  db = await testLedger(stack.postgresUrl, "t_gwfault");
  sink = await startSink({
    kafka: workloadKafkaClient(stack.kafkaBootstrap, topic, "t"),
    db,
    topic,
    groupId: `g-${id}`,
    batchMaxEvents: 1000,
  });
});

afterAll(async () => {
  await sink.stop();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
  await db.drop();
});

describe("gateway: kill -9 under load", () => {
  it("loses no acknowledged event, and a request's events land all together or not at all", async () => {
    // Killed between a transaction's send and its commit, on the 6th batch: mid-transaction by construction.
    const doomed = startWorkload(
      "producer",
      gatewayEnv({ LP_FAILPOINTS: "before-kafka-commit=kill@6" }),
      path.join(dir, "gateway.log"),
    );
    await waitReady();
    const acked = new Set<string>();
    const unacked: string[][] = [];
    let stop = false;
    const client = async () => {
      for (let i = 0; i < 200 && !stop; i++) {
        const events = Array.from({ length: 50 }, (_, j) => ({
          eventId: randomUUID(),
          level: "INFO",
          source: `load-${j % 5}`,
          message: `m ${i}.${j}`,
        }));
        try {
          const r = await fetch(`http://127.0.0.1:${port}/api/logs/batch`, {
            method: "POST",
            headers: { "content-type": "application/json", "x-api-key": KEY },
            body: JSON.stringify(events),
          });
          if (r.status === 202) for (const e of events) acked.add(e.eventId);
          else unacked.push(events.map((e) => e.eventId));
        } catch {
          unacked.push(events.map((e) => e.eventId));
          stop = true;
        }
      }
    };
    await Promise.all([client(), client(), client(), client()]);
    const died = await doomed.exited;
    expect(died.signal).toBe("SIGKILL");
    expect(acked.size).toBeGreaterThan(0);

    // The restarted gateway (same transactional id) fences the dead one's open transaction.
    const survivor = startWorkload("producer", gatewayEnv(), path.join(dir, "gateway.log"));
    try {
      await waitReady();
      const after = Array.from({ length: 10 }, (_, j) => ({
        eventId: randomUUID(),
        level: "WARN",
        source: "after",
        message: `after ${j}`,
      }));
      const r = await fetch(`http://127.0.0.1:${port}/api/logs/batch`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": KEY },
        body: JSON.stringify(after),
      });
      expect(r.status).toBe(202);
      for (const e of after) acked.add(e.eventId);
      await eventually(
        "every acknowledged event in PostgreSQL",
        async () => {
          const q = await db.pool.query<{ c: string }>(
            `SELECT count(*) AS c FROM ${db.names.events} WHERE event_id = ANY($1::uuid[])`,
            [[...acked]],
          );
          return Number(q.rows[0]?.c) === acked.size ? true : undefined;
        },
        60_000,
      );
    } finally {
      await survivor.stop();
    }
    await new Promise((r) => setTimeout(r, 1000));
    const stored = new Set(
      (await db.pool.query<{ event_id: string }>(`SELECT event_id FROM ${db.names.events}`)).rows.map(
        (r) => r.event_id,
      ),
    );
    const sent = new Set([...acked, ...unacked.flat()]);
    const lost = [...acked].filter((e) => !stored.has(e)).length;
    const spurious = [...stored].filter((e) => !sent.has(e)).length;
    expect({ lost, spurious }).toEqual({ lost: 0, spurious: 0 });
    // Atomic visibility: each unacknowledged request is wholly stored (committed before the
    // kill, answer lost) or wholly absent (its transaction was aborted).
    const partial = unacked.filter((ids) => {
      const n = ids.filter((e) => stored.has(e)).length;
      return n !== 0 && n !== ids.length;
    });
    expect(partial).toEqual([]);
    const counts = await db.pool.query<{ d: string }>(
      `SELECT coalesce(sum(duplicates_skipped), 0) AS d FROM ${db.names.offsets}`,
    );
    expect(Number(counts.rows[0]?.d)).toBe(0);
  });
});
