import { execFileSync } from "node:child_process";
import { realpathSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { pinnedVersions } from "../../support/versions.js";

const v = pinnedVersions();
const run = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: "utf8" });

describe("installed tools print their pinned versions", () => {
  it.each(["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"])(
    "%s --version",
    (bin) => {
      expect(run(bin, "--version")).toContain(`Kubernetes ${v.KUBE_VERSION}`);
    },
  );

  it("kubectl version --client", () => {
    expect(run("kubectl", "version", "--client")).toContain(`Client Version: ${v.KUBE_VERSION}`);
  });

  it("etcd --version", () => {
    expect(run("etcd", "--version")).toContain(`etcd Version: ${v.ETCD_VERSION?.slice(1)}`);
  });

  it("helm version", () => {
    expect(run("helm", "version", "--short")).toContain(v.HELM_VERSION);
  });

  it("lp-otelcol --version (the Collector distribution of hack/otelcol/builder.yaml)", () => {
    expect(run("lp-otelcol", "--version")).toContain(
      `lp-otelcol version ${v.OTELCOL_BUILDER_VERSION?.slice(1)}`,
    );
    const components = run("lp-otelcol", "components");
    for (const c of ["file_log", "otlp", "batch", "otlp_http", "file_storage"])
      expect(components).toContain(`name: ${c}`);
  });

  it("kube-router is the pinned build (it prints no version of its own when built with go install)", () => {
    const bin = realpathSync(run("bash", "-c", "command -v kube-router").trim());
    expect(bin).toContain(`/kube-router-${v.KUBE_ROUTER_VERSION}/`);
    expect(run("bash", "-c", "kube-router --help 2>&1")).toContain("--run-firewall");
  });

  it("promtool --version", () => {
    expect(run("promtool", "--version")).toMatch(/promtool, version \d+\.\d+\.\d+/);
  });
});
