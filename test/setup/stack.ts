import { spawnSync } from "node:child_process";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { type StackInfo, stackScript } from "../support/stack.js";

function stack(...args: string[]): number {
  const r = spawnSync("bash", [stackScript, ...args], { stdio: ["ignore", "inherit", "inherit"] });
  return r.status ?? 1;
}

/**
 * Brings the stack up unless it is already running; stops it afterwards only if this run
 * started it (a developer's running stack is left alone). LP_KEEP_STACK=1 keeps it up.
 */
export default function setup(project: TestProject): () => void {
  const wasUp = stack("status", "--quiet") === 0;
  if (!wasUp && stack("up") !== 0)
    throw new Error(`stack-up failed: see the output above and ${path.dirname(stackScript)}`);
  const json = spawnSync("bash", [stackScript, "json"], { encoding: "utf8" });
  if (json.status !== 0) throw new Error(`could not read the stack's addresses: ${json.stderr}`);
  project.provide("stack", JSON.parse(json.stdout) as StackInfo);
  return () => {
    if (!wasUp && process.env.LP_KEEP_STACK !== "1") stack("down");
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}
