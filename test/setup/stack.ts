import type { TestProject } from "vitest/node";
import { ensureStack, type StackInfo } from "../support/stack.js";

/** Brings the local stack up for the integration tests (or reuses a running one). */
export default function setup(project: TestProject): () => void {
  const { info, release } = ensureStack();
  // The tests of kafka.mode strimzi (the mode make dev uses) run only where Strimzi's topic
  // operator is installed; in CI its absence fails the run instead of skipping them.
  if (process.env.CI && !info.strimzi.enabled) {
    release();
    throw new Error(
      "CI is set but the stack has no Strimzi topic operator (its jars come from ../shared/strimzi or LP_STRIMZI_DIR at make tools): the strimzi-mode tests would be skipped",
    );
  }
  project.provide("stack", info);
  return release;
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}
