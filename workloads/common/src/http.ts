import type { Server } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { createGunzip, createInflate } from "node:zlib";
import swagger from "@fastify/swagger";
import Fastify, { type FastifyRequest } from "fastify";
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import { Counter, Histogram, type Registry } from "prom-client";
import { z } from "zod";
import { type ApiKeys, presentedKey } from "./auth.js";
import type { Logger } from "./logger.js";
import { LATENCY_BUCKETS } from "./metrics.js";
import { errorText } from "./connections.js";

/**
 * A route's own error body, set in its `config.errorBody`: what the common error handler
 * sends instead of `{ error, reasons }` (the status, headers and metrics stay the same).
 */
export type ErrorBodyFormat = (
  req: FastifyRequest,
  status: number,
  body: { error: string; reasons?: string[] },
) => { type: string; payload: string | Buffer };

declare module "fastify" {
  interface FastifyContextConfig {
    errorBody?: ErrorBodyFormat;
  }
}

/**
 * An HTTP error with reasons the client can act on (4xx), or a 5xx without internals. `code`
 * is the refusal's stable name in the refused-requests metric (by status when unset).
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reasons?: string[],
    readonly retryAfterSeconds?: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

const CODE_BY_STATUS: Record<number, string> = {
  400: "invalid",
  401: "unauthenticated",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  413: "too_large",
  415: "unsupported_media_type",
  429: "too_many_requests",
};
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "body_too_large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_CTP_INVALID_JSON_BODY: "invalid_json",
  FST_ERR_CTP_EMPTY_JSON_BODY: "invalid_json",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "invalid_content_length",
};

/** The stable name a refusal is counted under. */
const refusalCode = (status: number, code?: string) => code ?? CODE_BY_STATUS[status] ?? `http_${status}`;

export const ErrorBody = z.object({ error: z.string(), reasons: z.array(z.string()).optional() });

export interface HttpAppOptions {
  title: string;
  description: string;
  bodyLimit: number;
  registry: Registry;
  log: Logger;
  /**
   * Prefix of the request metrics (`<prefix>_requests_total`, `<prefix>_request_duration_seconds`,
   * `<prefix>_refused_total`).
   */
  metricsPrefix: string;
  /** Open connections at most; more are closed as they arrive (0: no cap). */
  maxConnections?: number;
}

/**
 * The fastify app shared by the HTTP workloads: zod validation with 400s that name each bad
 * field, OpenAPI at /docs/json, /healthz, request metrics (served on the metrics port by
 * serveOps, never here), 5xx without internals,
 * gzip and deflate bodies (the body limit holds for the decompressed size), a cap on open
 * connections, and every refusal counted by reason. Each workload adds its routes and its own
 * /readyz.
 */
