import { spawnSync } from "node:child_process";

/** Runs `promtool check metrics` over an exposition; returns its exit code and findings. */
export function promtoolCheckMetrics(exposition: string): { status: number | null; findings: string } {
  const r = spawnSync("promtool", ["check", "metrics"], { input: exposition, encoding: "utf8" });
  return { status: r.status, findings: `${r.stdout}${r.stderr}`.trim() };
}
