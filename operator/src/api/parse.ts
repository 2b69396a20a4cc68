import {
  API_VERSION,
  KIND,
  type LogPipeline,
  LogPipelineSpec,
  type LogPipelineStatus,
  NAME_MAX,
  NAME_MAX_MESSAGE,
  type ObjectMeta,
} from "./logpipeline.js";

export type ParseResult = { ok: true; pipeline: LogPipeline } | { ok: false; message: string };

interface RawObject {
  metadata?: Partial<ObjectMeta>;
  spec?: unknown;
  status?: LogPipelineStatus;
}

/**
 * Reads a LogPipeline as the API server returned it and applies the schema's defaults.
 * Admission refuses most bad input; this catches the rest (an object stored before a
 * schema change, a rule CEL cannot express) and names every bad field, for a condition.
 */
export function parsePipeline(raw: unknown): ParseResult {
  const obj = (raw ?? {}) as RawObject;
  const meta = obj.metadata ?? {};
  if (!meta.name || !meta.namespace || !meta.uid)
    return { ok: false, message: "object lacks metadata.name, metadata.namespace or metadata.uid" };
  if (meta.name.length > NAME_MAX) return { ok: false, message: NAME_MAX_MESSAGE };
  const spec = LogPipelineSpec.safeParse(obj.spec);
  if (!spec.success)
    return {
      ok: false,
      message: spec.error.issues.map((i) => `spec.${i.path.join(".")}: ${i.message}`).join("; "),
    };
  return {
    ok: true,
    pipeline: {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { ...meta, name: meta.name, namespace: meta.namespace, uid: meta.uid },
      spec: spec.data,
      ...(obj.status ? { status: obj.status } : {}),
    },
  };
}
