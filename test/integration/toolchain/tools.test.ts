import { execFileSync } from "node:child_process";
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

  it("promtool --version", () => {
    expect(run("promtool", "--version")).toMatch(/promtool, version \d+\.\d+\.\d+/);
  });
});
