import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { parse } from "yaml";

/**
 * Where the API server is and how to authenticate to it. The common cases are read here:
 * in-cluster (the ServiceAccount's token, re-read as the kubelet rotates it, and CA), and a
 * kubeconfig whose user has a token, a token file or a client certificate. Anything else
 * (exec plugins, auth providers, proxies, several kubeconfig files) falls back to
 * @kubernetes/client-node's KubeConfig, loaded only then: importing it costs about 80 MB of
 * resident memory (its generated API models), more than the rest of the operator at idle
 * (docs/benchmarks.md, The operator at scale).
 */
export interface Credentials {
  server: string;
  tls: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean; servername?: string };
  /** The Authorization header for the next request, if any. */
  authorization(): Promise<string | undefined>;
  /** How they were found: "in-cluster", "kubeconfig" or "client-node" (the fallback). */
  source: "in-cluster" | "kubeconfig" | "client-node";
}

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** client-go re-reads a token file once a minute: the kubelet rotates projected tokens well before they expire. */
const TOKEN_REREAD_MS = 60_000;

/** A token read from a file, read again once it is older than a minute. */
function tokenFile(file: string, now: () => number = () => performance.now()): () => Promise<string> {
  let token = "";
  let readAt = -Infinity;
  return () => {
    if (now() - readAt >= TOKEN_REREAD_MS) {
      token = readFileSync(file, "utf8").trim();
      readAt = now();
    }
    return Promise.resolve(token);
  };
}

export function inClusterCredentials(
  env: NodeJS.ProcessEnv = process.env,
  dir: string = SERVICE_ACCOUNT_DIR,
): Credentials | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? "443";
  if (!host || !existsSync(path.join(dir, "token"))) return undefined;
  const token = tokenFile(path.join(dir, "token"));
  return {
    server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    tls: { ca: readFileSync(path.join(dir, "ca.crt"), "utf8") },
    authorization: async () => `Bearer ${await token()}`,
    source: "in-cluster",
  };
}

interface NamedEntry<T> {
  name: string;
  cluster?: T;
  user?: T;
  context?: T;
}
type Fields = Record<string, unknown>;
const CLUSTER_FIELDS = new Set([
  "server",
  "certificate-authority",
  "certificate-authority-data",
  "insecure-skip-tls-verify",
  "tls-server-name",
  "extensions",
]);
const USER_FIELDS = new Set([
  "token",
  "tokenFile",
  "client-certificate",
  "client-certificate-data",
  "client-key",
  "client-key-data",
  "extensions",
]);

/**
 * A kubeconfig file's current context, when it needs nothing but what this module reads;
 * undefined when it needs the fallback. An unusable file (no current context, no server) is
 * an error naming what is missing.
 */
export function kubeconfigCredentials(file: string): Credentials | undefined {
  const doc = (parse(readFileSync(file, "utf8")) ?? {}) as {
    "current-context"?: string;
    contexts?: NamedEntry<Fields>[];
    clusters?: NamedEntry<Fields>[];
    users?: NamedEntry<Fields>[];
  };
  const current = doc["current-context"];
  const context = doc.contexts?.find((c) => c.name === current)?.context;
  if (!current || !context) throw new Error(`kubeconfig ${file}: no current context`);
  const cluster = doc.clusters?.find((c) => c.name === context.cluster)?.cluster;
  const user = doc.users?.find((u) => u.name === context.user)?.user ?? {};
  if (!cluster || typeof cluster.server !== "string")
    throw new Error(`kubeconfig ${file}: context ${current} has no cluster with a server`);
  if (Object.keys(cluster).some((k) => !CLUSTER_FIELDS.has(k))) return undefined;
  if (Object.keys(user).some((k) => !USER_FIELDS.has(k))) return undefined;

  const dir = path.dirname(file);
  const pem = (data: unknown, fileField: unknown): string | undefined =>
    typeof data === "string"
      ? Buffer.from(data, "base64").toString("utf8")
      : typeof fileField === "string"
        ? readFileSync(path.resolve(dir, fileField), "utf8")
        : undefined;
  const ca = pem(cluster["certificate-authority-data"], cluster["certificate-authority"]);
  const cert = pem(user["client-certificate-data"], user["client-certificate"]);
  const key = pem(user["client-key-data"], user["client-key"]);
  const tls: Credentials["tls"] = {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(cluster["insecure-skip-tls-verify"] === true ? { rejectUnauthorized: false } : {}),
    ...(typeof cluster["tls-server-name"] === "string" ? { servername: cluster["tls-server-name"] } : {}),
  };
  const staticToken = typeof user.token === "string" ? user.token : undefined;
  const fromFile =
    typeof user.tokenFile === "string" ? tokenFile(path.resolve(dir, user.tokenFile)) : undefined;
  return {
    server: cluster.server.replace(/\/$/, ""),
    tls,
    authorization: async () => {
      const token = staticToken ?? (fromFile ? await fromFile() : undefined);
      return token ? `Bearer ${token}` : undefined;
    },
    source: "kubeconfig",
  };
}

/** @kubernetes/client-node's KubeConfig for what this module does not read itself. */
async function clientNodeCredentials(file: string | undefined): Promise<Credentials> {
  const { KubeConfig, RequestContext, HttpMethod } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  const opts: {
    ca?: unknown;
    cert?: unknown;
    key?: unknown;
    rejectUnauthorized?: boolean;
    servername?: string;
  } = {};
  await kc.applyToHTTPSOptions(opts);
  const str = (v: unknown) =>
    typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString("utf8") : undefined;
  const ca = str(opts.ca);
  const cert = str(opts.cert);
  const key = str(opts.key);
  return {
    server: cluster.server.replace(/\/$/, ""),
    tls: {
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      ...(opts.rejectUnauthorized !== undefined ? { rejectUnauthorized: opts.rejectUnauthorized } : {}),
      ...(opts.servername ? { servername: opts.servername } : {}),
    },
    authorization: async () => {
      const ctx = new RequestContext(cluster.server, HttpMethod.GET);
      await kc.applySecurityAuthentication(ctx);
      return ctx.getHeaders().Authorization ?? ctx.getHeaders().authorization;
    },
    source: "client-node",
  };
}

/**
 * Credentials from a kubeconfig file (`file`, else $KUBECONFIG, else ~/.kube/config) or, when
 * there is none, in-cluster — the order of client-go and @kubernetes/client-node.
 */
export async function loadCredentials(
  file?: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Credentials> {
  const candidate =
    file ??
    (env.KUBECONFIG && !env.KUBECONFIG.includes(path.delimiter) ? env.KUBECONFIG : undefined) ??
    (env.KUBECONFIG ? undefined : path.join(homedir(), ".kube", "config"));
  if (env.KUBECONFIG?.includes(path.delimiter) && !file) return clientNodeCredentials(undefined);
  if (candidate && existsSync(candidate))
    return kubeconfigCredentials(candidate) ?? clientNodeCredentials(candidate);
  if (file) throw new Error(`kubeconfig ${file} does not exist`);
  return inClusterCredentials(env) ?? clientNodeCredentials(undefined);
}
