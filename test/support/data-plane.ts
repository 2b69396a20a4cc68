import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import type { Registry } from "prom-client";
import { ApiKeys } from "../../workloads/common/src/auth.js";
import { parseEnv, ProducerEnv, QueryEnv } from "../../workloads/common/src/config.js";
import { createLogger } from "../../workloads/common/src/logger.js";
import { createRegistry } from "../../workloads/common/src/metrics.js";
import { buildGateway } from "../../workloads/producer/src/app.js";
import { buildQueryApp } from "../../workloads/query/src/app.js";
import { type Admin, kafkaClient, workloadKafkaClient } from "./kafka.js";
import { pipelineEnv, uniqueSuffix } from "./kube.js";
import { testLedger } from "./pipeline-db.js";
import { startSink } from "./sink.js";
import type { StackInfo } from "./stack.js";

/**
 * One pipeline's data plane in the test process, on real sockets: the gateway and the query
 * API listening on 127.0.0.1 (ephemeral ports), the consumer's sink between a topic of its own
 * on the stack's Kafka and a schema of its own on the stack's PostgreSQL, Redis for both.
 * Ingest and query keys come from separate files, as the operator mounts them.
 */
export interface DataPlane {
  gatewayUrl: string;
  queryUrl: string;
  db: Awaited<ReturnType<typeof testLedger>>;
  gatewayRegistry: Registry;
  queryRegistry: Registry;
  /** Closes the gateway (in-flight requests finish), keeps it down `downMs`, starts a new one on the same port. */
  restartGateway(downMs: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startDataPlane(
  stack: StackInfo,
  o: {
    name: string;
    ingestKeys: string;
    queryKeys: string;
    gatewayEnv?: Record<string, string>;
    queryEnv?: Record<string, string>;
  },
): Promise<DataPlane> {
  const id = uniqueSuffix();
  const topic = `t-${o.name}-${id}`;
  const admin: Admin = kafkaClient(stack.kafkaBootstrap).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] });
  const db = await testLedger(stack.postgresUrl, `t_${o.name.replaceAll("-", "_")}`);
  const redis = new Redis(stack.redisUrl);
  const kafka = workloadKafkaClient(stack.kafkaBootstrap, topic, "t");
  const gatewayEnv = parseEnv(ProducerEnv, {
    ...pipelineEnv(`${o.name}-${id}`),
    KAFKA_BOOTSTRAP_SERVERS: stack.kafkaBootstrap,
    KAFKA_TOPIC: topic,
    TRANSACTIONAL_ID: `${o.name}-${id}`,
    API_KEYS_FILE: "/dev/null",
    REDIS_URL: stack.redisUrl,
    ...o.gatewayEnv,
  });
  const makeGateway = async () => {
    const registry = createRegistry("producer", "t");
    const g = await buildGateway({
      env: gatewayEnv,
      kafka,
      redis,
      apiKeys: new ApiKeys(o.ingestKeys),
      log: createLogger(`${o.name}-gateway`, "error"),
      registry,
    });
    return { g, registry };
  };
  let gateway = await makeGateway();
  const sink = await startSink({ kafka, db, topic, groupId: `g-${o.name}-${id}` });
  const queryRegistry = createRegistry("query", "t");
  const query = await buildQueryApp({
    env: parseEnv(QueryEnv, {
      ...pipelineEnv(`${o.name}-${id}`),
      PG_HOST: "unused",
      PG_USER: "unused",
      API_KEYS_FILE: "/dev/null",
      REDIS_URL: stack.redisUrl,
      ...o.queryEnv,
    }),
    pool: db.pool,
    redis,
    names: db.names,
    apiKeys: new ApiKeys(o.queryKeys),
    log: createLogger(`${o.name}-query`, "error"),
    registry: queryRegistry,
  });
  await gateway.g.app.listen({ host: "127.0.0.1", port: 0 });
  await query.listen({ host: "127.0.0.1", port: 0 });
  const url = (a: AddressInfo | string | null) => `http://127.0.0.1:${String((a as AddressInfo).port)}`;
  const gatewayPort = (gateway.g.app.server.address() as AddressInfo).port;
  return {
    gatewayUrl: `http://127.0.0.1:${String(gatewayPort)}`,
    queryUrl: url(query.server.address()),
    db,
    get gatewayRegistry() {
      return gateway.registry;
    },
    queryRegistry,
    restartGateway: async (downMs: number) => {
      await gateway.g.close();
      await new Promise((r) => setTimeout(r, downMs));
      gateway = await makeGateway();
      await gateway.g.app.listen({ host: "127.0.0.1", port: gatewayPort });
    },
    stop: async () => {
      await gateway.g.close();
      await query.close();
      await sink.stop();
      redis.disconnect();
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
      await db.drop();
    },
  };
}
