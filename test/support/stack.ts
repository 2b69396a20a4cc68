import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const stackScript = path.join(repoRoot, "hack/stack/stack.sh");

/** Addresses of the running local stack, as written by `hack/stack/stack.sh` (stack.json). */
export interface StackInfo {
  runDir: string;
  kubeconfig: string;
  apiServer: string;
  kafkaBootstrap: string;
  kafkaBootstrapBridge: string;
  postgresUrl: string;
  redisUrl: string;
  strimzi: { enabled: boolean; namespace: string; cluster: string };
  bridgeIp: string;
}
