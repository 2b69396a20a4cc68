import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type StackInfo, stackScript } from "./stack.js";

export interface IsolatedStack {
  info: StackInfo;
  stop: (component: string) => void;
  start: (component: string) => void;
  /** The PID of a running component (from the run dir's pid files). */
  pid: (component: string) => number;
  down: () => void;
}

/**
 * A stack instance of this test file's own (run dir, ports, bridge), so stopping its
 * components never disturbs the shared stack the other tests use.
 */
export function isolatedStack(opts: {
  portOffset: number;
  bridge: string;
  bridgeIp: string;
  components: string[];
}): IsolatedStack {
  const runDir = mkdtempSync(path.join(tmpdir(), "lp-isolated-"));
  const env = {
    ...process.env,
    LP_RUN_DIR: runDir,
    LP_PORT_OFFSET: String(opts.portOffset),
    LP_BRIDGE: opts.bridge,
    LP_BRIDGE_IP: opts.bridgeIp,
    LP_COMPONENTS: opts.components.join(" "),
    LP_STRIMZI: "off",
  };
  const run = (...args: string[]) => {
    const r = spawnSync("bash", [stackScript, ...args], { env, encoding: "utf8", timeout: 180_000 });
    if (r.status !== 0)
      throw new Error(
        `stack.sh ${args.join(" ")} failed (${r.signal ? `killed by ${r.signal} after 180 s` : `exit ${String(r.status)}`}):\n${r.stderr}`,
      );
    return r.stdout;
  };
  const down = () => {
    run("down");
    rmSync(runDir, { recursive: true, force: true });
  };
  try {
    run("up");
  } catch (e) {
    // What a failed start left running (its servers outlive the script) is stopped by PID
    // now: nothing of it may linger into the tests that follow.
    try {
      down();
    } catch (cleanup) {
      console.error(`isolated stack ${runDir}: clean-up after a failed start failed: ${String(cleanup)}`);
    }
    throw e;
  }
  const info = JSON.parse(run("json")) as StackInfo;
  return {
    info,
    stop: (c) => run("stop", c),
    start: (c) => run("start", c),
    pid: (c) => Number(readFileSync(path.join(runDir, "pids", `${c}.pid`), "utf8").trim()),
    down,
  };
}
