import { randomBytes } from "node:crypto";
import { AppsV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi } from "@kubernetes/client-node";
import type { StackInfo } from "./stack.js";

export interface KubeClients {
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  objects: KubernetesObjectApi;
}

export function kubeClients(stack: StackInfo): KubeClients {
  const kc = new KubeConfig();
  kc.loadFromFile(stack.kubeconfig);
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    objects: KubernetesObjectApi.makeApiClient(kc),
  };
}

/** A short random suffix, so each test file gets names no other file (or earlier run) uses. */
export const uniqueSuffix = (): string => randomBytes(3).toString("hex");

/** Creates a namespace for one test file; returns its name and a cleanup function. */
export async function testNamespace(
  core: CoreV1Api,
  prefix: string,
): Promise<{ name: string; remove: () => Promise<void> }> {
  const name = `${prefix}-${uniqueSuffix()}`;
  await core.createNamespace({ body: { metadata: { name, labels: { "logpipeline.io/test": "true" } } } });
  return {
    name,
    remove: async () => {
      await core.deleteNamespace({ name }).catch(() => undefined);
    },
  };
}

/** Polls `fn` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ""}`,
  );
}

/** A workload's pipeline name and its own Redis key prefix, so tests sharing the stack's Redis never share keys. */
export const pipelineEnv = (name: string): { PIPELINE_NAME: string; REDIS_KEY_PREFIX: string } => ({
  PIPELINE_NAME: name,
  REDIS_KEY_PREFIX: `lp:${name}:`,
});
