import { z } from "zod";
import { GROUP, KIND, LogPipelineSpec, LogPipelineStatus, PLURAL, VERSION } from "./logpipeline.js";

type JsonSchema = Record<string, unknown>;

/**
 * Turns a zod JSON Schema (OpenAPI 3.0 flavour) into a Kubernetes structural schema:
 * drops keys the API server rejects and the noise zod adds for integers.
 */
export function toStructural(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toStructural);
  if (schema === null || typeof schema !== "object") return schema;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema as JsonSchema)) {
    if (key === "$schema" || key === "id") continue;
    if (key === "additionalProperties" && value === false) continue;
    if (
      (key === "maximum" && value === Number.MAX_SAFE_INTEGER) ||
      (key === "minimum" && value === Number.MIN_SAFE_INTEGER)
    )
      continue;
    out[key] =
      key === "x-kubernetes-validations" || key === "enum" || key === "default" ? value : toStructural(value);
  }
  return out;
}

const jsonSchema = (s: z.ZodType): unknown =>
  toStructural(z.toJSONSchema(s, { target: "openapi-3.0", io: "input" }));

export function buildLogPipelineCrd(): JsonSchema {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${PLURAL}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: "logpipeline",
        shortNames: ["lp"],
        categories: ["all"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: "Phase", type: "string", jsonPath: ".status.phase" },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description:
                "LogPipeline is an exactly-once log pipeline: HTTP ingest → Kafka → PostgreSQL, with a query API.",
              required: ["spec"],
              properties: {
                apiVersion: {
                  type: "string",
                  description: "APIVersion defines the versioned schema of this representation of an object.",
                },
                kind: {
                  type: "string",
                  description:
                    "Kind is a string value representing the REST resource this object represents.",
                },
                metadata: { type: "object" },
                spec: jsonSchema(LogPipelineSpec),
                status: jsonSchema(LogPipelineStatus),
              },
            },
          },
        },
      ],
    },
  };
}
