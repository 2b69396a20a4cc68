import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply } from "fastify";

/**
 * The log explorer's static page (built by hack/build-explorer.ts into dist/explorer), served
 * by the query API itself at `/`: same origin, so the page's requests carry no CORS and its
 * Content-Security-Policy can say 'self' for everything.
 *
 * Log content is attacker-controlled. The page renders it only as text (textContent), and
 * the policy below forbids inline script, eval, plugins, framing and every other origin.
 */
export const EXPLORER_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const FILES = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/explorer/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/explorer/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
} as const;

/** dist/explorer beside the compiled code (dist/workloads/query/src → dist/explorer). */
export const defaultExplorerDir = () =>
  resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "explorer");

export interface ExplorerConfig {
  pipeline: string;
  traceUrlTemplate: string | null;
  /** How often the page asks /api/status for the banner. */
  statusRefreshSeconds: number;
}

/**
 * Registers the page's routes. The files are read once, at start (about 40 KB); a missing
 * build answers `/` with 404 and how to build it, the API is unaffected.
 */
export function serveExplorer(app: FastifyInstance, dir: string, config: ExplorerConfig): boolean {
  const headers = (reply: FastifyReply) =>
    reply
      .header("content-security-policy", EXPLORER_CSP)
      .header("x-content-type-options", "nosniff")
      .header("referrer-policy", "no-referrer")
      .header("cross-origin-opener-policy", "same-origin")
      .header("permissions-policy", "camera=(), microphone=(), geolocation=()");
  app.get("/explorer/config.json", { schema: { hide: true } }, async (_req, reply) => {
    headers(reply).header("cache-control", "no-cache");
    return config;
  });
  const built = existsSync(join(dir, "index.html"));
  for (const [path, f] of Object.entries(FILES)) {
    const body = built ? readFileSync(join(dir, f.file)) : undefined;
    const etag = body ? `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"` : "";
    app.get(path, { schema: { hide: true } }, async (req, reply) => {
      headers(reply);
      if (!body)
        return reply.status(404).send({
          error: "the explorer is not built",
          reasons: ["build it with `make explorer` (npm run build does too), or set EXPLORER_DIR"],
        });
      // Revalidated on every load: a new image's page is never mixed with an old cached script.
      reply.header("cache-control", "no-cache").header("etag", etag);
      if (req.headers["if-none-match"] === etag) return reply.status(304).send();
      return reply.type(f.type).send(body);
    });
  }
  return built;
}
