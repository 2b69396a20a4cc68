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
          include: ["test/integration/**/*.test.ts"],
          // Brings the local stack up (or reuses a running one) and provides its addresses.
          globalSetup: ["test/setup/stack.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // Files are isolated from each other (a namespace, topic or schema each), but they
          // share two cores with every server of the stack.
          maxWorkers: 2,
        },
      },
    ],
  },
});
