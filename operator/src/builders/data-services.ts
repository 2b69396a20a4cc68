import type { V1Secret, V1Service, V1StatefulSet, V1Deployment } from "@kubernetes/client-node";
import type { SslMode } from "../../../workloads/common/src/connections.js";
import type { LogPipeline } from "../api/logpipeline.js";
import { pipelineLabels, pipelineNames, selectorLabels } from "./names.js";
import { type BuildOptions, childMeta, type KubeObject } from "./options.js";
import {
  ANNOTATION_SECRET_HASH,
  keyMount,
  containerSecurity,
  podSecurity,
  resources,
  secretFile,
  type SecretMount,
  secretHash,
  secretVolumes,
  TMP_MOUNT,
  TMP_VOLUME,
} from "./pod.js";

/** The uid and gid the official postgres and redis images run as. */
const IMAGE_USER = 999;
export const POSTGRES_PORT = 5432;
export const REDIS_PORT = 6379;
export const POSTGRES_DATABASE = "logpipeline";
export const POSTGRES_USER = "logpipeline";
/** The managed server's role names start with it (postgres/roles.ts): lp_owner, lp_writer_a … */
export const MANAGED_ROLE_PREFIX = "lp";
export type PostgresRole = "owner" | "writer" | "reader";

/** Values generated once by the controller (random) and never rewritten; builders only shape them. */
export interface GeneratedCredentials {
  postgresPassword: string;
  /** The first passwords of the managed server's logins (the `_a` ones). */
  postgresRolePasswords: Record<PostgresRole, string>;
  redisPassword: string;
  apiKey: string;
  queryKey: string;
}

/** How a workload (or the operator) reaches PostgreSQL as one role, whichever mode. */
export interface PostgresConnection {
  host: string;
  port: number;
  database: string;
  sslMode: SslMode;
  /** PG_USER: a key of the role's credentials Secret. */
  userFromSecret: { secretName: string; key: string };
  password: SecretMount;
  ca?: SecretMount;
  /** The group role the login acts as (SET ROLE), for the owner of a managed server. */
  actAs?: string;
}

/**
 * The connection for one role. Managed: the role's own login Secret (the superuser's is only
 * the operator's, to make the roles). External: the spec's Secret for the role, or
 * `credentialsSecret` for every role it does not name.
 */
export function postgresConnection(
  p: LogPipeline,
  role: PostgresRole | "superuser" = "writer",
): PostgresConnection {
  const names = pipelineNames(p);
  const ext = p.spec.postgres.mode === "external" ? p.spec.postgres.external : undefined;
  if (ext) {
    const secretName =
      (role === "owner"
        ? ext.ownerCredentialsSecret
        : role === "reader"
          ? ext.readerCredentialsSecret
          : undefined) ?? ext.credentialsSecret;
    return {
      host: ext.host,
      port: ext.port,
      database: ext.database,
      sslMode: ext.sslMode,
      userFromSecret: { secretName, key: "username" },
      password: { volume: `postgres-${role}`, secretName, keys: ["password"] },
      ...(ext.caSecretRef ? { ca: keyMount("postgres-ca", ext.caSecretRef) } : {}),
    };
  }
  const secretName = role === "superuser" ? names.postgresCredentials : names.postgresRoles[role];
  return {
    host: `${names.postgres}.${p.metadata.namespace}.svc`,
    port: POSTGRES_PORT,
    database: POSTGRES_DATABASE,
    // The managed server is reached inside the namespace only (NetworkPolicy); no TLS by default.
    sslMode: "disable",
    userFromSecret: { secretName, key: "username" },
    password: { volume: `postgres-${role}`, secretName, keys: ["password"] },
    ...(role === "owner" && { actAs: `${MANAGED_ROLE_PREFIX}_owner` }),
  };
}

/** How the workloads reach Redis; undefined when disabled. */
export interface RedisConnection {
  url: string;
  password?: SecretMount;
  /** The CA a rediss:// server is verified with (always verified: system CAs otherwise). */
  ca?: SecretMount;
}

export function redisConnection(p: LogPipeline): RedisConnection | undefined {
  const names = pipelineNames(p);
  const { mode, external } = p.spec.redis;
  if (mode === "disabled") return undefined;
  if (mode === "external" && external)
    return {
      url: external.url,
      ...(external.passwordSecretRef
        ? {
            password: keyMount("redis", external.passwordSecretRef),
          }
        : {}),
      ...(external.caSecretRef ? { ca: keyMount("redis-ca", external.caSecretRef) } : {}),
    };
  return {
    url: `redis://${names.redis}.${p.metadata.namespace}.svc:${REDIS_PORT}`,
    password: { volume: "redis", secretName: names.redisCredentials, keys: ["password"] },
  };
}

