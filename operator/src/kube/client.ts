import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import { Agent, fetch } from "undici";
import { type Credentials, loadCredentials } from "./credentials.js";

/**
 * The one adapter over the API server (docs/architecture.md, Layers): typed errors, server-side apply
 * with the operator's field manager, status writes, and raw list/watch for the informers.
 * Authentication comes from credentials.ts (in-cluster or a kubeconfig; token files re-read
 * as they rotate); connections are kept alive on one undici Agent.
 */
export const FIELD_MANAGER = "logpipeline-operator";

export interface KubeObjectLike {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    deletionTimestamp?: string;
    ownerReferences?: { uid: string; kind: string; name: string }[];
    managedFields?: unknown[];
    creationTimestamp?: string;
  };
  [field: string]: unknown;
}

export interface ObjectList<T = KubeObjectLike> {
  items: T[];
  metadata: { resourceVersion: string };
}

export class KubeError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = "KubeError";
  }
  get notFound(): boolean {
    return this.status === 404;
  }
  get conflict(): boolean {
    return this.status === 409;
  }
  get gone(): boolean {
    return this.status === 410;
  }
}

/** A KubeError from a failed response: the API server's Status object when it sent one. */
function kubeError(status: number, statusText: string, body: string): KubeError {
  let s: { reason?: string; message?: string; details?: unknown } = {};
  try {
    s = JSON.parse(body) as typeof s;
  } catch {
    s = { message: body.slice(0, 500) };
  }
  return new KubeError(status, s.reason ?? statusText, s.message ?? `HTTP ${status}`, s.details);
}

/** Kinds this project touches whose plural is not kind + "s", and the cluster-scoped ones. */
const IRREGULAR_PLURALS: Record<string, string> = { Ingress: "ingresses", Endpoints: "endpoints" };
const CLUSTER_SCOPED = new Set([
  "Namespace",
  "CustomResourceDefinition",
  "Node",
  "StorageClass",
  "ClusterRole",
]);

export function pluralOf(kind: string): string {
  const irregular = IRREGULAR_PLURALS[kind];
  if (irregular) return irregular;
  const lower = kind.toLowerCase();
  if (lower.endsWith("y")) return `${lower.slice(0, -1)}ies`;
  if (lower.endsWith("s")) return `${lower}es`;
  return `${lower}s`;
}

/** The REST path of a kind's collection, or of one object when `name` is given. */
export function resourcePath(apiVersion: string, kind: string, namespace?: string, name?: string): string {
  const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const ns = namespace && !CLUSTER_SCOPED.has(kind) ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  return `${base}${ns}/${pluralOf(kind)}${name ? `/${encodeURIComponent(name)}` : ""}`;
}

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: KubeObjectLike & { code?: number; reason?: string; message?: string };
}

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** No byte of a response body for this long fails its stream (see the Agent in KubeClient). */
export const WATCH_BODY_TIMEOUT_MS = 80_000;

const CONNECTION_LOST = new Set(["UND_ERR_INFO", "UND_ERR_SOCKET", "UND_ERR_CLOSED", "ECONNRESET", "EPIPE"]);

/** fetch failed because its connection went away (not a timeout, not a refusal to connect). */
export function connectionLost(e: unknown): boolean {
  const cause = (e as { cause?: { code?: string } } | undefined)?.cause;
  return e instanceof TypeError && CONNECTION_LOST.has(cause?.code ?? "");
}

export interface KubeClientOptions {
  /** Timeout of ordinary requests (not watches). */
  requestTimeoutMs?: number;
  userAgent?: string;
  /** Act as this user (Impersonate-User), e.g. the operator's ServiceAccount in the RBAC test. */
  impersonate?: string | undefined;
}

interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
}

export class KubeClient {
  private agent: Agent;
  private readonly server: string;
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  private readonly impersonate: string | undefined;
  /** Requests made, by verb and resource — what the RBAC test checks against config/rbac. */
  readonly calls = new Map<string, number>();

  private constructor(
    private readonly credentials: Credentials,
    opts: KubeClientOptions,
  ) {
    this.server = credentials.server;
    this.timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.userAgent = opts.userAgent ?? FIELD_MANAGER;
    this.impersonate = opts.impersonate;
    this.agent = this.newAgent();
  }

  private newAgent(): Agent {
    const tls = this.credentials.tls;
    return new Agent({
      connect: {
        ...(tls.ca ? { ca: tls.ca } : {}),
        ...(tls.cert ? { cert: tls.cert } : {}),
        ...(tls.key ? { key: tls.key } : {}),
        ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
        ...(tls.servername ? { servername: tls.servername } : {}),
        keepAlive: true,
        keepAliveInitialDelay: 30_000,
      },
      // Over HTTP/1.1 watches hold a connection each and requests share the rest; over
      // HTTP/2 (what the API server offers) everything shares one connection.
      connections: 64,
      // A stream's own timeouts, not only our abort signal: when one fires, undici pings the
      // HTTP/2 connection and drops it if the ping goes unanswered, so a connection that
      // stalled without closing is replaced (client-go does the same with its HTTP/2 health
      // check) instead of swallowing every later request. The body timeout is above the
      // bookmark interval (a watch is silent for a minute at most) and below the informers'
      // idle watchdog.
      headersTimeout: this.timeoutMs,
      bodyTimeout: WATCH_BODY_TIMEOUT_MS,
    });
  }

