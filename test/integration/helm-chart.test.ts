import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { KubeClient } from "../../operator/src/kube/client.js";
import { eventually, uniqueSuffix } from "../support/kube.js";
import { createNamespace, waitGone } from "../support/operator.js";
import { repoRoot } from "../support/stack.js";

/** The operator's Helm chart: lint, render, refuse bad values, and install/upgrade/uninstall on the local cluster. */
const stack = inject("stack");
const chart = path.join(repoRoot, "charts/logpipeline-operator");
const ns = `t-helm-${uniqueSuffix()}`;
const release = `lpo-${uniqueSuffix()}`;
let kube: KubeClient;

function helm(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync("helm", [...args, "--kubeconfig", stack.kubeconfig], {
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}
interface Rendered {
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  rules?: unknown[];
}
const render = (...set: string[]): Rendered[] => {
  const r = helm("template", "t", chart, "-n", "lp-system", ...set.flatMap((s) => ["--set", s]));
  expect(r.stderr.replace(/level=INFO msg="found symbolic link[^\n]*\n/g, "")).toBe("");
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Rendered | null)
    .filter((d): d is Rendered => d !== null);
};

beforeAll(async () => {
  kube = await KubeClient.fromEnvironment(stack.kubeconfig);
  await createNamespace(kube, ns);
});
afterAll(async () => {
  helm("uninstall", release, "-n", ns);
  await kube.delete("v1", "Namespace", undefined, ns);
  await kube.close();
});

describe("helm chart logpipeline-operator", () => {
  it("passes helm lint", () => {
    const r = helm("lint", chart, "--strict");
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it("renders the tested RBAC rules, a restricted Deployment and a CRD kept on uninstall", () => {
    const objects = render();
    const role = objects.find((o) => o.kind === "ClusterRole");
    const source = parse(readFileSync(path.join(repoRoot, "config/rbac/role.yaml"), "utf8")) as {
      rules: unknown[];
    };
    expect(role?.rules).toEqual(source.rules);
    const crd = objects.find((o) => o.kind === "CustomResourceDefinition");
    expect(crd?.metadata.annotations?.["helm.sh/resource-policy"]).toBe("keep");
    const deployment = objects.find((o) => o.kind === "Deployment") as
      | {
          spec: {
            template: {
              spec: {
                securityContext: unknown;
                containers: { securityContext: unknown; env: { name: string; value?: string }[] }[];
              };
            };
          };
        }
      | undefined;
    const pod = deployment?.spec.template.spec;
    expect(pod?.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(pod?.containers[0]?.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(pod?.containers[0]?.env.find((e) => e.name === "LEADER_ELECT")?.value).toBe("true");
    expect(render("crds.enabled=false").some((o) => o.kind === "CustomResourceDefinition")).toBe(false);
    expect(render("metrics.serviceMonitor.enabled=true").some((o) => o.kind === "ServiceMonitor")).toBe(true);
  });

  it("fences the operator's writes in cluster mode with the tested policies, for this release's account", () => {
    const objects = render();
    const policies = objects.filter((o) => o.kind === "ValidatingAdmissionPolicy");
    const source = parseAllDocuments(
      readFileSync(path.join(repoRoot, "config/admission/operator-fence.yaml"), "utf8"),
    )
      .map((d) => d.toJS() as Rendered)
      .filter((d) => d.kind === "ValidatingAdmissionPolicy");
    expect(policies.map((p) => p.metadata.name)).toEqual(source.map((p) => `t-${p.metadata.name}`));
    for (const [i, p] of policies.entries()) {
      const want = JSON.stringify(source[i]?.spec).replaceAll(
        "system:serviceaccount:logpipeline-system:logpipeline-operator",
        "system:serviceaccount:lp-system:t-logpipeline-operator",
      );
      expect(p.spec).toEqual(JSON.parse(want));
    }
    const bindings = objects.filter((o) => o.kind === "ValidatingAdmissionPolicyBinding");
    expect(bindings.map((b) => (b.spec as { policyName: string }).policyName)).toEqual(
      policies.map((p) => p.metadata.name),
    );
    expect(render("admissionFence.enabled=false").some((o) => o.kind === "ValidatingAdmissionPolicy")).toBe(
      false,
    );
  });

  it("in namespaced mode binds Roles in the watched and Strimzi namespaces only, and passes the policy on", () => {
    const objects = render(
      "installMode=namespaced",
      "watchNamespaces[0]=team-a",
      "policy.strimziNamespaces[0]=kafka",
      "policy.topicPrefix=tenants.{namespace}.",
    ) as (Rendered & { metadata: { namespace?: string } })[];
    expect(
      objects
        .filter((o) => o.kind === "RoleBinding")
        .map((o) => o.metadata.namespace)
        .sort(),
    ).toEqual(["kafka", "lp-system", "team-a"]);
    expect(objects.filter((o) => o.kind === "ClusterRoleBinding")).toHaveLength(1);
    expect(objects.some((o) => o.kind === "ValidatingAdmissionPolicy")).toBe(false);
    const env = (
      objects.find((o) => o.kind === "Deployment") as unknown as {
        spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
      }
    ).spec.template.spec.containers[0]?.env;
    const value = (n: string) => env?.find((e) => e.name === n)?.value;
    expect(value("INSTALL_MODE")).toBe("namespaced");
    expect(value("WATCH_NAMESPACES")).toBe("team-a");
    expect(value("POLICY_STRIMZI_NAMESPACES")).toBe("kafka");
    expect(value("POLICY_TOPIC_PREFIX")).toBe("tenants.{namespace}.");
    expect(value("POLICY_ALLOW_INGRESS_WITHOUT_TLS")).toBe("false");
  });

  it.each([
    ["an unknown value (a typo)", "replica=3", "additional properties 'replica' not allowed"],
    ["a negative replica count", "replicas=-1", "replicas"],
    ["an unknown pull policy", "image.pullPolicy=Sometimes", "pullPolicy"],
    ["a bad namespace name", "watchNamespaces[0]=Not_A_Namespace", "watchNamespaces"],
    ["the namespaced mode without namespaces", "installMode=namespaced", "watchNamespaces"],
    ["an unknown install mode", "installMode=everywhere", "installMode"],
  ])("refuses %s at install time (values.schema.json)", (_what, set, message) => {
    const r = helm("template", "t", chart, "--set", set);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(message);
  });

  it("installs, upgrades and uninstalls on the local cluster", async () => {
    // The stack already has the CRD (kept across releases by design), so this release does not own it.
    const installed = helm(
      "install",
      release,
      chart,
      "-n",
      ns,
      "--set",
      "crds.enabled=false",
      "--set",
      `watchNamespaces[0]=${ns}`,
    );
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toContain("kubectl get lp -o wide");
    const name = `${release}-logpipeline-operator`;
    const deployment = await kube.get<{ spec: { replicas: number } }>("apps/v1", "Deployment", ns, name);
    expect(deployment.spec.replicas).toBe(2);
    expect(
      await kube.getOrUndefined("rbac.authorization.k8s.io/v1", "ClusterRole", undefined, name),
    ).toBeDefined();

    const upgraded = helm("upgrade", release, chart, "-n", ns, "--reuse-values", "--set", "replicas=1");
    expect(upgraded.code, upgraded.stderr).toBe(0);
    await eventually("1 replica", async () =>
      (await kube.get<{ spec: { replicas: number } }>("apps/v1", "Deployment", ns, name)).spec.replicas === 1
        ? true
        : undefined,
    );

    const removed = helm("uninstall", release, "-n", ns);
    expect(removed.code, removed.stderr).toBe(0);
    await waitGone(kube, "apps/v1", "Deployment", ns, name);
    await waitGone(kube, "rbac.authorization.k8s.io/v1", "ClusterRole", undefined, name);
    // The CRD stays: uninstalling the operator never deletes a cluster's pipelines.
    expect(
      await kube.getOrUndefined(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        undefined,
        "logpipelines.logpipeline.io",
      ),
    ).toBeDefined();
  });
});
