import type { ListWatch } from "../runtime/informer.js";
import type { KubeClient, KubeObjectLike } from "./client.js";

/** A ListWatch over one kind (all namespaces unless one is given), for the runtime's informer. */
export function listWatch(
  client: KubeClient,
  apiVersion: string,
  kind: string,
  opts: { namespace?: string; labelSelector?: string } = {},
): ListWatch<KubeObjectLike> {
  const selector = opts.labelSelector ? { labelSelector: opts.labelSelector } : {};
  return {
    async list(resourceVersion) {
      const items: KubeObjectLike[] = [];
      let cont: string | undefined;
      let listedAt: string;
      do {
        const page = await client.list(apiVersion, kind, opts.namespace, {
          ...selector,
          limit: 500,
          // A continue token carries its own version; only the first page names one.
          ...(cont ? { continue: cont } : resourceVersion ? { resourceVersion } : {}),
        });
        // A list's items carry no apiVersion/kind; the cache keeps them whole.
        items.push(...page.items.map((i) => ({ apiVersion, kind, ...i })));
        listedAt = page.metadata.resourceVersion;
        cont = (page.metadata as { continue?: string }).continue || undefined;
      } while (cont);
      return { items, resourceVersion: listedAt };
    },
    watch(resourceVersion, timeoutSeconds, idleTimeoutMs, signal) {
      return client.watch(
        apiVersion,
        kind,
        opts.namespace,
        { resourceVersion, timeoutSeconds, ...selector },
        idleTimeoutMs,
        signal,
      );
    },
  };
}