  /**
   * Drops every connection and starts a new pool: for a caller whose own deadline is shorter
   * than the stream timeouts above (leader election cancels an attempt after 4 s), so a
   * connection that stalled without closing is not used again for the next attempt.
   */
  resetConnections(): void {
    const old = this.agent;
    this.agent = this.newAgent();
    void old.destroy().catch(() => undefined);
  }

  /** From a kubeconfig file (`path`, $KUBECONFIG, ~/.kube/config), else in-cluster. */
  static async fromEnvironment(path?: string, opts: KubeClientOptions = {}): Promise<KubeClient> {
    return new KubeClient(await loadCredentials(path), opts);
  }

  private closed = false;

  /** Closes the connections; a second call does nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.agent.close();
  }

  /** Records the RBAC verb and resource of a request: `get apps/deployments`, `patch logpipeline.io/logpipelines/status`. */
  private count(method: string, path: string): void {
    const parts = path.split("?")[0]?.split("/").filter(Boolean) ?? [];
    const core = parts[0] === "api";
    const group = core ? "" : (parts[1] ?? "");
    const rest = parts.slice(core ? 2 : 3);
    const scoped = rest[0] === "namespaces" && rest.length > 2 ? rest.slice(2) : rest;
    const resource = scoped[0] ?? "";
    const named = scoped.length > 1;
    const sub = scoped.length > 2 ? `/${scoped[2] ?? ""}` : "";
    const verb =
      method === "WATCH"
        ? "watch"
        : method === "GET"
          ? named
            ? "get"
            : "list"
          : (({ POST: "create", PATCH: "patch", PUT: "update", DELETE: "delete" } as Record<string, string>)[
              method
            ] ?? method.toLowerCase());
    const key = `${verb} ${group}/${resource}${sub}`;
    this.calls.set(key, (this.calls.get(key) ?? 0) + 1);
  }

  private async headers(): Promise<Record<string, string>> {
    const authorization = await this.credentials.authorization();
    return {
      ...(authorization ? { authorization } : {}),
      "user-agent": this.userAgent,
      accept: "application/json",
      ...(this.impersonate ? { "impersonate-user": this.impersonate } : {}),
    };
  }

