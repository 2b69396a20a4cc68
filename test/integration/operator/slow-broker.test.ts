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
 * Three tenants' Kafka accepts connections and never answers. Every pipeline's children are
 * applied all the same (the reconcile never reads Kafka: before the probes, a tenant whose
 * broker failed never got its children, the reconcile failing at the topics first), the
 * other tenants' topics are made, the silent ones report KafkaError with the client's
 * reason, and a spec edit still reaches its child. No timing bound here: that the probes
 * serve other pipelines while a broker hangs, up to the timeout, is shown on fake timers in
 * operator/src/controller/probes.test.ts.
 */
const stack = inject("stack");
const ns = `t-op-slow-${uniqueSuffix()}`;
const PROBE_TIMEOUT_MS = 20_000;
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
  config: { concurrency: 2, probeConcurrency: 6, probeTimeoutMs: PROBE_TIMEOUT_MS },
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
      60_000,
    );
    const childrenMs = Date.now() - started;
    // The other tenants' topics are made.
    for (const n of FAST) await waitForCondition(bed.kube, ns, n, "TopicsReady", "True", undefined, 60_000);
    const fastTopicsMs = Date.now() - started;
    // The silent brokers' passes end (their clients give up, or the probe timeout fires).
    const slowFailedAt: number[] = [];
    for (const n of SLOW) {
      const lp = await waitForCondition(bed.kube, ns, n, "TopicsReady", "False", "KafkaError", 60_000).catch(
        async (e: unknown) => {
          console.log(JSON.stringify(conditionOf(await getPipeline(bed.kube, ns, n), "TopicsReady")));
          throw e;
        },
      );
      slowFailedAt.push(Date.parse(conditionOf(lp, "TopicsReady")?.lastTransitionTime ?? ""));
      // The client's reason, or the probe's timeout: said, never left pending.
      expect(conditionOf(lp, "TopicsReady")?.message).toMatch(/Local: |no answer from Kafka within/);
    }
    console.log(
      `children of 6 pipelines after ${childrenMs} ms; the 3 fast tenants' topics ready after ${fastTopicsMs} ms; the silent brokers' passes ended at ${slowFailedAt.map((t) => new Date(t).toISOString()).join(", ")}`,
    );
    // The reconcile workers are free: a spec edit of a fast pipeline reaches its child.
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
