import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createWriteStream } from "node:fs";
import path from "node:path";
import { repoRoot } from "./stack.js";

/**
 * The preload that stops a spawned process when the test process that started it dies
 * (parent-guard.mjs): its node flags, and the environment that names this process as the parent.
 */
export const PARENT_GUARD = ["--import", path.join(repoRoot, "test/support/parent-guard.mjs")];
export const parentGuardEnv = (): Record<string, string> => ({ LP_PARENT_PID: String(process.pid) });

export interface WorkloadProcess {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Stops the process by its PID (SIGTERM, then SIGKILL after `graceMs`). */
  stop: (graceMs?: number) => Promise<void>;
}

/**
 * Compiles the operator and the workloads as their images are built (`tsc -p
 * tsconfig.build.json` → dist/), for the benches that run them as the images do.
 */
export function compileDist(): void {
  const tsc = spawnSync(path.join(repoRoot, "node_modules/.bin/tsc"), ["-p", "tsconfig.build.json"], {
    cwd: repoRoot,
    encoding: "utf8",
  });
  if (tsc.status !== 0) throw new Error(`tsc: ${tsc.stdout}${tsc.stderr}`);
}

/**
 * Runs a workload's entry point as its own process (Node with tsx over the source, or with
 * `compiled` the JavaScript `tsc -p tsconfig.build.json` wrote to dist/, as the image runs
 * it), with only the given environment plus PATH. Output goes to `logFile`.
 */
export function startWorkload(
  name: "producer" | "consumer" | "query",
  env: Record<string, string>,
  logFile: string,
  opts: { compiled?: boolean } = {},
): WorkloadProcess {
  const out = createWriteStream(logFile, { flags: "a" });
  // One process (node, with tsx's loader or not), so the PID we signal is the workload itself.
  const child = spawn(
    process.execPath,
    [
      ...PARENT_GUARD,
      // The gateway's V8 flag, as its image runs it (Dockerfile, target producer).
      ...(name === "producer" ? ["--max-semi-space-size=16"] : []),
      ...(opts.compiled
        ? ["--enable-source-maps", path.join(repoRoot, `dist/workloads/${name}/src/main.js`)]
        : ["--import", "tsx", path.join(repoRoot, `workloads/${name}/src/main.ts`)]),
    ],
    {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? "", ...parentGuardEnv(), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const stop = async (graceMs = 10_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(t);
  };
  return { child, exited, stop };
}

/** Connection variables for a workload, from a postgres:// URL. */
export function pgEnv(url: string, schema: string): Record<string, string> {
  const u = new URL(url);
  return {
    PG_HOST: u.hostname,
    PG_PORT: u.port,
    PG_USER: decodeURIComponent(u.username),
    PG_PASSWORD: decodeURIComponent(u.password),
    PG_DATABASE: u.pathname.slice(1) || "postgres",
    PG_SSLMODE: "disable",
    PG_SCHEMA: schema,
  };
}
