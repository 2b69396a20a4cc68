import { createHash } from "node:crypto";
import type { KubeObjectLike } from "../kube/client.js";

interface Applied {
  /** Hash of the object as the operator last applied it. */
  desired: string;
  /** The child's generation after that apply (kinds with a spec), else its content's hash. */
  generation?: number | undefined;
  content?: string | undefined;
}

/** A digest of an object as JSON: what was applied or asked for, compared later. */
export const hashOf = (o: unknown) => createHash("sha256").update(JSON.stringify(o)).digest("base64url");

/**
 * A digest of an object's content but its metadata and status: for a kind without a
 * generation (a Service, an HPA), whether its spec changed. The child cache keeps it
 * (cachedChild, as `contentHash`) instead of the content; an object as the API server
 * returns it is hashed here.
 */
export function contentHash(o: KubeObjectLike): string {
  if (typeof o.contentHash === "string") return o.contentHash;
  const body: Record<string, unknown> = { ...o };
  delete body.metadata;
  delete body.status;
  delete body.kind;
  delete body.apiVersion;
  return hashOf(body);
}

/**
 * What the operator last applied to each child, so a reconcile can leave alone a child that
 * nobody has changed since. A child's status update (a Deployment's ready replicas, an
 * HPA's metrics) changes neither its generation nor what the operator wants, so it costs
 * no apply; a spec edit bumps the generation and is applied over at once, a deleted child is
 * missing from the cache and applied again. Kinds without a generation (Service, Secret,
 * HorizontalPodAutoscaler) compare their content but metadata and status. What a generation does not see
 * (another manager removing or changing the operator's labels, annotations or owner
 * reference) is compared directly: the cached child must still carry them. There is no
 * periodic re-apply: at 1,000 pipelines one wrote about 2.75 child PATCHes per pipeline a
 * minute for nothing and kept the workers busy enough to delay spec edits
 * (docs/benchmarks.md, The operator at scale).
 */
export class AppliedChildren {
  private readonly byPipeline = new Map<string, Map<string, Applied>>();

  /** True when `desired` was applied and the cached child `live` has not changed since. */
  unchanged(
    pipeline: string,
    ref: string,
    desired: KubeObjectLike,
    live: KubeObjectLike | undefined,
  ): boolean {
    const r = this.byPipeline.get(pipeline)?.get(ref);
    if (!r || !live || r.desired !== hashOf(desired) || !metadataKept(desired, live)) return false;
    const generation = live.metadata?.generation;
    return generation !== undefined ? generation === r.generation : contentHash(live) === r.content;
  }

  record(pipeline: string, ref: string, desired: KubeObjectLike, result: KubeObjectLike): void {
    let children = this.byPipeline.get(pipeline);
    if (!children) this.byPipeline.set(pipeline, (children = new Map<string, Applied>()));
    const generation = result.metadata?.generation;
    children.set(ref, {
      desired: hashOf(desired),
      generation,
      content: generation === undefined ? contentHash(result) : undefined,
    });
  }

  /** A child that failed to apply or was pruned is applied again next time. */
  forget(pipeline: string, ref?: string): void {
    if (ref === undefined) this.byPipeline.delete(pipeline);
    else this.byPipeline.get(pipeline)?.delete(ref);
  }
}

interface OwnedMetadata {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { uid?: string; controller?: boolean }[];
}

/**
 * The labels, annotations and controller reference the operator applies are still on the
 * live object, with the same values. Other managers' additions are theirs to keep.
 */
export function metadataKept(desired: KubeObjectLike, live: KubeObjectLike): boolean {
  const want = (desired.metadata ?? {}) as OwnedMetadata;
  const have = (live.metadata ?? {}) as OwnedMetadata;
  const subset = (a: Record<string, string> | undefined, b: Record<string, string> | undefined) =>
    Object.entries(a ?? {}).every(([k, v]) => b?.[k] === v);
  if (!subset(want.labels, have.labels) || !subset(want.annotations, have.annotations)) return false;
  return (want.ownerReferences ?? []).every((o) =>
    (have.ownerReferences ?? []).some(
      (h) => h.uid === o.uid && (h.controller ?? false) === (o.controller ?? false),
    ),
  );
}
