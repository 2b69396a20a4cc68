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

/** An HTTP error with reasons the client can act on (4xx), or a 5xx without internals. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reasons?: string[],
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export const ErrorBody = z.object({ error: z.string(), reasons: z.array(z.string()).optional() });

export interface HttpAppOptions {
  title: string;
  description: string;
  bodyLimit: number;
  registry: Registry;
  log: Logger;
  /** Prefix of the request metrics (`<prefix>_requests_total`, `<prefix>_request_duration_seconds`). */
  metricsPrefix: string;
}

/**
 * The fastify app shared by the HTTP workloads: zod validation with 400s that name each bad
 * field, OpenAPI at /docs/json, /healthz, /metrics, request metrics, 5xx without internals.
 * Each workload adds its routes and its own /readyz.
 */
export async function createHttpApp(o: HttpAppOptions) {
  const app = Fastify({
    logger: false,
    bodyLimit: o.bodyLimit,
    requestTimeout: 30_000,
    return503OnClosing: true,
  }).withTypeProvider<ZodTypeProvider>();
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

  app.setErrorHandler((err: unknown, _req, reply) => {
    if (err instanceof HttpError) {
      if (err.retryAfterSeconds !== undefined)
        void reply.header("retry-after", String(err.retryAfterSeconds));
      return reply
        .status(err.status)
        .send({ error: err.message, ...(err.reasons && { reasons: err.reasons }) });
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      return reply.status(400).send({
        error: "invalid request",
        reasons: err.validation.map(
          (v) =>
            `${v.instancePath.replace(/^\//, "").replaceAll("/", ".") || err.validationContext || "request"}: ${v.message ?? "invalid"}`,
        ),
      });
    }
    const fe = err as { statusCode?: number; message?: string; code?: string };
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
      return reply
        .status(fe.statusCode)
        .send({ error: fe.message ?? "bad request", reasons: [fe.code ?? "invalid request"] });
    }
    o.log.error({ err: errorText(err, { stack: true }) }, "unhandled error");
    return reply.status(500).send({ error: "internal error" });
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

  app.get("/healthz", { schema: { hide: true } }, () => ({ status: "ok" }));
  app.get("/metrics", { schema: { hide: true } }, async (_req, reply) =>
    reply.header("content-type", o.registry.contentType).send(await o.registry.metrics()),
  );
  app.get("/docs/json", { schema: { hide: true } }, () => app.swagger());
  return app;
}

/** Authenticates a request by API key; returns the client's identity (for limits and idempotency). */
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
