import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import type { z } from "zod";
import { ConsumerEnv, ProducerEnv, QueryEnv } from "../../workloads/common/src/config.js";
import type { LogPipeline } from "../../operator/src/api/logpipeline.js";
import { parsePipeline } from "../../operator/src/api/parse.js";
import { type BuildOptions, desiredState, type KubeObject } from "../../operator/src/builders/index.js";
import { dnsName, pipelineNames } from "../../operator/src/builders/names.js";
import { repoRoot } from "../support/stack.js";

const samplesDir = path.join(repoRoot, "config/samples");
const goldenDir = path.join(repoRoot, "operator/testdata/golden");

const opts: BuildOptions = {
  images: {
    producer: "logpipeline/producer:0.1.0",
    consumer: "logpipeline/consumer:0.1.0",
    query: "logpipeline/query:0.1.0",
    postgres: "postgres:17",
    redis: "redis:7.4",
  },
  imagePullPolicy: "IfNotPresent",
  capabilities: { strimzi: true, keda: false, serviceMonitor: true, prometheusRule: true },
  secretHashes: {},
  operatorNamespace: "logpipeline-system",
};
const creds = {
  postgresPassword: "pg-Secret-1",
  redisPassword: "redis-Secret-2",
  apiKey: "key-Secret-3",
  queryKey: "query-Secret-4",
  postgresRolePasswords: { owner: "owner-Secret-5", writer: "writer-Secret-6", reader: "reader-Secret-7" },
};

function pipeline(
  spec: unknown,
  name = "p",
  namespace = "team-a",
  uid = "0f1e2d3c-0000-4000-8000-000000000001",
) {
  const r = parsePipeline({ metadata: { name, namespace, uid, generation: 1 }, spec });
  if (!r.ok) throw new Error(r.message);
  return r.pipeline;
}
const sample = (file: string): LogPipeline => {
  const raw = parse(readFileSync(path.join(samplesDir, file), "utf8")) as {
    metadata: { name: string };
    spec: unknown;
  };
  return pipeline(raw.spec, raw.metadata.name, "default");
};
const find = (objs: KubeObject[], kind: string, nameSuffix: string) =>
  objs.find((o) => o.kind === kind && o.metadata.name.endsWith(nameSuffix));

interface Container {
  env: { name: string; value?: string; valueFrom?: unknown }[];
  securityContext: Record<string, unknown>;
  args?: string[];
}
interface PodTemplate {
  metadata: { annotations: Record<string, string> };
  spec: { securityContext: Record<string, unknown>; containers: Container[] };
}
const template = (o: KubeObject | undefined) => (o?.spec as { template: PodTemplate }).template;

/** The env a container would see, with secretKeyRef and fieldRef values stood in by placeholders. */
function resolvedEnv(c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env)
    env[e.name] = (e.value ?? `from-${e.name}`).replace("$(POD_NAME)", env.POD_NAME ?? "");
  return env;
}

describe("builders: golden output per sample", () => {
  const samples = readdirSync(samplesDir).filter((f) => f.endsWith(".yaml"));

  it.each(samples)("%s renders the checked-in golden YAML", (file) => {
    const state = desiredState(sample(file), opts, creds);
    const rendered = stringify(state, { lineWidth: 0, aliasDuplicateObjects: false });
    const golden = path.join(goldenDir, file);
    if (process.env.UPDATE_GOLDEN === "1") {
      // A rewrite always passes: it is for a developer's intended change, never for CI.
      if (process.env.CI)
        throw new Error("UPDATE_GOLDEN=1 with CI set: golden files are not rewritten in CI");
      mkdirSync(goldenDir, { recursive: true });
      writeFileSync(golden, rendered);
    }
    expect(existsSync(golden), `${golden} is missing: run UPDATE_GOLDEN=1 make test-unit`).toBe(true);
    expect(rendered).toBe(readFileSync(golden, "utf8"));
  });

  it.each(samples)("%s is deterministic (same input, same bytes)", (file) => {
    expect(stringify(desiredState(sample(file), opts, creds))).toBe(
      stringify(desiredState(sample(file), opts, creds)),
    );
  });
});