/** Generated Secrets (created once if absent, never rewritten, no owner: deletionPolicy decides). */
export function generatedSecrets(p: LogPipeline, creds: GeneratedCredentials): V1Secret[] {
  const names = pipelineNames(p);
  const secret = (
    name: string,
    component: "postgres" | "redis" | "producer" | "query",
    data: Record<string, string>,
  ) => ({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: p.metadata.namespace, labels: pipelineLabels(p, component) },
    type: "Opaque",
    stringData: data,
  });
  const out: V1Secret[] = [];
  if (p.spec.postgres.mode === "managed")
    out.push(
      secret(names.postgresCredentials, "postgres", {
        username: POSTGRES_USER,
        password: creds.postgresPassword,
        database: POSTGRES_DATABASE,
      }),
      // Each role's first login; the operator makes the roles and rotates these (postgres/roles.ts).
      ...(["owner", "writer", "reader"] as const).map((role) =>
        secret(names.postgresRoles[role], "postgres", {
          username: `${MANAGED_ROLE_PREFIX}_${role}_a`,
          password: creds.postgresRolePasswords[role],
        }),
      ),
    );
  if (p.spec.redis.mode === "managed")
    out.push(
      secret(names.redisCredentials, "redis", {
        password: creds.redisPassword,
        // A config file the server includes, so the password is in neither argv nor env.
        "auth.conf": `requirepass ${creds.redisPassword}\n`,
      }),
    );
  if (!p.spec.producer.auth.disabled && !p.spec.producer.auth.apiKeysSecret)
    out.push(secret(names.apiKeys, "producer", { "api-keys": `default:${creds.apiKey}\n` }));
  if (!p.spec.query.authDisabled && !p.spec.query.apiKeysSecret)
    out.push(secret(names.queryKeys, "query", { "api-keys": `default:${creds.queryKey}\n` }));
  return out;
}

export function postgresStatefulSet(p: LogPipeline, opts: BuildOptions): V1StatefulSet | undefined {
  if (p.spec.postgres.mode !== "managed") return undefined;
  const names = pipelineNames(p);
  const { managed } = p.spec.postgres;
  const creds: SecretMount = {
    volume: "credentials",
    secretName: names.postgresCredentials,
    keys: ["password"],
  };
  const secrets = secretVolumes([creds]);
  const labels = pipelineLabels(p, "postgres");
  const ready = ["pg_isready", "-h", "127.0.0.1", "-U", POSTGRES_USER, "-d", POSTGRES_DATABASE];
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: childMeta(p, names.postgres, labels),
    spec: {
      serviceName: names.postgres,
      replicas: p.spec.hibernate ? 0 : 1,
      selector: { matchLabels: selectorLabels(p, "postgres") },
      persistentVolumeClaimRetentionPolicy: {
        whenDeleted: p.spec.deletionPolicy.postgres === "Delete" ? "Delete" : "Retain",
        whenScaled: "Retain",
      },
      template: {
        metadata: { labels, annotations: { [ANNOTATION_SECRET_HASH]: secretHash([creds], opts) } },
        spec: {
          securityContext: podSecurity(IMAGE_USER),
          automountServiceAccountToken: false,
          containers: [
            {
              name: "postgres",
              image: managed.image ?? opts.images.postgres,
              imagePullPolicy: opts.imagePullPolicy,
              // The official image's environment contract.
              env: [
                { name: "POSTGRES_USER", value: POSTGRES_USER },
                { name: "POSTGRES_DB", value: POSTGRES_DATABASE },
                { name: "POSTGRES_PASSWORD_FILE", value: secretFile(creds, "password") },
                { name: "PGDATA", value: "/var/lib/postgresql/data/pgdata" },
              ],
              ports: [{ name: "postgres", containerPort: POSTGRES_PORT }],
              readinessProbe: { exec: { command: ready }, periodSeconds: 5, failureThreshold: 3 },
              livenessProbe: { exec: { command: ready }, periodSeconds: 15, failureThreshold: 6 },
              resources: resources(managed.resources, { cpu: "250m", memory: "256Mi", memoryLimit: "1Gi" }),
              securityContext: containerSecurity(),
              volumeMounts: [
                { name: "data", mountPath: "/var/lib/postgresql/data" },
                { name: "run", mountPath: "/var/run/postgresql" },
                TMP_MOUNT,
                ...secrets.volumeMounts,
              ],
            },
          ],
          volumes: [{ name: "run", emptyDir: {} }, TMP_VOLUME, ...secrets.volumes],
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: "data", labels },
          spec: {
            accessModes: ["ReadWriteOnce"],
            ...(managed.storage.storageClassName
              ? { storageClassName: managed.storage.storageClassName }
              : {}),
            resources: { requests: { storage: managed.storage.size } },
          },
        },
      ],
    },
  };
}

