import { createHash } from "node:crypto";
import type {
  V1Container,
  V1EnvVar,
  V1PodSecurityContext,
  V1ResourceRequirements,
  V1SecurityContext,
  V1Volume,
  V1VolumeMount,
} from "@kubernetes/client-node";
import type { LogPipelineSpec } from "../api/logpipeline.js";
import type { BuildOptions } from "./options.js";

export const ANNOTATION_SECRET_HASH = "logpipeline.io/secret-hash";
export const SECRETS_DIR = "/etc/logpipeline/secrets";

/** Pod security "restricted": non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp. */
export function podSecurity(runAsUser?: number): V1PodSecurityContext {
  return {
    runAsNonRoot: true,
    ...(runAsUser !== undefined ? { runAsUser, runAsGroup: runAsUser, fsGroup: runAsUser } : {}),
    seccompProfile: { type: "RuntimeDefault" },
  };
}

export function containerSecurity(): V1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
  };
}

type ResourceSpec = NonNullable<LogPipelineSpec["producer"]["resources"]>;

/** The spec's resources over the operator's defaults; memory always has a limit. */
export function resources(
  spec: ResourceSpec | undefined,
  dflt: { cpu: string; memory: string; memoryLimit: string },
): V1ResourceRequirements {
  return {
    requests: { cpu: spec?.requests?.cpu ?? dflt.cpu, memory: spec?.requests?.memory ?? dflt.memory },
    limits: {
      ...(spec?.limits?.cpu ? { cpu: spec.limits.cpu } : {}),
      memory: spec?.limits?.memory ?? dflt.memoryLimit,
    },
  };
}

/** A Secret mounted read-only as files under SECRETS_DIR/<volume>; only the listed keys. */
export interface SecretMount {
  volume: string;
  secretName: string;
  keys: string[];
}

export function secretVolumes(mounts: SecretMount[]): { volumes: V1Volume[]; volumeMounts: V1VolumeMount[] } {
  return {
    volumes: mounts.map((m) => ({
      name: m.volume,
      secret: {
        secretName: m.secretName,
        items: m.keys.map((k) => ({ key: k, path: k })),
        defaultMode: 0o440,
      },
    })),
    volumeMounts: mounts.map((m) => ({
      name: m.volume,
      mountPath: `${SECRETS_DIR}/${m.volume}`,
      readOnly: true,
    })),
  };
}

export const secretFile = (m: SecretMount, key: string): string => `${SECRETS_DIR}/${m.volume}/${key}`;

/** One key of a Secret (a spec's secret reference), mounted as the file keyFile() names. */
export const keyMount = (volume: string, ref: { name: string; key: string }): SecretMount => ({
  volume,
  secretName: ref.name,
  keys: [ref.key],
});
export const keyFile = (m: SecretMount): string => secretFile(m, m.keys[0] ?? "");

/** One hash over the content hashes of every mounted Secret: changes exactly when one of them does. */
export function secretHash(mounts: SecretMount[], opts: BuildOptions): string {
  const h = createHash("sha256");
  for (const name of [...new Set(mounts.map((m) => m.secretName))].sort())
    h.update(`${name}=${opts.secretHashes[name] ?? "absent"};`);
  return h.digest("hex").slice(0, 16);
}

/** Env vars from a map, in a stable order; undefined values are left out. */
export function envVars(env: Record<string, string | number | boolean | undefined>): V1EnvVar[] {
  return Object.entries(env)
    .filter((e): e is [string, string | number | boolean] => e[1] !== undefined)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => ({ name, value: String(value) }));
}

/** The pod's own name, for ids that must differ per pod (Kafka transactional ids). */
export const POD_NAME_ENV: V1EnvVar = {
  name: "POD_NAME",
  valueFrom: { fieldRef: { fieldPath: "metadata.name" } },
};

export const TMP_VOLUME: V1Volume = { name: "tmp", emptyDir: { sizeLimit: "64Mi" } };
export const TMP_MOUNT: V1VolumeMount = { name: "tmp", mountPath: "/tmp" };

export function httpProbes(
  port: number | string,
): Pick<V1Container, "livenessProbe" | "readinessProbe" | "startupProbe"> {
  return {
    startupProbe: { httpGet: { path: "/healthz", port }, periodSeconds: 2, failureThreshold: 30 },
    livenessProbe: { httpGet: { path: "/healthz", port }, periodSeconds: 10, failureThreshold: 3 },
    readinessProbe: { httpGet: { path: "/readyz", port }, periodSeconds: 5, failureThreshold: 2 },
  };
}