describe("builders: the environment contract with the workloads", () => {
  const schemas: [string, z.ZodType][] = [
    ["producer", ProducerEnv],
    ["consumer", ConsumerEnv],
    ["query", QueryEnv],
  ];
  const samples = readdirSync(samplesDir).filter((f) => f.endsWith(".yaml"));

  it.each(samples)("%s: each workload's env passes the workload's own zod schema", (file) => {
    const { apply } = desiredState(sample(file), opts, creds);
    for (const [component, schema] of schemas) {
      const c = template(find(apply, "Deployment", `-${component}`)).spec.containers[0];
      expect(c, component).toBeDefined();
      if (!c) continue;
      const result = schema.safeParse(resolvedEnv(c));
      expect(result.success ? [] : result.error.issues, `${file} ${component}`).toEqual([]);
    }
  });

  it("gives each producer pod its own transactional id, under the pipeline's prefix", () => {
    const p = pipeline({ kafka: { mode: "external", bootstrapServers: "k:9092" } });
    const env = resolvedEnv(
      template(find(desiredState(p, opts, creds).apply, "Deployment", "-producer")).spec
        .containers[0] as Container,
    );
    expect(env.TRANSACTIONAL_ID).toBe(`${pipelineNames(p).transactionalIdPrefix}.from-POD_NAME`);
  });

  it("gives the consumer the retention in days only when the spec sets one", () => {
    const consumerEnv = (postgres: Record<string, unknown>) => {
      const p = pipeline({ kafka: { mode: "external", bootstrapServers: "k:9092" }, postgres });
      const c = template(find(desiredState(p, opts, creds).apply, "Deployment", "-consumer")).spec
        .containers[0] as Container;
      return ConsumerEnv.parse(resolvedEnv(c));
    };
    expect(consumerEnv({ retentionDays: 30 }).RETENTION_DAYS).toBe(30);
    expect(consumerEnv({}).RETENTION_DAYS).toBe(0);
  });

  it("keeps the gateway's largest event below a topic's lower max.message.bytes", () => {
    const producerEnv = (config: Record<string, string>) => {
      const p = pipeline({ kafka: { mode: "external", bootstrapServers: "k:9092", topic: { config } } });
      const c = template(find(desiredState(p, opts, creds).apply, "Deployment", "-producer")).spec
        .containers[0] as Container;
      return ProducerEnv.parse(resolvedEnv(c));
    };
    expect(producerEnv({})).toMatchObject({ KAFKA_MESSAGE_MAX_BYTES: 1_000_000, EVENT_MAX_BYTES: 262_144 });
    expect(producerEnv({ "max.message.bytes": "65536" })).toMatchObject({
      KAFKA_MESSAGE_MAX_BYTES: 65_536,
      EVENT_MAX_BYTES: 65_536 - 4096,
    });
  });
});

describe("builders: autoscaling and replicas", () => {
  const base = { kafka: { mode: "external", bootstrapServers: "k:9092", topic: { partitions: 4 } } };

  it("leaves spec.replicas out of Deployments an HPA scales", () => {
    const { apply } = desiredState(
      pipeline({ ...base, consumer: { replicas: { min: 1, max: 4 } } }),
      opts,
      creds,
    );
    for (const c of ["producer", "consumer"]) {
      expect((find(apply, "Deployment", `-${c}`)?.spec as Record<string, unknown>).replicas).toBeUndefined();
      expect(find(apply, "HorizontalPodAutoscaler", `-${c}`)).toBeDefined();
    }
  });

  it("pins replicas without an HPA when min == max", () => {
    const { apply } = desiredState(
      pipeline({ ...base, producer: { replicas: { min: 2, max: 2 } } }),
      opts,
      creds,
    );
    expect((find(apply, "Deployment", "-producer")?.spec as { replicas: number }).replicas).toBe(2);
    expect(find(apply, "HorizontalPodAutoscaler", "-producer")).toBeUndefined();
  });

  it("caps the consumer's autoscaler at the partition count", () => {
    const p = pipeline({ ...base, consumer: { replicas: { min: 1, max: 4 } } });
    const hpa = find(desiredState(p, opts, creds).apply, "HorizontalPodAutoscaler", "-consumer");
    expect((hpa?.spec as { maxReplicas: number }).maxReplicas).toBe(4);
  });

  it("hibernate scales every workload to 0 and removes autoscalers and budgets, keeping data services' specs", () => {
    const { apply } = desiredState(pipeline({ ...base, hibernate: true }), opts, creds);
    for (const c of ["producer", "consumer", "query", "redis"])
      expect((find(apply, "Deployment", `-${c}`)?.spec as { replicas: number }).replicas, c).toBe(0);
    expect(apply.filter((o) => ["HorizontalPodAutoscaler", "PodDisruptionBudget"].includes(o.kind))).toEqual(
      [],
    );
    expect(find(apply, "StatefulSet", "-postgres")).toBeDefined();
  });

  it("uses a KEDA ScaledObject on lag only when KEDA is installed, and says so when it is not", () => {
    const p = pipeline({ ...base, consumer: { autoscaler: "kafkaLag", replicas: { min: 1, max: 4 } } });
    const without = desiredState(p, opts, creds);
    expect(without.notes.map((n) => n.reason)).toContain("KedaMissing");
    expect(find(without.apply, "HorizontalPodAutoscaler", "-consumer")).toBeDefined();
    const withKeda = desiredState(p, { ...opts, capabilities: { ...opts.capabilities, keda: true } }, creds);
    expect(find(withKeda.apply, "ScaledObject", "-consumer")).toBeDefined();
    expect(find(withKeda.apply, "HorizontalPodAutoscaler", "-consumer")).toBeUndefined();
  });
});

