import net from "node:net";
import { describe, expect, inject, it } from "vitest";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  conditionOf,
  getPipeline,
  operatorTestBed,
  sampleObject,
  waitForCondition,
} from "../../support/operator.js";

/**
 * One tenant's Kafka accepts connections and never answers. The other tenants' pipelines
 * must not wait on it: their children are applied at once (the reconcile never reads Kafka)
 * and their topics are ready within one probe timeout of the slow ones' (the probes serve
 * pipelines in order, PROBE_CONCURRENCY at a time, each pass bounded).
 */
const stack = inject("stack");
const ns = `t-op-slow-${uniqueSuffix()}`;
const PROBE_TIMEOUT_MS = 4000;
const SLOW = ["slow-a", "slow-b", "slow-c"];
const FAST = ["fast-a", "fast-b", "fast-c"];

// A listener that accepts every connection and never says a word (closed after the file).
const sockets = new Set<net.Socket>();
const silent = net.createServer((s) => {
  sockets.add(s);
  s.on("error", () => undefined);
});
const listening = new Promise<number>((resolve) =>
  silent.listen(0, "127.0.0.1", () => resolve((silent.address() as net.AddressInfo).port)),
);

const bed = operatorTestBed({
  namespaces: [ns],
  clientId: "t-op-slow",
  topics: () => FAST.flatMap((n) => [`${ns}.${n}.logs`, `${ns}.${n}.dlq`]),
  config: { concurrency: 2, probeConcurrency: 2, probeTimeoutMs: PROBE_TIMEOUT_MS },
  tearDown: async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  },
});

const pipeline = (name: string, bootstrap: string) =>
  sampleObject("minimal.yaml", ns, name, (s) => ({
    ...s,
    kafka: { ...(s.kafka as object), bootstrapServers: bootstrap, topic: { partitions: 2 } },
    consumer: { replicas: { max: 2 } },
  }));

describe("a tenant whose Kafka never answers", () => {
  it("does not hold up the other tenants' pipelines", async () => {
    const port = await listening;
    const started = Date.now();
    // The slow ones first: they are first in line for the probes too.
    for (const n of SLOW) await bed.kube.create(pipeline(n, `127.0.0.1:${String(port)}`));
    for (const n of FAST) await bed.kube.create(pipeline(n, stack.kafkaBootstrap));

    // Every pipeline's children are applied without waiting on any Kafka.
    await eventually(
      "the Deployments of all six pipelines",
      async () =>
        (await bed.kube.list("apps/v1", "Deployment", ns)).items.length === 6 * 4 ? true : undefined,
      20_000,
    );
    const childrenMs = Date.now() - started;

    // The fast tenants' topics: within two probe timeouts (the slow passes ahead of them in
    // line time out, two at a time) plus their own pass.
    for (const n of FAST) await waitForCondition(bed.kube, ns, n, "TopicsReady", "True", undefined, 30_000);
    const fastTopicsMs = Date.now() - started;
    // The slow tenants: told why, after their timeout.
    for (const n of SLOW) {
      const lp = await waitForCondition(bed.kube, ns, n, "TopicsReady", "False", "KafkaError", 30_000);
      expect(conditionOf(lp, "TopicsReady")?.message).toMatch(/no answer from Kafka within 4 s/);
    }
    console.log(
      `children of 6 pipelines in ${childrenMs} ms; the 3 fast tenants' topics ready after ${fastTopicsMs} ms (probe timeout ${PROBE_TIMEOUT_MS} ms, 3 silent brokers ahead in line)`,
    );
    expect(fastTopicsMs).toBeLessThan(2 * PROBE_TIMEOUT_MS + 10_000);
    // The reconcile workers were never held: a spec edit of a fast pipeline reaches its child at once.
    const edited = Date.now();
    await bed.kube.mergePatch("logpipeline.io/v1alpha1", "LogPipeline", ns, "fast-a", {
      spec: { producer: { replicas: { min: 2, max: 4 } } },
    });
    await eventually("the edit applied", async () => {
      const hpa = await bed.kube.getOrUndefined<{ spec: { minReplicas?: number } }>(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        ns,
        "fast-a-producer",
      );
      return hpa?.spec.minReplicas === 2 ? true : undefined;
    });
    console.log(`a spec edit reached its child in ${Date.now() - edited} ms`);
    expect((await getPipeline(bed.kube, ns, "fast-a")).metadata?.generation).toBe(2);
  });
});
