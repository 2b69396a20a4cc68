import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { buildLogPipelineCrd, toStructural } from "./crd.js";

describe("toStructural", () => {
  it("drops keys a structural schema may not carry and zod's integer bounds noise", () => {
    expect(
      toStructural({
        $schema: "x",
        type: "object",
        additionalProperties: false,
        properties: {
          n: { type: "integer", minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER },
        },
      }),
    ).toEqual({ type: "object", properties: { n: { type: "integer" } } });
  });

  it("keeps real bounds, defaults and CEL rules as they are", () => {
    const rules = [{ rule: "self >= oldSelf", message: "m" }];
    expect(
      toStructural({ type: "integer", minimum: 1, default: 6, "x-kubernetes-validations": rules }),
    ).toEqual({
      type: "integer",
      minimum: 1,
      default: 6,
      "x-kubernetes-validations": rules,
    });
  });
});

describe("LogPipeline CRD", () => {
  const crd = buildLogPipelineCrd();

  it("is deterministic", () => {
    expect(stringify(buildLogPipelineCrd())).toBe(stringify(crd));
  });

  it("describes every field of the spec", () => {
    const missing: string[] = [];
    const walk = (s: Record<string, unknown>, at: string) => {
      if (!s.description) missing.push(at);
      for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, Record<string, unknown>>))
        walk(v, `${at}.${k}`);
    };
    const [version] = (
      crd.spec as {
        versions: { schema: { openAPIV3Schema: { properties: Record<string, Record<string, unknown>> } } }[];
      }
    ).versions;
    const spec = version?.schema.openAPIV3Schema.properties.spec;
    expect(spec).toBeDefined();
    if (spec) walk(spec, "spec");
    expect(missing).toEqual([]);
  });
});
