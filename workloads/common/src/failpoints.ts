/**
 * Failpoints for fault tests: `LP_FAILPOINTS="before-pg-commit=kill@3,mid-batch=kill@1"` makes
 * the process SIGKILL itself the 3rd time it reaches `before-pg-commit`, and so on. Unset in
 * production (the operator never sets it); each check is then one Map lookup.
 */
const spec = new Map<string, number>();
for (const part of (process.env.LP_FAILPOINTS ?? "").split(",").filter(Boolean)) {
  const m = /^([a-z0-9-]+)=kill@(\d+)$/.exec(part.trim());
  if (!m?.[1] || !m[2]) throw new Error(`LP_FAILPOINTS: cannot parse "${part}" (want name=kill@N)`);
  spec.set(m[1], Number(m[2]));
}
const hits = new Map<string, number>();

export function failpoint(name: string): void {
  const at = spec.get(name);
  if (at === undefined) return;
  const n = (hits.get(name) ?? 0) + 1;
  hits.set(name, n);
  if (n === at) process.kill(process.pid, "SIGKILL");
}
