// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/**
 * Each folder of operator/src, the internal folders it may import, and whether it may do I/O
 * through a client. `@kubernetes/client-node` values (not types) belong to kube/ alone.
 */
const LAYERS = {
  api: { may: [], io: false },
  builders: { may: ["api"], io: false },
  status: { may: ["api", "builders"], io: false },
  runtime: { may: [], io: true },
  kube: { may: ["runtime"], io: true },
  kafka: { may: ["builders"], io: true },
  divergence: { may: ["api", "kafka"], io: true },
  controller: { may: ["api", "builders", "status", "runtime", "kube", "kafka", "divergence"], io: true },
};
const CLIENTS = ["pg", "ioredis", "@confluentinc/*", "node:fs*", "node:net", "node:http*"];

function operatorLayers() {
  const folders = Object.keys(LAYERS);
  return Object.entries(LAYERS).map(([layer, { may, io }]) => {
    const banned = folders.filter((f) => f !== layer && !may.includes(f));
    const patterns = [];
    if (banned.length > 0)
      patterns.push({
        group: banned.map((f) => `**/${f}/**`),
        message: `${layer}/ imports ${may.length > 0 ? `only ${may.map((f) => `${f}/`).join(", ")}` : "no other layer"} (docs/architecture.md).`,
      });
    if (layer !== "kube")
      patterns.push({
        group: ["@kubernetes/client-node"],
        allowTypeImports: true,
        message: "Only kube/ talks to the API server: import types, not values, of @kubernetes/client-node.",
      });
    if (!io)
      patterns.push({
        group: CLIENTS,
        allowTypeImports: true,
        message: `${layer}/ is pure: no clients, no I/O.`,
      });
    return {
      files: [`operator/src/${layer}/**/*.ts`],
      rules: { "@typescript-eslint/no-restricted-imports": ["error", { patterns }] },
    };
  });
}

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
  // The layers of operator/src and what each may import (docs/architecture.md, Layers):
  // one rule per folder, generated from this table, so every folder has one.
  ...operatorLayers(),
  // The operator reads the time through its injected clock (operator/src/time.ts).
  {
    files: ["operator/src/**/*.ts"],
    ignores: ["operator/src/time.ts", "operator/src/**/*.test.ts"],
    rules: {
      "no-restricted-properties": [
        "error",
        {
          object: "Date",
          property: "now",
          message: "Use the injected clock (Clock in operator/src/time.ts).",
        },
      ],
      "no-restricted-syntax": [
        "error",
        {
          selector: "NewExpression[callee.name='Date'][arguments.length=0]",
          message: "Use the injected clock (Clock in operator/src/time.ts).",
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