export function postgresService(p: LogPipeline): V1Service | undefined {
  if (p.spec.postgres.mode !== "managed") return undefined;
  const names = pipelineNames(p);
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: childMeta(p, names.postgres, pipelineLabels(p, "postgres")),
    spec: {
      clusterIP: "None",
      selector: selectorLabels(p, "postgres"),
      ports: [{ name: "postgres", port: POSTGRES_PORT, targetPort: "postgres" }],
    },
  };
}

export function redisDeployment(p: LogPipeline, opts: BuildOptions): V1Deployment | undefined {
  if (p.spec.redis.mode !== "managed") return undefined;
  const names = pipelineNames(p);
  const auth: SecretMount = { volume: "auth", secretName: names.redisCredentials, keys: ["auth.conf"] };
  const secrets = secretVolumes([auth]);
  const labels = pipelineLabels(p, "redis");
  const probe = { tcpSocket: { port: "redis" } };
  const redisResources = resources(p.spec.redis.managed.resources, {
    cpu: "100m",
    memory: "128Mi",
    memoryLimit: REDIS_MEMORY_LIMIT,
  });
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: childMeta(p, names.redis, labels),
    spec: {
      replicas: p.spec.hibernate ? 0 : 1,
      // Never two servers at once: clients would split their idempotency keys.
      strategy: { type: "Recreate" },
      selector: { matchLabels: selectorLabels(p, "redis") },
      template: {
        metadata: { labels, annotations: { [ANNOTATION_SECRET_HASH]: secretHash([auth], opts) } },
        spec: {
          securityContext: podSecurity(IMAGE_USER),
          automountServiceAccountToken: false,
          containers: [
            {
              name: "redis",
              image: p.spec.redis.managed.image ?? opts.images.redis,
              imagePullPolicy: opts.imagePullPolicy,
              // Idempotency keys and rate limits are a cache over PostgreSQL's guarantee: no
              // persistence. Bounded below the container's limit; when full, the keys nearest
              // their expiry go first (volatile-ttl): the freshest idempotency answers, the ones
              // a retry asks for, stay longest (docs/security.md).
              args: [
                "redis-server",
                secretFile(auth, "auth.conf"),
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory",
                String(redisMaxMemory(redisResources.limits?.memory ?? REDIS_MEMORY_LIMIT)),
                "--maxmemory-policy",
                "volatile-ttl",
              ],
              ports: [{ name: "redis", containerPort: REDIS_PORT }],
              readinessProbe: { ...probe, periodSeconds: 5 },
              livenessProbe: { ...probe, periodSeconds: 15, failureThreshold: 4 },
              resources: redisResources,
              securityContext: containerSecurity(),
              volumeMounts: [{ name: "data", mountPath: "/data" }, TMP_MOUNT, ...secrets.volumeMounts],
            },
          ],
          volumes: [{ name: "data", emptyDir: {} }, TMP_VOLUME, ...secrets.volumes],
        },
      },
    },
  };
}

export function redisService(p: LogPipeline): V1Service | undefined {
  if (p.spec.redis.mode !== "managed") return undefined;
  const names = pipelineNames(p);
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: childMeta(p, names.redis, pipelineLabels(p, "redis")),
    spec: {
      selector: selectorLabels(p, "redis"),
      ports: [{ name: "redis", port: REDIS_PORT, targetPort: "redis" }],
    },
  };
}

export const asKubeObject = (o: object | undefined): KubeObject[] => (o ? [o as KubeObject] : []);

const REDIS_MEMORY_LIMIT = "512Mi";

const QUANTITY_UNITS: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** Bytes of a memory quantity as the CRD admits them (digits and a unit; `m` is a thousandth). */
export function quantityBytes(q: string): number {
  const m = /^([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(q);
  if (!m) throw new Error(`not a quantity: ${q}`);
  const unit = m[2] ?? "";
  return Math.floor(Number(m[1]) * (unit === "m" ? 1e-3 : (QUANTITY_UNITS[unit] ?? 1)));
}

/** Redis's maxmemory: three quarters of the container's limit (the rest is Redis's own overhead). */
export const redisMaxMemory = (limit: string): number => Math.floor(quantityBytes(limit) * 0.75);
