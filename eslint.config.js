// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "charts/**", "crds/**"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "@typescript-eslint/no-confusing-void-expression": ["error", { ignoreArrowShorthand: true }],
      // @kubernetes/client-node models are generated classes that are meant to be written
      // as object literals.
      "@typescript-eslint/no-unsafe-class-instance-assignment": "off",
    },
  },
  { files: ["**/*.js", "**/*.mjs"], ...tseslint.configs.disableTypeChecked },
  // Scripts that run on Node (the e2e client runs as a pod on the producer's image).
  {
    files: ["**/*.mjs"],
    languageOptions: {
      globals: { process: "readonly", fetch: "readonly", AbortSignal: "readonly", setTimeout: "readonly" },
    },
  },
  // Dependency rules of the design (DESIGN.md, Operator): pure layers import no client,
  // the runtime knows nothing of the API, and workloads never import the operator.
  {
    files: ["operator/src/builders/**/*.ts", "operator/src/status/**/*.ts"],
    rules: {
      // Types of Kubernetes objects may be imported; the client itself may not.
      "@typescript-eslint/no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/kube/**", "**/controller/**", "**/divergence/**"],
              message: "builders/ and status/ are pure: no I/O layers.",
            },
            {
              group: [
                "@kubernetes/client-node",
                "pg",
                "ioredis",
                "@confluentinc/*",
                "node:fs*",
                "node:net",
                "node:http*",
              ],
              allowTypeImports: true,
              message: "builders/ and status/ are pure: no clients.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["operator/src/runtime/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/api/**", "**/controller/**", "**/builders/**"],
              message: "runtime/ knows nothing of LogPipeline.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["workloads/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: [{ group: ["**/operator/**"], message: "workloads never import the operator." }] },
      ],
    },
  },
);
