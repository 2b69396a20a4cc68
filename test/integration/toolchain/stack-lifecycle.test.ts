import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stackScript } from "../../support/stack.js";

/**
 * A second, isolated stack instance (own run dir, ports, bridge; no Strimzi: its health
 * port is fixed) is brought up and down, so stopping components never touches the stack
 * the other tests use.
 */
const runDir = mkdtempSync(path.join(tmpdir(), "lp-stack-lifecycle-"));
const env = {
  ...process.env,
  LP_RUN_DIR: runDir,
  // Apart from every other instance the tests run (outages 4000, runtime 5000, node 6000),
  // whose ports may be in use at the same time.
  LP_PORT_OFFSET: "3000",
  LP_BRIDGE: "lp9",
  LP_BRIDGE_IP: "10.254.0.1",
  LP_SERVICE_CIDR: "10.253.0.0/16",
  LP_SERVICE_API_IP: "10.253.0.1",
  LP_STRIMZI: "off",
};
const ports = [15379, 15380, 19443, 13257, 22092, 22093, 22091, 22094, 18432, 19379];

const stack = (...args: string[]) =>
  spawnSync("bash", [stackScript, ...args], { env, encoding: "utf8", timeout: 240_000 });

/** A process that still runs: present and not a zombie waiting for its parent to reap it. */
function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/stat`)) return false;
  const state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
  return state !== undefined && state !== "Z";
}

function listening(port: number): boolean {
  return execFileSync("ss", ["-ltnH", `sport = :${port}`], { encoding: "utf8" }).trim().length > 0;
}

afterAll(() => {
  stack("down");
  rmSync(runDir, { recursive: true, force: true });
});

describe("stack lifecycle (isolated instance)", () => {
  it("comes up healthy, a second up is harmless, and down leaves no process and no port", () => {
    const up = stack("up");
    expect(up.status, up.stderr).toBe(0);
    const pidDir = path.join(runDir, "pids");
    const pids = readdirSync(pidDir).map((f) => Number(readFileSync(path.join(pidDir, f), "utf8")));
    expect(pids.length).toBe(6); // etcd, apiserver, controller-manager, kafka, postgres, redis
    expect(ports.filter(listening)).toEqual(ports);

    const again = stack("up");
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toContain("already running");
    const status = stack("status");
    expect(status.status, status.stdout).toBe(0);
    expect(status.stdout).toMatch(/kube-apiserver\s+healthy\s+v1\.\d+\.\d+/);

    const down = stack("down");
    expect(down.status, down.stderr).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    expect(ports.filter(listening)).toEqual([]);
  });

  it("refuses to start on a taken port and names its owner", () => {
    const blocker = spawn(
      "python3",
      [
        "-c",
        "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', 15379)); s.listen(); time.sleep(60)",
      ],
      { stdio: "ignore" },
    );
    try {
      for (let i = 0; i < 40 && !listening(15379); i++) execFileSync("sleep", ["0.1"]);
      const up = stack("up");
      expect(up.status).not.toBe(0);
      expect(up.stderr).toMatch(
        new RegExp(`port 15379 is already taken: users:\\(\\("python3",pid=${blocker.pid},`),
      );
    } finally {
      blocker.kill("SIGKILL");
    }
  });

  it("goes down without touching the host's kube-proxy rules unless it ran kube-proxy itself", () => {
    // kube-proxy's nftables table is one per host: a stack without a node going down must
    // leave the running node's Service rules alone. A stand-in kube-proxy, in a tool cache of
    // its own (the script puts the cache's bin first on PATH), records whether `down` calls it;
    // the real one's --cleanup would remove the host's table.
    const dir = mkdtempSync(path.join(tmpdir(), "lp-stack-kube-proxy-"));
    const calls = path.join(dir, "calls");
    mkdirSync(path.join(dir, "bin"));
    writeFileSync(path.join(dir, "bin/kube-proxy"), `#!/bin/sh\necho "$@" >> ${calls}\n`, { mode: 0o755 });
    const down = (runDir: string) =>
      spawnSync("bash", [stackScript, "down"], {
        env: { ...env, LP_RUN_DIR: runDir, LP_CACHE: dir },
        encoding: "utf8",
        timeout: 60_000,
      });
    try {
      const noNode = path.join(dir, "no-node");
      mkdirSync(path.join(noNode, "pids"), { recursive: true });
      expect(down(noNode).status).toBe(0);
      expect(existsSync(calls)).toBe(false);

      // A stack that ran kube-proxy (its PID file is there, the process gone) cleans up.
      const withNode = path.join(dir, "with-node");
      mkdirSync(path.join(withNode, "pids"), { recursive: true });
      const gone = spawnSync("true").pid;
      writeFileSync(path.join(withNode, "pids/kube-proxy.pid"), String(gone));
      expect(down(withNode).status).toBe(0);
      expect(readFileSync(calls, "utf8")).toContain("--cleanup");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
