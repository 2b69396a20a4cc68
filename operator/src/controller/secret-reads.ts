import type { KubeClient } from "../kube/client.js";
import { secretContentHash } from "./observe.js";

/** A Secret as read: whether it exists, a hash of its content (for pod templates) and its data. */
export interface SecretRead {
  exists: boolean;
  /** secretContentHash: "absent" for a missing Secret. */
  hash: string;
  /** Base64 values by key, as the API returns them; empty for a missing Secret. */
  data: Readonly<Record<string, string>>;
  /** Its labels: whether a pipeline may use it (policy.ts, secretUsable). */
  labels: Readonly<Record<string, string>>;
  /** Its annotations (a role Secret's rotation mark: controller/postgres-roles.ts). */
  annotations?: Readonly<Record<string, string>>;
}

/**
 * The Secrets a pipeline names, read by name (the operator may not list or watch Secrets:
 * config/rbac) and reused for `ttlMs`, by reconciles (content hashes for the pod templates,
 * whether a generated Secret exists) and by the probes (credentials for Kafka and
 * PostgreSQL). Without it every reconcile read each of a pipeline's Secrets again, about six
 * GETs a pass, and every delivery read two more: at 1,000 pipelines the largest part of the
 * operator's load on the API server (docs/benchmarks.md, The operator at scale). The cost: a
 * rotated Secret reaches the pod templates' hashes (and so rolls the pods) and the probes'
 * connections within `ttlMs` (SECRET_REFRESH_SECONDS) rather than at once. A missing Secret
 * is not remembered, so one created after its pipeline is found on the next pass. The
 * content stays in this process's memory, as any client's credentials do; it is never
 * logged or written anywhere.
 */
export class SecretReads {
  private readonly reads = new Map<string, SecretRead & { at: number }>();

  constructor(
    private readonly kube: Pick<KubeClient, "getOrUndefined">,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  async read(namespace: string, name: string): Promise<SecretRead> {
    const key = `${namespace}/${name}`;
    const t = this.now();
    const cached = this.reads.get(key);
    if (cached && t - cached.at < this.ttlMs) return cached;
    const secret = await this.kube.getOrUndefined<{
      data?: Record<string, string>;
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
    }>("v1", "Secret", namespace, name);
    const read = {
      exists: secret !== undefined,
      hash: secretContentHash(secret),
      data: secret?.data ?? {},
      labels: secret?.metadata?.labels ?? {},
      annotations: secret?.metadata?.annotations ?? {},
      at: t,
    };
    // A missing Secret is looked for again on the next pass: the user may be creating it now.
    if (read.exists) this.reads.set(key, read);
    else this.reads.delete(key);
    return read;
  }

  /** A Secret this process has just created, as the API server answered: no read needed. */
  remember(
    namespace: string,
    name: string,
    secret: { data?: Record<string, string>; metadata?: { labels?: Record<string, string> } },
  ): void {
    this.reads.set(`${namespace}/${name}`, {
      exists: true,
      hash: secretContentHash(secret),
      data: secret.data ?? {},
      labels: secret.metadata?.labels ?? {},
      at: this.now(),
    });
  }

  /** A Secret to read afresh next time (one a pipeline may not use yet: its label may come). */
  invalidate(namespace: string, name: string): void {
    this.reads.delete(`${namespace}/${name}`);
  }

  /** Drops what is known of a namespace's Secrets (its pipeline went away). */
  forgetNamespace(namespace: string): void {
    for (const key of this.reads.keys()) if (key.startsWith(`${namespace}/`)) this.reads.delete(key);
  }

  get size(): number {
    return this.reads.size;
  }
}
