import { createHash } from "node:crypto";
import type { KubeObjectLike } from "../kube/client.js";

interface Applied {
  /** Hash of the object as the operator last applied it. */
  desired: string;
  /** The child's generation after that apply (kinds with a spec), else its resourceVersion. */
  generation?: number | undefined;
  resourceVersion?: string | undefined;
  at: number;
}

/** A digest of an object as JSON: what was applied or asked for, compared later. */
export const hashOf = (o: unknown) => createHash("sha256").update(JSON.stringify(o)).digest("base64url");

/**
 * What the operator last applied to each child, so a reconcile can leave alone a child that
 * nobody has changed since. A child's status update (a Deployment's ready replicas, an
 * HPA's metrics) changes neither its generation nor what the operator wants, so it costs
 * no apply; a spec edit bumps the generation and is applied over at once, a deleted child is
 * missing from the cache and applied again. Kinds without a generation (Service, Secret,
 * ConfigMap, NetworkPolicy…) compare their resourceVersion. Every child is applied again
 * at least every `reapplyMs` anyway, which puts back what a generation does not see
 * (another manager's labels or annotations).
 */
export class AppliedChildren {
  private readonly byPipeline = new Map<string, Map<string, Applied>>();

  constructor(private readonly reapplyMs: number) {}

  /** True when `desired` was applied and the cached child `live` has not changed since. */
  unchanged(
    pipeline: string,
    ref: string,
    desired: KubeObjectLike,
    live: KubeObjectLike | undefined,
    now: number,
  ): boolean {
    const r = this.byPipeline.get(pipeline)?.get(ref);
    if (!r || !live || now - r.at >= this.reapplyMs || r.desired !== hashOf(desired)) return false;
    const m = live.metadata as { generation?: number; resourceVersion?: string } | undefined;
    return m?.generation !== undefined
      ? m.generation === r.generation
      : m?.resourceVersion === r.resourceVersion;
  }

  record(pipeline: string, ref: string, desired: KubeObjectLike, result: KubeObjectLike, now: number): void {
    let children = this.byPipeline.get(pipeline);
    if (!children) this.byPipeline.set(pipeline, (children = new Map<string, Applied>()));
    const m = result.metadata as { generation?: number; resourceVersion?: string } | undefined;
    children.set(ref, {
      desired: hashOf(desired),
      generation: m?.generation,
      resourceVersion: m?.resourceVersion,
      at: now,
    });
  }

  /** A child that failed to apply or was pruned is applied again next time. */
  forget(pipeline: string, ref?: string): void {
    if (ref === undefined) this.byPipeline.delete(pipeline);
    else this.byPipeline.get(pipeline)?.delete(ref);
  }
}