export async function createHttpApp(o: HttpAppOptions) {
  const app = Fastify({
    logger: false,
    bodyLimit: o.bodyLimit,
    requestTimeout: 30_000,
    // Slow senders: the headers within 10 s, an idle keep-alive connection closed after 5 s.
    http: { headersTimeout: 10_000, keepAliveTimeout: KEEP_ALIVE_MS },
    return503OnClosing: true,
  }).withTypeProvider<ZodTypeProvider>();
  const refused = new Counter({
    name: `${o.metricsPrefix}_refused_total`,
    help: "Requests refused with a 4xx, by route and reason (connections: closed at the connection cap)",
    labelNames: ["route", "reason"],
    registers: [o.registry],
  });
  if (o.maxConnections) {
    app.server.maxConnections = o.maxConnections;
    app.server.on("drop", () => refused.inc({ route: "connection", reason: "connections" }));
  }
  app.addHook("preParsing", (req, _reply, payload, done) => {
    const encoding = (req.headers["content-encoding"] ?? "identity").toLowerCase().trim();
    if (encoding === "identity") {
      done(null, payload);
      return;
    }
    if (encoding !== "gzip" && encoding !== "deflate") {
      done(
        new HttpError(415, `unsupported content-encoding ${encoding}`, ["send gzip, deflate or identity"]),
        undefined,
      );
      return;
    }
    // fastify bounds both what arrives (receivedEncodedLength) and what it decompresses to.
    const inflated = Object.assign(encoding === "gzip" ? createGunzip() : createInflate(), {
      receivedEncodedLength: 0,
    });
    payload.on("data", (c: Buffer) => (inflated.receivedEncodedLength += c.length));
    payload.on("error", (e) => inflated.destroy(e));
    inflated.on("error", (e: Error & { statusCode?: number }) => {
      e.statusCode ??= 400;
      e.message = `body is not valid ${encoding}: ${e.message}`;
    });
    payload.pipe(inflated);
    done(null, inflated);
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(swagger, {
    openapi: {
      info: { title: o.title, version: "1.0.0", description: o.description },
      components: { securitySchemes: { apiKey: { type: "apiKey", in: "header", name: "X-API-Key" } } },
      security: [{ apiKey: [] }],
    },
    transform: jsonSchemaTransform,
  });

  app.setErrorHandler((err: unknown, req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    // A route whose protocol has its own error body (OTLP's google.rpc.Status) formats it.
    const format = (req.routeOptions.config as { errorBody?: ErrorBodyFormat } | undefined)?.errorBody;
    const answer = (status: number, body: { error: string; reasons?: string[] }) => {
      if (!format) return reply.status(status).send(body);
      const f = format(req, status, body);
      return reply.status(status).type(f.type).send(f.payload);
    };
    // Refused before its body was read (a 401 from onRequest): close rather than read it.
    if (!req.raw.complete) void reply.header("connection", "close");
    if (err instanceof HttpError) {
      if (err.status < 500) refused.inc({ route, reason: refusalCode(err.status, err.code) });
      if (err.retryAfterSeconds !== undefined)
        void reply.header("retry-after", String(err.retryAfterSeconds));
      return answer(err.status, { error: err.message, ...(err.reasons && { reasons: err.reasons }) });
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      refused.inc({ route, reason: "invalid" });
      return answer(400, {
        error: "invalid request",
        reasons: err.validation.map(
          (v) =>
            `${v.instancePath.replace(/^\//, "").replaceAll("/", ".") || err.validationContext || "request"}: ${v.message ?? "invalid"}`,
        ),
      });
    }
    const fe = err as { statusCode?: number; message?: string; code?: string };
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
      refused.inc({ route, reason: refusalCode(fe.statusCode, fe.code && FASTIFY_CODES[fe.code]) });
      if (fe.code === "FST_ERR_CTP_BODY_TOO_LARGE")
        return answer(413, {
          error: "request body too large",
          reasons: [`at most ${o.bodyLimit} bytes, after decompression`],
        });
      return answer(fe.statusCode, {
        error: fe.message ?? "bad request",
        reasons: [fe.code ?? "invalid request"],
      });
    }
    o.log.error({ err: errorText(err, { stack: true }) }, "unhandled error");
    return answer(500, { error: "internal error" });
  });

  const requests = new Counter({
    name: `${o.metricsPrefix}_requests_total`,
    help: "HTTP requests by route and status",
    labelNames: ["route", "code"],
    registers: [o.registry],
  });
  const duration = new Histogram({
    name: `${o.metricsPrefix}_request_duration_seconds`,
    help: "HTTP request duration",
    labelNames: ["route"],
    buckets: LATENCY_BUCKETS,
    registers: [o.registry],
  });
  app.addHook("onResponse", (req, reply, done) => {
    const route = req.routeOptions.url ?? "unmatched";
    requests.inc({ route, code: String(reply.statusCode) });
    duration.observe({ route }, reply.elapsedTime / 1000);
    done();
  });

  // While draining (closeGracefully), every answer tells the client to reconnect.
  app.addHook("onSend", (_req, reply, payload, done) => {
    if (draining.has(app.server)) void reply.header("connection", "close");
    done(null, payload);
  });

  app.get("/healthz", { schema: { hide: true } }, () => ({ status: "ok" }));
  app.get("/docs/json", { schema: { hide: true } }, () => app.swagger());
  return app;
}

/** How long an idle keep-alive connection stays open (announced to clients as Keep-Alive: timeout). */
export const KEEP_ALIVE_MS = 5_000;
/** A drain long enough for every idle keep-alive connection to have ended. */
export const DRAIN_MS = KEEP_ALIVE_MS + 1_000;

const draining = new WeakSet<Server>();

/**
 * Closes an app without answering any client's request with fastify's 503. A keep-alive
 * connection through a Service stays with its pod after the pod has left the endpoints, so
 * closing at once would answer the next request on it with 503 (return503OnClosing). First,
 * for up to `drainMs`, every request is answered as usual with `Connection: close`, so each
 * busy client reconnects to a pod that is ready; idle connections end at the keep-alive
 * timeout, which the server announces (undici closes its side before it). Then the app
 * closes (in-flight requests finish). Returns how many connections were still open when
 * the drain ended (long-lived streams, such as a live tail, are closed by the app's close).
 */
export async function closeGracefully(
  app: { server: Server; close: () => PromiseLike<unknown> },
  drainMs: number,
): Promise<number> {
  draining.add(app.server);
  const open = () =>
    new Promise<number>((resolve) => app.server.getConnections((e, n) => resolve(e ? 0 : n)));
  const until = Date.now() + drainMs;
  let left = await open();
  while (left > 0 && Date.now() < until) {
    await sleep(50);
    left = await open();
  }
  await app.close();
  return left;
}

/**
 * Authenticates a request by API key; returns the client's identity (for limits and
 * idempotency). Used from an onRequest hook, it runs before the body is read: a request
 * without a valid key costs no parsing, and its connection is closed with the 401.
 */
export function authenticator(apiKeys: ApiKeys | undefined, disabled: boolean) {
  return (req: FastifyRequest): string => {
    if (disabled) return `ip:${req.ip}`;
    const name = apiKeys?.verify(presentedKey(req.headers));
    if (!name)
      throw new HttpError(401, "missing or invalid API key", [
        "send X-API-Key: <key> or Authorization: Bearer <key>",
      ]);
    return `key:${name}`;
  };
}
