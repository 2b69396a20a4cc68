import { type ChildProcess, spawn } from "node:child_process";
import { openSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { KubeClient, type KubeObjectLike } from "../../../operator/src/kube/client.js";
import { listWatch } from "../../../operator/src/kube/list-watch.js";
import { Informer } from "../../../operator/src/runtime/informer.js";
import { type IsolatedStack, isolatedStack } from "../../support/isolated-stack.js";
import { eventually, uniqueSuffix } from "../../support/kube.js";
import {
  conditionOf,
  createNamespace,
  getPipeline,
  kubectl,
  LP_API,
  sampleObject,
  startTestOperator,
  waitGone,
} from "../../support/operator.js";
import { repoRoot } from "../../support/stack.js";

/** The operator's runtime against real API servers: leader hand-over, a silent watch, an API server restart. */
const stack = inject("stack");
let kube: KubeClient;
const ns = `t-op-rt-${uniqueSuffix()}`;

beforeAll(async () => {
  kube = await KubeClient.fromEnvironment(stack.kubeconfig);
  await createNamespace(kube, ns);
});
afterAll(async () => {
  await kube.delete("v1", "Namespace", undefined, ns);
  await kube.close();
});

const configMap = (name: string, label: string) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, namespace: ns, labels: { "t-informer": label } },
  data: { k: "v" },
});

describe("leader election", () => {
  const procs: ChildProcess[] = [];
  afterAll(() => {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  });

  const operator = (identity: string, port: number) => {
    const log = openSync(path.join(tmpdir(), `lp-operator-${ns}-${identity}.log`), "w");
    const p = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "operator/src/main.ts")], {
      cwd: repoRoot,
      env: {
        ...process.env,
        KUBECONFIG: stack.kubeconfig,
        WATCH_NAMESPACES: ns,
        LEADER_ELECT: "true",
        LEASE_NAMESPACE: ns,
        POD_NAME: identity,
        HEALTH_PORT: String(port),
        METRICS_PORT: String(port + 1),
        BIND_ADDRESS: "127.0.0.1",
      },
      stdio: ["ignore", log, log],
    });
    procs.push(p);
    return p;
  };
  const holder = async () =>
    (
      await kube.getOrUndefined<{ spec: { holderIdentity?: string } }>(
        "coordination.k8s.io/v1",
        "Lease",
        ns,
        "logpipeline-operator",
      )
    )?.spec.holderIdentity;

  it("hands over to the standby when the leader is killed (kill -9, no release)", async () => {
    const a = operator("replica-a", 18281);
    await eventually(
      "replica-a to lead",
      async () => ((await holder()) === "replica-a" ? true : undefined),
      60_000,
    );
    const b = operator("replica-b", 18291);
    await eventually(
      "replica-b ready (informers synced) while standing by",
      async () => {
        const r = await fetch("http://127.0.0.1:18291/readyz").catch(() => undefined);
        return r?.status === 200 ? true : undefined;
      },
      60_000,
    );
    expect(await holder()).toBe("replica-a");
    a.kill("SIGKILL");
    const killedAt = Date.now();
    await eventually(
      "replica-b to take over",
      async () => ((await holder()) === "replica-b" ? true : undefined),
      45_000,
    );
    console.log(
      `leader killed with SIGKILL; standby took over after ${((Date.now() - killedAt) / 1000).toFixed(1)} s (lease 15 s)`,
    );
    const metrics = await (await fetch("http://127.0.0.1:18292/metrics")).text();
    expect(metrics).toMatch(/^logpipeline_operator_leader 1$/m);
    b.kill("SIGTERM");
    await new Promise((r) => b.once("exit", r));
    // A clean shutdown releases the lease for the next leader.
    expect(await holder()).toBe("");
  });
});

describe("informer against the API server", () => {
  it("restarts a watch that goes silent (idle watchdog) and keeps delivering", async () => {
    const label = uniqueSuffix();
    const inf = new Informer<KubeObjectLike>(
      "silent",
      {
        ...listWatch(kube, "v1", "ConfigMap", { namespace: ns, labelSelector: `t-informer=${label}` }),
      },
      { resyncMs: 60_000, idleTimeoutMs: 1_000, backoffInitialMs: 100, backoffMaxMs: 500 },
    );
    inf.start();
    try {
      await inf.waitForSync(10_000);
      await eventually(
        "a restart after the idle timeout",
        () => Promise.resolve(inf.restarts >= 1 ? true : undefined),
        10_000,
      );
      await kube.create(configMap("after-silence", label));
      await eventually(
        "the new object in the cache",
        () => Promise.resolve(inf.get(`${ns}/after-silence`)),
        10_000,
      );
      expect(inf.healthy()).toBe(true);
    } finally {
      await inf.stop();
    }
  });
});

