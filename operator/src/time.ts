/**
 * The operator's clock. Everything that reads the time takes one (the manager passes the
 * same to all), so a test can move time instead of waiting for it.
 */
export type Clock = () => Date;
export const systemClock: Clock = () => new Date();

/** RFC 3339 with whole seconds, as Kubernetes writes its own timestamps. */
export const rfc3339Seconds = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, "Z");
