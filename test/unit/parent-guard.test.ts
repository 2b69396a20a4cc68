import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PARENT_GUARD } from "../support/workload-process.js";

/**
 * A process is alive while signal 0 reaches it and it is not a zombie (exited, waiting for
 * whichever process it was re-parented to to reap it: it holds no port, no CPU).
 */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces, the state follows its ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
};

/**
 * A stand-in for a vitest worker: a node process that starts a long-running child with the
 * given preload flags (naming itself as the parent in LP_PARENT_PID, as the spawners do), prints
 * the child's PID, and waits. Killed with SIGKILL it stops nothing.
 */
function startParent(childFlags: string[]) {
  const script = `
    const { spawn } = require("node:child_process");
    const c = spawn(process.execPath, ${JSON.stringify([...childFlags, "-e", "setInterval(() => {}, 1000)"])}, { stdio: "ignore", env: { ...process.env, LP_PARENT_PID: String(process.pid) } });
    console.log(c.pid);
    setInterval(() => {}, 1000);`;
  const parent = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  const childPid = new Promise<number>((resolve) =>
    parent.stdout.once("data", (b: Buffer) => resolve(Number(b.toString().trim()))),
  );
  return { parent, childPid };
}

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const end = Date.now() + withinMs;
  while (Date.now() < end) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !alive(pid);
}

describe("parent-guard.mjs (the preload of every process a test starts)", () => {
  it("stops a spawned process once the test process that started it dies", async () => {
    const { parent, childPid } = startParent(PARENT_GUARD);
    const pid = await childPid;
    expect(alive(pid)).toBe(true);
    parent.kill("SIGKILL");
    expect(await gone(pid, 10_000)).toBe(true);
  }, 15_000);

  it("(negative control) without it, the child outlives its parent", async () => {
    const { parent, childPid } = startParent([]);
    const pid = await childPid;
    parent.kill("SIGKILL");
    // The guarded child was gone within 1–2 s; this one is still there after 4 s.
    expect(await gone(pid, 4_000)).toBe(false);
    process.kill(pid, "SIGKILL");
    expect(await gone(pid, 5_000)).toBe(true);
  }, 15_000);
});
