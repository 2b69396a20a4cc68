import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const stackScript = path.join(repoRoot, "hack/stack/stack.sh");

/** Addresses of the running local stack, as written by `hack/stack/stack.sh` (stack.json). */
export interface StackInfo {
  runDir: string;
  kubeconfig: string;
  apiServer: string;
  /** The API server's audit log: the operator ServiceAccount's requests, at Metadata level. */
  auditLog: string;
  kafkaBootstrap: string;
  kafkaBootstrapBridge: string;
  kafkaSasl: { bootstrap: string; mechanism: string; username: string; passwordFile: string };
  postgresUrl: string;
  redisUrl: string;
  strimzi: { enabled: boolean; namespace: string; cluster: string };
  bridgeIp: string;
}

function stack(...args: string[]): number {
  const r = spawnSync("bash", [stackScript, ...args], { stdio: ["ignore", "inherit", "inherit"] });
  return r.status ?? 1;
}

/**
 * Brings the stack up unless it is already running, and returns its addresses. `release`
 * stops it only if this call started it (a developer's running stack is left alone);
 * LP_KEEP_STACK=1 keeps it up.
 */
export function ensureStack(): { info: StackInfo; release: () => void } {
  const wasUp = stack("status", "--quiet") === 0;
  if (!wasUp && stack("up") !== 0)
    throw new Error(`stack-up failed: see the output above and ${path.dirname(stackScript)}`);
  const json = spawnSync("bash", [stackScript, "json"], { encoding: "utf8" });
  if (json.status !== 0) throw new Error(`could not read the stack's addresses: ${json.stderr}`);
  return {
    info: JSON.parse(json.stdout) as StackInfo,
    release: () => {
      if (!wasUp && process.env.LP_KEEP_STACK !== "1") stack("down");
    },
  };
}