describe("builders: security, secrets and names", () => {
  const p = pipeline({ kafka: { mode: "external", bootstrapServers: "k:9092" } });

  it("runs every pod restricted: non-root, no escalation, no capabilities, read-only root", () => {
    const pods = desiredState(p, opts, creds).apply.filter((o) =>
      ["Deployment", "StatefulSet"].includes(o.kind),
    );
    expect(pods.length).toBe(5);
    for (const o of pods) {
      const t = template(o);
      expect(t.spec.securityContext, o.metadata.name).toMatchObject({
        runAsNonRoot: true,
        seccompProfile: { type: "RuntimeDefault" },
      });
      for (const c of t.spec.containers)
        expect(c.securityContext, o.metadata.name).toEqual({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ["ALL"] },
        });
    }
  });

  it("never puts a secret value in a pod spec or a non-Secret object", () => {
    const rendered = stringify(desiredState(p, opts, creds).apply);
    for (const v of Object.values(creds)) expect(rendered).not.toContain(v);
  });

  it("rolls pods when a mounted Secret changes, and only then", () => {
    const hash = (hashes: Record<string, string>) =>
      template(
        find(desiredState(p, { ...opts, secretHashes: hashes }, creds).apply, "Deployment", "-consumer"),
      ).metadata.annotations["logpipeline.io/secret-hash"];
    const names = pipelineNames(p);
    // The consumer logs in as the writer (rows) and the owner (DDL), never as the superuser.
    const a = hash({ [names.postgresRoles.writer]: "1", [names.postgresRoles.owner]: "1" });
    expect(
      hash({
        [names.postgresRoles.writer]: "1",
        [names.postgresRoles.owner]: "1",
        [names.postgresCredentials]: "x",
      }),
    ).toBe(a);
    expect(hash({ [names.postgresRoles.writer]: "2", [names.postgresRoles.owner]: "1" })).not.toBe(a);
    expect(hash({ [names.postgresRoles.writer]: "1", [names.postgresRoles.owner]: "2" })).not.toBe(a);
  });

  it("gives each workload its own PostgreSQL role on a managed server: writer and owner to the consumer, reader to the query API", () => {
    const managed = pipeline({ kafka: { mode: "external", bootstrapServers: "k:9092" } });
    const names = pipelineNames(managed);
    const state = desiredState(managed, opts, creds).apply;
    const consumer = template(find(state, "Deployment", "-consumer")).spec.containers[0] as Container;
    const query = template(find(state, "Deployment", "-query")).spec.containers[0] as Container;
    const userSecret = (c: Container, name: string) =>
      (c.env.find((e) => e.name === name)?.valueFrom as { secretKeyRef: { name: string } } | undefined)
        ?.secretKeyRef.name;
    expect(userSecret(consumer, "PG_USER")).toBe(names.postgresRoles.writer);
    expect(userSecret(consumer, "PG_OWNER_USER")).toBe(names.postgresRoles.owner);
    expect(resolvedEnv(consumer).PG_OWNER_ROLE).toBe("lp_owner");
    expect(userSecret(query, "PG_USER")).toBe(names.postgresRoles.reader);
    expect(userSecret(query, "PG_OWNER_USER")).toBeUndefined();
    // The superuser's Secret is mounted by the server alone.
    for (const c of [consumer, query]) expect(JSON.stringify(c)).not.toContain(names.postgresCredentials);
  });

  it("derives names so pipelines sharing one Kafka never collide", () => {
    const a = pipelineNames(
      pipeline({ kafka: { mode: "external", bootstrapServers: "k" } }, "logs", "team-a", "aaaaaaaa-1"),
    );
    const b = pipelineNames(
      pipeline({ kafka: { mode: "external", bootstrapServers: "k" } }, "logs", "team-b", "bbbbbbbb-1"),
    );
    for (const key of [
      "topic",
      "deadLetterTopic",
      "consumerGroup",
      "transactionalIdPrefix",
      "topicResource",
    ] as const)
      expect(a[key], key).not.toBe(b[key]);
  });

  it("keeps same-named pipelines of two namespaces apart in a shared Redis (key prefix by namespace and uid)", () => {
    const redisOf = (ns: string, uid: string) => {
      const spec = {
        kafka: { mode: "external", bootstrapServers: "k:9092" },
        redis: { mode: "external", external: { url: "redis://shared:6379" } },
      };
      const { apply } = desiredState(pipeline(spec, "logs", ns, uid), opts, creds);
      return ["producer", "query"].map((c) => {
        const container = template(find(apply, "Deployment", `-${c}`)).spec.containers[0];
        return container ? resolvedEnv(container).REDIS_KEY_PREFIX : undefined;
      });
    };
    expect(redisOf("team-a", "aaaaaaaa-1")).toEqual(["lp:team-a:aaaaaaaa-1:", "lp:team-a:aaaaaaaa-1:"]);
    // The consumer never uses Redis: it gets neither its address nor its password.
    const { apply } = desiredState(
      pipeline({
        kafka: { mode: "external", bootstrapServers: "k:9092" },
        redis: {
          mode: "external",
          external: { url: "redis://shared:6379", passwordSecretRef: { name: "r" } },
        },
      }),
      opts,
      creds,
    );
    const consumer = template(find(apply, "Deployment", "-consumer")).spec.containers[0];
    expect(Object.keys(consumer ? resolvedEnv(consumer) : {}).filter((k) => k.startsWith("REDIS"))).toEqual(
      [],
    );
    expect(redisOf("team-b", "bbbbbbbb-1")).toEqual(["lp:team-b:bbbbbbbb-1:", "lp:team-b:bbbbbbbb-1:"]);
  });

  it("verifies a rediss:// server against the CA the spec names, mounted from its Secret", () => {
    const spec = {
      kafka: { mode: "external", bootstrapServers: "k:9092" },
      redis: { mode: "external", external: { url: "rediss://r:6380", caSecretRef: { name: "redis-ca" } } },
    };
    const { apply } = desiredState(pipeline(spec), opts, creds);
    const producer = template(find(apply, "Deployment", "-producer")) as PodTemplate & {
      spec: { volumes: { name: string; secret?: { secretName: string } }[] };
    };
    const env = producer.spec.containers[0] ? resolvedEnv(producer.spec.containers[0]) : {};
    expect(env.REDIS_TLS_CA_FILE).toMatch(/redis-ca\/ca\.crt$/);
    expect(producer.spec.volumes.find((v) => v.name === "redis-ca")?.secret?.secretName).toBe("redis-ca");
  });

  it("bounds managed Redis below its memory limit, evicting the keys nearest expiry first", () => {
    const args = (resources?: object) => {
      const spec = {
        kafka: { mode: "external", bootstrapServers: "k:9092" },
        redis: { mode: "managed", ...(resources ? { managed: { resources } } : {}) },
      };
      const redis = template(find(desiredState(pipeline(spec), opts, creds).apply, "Deployment", "-redis"));
      return redis.spec.containers[0]?.args ?? [];
    };
    const after = (a: string[], flag: string) => a[a.indexOf(flag) + 1];
    expect(after(args(), "--maxmemory")).toBe(String(Math.floor(512 * 2 ** 20 * 0.75)));
    expect(after(args(), "--maxmemory-policy")).toBe("volatile-ttl");
    expect(after(args({ limits: { memory: "1Gi" } }), "--maxmemory")).toBe(
      String(Math.floor(2 ** 30 * 0.75)),
    );
    expect(after(args({ limits: { memory: "200M" } }), "--maxmemory")).toBe(String(150_000_000));
  });

  it("keeps child names valid DNS labels however long the pipeline's name", () => {
    const long = "x".repeat(180);
    const names = pipelineNames(pipeline({ kafka: { mode: "external", bootstrapServers: "k" } }, long));
    for (const n of [names.producer, names.consumer, names.postgresCredentials]) {
      expect(n.length).toBeLessThanOrEqual(63);
      expect(n).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
    expect(dnsName("a".repeat(70))).not.toBe(dnsName(`${"a".repeat(69)}b`));
  });

  it("refuses a name longer than the topic's derivation allows (as admission does)", () => {
    const r = parsePipeline({
      metadata: { name: "n".repeat(181), namespace: "team-a", uid: "u" },
      spec: { kafka: { mode: "external", bootstrapServers: "k:9092" } },
    });
    expect(r).toEqual({ ok: false, message: expect.stringContaining("at most 180 characters") as string });
  });

  it("derives valid names and labels for every child from a name of any allowed length, StatefulSets and their pods included", () => {
    const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
    const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
    for (const length of [1, 40, 43, 44, 52, 63, 70, 180]) {
      const name = "n".repeat(length);
      const state = desiredState(
        pipeline({ kafka: { mode: "external", bootstrapServers: "k:9092" } }, name),
        opts,
        creds,
      );
      for (const o of [...state.apply, ...state.createOnce]) {
        const where = `${o.kind}/${o.metadata.name} (pipeline name of ${length})`;
        expect(o.metadata.name.length, where).toBeLessThanOrEqual(o.kind === "KafkaTopic" ? 253 : 63);
        const labels = [
          ...Object.values(o.metadata.labels ?? {}),
          ...Object.values(
            (o as { spec?: { template?: { metadata?: { labels?: Record<string, string> } } } }).spec?.template
              ?.metadata?.labels ?? {},
          ),
        ];
        for (const v of labels) {
          expect(v.length, where).toBeLessThanOrEqual(63);
          expect(v, where).toMatch(labelValue);
        }
        if (o.kind === "StatefulSet") {
          // Its pods carry controller-revision-hash "<name>-<10 characters>", and are named "<name>-<ordinal>".
          expect(`${o.metadata.name}-0123456789`.length, where).toBeLessThanOrEqual(63);
          expect(`${o.metadata.name}-0`, where).toMatch(label);
        }
        if (["Service", "Deployment", "StatefulSet"].includes(o.kind))
          expect(o.metadata.name, where).toMatch(label);
      }
    }
  });

  it("leaves out monitoring objects whose CRDs are missing, and says so", () => {
    const caps = { ...opts.capabilities, serviceMonitor: false, prometheusRule: false };
    const state = desiredState(p, { ...opts, capabilities: caps }, creds);
    expect(state.apply.filter((o) => ["ServiceMonitor", "PrometheusRule"].includes(o.kind))).toEqual([]);
    expect(state.notes.map((n) => n.reason)).toEqual([
      "ServiceMonitorCrdMissing",
      "PrometheusRuleCrdMissing",
    ]);
  });

  it("writes KafkaTopics into Strimzi's namespace with its cluster label, and none without Strimzi", () => {
    const s = sample("strimzi.yaml");
    const topics = desiredState(s, opts, creds).apply.filter((o) => o.kind === "KafkaTopic");
    expect(topics.map((t) => [t.metadata.namespace, t.metadata.labels?.["strimzi.io/cluster"]])).toEqual([
      ["kafka", "local"],
      ["kafka", "local"],
    ]);
    const none = desiredState(s, { ...opts, capabilities: { ...opts.capabilities, strimzi: false } }, creds);
    expect(none.apply.filter((o) => o.kind === "KafkaTopic")).toEqual([]);
    expect(none.notes.map((n) => n.reason)).toContain("StrimziMissing");
  });
});
