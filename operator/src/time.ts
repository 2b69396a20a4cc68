/** RFC 3339 with whole seconds, as Kubernetes writes its own timestamps. */
export const rfc3339Seconds = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, "Z");
