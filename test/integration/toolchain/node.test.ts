import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient } from "../../../operator/src/kube/client.js";
import { type IsolatedStack, isolatedStack } from "../../support/isolated-stack.js";
import { eventually } from "../../support/kube.js";
import { kubectl } from "../../support/operator.js";

/**
 * The node on its own stack instance (its own bridge, ports and containerd): kube-scheduler,
 * containerd + runc + bridge CNI, kubelet and kube-proxy run a restricted pod from an image
 * made on this machine; logs, exec and a ClusterIP Service work; stack-down leaves nothing.
 */
let iso: IsolatedStack;
let kube: KubeClient;
let down = false;
let started = false;

beforeAll(async () => {
  iso = isolatedStack({
    portOffset: 6000,
    bridge: "lp6",
    bridgeIp: "10.251.0.1",
    components: [
      "etcd",
      "kube-apiserver",
      "kube-controller-manager",
      "kube-scheduler",
      "containerd",
      "kubelet",
      "kube-proxy",
    ],
  });
  kube = await KubeClient.fromEnvironment(iso.info.kubeconfig);
  started = true;
}, 240_000);
afterAll(async () => {
  // A failed start has cleaned up after itself (isolatedStack).
  if (started && !down) {
    await kube.close();
    iso.down();
  }
});

/** PIDs of processes whose command line names `text` (the run dir: ours, and only ours). */
function processesMentioning(text: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(text)) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

