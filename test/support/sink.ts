import type pg from "pg";
import type { Registry } from "prom-client";
import type { KafkaClient } from "../../workloads/common/src/clients.js";
import type { LedgerNames } from "../../workloads/common/src/ledger.js";
import { createLogger } from "../../workloads/common/src/logger.js";
import { createRegistry } from "../../workloads/common/src/metrics.js";
import { Sink } from "../../workloads/consumer/src/consumer.js";

/** Starts the consumer's sink in the test process with the tests' usual settings. */
export async function startSink(o: {
  kafka: KafkaClient;
  db: { pool: pg.Pool; names: LedgerNames };
  topic: string;
  groupId: string;
  dlqTopic?: string;
  sessionTimeoutMs?: number;
  batchMaxEvents?: number;
  registry?: Registry;
}): Promise<Sink> {
  const sink = new Sink(
    {
      topic: o.topic,
      groupId: o.groupId,
      dlqTopic: o.dlqTopic,
      batchMaxEvents: o.batchMaxEvents ?? 500,
      sessionTimeoutMs: o.sessionTimeoutMs,
      backoffMs: 50,
      backoffMaxMs: 1000,
      pipeline: "t",
    },
    {
      kafka: o.kafka,
      pool: o.db.pool,
      names: o.db.names,
      log: createLogger("consumer-test", "error"),
      registry: o.registry ?? createRegistry("consumer", "t"),
    },
  );
  await sink.start();
  return sink;
}
