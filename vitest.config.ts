import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["operator/**/*.test.ts", "workloads/**/*.test.ts", "test/unit/**/*.test.ts"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts", "test/browser/**/*.test.ts"],
          // Brings the local stack up (or reuses a running one) and provides its addresses.
          globalSetup: ["test/setup/stack.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // Files are isolated from each other (a namespace, topic or schema each), but they
          // share two cores with every server of the stack.
          maxWorkers: 2,
        },
      },
      {
        test: {
          // The product on a cluster (the local node or kind), driven only by a kubeconfig:
          // hack/e2e.sh (make test-e2e) or hack/kind/e2e.sh run it.
          name: "e2e",
          include: ["test/e2e/**/*.e2e.test.ts"],
          testTimeout: 900_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
