import type { TestProject } from "vitest/node";
import { ensureStack, type StackInfo } from "../support/stack.js";

/** Brings the local stack up for the integration tests (or reuses a running one). */
export default function setup(project: TestProject): () => void {
  const { info, release } = ensureStack();
  project.provide("stack", info);
  return release;
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}
