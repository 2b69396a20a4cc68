/**
 * Failpoints for fault tests. `LP_FAILPOINTS="before-pg-commit=kill@3,before-kafka-commit=error@1"`
 * makes the process SIGKILL itself the 3rd time it reaches `before-pg-commit`, and throw
 * the 1st time it reaches `before-kafka-commit`. Tests in the same process use
 * `setFailpoints`. Unset in production (the operator never sets it); a check is then one
 * Map lookup.
 */
type Action = "kill" | "error";
const spec = new Map<string, { action: Action; at: number }>();
const hits = new Map<string, number>();

export class FailpointError extends Error {
  constructor(name: string) {
    super(`failpoint ${name}`);
  }
}

export function setFailpoints(text: string): void {
  spec.clear();
  hits.clear();
  for (const part of text.split(",").filter(Boolean)) {
    const m = /^([a-z0-9-]+)=(kill|error)@(\d+)$/.exec(part.trim());
    if (!m?.[1] || !m[2] || !m[3])
      throw new Error(`LP_FAILPOINTS: cannot parse "${part}" (want name=kill@N or name=error@N)`);
    spec.set(m[1], { action: m[2] as Action, at: Number(m[3]) });
  }
}
setFailpoints(process.env.LP_FAILPOINTS ?? "");

export function failpoint(name: string): void {
  const s = spec.get(name);
  if (s === undefined) return;
  const n = (hits.get(name) ?? 0) + 1;
  hits.set(name, n);
  if (n !== s.at) return;
  if (s.action === "kill") process.kill(process.pid, "SIGKILL");
  throw new FailpointError(name);
}
