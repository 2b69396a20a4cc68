/**
 * Builds the log explorer (workloads/query/explorer) into a folder the query API serves:
 * index.html, app.js (one minified ES module, no dependencies outside the repo) and app.css.
 * Usage: tsx hack/build-explorer.ts [out-dir]   (default dist/explorer; make explorer)
 * Prints each file's size and gzipped size; the page's JS + CSS must stay under 150 KB gzipped.
 */
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "..", "workloads", "query", "explorer");
export const EXPLORER_BUDGET_GZIP = 150 * 1024;

export interface ExplorerBuild {
  dir: string;
  files: { name: string; bytes: number; gzip: number }[];
  /** app.js + app.css, gzipped. */
  gzipTotal: number;
}

export async function buildExplorer(outDir: string): Promise<ExplorerBuild> {
  mkdirSync(outDir, { recursive: true });
  const common = { bundle: true, minify: true, legalComments: "none", logLevel: "warning" } as const;
  await build({
    ...common,
    entryPoints: [join(SRC, "app.ts")],
    outfile: join(outDir, "app.js"),
    format: "esm",
    target: "es2022",
    tsconfig: join(SRC, "tsconfig.json"),
  });
  await build({ ...common, entryPoints: [join(SRC, "app.css")], outfile: join(outDir, "app.css") });
  copyFileSync(join(SRC, "index.html"), join(outDir, "index.html"));
  const files = ["index.html", "app.js", "app.css"].map((name) => {
    const body = readFileSync(join(outDir, name));
    return { name, bytes: body.length, gzip: gzipSync(body, { level: 9 }).length };
  });
  const gzipTotal = files.filter((f) => f.name !== "index.html").reduce((s, f) => s + f.gzip, 0);
  return { dir: outDir, files, gzipTotal };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = resolve(process.argv[2] ?? "dist/explorer");
  const b = await buildExplorer(out);
  for (const f of b.files)
    console.log(
      `  ${f.name.padEnd(11)} ${String(f.bytes).padStart(7)} B, ${String(f.gzip).padStart(6)} B gzipped`,
    );
  console.log(
    `explorer built in ${out}: JS + CSS ${(b.gzipTotal / 1024).toFixed(1)} KB gzipped (budget 150 KB)`,
  );
  if (b.gzipTotal > EXPLORER_BUDGET_GZIP) {
    console.error("the explorer is over its 150 KB gzipped budget");
    process.exit(1);
  }
}
