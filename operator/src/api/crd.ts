import { z } from "zod";
import {
  GROUP,
  KIND,
  LogPipelineSpec,
  LogPipelineStatus,
  NAME_MAX,
  NAME_MAX_MESSAGE,
  PLURAL,
  VERSION,
} from "./logpipeline.js";

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

/**
 * Expands an object's `default: {}` with its properties' defaults. The API server checks a
 * default against the CEL rules as written (without defaulting inside it), so a rule such as
 * `self.min <= self.max` needs the complete object.
 */
export function expandDefaults(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(expandDefaults);
  if (schema === null || typeof schema !== "object") return schema;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema as JsonSchema))
    out[key] =
      key === "default" || key === "enum" || key === "x-kubernetes-validations"
        ? value
        : expandDefaults(value);
  const dflt = out.default;
  const props = out.properties as Record<string, JsonSchema> | undefined;
  if (props && dflt !== null && typeof dflt === "object" && !Array.isArray(dflt)) {
    const filled: JsonSchema = { ...(dflt as JsonSchema) };
    for (const [name, prop] of Object.entries(props))
      if (!(name in filled) && prop.default !== undefined) filled[name] = prop.default;
    out.default = filled;
  }
  return out;
}

const jsonSchema = (s: z.ZodType): unknown =>
  expandDefaults(toStructural(z.toJSONSchema(s, { target: "openapi-3.0", io: "input" })));

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
            { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            { name: "Phase", type: "string", jsonPath: ".status.phase" },
            { name: "Producers", type: "string", jsonPath: ".status.workloads.producer.summary" },
            { name: "Consumers", type: "string", jsonPath: ".status.workloads.consumer.summary" },
            { name: "Lag", type: "integer", jsonPath: ".status.delivery.lag" },
            { name: "Divergence", type: "string", jsonPath: ".status.divergence.summary" },
            { name: "DLQ", type: "integer", jsonPath: ".status.delivery.dlq" },
            { name: "Topic", type: "string", jsonPath: ".status.topics.main", priority: 1 },
            { name: "Message", type: "string", jsonPath: ".status.message", priority: 1 },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description:
                "LogPipeline is an exactly-once log pipeline: HTTP ingest → Kafka → PostgreSQL, with a query API.",
              required: ["spec"],
              "x-kubernetes-validations": [
                { rule: `self.metadata.name.size() <= ${NAME_MAX}`, message: NAME_MAX_MESSAGE },
              ],
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
