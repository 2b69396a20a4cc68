import { type KubeClient, pluralOf } from "./client.js";

/** One permission the operator needs: a verb on a resource, in a namespace or cluster-wide. */
export interface Permission {
  verb: string;
  apiVersion: string;
  kind: string;
  /** Undefined: cluster-wide (every namespace). */
  namespace?: string | undefined;
  subresource?: string;
  name?: string | undefined;
}

const describe = (p: Permission) =>
  `${p.verb} ${pluralOf(p.kind)}${p.subresource ? `/${p.subresource}` : ""}${
    p.apiVersion.includes("/") ? `.${p.apiVersion.split("/")[0] ?? ""}` : ""
  } ${p.namespace ? `in namespace ${p.namespace}` : "cluster-wide"}`;

/**
 * The permissions the API server's authorizer refuses this client, each asked with a
 * SelfSubjectAccessReview (which every authenticated user may create). An operator asked to
 * watch namespaces its RBAC does not cover would otherwise start, never sync its caches,
 * and say so only as watch errors.
 */
export async function missingPermissions(kube: KubeClient, wanted: Permission[]): Promise<string[]> {
  // Asked together (about fifty at start in cluster mode), reported in the order asked.
  const allowed = await Promise.all(
    wanted.map(async (p) => {
      const group = p.apiVersion.includes("/") ? (p.apiVersion.split("/")[0] ?? "") : "";
      const review = await kube.create<{ status?: { allowed?: boolean } }>({
        apiVersion: "authorization.k8s.io/v1",
        kind: "SelfSubjectAccessReview",
        spec: {
          resourceAttributes: {
            verb: p.verb,
            group,
            resource: pluralOf(p.kind),
            ...(p.subresource ? { subresource: p.subresource } : {}),
            ...(p.namespace ? { namespace: p.namespace } : {}),
            ...(p.name ? { name: p.name } : {}),
          },
        },
      });
      return review.status?.allowed === true;
    }),
  );
  return wanted.filter((_, i) => !allowed[i]).map(describe);
}