  private url(path: string, query?: RequestOptions["query"]): string {
    const u = new URL(this.server + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }

  async request<T>(method: HttpMethod, path: string, opts: RequestOptions = {}): Promise<T> {
    const url = this.url(path, opts.query);
    const headers = await this.headers();
    if (opts.body !== undefined) headers["content-type"] = opts.contentType ?? "application/json";
    this.count(method, path);
    // The stream's headersTimeout (above) fires first; this is the backstop for a request given
    // a timeout of its own.
    const timeout = AbortSignal.timeout((opts.timeoutMs ?? this.timeoutMs) + 5_000);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const send = () =>
      fetch(url, {
        method,
        headers,
        dispatcher: this.agent,
        signal,
        ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      });
    // A connection the server closed under us (a restarted API server's GOAWAY, a reset) fails
    // the request before it was answered: it is sent once more on a new connection. Every
    // request here is safe to repeat (creates are by name, applies and patches converge).
    const res = await send().catch((e: unknown) => {
      if (!connectionLost(e) || signal.aborted) throw e;
      return send();
    });
    const text = await res.text();
    if (!res.ok) throw kubeError(res.status, res.statusText, text);
    return (text ? JSON.parse(text) : {}) as T;
  }

  get<T = KubeObjectLike>(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
  ): Promise<T> {
    return this.request<T>("GET", resourcePath(apiVersion, kind, namespace, name));
  }

  /** GET that answers undefined for 404. */
  async getOrUndefined<T = KubeObjectLike>(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
  ): Promise<T | undefined> {
    try {
      return await this.get<T>(apiVersion, kind, namespace, name);
    } catch (e) {
      if (e instanceof KubeError && e.notFound) return undefined;
      throw e;
    }
  }

  list<T = KubeObjectLike>(
    apiVersion: string,
    kind: string,
    namespace?: string,
    query: {
      labelSelector?: string;
      fieldSelector?: string;
      limit?: number;
      continue?: string;
      resourceVersion?: string;
    } = {},
  ): Promise<ObjectList<T>> {
    return this.request<ObjectList<T>>("GET", resourcePath(apiVersion, kind, namespace), { query });
  }

  /** Server-side apply with the operator's field manager; `force` takes fields over from other managers. */
  apply<T = KubeObjectLike>(
    obj: KubeObjectLike,
    opts: { force?: boolean; dryRun?: boolean; fieldManager?: string; subresource?: "status" } = {},
  ): Promise<T> {
    const { apiVersion, kind, metadata } = obj;
    if (!apiVersion || !kind || !metadata?.name)
      throw new Error("apply needs apiVersion, kind and metadata.name");
    const path =
      resourcePath(apiVersion, kind, metadata.namespace, metadata.name) +
      (opts.subresource ? `/${opts.subresource}` : "");
    return this.request<T>("PATCH", path, {
      body: obj,
      contentType: "application/apply-patch+yaml",
      query: {
        fieldManager: opts.fieldManager ?? FIELD_MANAGER,
        force: opts.force ?? true,
        ...(opts.dryRun ? { dryRun: "All" } : {}),
      },
    });
  }

  /** POST; `dryRun` runs authorisation and admission without storing anything. */
  create<T = KubeObjectLike>(obj: KubeObjectLike, opts: { dryRun?: boolean } = {}): Promise<T> {
    const { apiVersion, kind, metadata } = obj;
    if (!apiVersion || !kind) throw new Error("create needs apiVersion and kind");
    return this.request<T>("POST", resourcePath(apiVersion, kind, metadata?.namespace), {
      body: obj,
      query: { fieldManager: FIELD_MANAGER, ...(opts.dryRun ? { dryRun: "All" } : {}) },
    });
  }

  /** JSON merge patch (finalizers, annotations); `resourceVersion` in the body makes it conditional. */
  mergePatch<T = KubeObjectLike>(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    subresource?: "status",
  ): Promise<T> {
    const path = resourcePath(apiVersion, kind, namespace, name) + (subresource ? `/${subresource}` : "");
    return this.request<T>("PATCH", path, {
      body: patch,
      contentType: "application/merge-patch+json",
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  replace<T = KubeObjectLike>(obj: KubeObjectLike): Promise<T> {
    const { apiVersion, kind, metadata } = obj;
    if (!apiVersion || !kind || !metadata?.name)
      throw new Error("replace needs apiVersion, kind and metadata.name");
    return this.request<T>("PUT", resourcePath(apiVersion, kind, metadata.namespace, metadata.name), {
      body: obj,
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  /** DELETE that treats 404 as done; background propagation unless told otherwise. */
  async delete(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    propagationPolicy: "Background" | "Foreground" | "Orphan" = "Background",
  ): Promise<boolean> {
    try {
      await this.request("DELETE", resourcePath(apiVersion, kind, namespace, name), {
        body: { kind: "DeleteOptions", apiVersion: "v1", propagationPolicy },
      });
      return true;
    } catch (e) {
      if (e instanceof KubeError && e.notFound) return false;
      throw e;
    }
  }

  /**
   * Opens a watch and yields its events. The server closes it after `timeoutSeconds`; the
   * client aborts it when nothing (not even a bookmark) arrives for `idleTimeoutMs` — a TCP
   * stream that died quietly must not leave an informer deaf (STYLE.md, client-node traps).
   */
  async *watch(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    query: { resourceVersion: string; labelSelector?: string; timeoutSeconds: number },
    idleTimeoutMs: number,
    signal: AbortSignal,
  ): AsyncGenerator<WatchEvent> {
    const path = resourcePath(apiVersion, kind, namespace);
    const url = this.url(path, { ...query, watch: true, allowWatchBookmarks: true });
    const headers = await this.headers();
    this.count("WATCH", path);
    const abort = new AbortController();
    const onOuterAbort = () => abort.abort(signal.reason);
    signal.addEventListener("abort", onOuterAbort, { once: true });
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(
        () => abort.abort(new Error(`watch idle for ${idleTimeoutMs} ms`)),
        idleTimeoutMs,
      );
    };
    let body: Readable | undefined;
    let lines: ReturnType<typeof createInterface> | undefined;
    try {
      armIdle();
      const res = await fetch(url, { method: "GET", headers, dispatcher: this.agent, signal: abort.signal });
      if (!res.ok || !res.body) throw kubeError(res.status, res.statusText, await res.text());
      body = Readable.fromWeb(res.body as never);
      // Aborting the request (finally, below) errors the body stream, and readline re-emits
      // its input's errors, once nothing reads them any more: expected, never uncaught.
      body.on("error", () => undefined);
      lines = createInterface({ input: body, crlfDelay: Infinity });
      lines.on("error", () => undefined);
      for await (const line of lines) {
        armIdle();
        if (!line.trim()) continue;
        yield JSON.parse(line) as WatchEvent;
      }
    } catch (e) {
      if (abort.signal.aborted && !signal.aborted)
        throw abort.signal.reason instanceof Error ? abort.signal.reason : e;
      if (!signal.aborted) throw e;
    } finally {
      clearTimeout(idleTimer);
      signal.removeEventListener("abort", onOuterAbort);
      lines?.close();
      body?.destroy();
      abort.abort();
    }
  }
}
