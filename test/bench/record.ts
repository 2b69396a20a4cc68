/**
 * The one writer of benchmark results: a section of docs/benchmarks.md between
 * `<!-- KEY:start -->` and `<!-- KEY:end -->` (appended under `heading` the first time), and
 * the figures merged into docs/benchmarks.json under their stable keys.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../support/stack.js";

export function recordBenchmarks(r: {
  key: string;
  heading: string;
  /** The lines under the markers: when, where, the command, then the figures' table. */
  body: string;
  figures: Record<string, unknown>;
}): void {
  const md = path.join(repoRoot, "docs/benchmarks.md");
  const start = `<!-- ${r.key}:start -->`;
  const end = `<!-- ${r.key}:end -->`;
  const section = `${start}\n${r.body.trim()}\n${end}`;
  const text = readFileSync(md, "utf8");
  writeFileSync(
    md,
    text.includes(start)
      ? text.replace(new RegExp(`${start}[\\s\\S]*${end}`), () => section)
      : `${text.trimEnd()}\n\n## ${r.heading}\n\n${section}\n`,
  );
  const jsonPath = path.join(repoRoot, "docs/benchmarks.json");
  const json = JSON.parse(readFileSync(jsonPath, "utf8")) as Record<string, unknown>;
  writeFileSync(jsonPath, `${JSON.stringify({ ...json, ...r.figures }, null, 2)}\n`);
}