describe("the node (kubelet, containerd, CNI, kube-proxy)", () => {
  it("is Ready with the stack's bridge address as its InternalIP", async () => {
    const node = await kube.get<{
      status: {
        addresses: { type: string; address: string }[];
        conditions: { type: string; status: string }[];
      };
    }>("v1", "Node", undefined, "lp-node");
    expect(node.status.conditions.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(node.status.addresses.find((a) => a.type === "InternalIP")?.address).toBe("10.251.0.1");
  });

  it("runs a restricted pod; kubectl logs and exec reach it; a ClusterIP Service answers", async () => {
    await kube.create({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "hello", namespace: "default", labels: { app: "hello" } },
      spec: {
        automountServiceAccountToken: false,
        securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: "RuntimeDefault" } },
        containers: [
          {
            name: "web",
            image: "localhost/logpipeline/busybox:local",
            imagePullPolicy: "Never",
            command: [
              "/bin/sh",
              "-c",
              "echo hello from the node; mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
            ],
            readinessProbe: { httpGet: { path: "/", port: 8080 }, periodSeconds: 1 },
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              capabilities: { drop: ["ALL"] },
            },
            volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
          },
        ],
        volumes: [{ name: "tmp", emptyDir: {} }],
      },
    });
    const svc = await kube.create<{ spec: { clusterIP: string } }>({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "hello", namespace: "default" },
      spec: { selector: { app: "hello" }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    const pod = await eventually(
      "the pod Ready",
      async () => {
        const p = await kube.get<{
          status: { podIP?: string; conditions?: { type: string; status: string }[] };
        }>("v1", "Pod", "default", "hello");
        return p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ? p : undefined;
      },
      60_000,
    );
    expect(pod.status.podIP).toMatch(/^10\.251\.(12[89]|1[3-9]\d|2\d\d)\./);
    expect(kubectl(iso.info, ["logs", "hello"]).stdout).toContain("hello from the node");
    expect(kubectl(iso.info, ["exec", "hello", "--", "cat", "/tmp/www/index.html"]).stdout.trim()).toBe("ok");
    const body = await eventually(
      "the Service to answer",
      async () => {
        const r = await fetch(`http://${svc.spec.clusterIP}/`, { signal: AbortSignal.timeout(2000) }).catch(
          () => undefined,
        );
        return r?.ok ? r.text() : undefined;
      },
      // kube-proxy programs a new Service's rules on its own sync: on a busy machine that has
      // taken more than 30 s.
      90_000,
    );
    expect(body.trim()).toBe("ok");
  }, 180_000);

  it("binds a PersistentVolumeClaim through the default StorageClass (local-path-provisioner)", async () => {
    await kube.create({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "data", namespace: "default" },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "16Mi" } } },
    });
    await kube.create({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "writer", namespace: "default" },
      spec: {
        restartPolicy: "Never",
        automountServiceAccountToken: false,
        securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: "RuntimeDefault" } },
        containers: [
          {
            name: "w",
            image: "localhost/logpipeline/busybox:local",
            imagePullPolicy: "Never",
            command: ["/bin/sh", "-c", "echo persisted > /data/file"],
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              capabilities: { drop: ["ALL"] },
            },
            volumeMounts: [{ name: "data", mountPath: "/data" }],
          },
        ],
        volumes: [{ name: "data", persistentVolumeClaim: { claimName: "data" } }],
      },
    });
    const phase = await eventually(
      "the writer to finish",
      async () => {
        const p = await kube.get<{ status: { phase?: string } }>("v1", "Pod", "default", "writer");
        return p.status.phase === "Succeeded" || p.status.phase === "Failed" ? p.status.phase : undefined;
      },
      90_000,
    );
    expect(phase).toBe("Succeeded");
    const pvc = await kube.get<{
      status: { phase: string };
      spec: { volumeName: string; storageClassName: string };
    }>("v1", "PersistentVolumeClaim", "default", "data");
    expect(pvc.status.phase).toBe("Bound");
    expect(pvc.spec.storageClassName).toBe("local-path");
    const volumes = path.join(iso.info.runDir, "node", "volumes");
    const dir = readdirSync(volumes).find((d) => d.startsWith(pvc.spec.volumeName));
    expect(dir, `a directory for ${pvc.spec.volumeName} in ${volumes}`).toBeDefined();
    expect(readFileSync(path.join(volumes, dir ?? "", "file"), "utf8")).toBe("persisted\n");
  });

  it("serves resource metrics for HPAs (metrics-server behind the aggregation layer)", async () => {
    const usage = await eventually(
      "node metrics",
      async () => {
        const m = await kube
          .request<{ usage?: { cpu: string; memory: string } }>(
            "GET",
            "/apis/metrics.k8s.io/v1beta1/nodes/lp-node",
          )
          .catch(() => undefined);
        return m?.usage;
      },
      120_000,
    );
    expect(usage.memory).toMatch(/^\d+Ki$/);
    // Pod metrics need a second scrape (a CPU rate), a resolution period after the node's.
    const top = await eventually(
      "pod metrics",
      () => Promise.resolve(kubectl(iso.info, ["top", "pod", "hello", "--no-headers"]).stdout || undefined),
      60_000,
    );
    expect(top).toMatch(/^hello\s+\d+m\s+\d+Mi/);
  });

  it("resolves Service names through cluster DNS (CoreDNS) from a pod", async () => {
    // Retried: CoreDNS may still be loading its zones from the API server on a busy machine.
    const answer = await eventually(
      "a DNS answer for hello.default.svc.cluster.local",
      () => {
        const r = kubectl(iso.info, ["exec", "hello", "--", "nslookup", "hello.default.svc.cluster.local"]);
        return /Address:\s+10\.96\./.test(r.stdout) ? r.stdout : undefined;
      },
      45_000,
    );
    expect(answer).toMatch(/Address:\s+10\.96\./);
  });

  it("stack-down stops every pod and node process and removes the pods' network namespaces", async () => {
    const pods = processesMentioning(iso.info.runDir);
    expect(pods.length).toBeGreaterThan(0); // containerd-shims name the node's containerd socket
    await kube.close();
    const netnsBefore = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
    iso.down();
    down = true;
    expect(processesMentioning(iso.info.runDir)).toEqual([]);
    const netnsAfter = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
    expect(netnsAfter.split("\n").length).toBeLessThan(netnsBefore.split("\n").length);
    expect(execFileSync("nft", ["list", "tables"], { encoding: "utf8" })).not.toContain("kube-proxy");
  });
});
