import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ApiKeys } from "../../../workloads/common/src/auth.js";
import { kafkaClient as workloadKafka } from "../../../workloads/common/src/clients.js";
import { ConsumerEnv, parseEnv, ProducerEnv } from "../../../workloads/common/src/config.js";
import { createLogger } from "../../../workloads/common/src/logger.js";
import { createRegistry } from "../../../workloads/common/src/metrics.js";
import { Sink } from "../../../workloads/consumer/src/consumer.js";
import { buildGateway } from "../../../workloads/producer/src/app.js";
import { type Admin, kafkaClient } from "../../support/kafka.js";
import { eventually, uniqueSuffix, pipelineEnv } from "../../support/kube.js";
import { exactlyOnceAudit, testLedger } from "../../support/pipeline-db.js";
import { pgEnv } from "../../support/workload-process.js";

/** The workloads against the stack's SASL/SCRAM-SHA-512 listener, configured as the operator will configure them. */
const stack = inject("stack");
const id = uniqueSuffix();
const topic = `t-sasl-${id}`;
const wrongPasswordFile = path.join(tmpdir(), `lp-wrong-${id}`);
const log = createLogger("sasl-test", "error");
const sasl = {
  KAFKA_BOOTSTRAP_SERVERS: stack.kafkaSasl.bootstrap,
  KAFKA_TOPIC: topic,
  KAFKA_SECURITY_PROTOCOL: "SASL_PLAINTEXT",
  KAFKA_SASL_MECHANISM: stack.kafkaSasl.mechanism,
  KAFKA_SASL_USERNAME: stack.kafkaSasl.username,
  KAFKA_SASL_PASSWORD_FILE: stack.kafkaSasl.passwordFile,
};
let admin: Admin;

beforeAll(async () => {
  writeFileSync(wrongPasswordFile, "not-the-password");
  admin = kafkaClient(stack.kafkaBootstrap).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] });
});
afterAll(async () => {
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
});

describe("Kafka SASL/SCRAM", () => {
  it("ingests and stores through the authenticated listener", async () => {
    const db = await testLedger(stack.postgresUrl, "t_sasl");
    const genv = parseEnv(ProducerEnv, {
      ...sasl,
      TRANSACTIONAL_ID: `sasl-${id}`,
      AUTH_DISABLED: "true",
      ...pipelineEnv(`sasl-${id}`),
    });
    const cenv = parseEnv(ConsumerEnv, {
      ...sasl,
      ...pgEnv(stack.postgresUrl, db.schema),
      KAFKA_GROUP_ID: `g-sasl-${id}`,
    });
    const gateway = await buildGateway({
      env: genv,
      kafka: workloadKafka(genv, "sasl", log),
      log,
      registry: createRegistry("producer", "sasl"),
      apiKeys: new ApiKeys("unused:unused"),
    });
    const sink = new Sink(
      {
        topic,
        groupId: cenv.KAFKA_GROUP_ID,
        batchMaxEvents: 100,
        backoffMs: 50,
        backoffMaxMs: 500,
        pipeline: "sasl",
      },
      {
        kafka: workloadKafka(cenv, "sasl", log),
        pool: db.pool,
        names: db.names,
        log,
        registry: createRegistry("consumer", "sasl"),
      },
    );
    await sink.start();
    try {
      const r = await gateway.app.inject({
        method: "POST",
        url: "/api/logs/batch",
        headers: { "content-type": "application/json" },
        payload: JSON.stringify([1, 2, 3].map((i) => ({ level: "INFO", source: "sasl", message: `m${i}` }))),
      });
      expect(r.statusCode, r.body).toBe(202);
      const ids = r.json<{ eventIds: string[] }>().eventIds;
      await eventually("the rows", async () =>
        (await exactlyOnceAudit(db.pool, db.names, ids)).lost === 0 ? true : undefined,
      );
    } finally {
      await gateway.close();
      await sink.stop();
      await db.drop();
    }
  });

  it("is refused with a wrong password, and the workload's log says why", async () => {
    const env = parseEnv(ConsumerEnv, {
      ...sasl,
      KAFKA_SASL_PASSWORD_FILE: wrongPasswordFile,
      KAFKA_GROUP_ID: "x",
      PG_HOST: "x",
      PG_USER: "x",
    });
    const lines: string[] = [];
    const captured = pino({ level: "warn" }, { write: (l: string) => void lines.push(l) });
    const a = workloadKafka(env, "sasl-wrong", captured).admin();
    let err: unknown;
    try {
      await a.connect();
      await a.fetchTopicMetadata({ topics: [topic] });
    } catch (e) {
      err = e;
    } finally {
      await a.disconnect().catch(() => undefined);
    }
    expect(err).toBeDefined();
    expect(lines.join("")).toMatch(/SASL authentication error: Authentication failed/);
    expect(lines.join("")).not.toContain("not-the-password");
  });
});
