import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { connectionLost } from "./client.js";
import { inClusterCredentials, kubeconfigCredentials, loadCredentials } from "./credentials.js";

const dir = () => mkdtempSync(path.join(tmpdir(), "lp-creds-"));
const b64 = (s: string) => Buffer.from(s).toString("base64");

function kubeconfig(d: string, cluster: string, user: string, name = "config"): string {
  const file = path.join(d, name);
  writeFileSync(
    file,
    [
      "apiVersion: v1",
      "kind: Config",
      "current-context: c",
      "contexts: [{name: c, context: {cluster: k, user: u}}]",
      `clusters: [{name: k, cluster: ${cluster}}]`,
      `users: [{name: u, user: ${user}}]`,
      "",
    ].join("\n"),
  );
  return file;
}

describe("credentials without @kubernetes/client-node", () => {
  it("reads a token and a CA file relative to the kubeconfig", async () => {
    const d = dir();
    writeFileSync(path.join(d, "ca.crt"), "CA PEM");
    const c = kubeconfigCredentials(
      kubeconfig(d, '{server: "https://10.0.0.1:6443/", certificate-authority: ca.crt}', "{token: abc}"),
    );
    expect(c?.source).toBe("kubeconfig");
    expect(c?.server).toBe("https://10.0.0.1:6443");
    expect(c?.tls).toEqual({ ca: "CA PEM" });
    expect(await c?.authorization()).toBe("Bearer abc");
  });

  it("reads client certificates from data fields, and the TLS options", async () => {
    const d = dir();
    const c = kubeconfigCredentials(
      kubeconfig(
        d,
        `{server: "https://h:1", certificate-authority-data: ${b64("CA")}, tls-server-name: api.local, insecure-skip-tls-verify: true}`,
        `{client-certificate-data: ${b64("CERT")}, client-key-data: ${b64("KEY")}}`,
      ),
    );
    expect(c?.tls).toEqual({
      ca: "CA",
      cert: "CERT",
      key: "KEY",
      rejectUnauthorized: false,
      servername: "api.local",
    });
    expect(await c?.authorization()).toBeUndefined();
  });

  it("re-reads a token file", async () => {
    const d = dir();
    writeFileSync(path.join(d, "token"), "first\n");
    const c = kubeconfigCredentials(kubeconfig(d, '{server: "https://h:1"}', "{tokenFile: token}"));
    expect(await c?.authorization()).toBe("Bearer first");
  });

  it("leaves exec plugins and auth providers to @kubernetes/client-node", async () => {
    const d = dir();
    const plugin = path.join(d, "plugin.sh");
    writeFileSync(
      plugin,
      `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-exec"}}'\n`,
      { mode: 0o755 },
    );
    const exec = kubeconfig(
      d,
      '{server: "https://h:1"}',
      `{exec: {apiVersion: client.authentication.k8s.io/v1, command: ${plugin}, interactiveMode: Never}}`,
    );
    expect(kubeconfigCredentials(exec)).toBeUndefined();
    const c = await loadCredentials(exec, {});
    expect(c.source).toBe("client-node");
    expect(c.server).toBe("https://h:1");
    expect(await c.authorization()).toBe("Bearer from-exec");
  });

  it("names what is missing from an unusable kubeconfig", () => {
    const d = dir();
    const file = path.join(d, "bad");
    writeFileSync(file, "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n");
    expect(() => kubeconfigCredentials(file)).toThrow(/no current context/);
    expect(() =>
      kubeconfigCredentials(kubeconfig(d, "{insecure-skip-tls-verify: true}", "{}", "noserver")),
    ).toThrow(/no cluster with a server/);
  });

  it("finds in-cluster credentials from the service environment and the mounted token", async () => {
    const d = dir();
    writeFileSync(path.join(d, "token"), "sa-token");
    writeFileSync(path.join(d, "ca.crt"), "CLUSTER CA");
    const c = inClusterCredentials({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" }, d);
    expect(c?.server).toBe("https://[fd00::1]:443");
    expect(c?.tls.ca).toBe("CLUSTER CA");
    expect(await c?.authorization()).toBe("Bearer sa-token");
    expect(inClusterCredentials({}, d)).toBeUndefined();
    await expect(loadCredentials(path.join(d, "missing"), {})).rejects.toThrow(/does not exist/);
  });
});

describe("connectionLost: which failed requests are sent once more", () => {
  const failed = (code: string) =>
    new TypeError("fetch failed", { cause: Object.assign(new Error(code), { code }) });
  it("a connection the server closed, not a refused connection or a timeout", () => {
    expect(connectionLost(failed("UND_ERR_INFO"))).toBe(true); // HTTP/2 GOAWAY from a restarting API server
    expect(connectionLost(failed("ECONNRESET"))).toBe(true);
    expect(connectionLost(failed("ECONNREFUSED"))).toBe(false);
    expect(connectionLost(new DOMException("timed out", "TimeoutError"))).toBe(false);
  });
});