describe("informer across an API server restart (its own API server instance)", () => {
  let iso: IsolatedStack;
  let started = false;
  let isoKube: KubeClient;
  beforeAll(async () => {
    iso = isolatedStack({
      portOffset: 5000,
      bridge: "lp5",
      bridgeIp: "10.250.0.1",
      components: ["etcd", "kube-apiserver"],
    });
    isoKube = await KubeClient.fromEnvironment(iso.info.kubeconfig);
    started = true;
  }, 180_000);
  afterAll(async () => {
    if (!started) return; // a failed start has cleaned up after itself (isolatedStack)
    await isoKube.close();
    iso.down();
  });

  it("relists after the restart and sees what changed while it was away", async () => {
    const cm = (name: string) => ({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name, namespace: "default" },
      data: {},
    });
    await isoKube.create(cm("before"));
    const inf = new Informer<KubeObjectLike>(
      "restart",
      listWatch(isoKube, "v1", "ConfigMap", { namespace: "default" }),
      {
        resyncMs: 60_000,
        backoffInitialMs: 200,
        backoffMaxMs: 2_000,
        staleAfterMs: 60_000,
      },
    );
    inf.start();
    try {
      await inf.waitForSync(15_000);
      expect(inf.get("default/before")).toBeDefined();
      iso.stop("kube-apiserver");
      await eventually(
        "the watch to fail",
        () => Promise.resolve(inf.restarts >= 1 ? true : undefined),
        20_000,
      );
      iso.start("kube-apiserver");
      await isoKube.delete("v1", "ConfigMap", "default", "before");
      await isoKube.create(cm("after"));
      await eventually(
        "the cache to follow",
        () => Promise.resolve(inf.get("default/after") && !inf.get("default/before") ? true : undefined),
        30_000,
      );
      expect(inf.relists).toBeGreaterThanOrEqual(2);
      expect(inf.healthy()).toBe(true);
    } finally {
      await inf.stop();
    }
  });

  it("lets go of a pipeline whose stored spec no longer parses, keeping its data (deletion never depends on the spec)", async () => {
    // This API server's own CRD, loosened for a moment as an older schema would have been, so
    // a spec today's schema refuses gets stored; the shared stack's CRD is never touched.
    const crdFile = path.join(repoRoot, "crds/logpipeline.io_logpipelines.yaml");
    const crdName = "logpipelines.logpipeline.io";
    expect(kubectl(iso.info, ["apply", "--server-side", "-f", crdFile]).stderr).toBe("");
    // Retried: just after the restart above, kubectl's discovery can fail once before the wait starts.
    await eventually(
      "the CRD established",
      () => {
        const w = kubectl(iso.info, [
          "wait",
          "--for=condition=Established",
          `crd/${crdName}`,
          "--timeout=20s",
        ]);
        return w.code === 0 ? true : undefined;
      },
      90_000,
    );
    const lpNs = "t-unreadable";
    await isoKube.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: lpNs } });
    const op = await startTestOperator(iso.info, [lpNs]);
    try {
      await isoKube.create(
        sampleObject("minimal.yaml", lpNs, "old", () => ({
          kafka: { mode: "external", bootstrapServers: "127.0.0.1:1" },
        })),
      );
      await eventually("the finalizer", async () =>
        (await getPipeline(isoKube, lpNs, "old")).metadata?.finalizers?.length ? true : undefined,
      );
      // The older schema: no pattern on bootstrapServers.
      type Schema = { properties: Record<string, Schema>; pattern?: string };
      const crd = await isoKube.get<
        KubeObjectLike & { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } }
      >("apiextensions.k8s.io/v1", "CustomResourceDefinition", undefined, crdName);
      for (const v of crd.spec.versions) {
        const servers =
          v.schema.openAPIV3Schema.properties.spec?.properties.kafka?.properties.bootstrapServers;
        expect(servers?.pattern).toBeDefined();
        delete servers?.pattern;
      }
      await isoKube.replace(crd);
      await eventually("the loose schema to take the bad value", async () => {
        try {
          await isoKube.mergePatch(LP_API, "LogPipeline", lpNs, "old", {
            spec: { kafka: { bootstrapServers: "not a host list" } },
          });
          return true;
        } catch {
          return undefined;
        }
      });
      expect(kubectl(iso.info, ["apply", "--server-side", "--force-conflicts", "-f", crdFile]).stderr).toBe(
        "",
      );
      await eventually("the operator to call the spec invalid", async () =>
        conditionOf(await getPipeline(isoKube, lpNs, "old"), "Stalled")?.reason === "InvalidSpec"
          ? true
          : undefined,
      );
      await isoKube.delete(LP_API, "LogPipeline", lpNs, "old");
      await waitGone(isoKube, LP_API, "LogPipeline", lpNs, "old", 20_000);
      // The Warning is written by the pass that released the finalizer, after the release:
      // the pipeline can be gone a moment before its Event lands.
      const retained = await eventually("the DataRetained Event", async () => {
        const found = (await isoKube.list("v1", "Event", lpNs)).items.filter(
          (e) => (e as { reason?: string }).reason === "DataRetained",
        );
        return found.length > 0 ? found : undefined;
      });
      expect(retained).toHaveLength(1);
    } finally {
      await op.stop();
    }
  });
});
