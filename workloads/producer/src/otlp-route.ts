import { isUtf8 } from "node:buffer";
import type { FastifyPluginCallback, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from "fastify";
import type { ProducerEnv } from "../../common/src/config.js";
import { type ErrorBodyFormat, HttpError } from "../../common/src/http.js";
import type { Prepared } from "./kafka.js";
import type { GatewayMetrics } from "./metrics.js";
import {
  decodeJson,
  decodeProtobuf,
  encodeResponse,
  encodeStatus,
  OtlpPayloadError,
  toEvents,
} from "./otlp.js";
import { prepare, writerOf } from "./routes.js";

const PROTOBUF = "application/x-protobuf";
const JSON_TYPE = "application/json";

/** The request's encoding, from its Content-Type (the response uses the same). */
const kindOf = (req: FastifyRequest): "protobuf" | "json" =>
  (req.headers["content-type"] ?? "").toLowerCase().startsWith(PROTOBUF) ? "protobuf" : "json";

/** gRPC status codes of google.rpc.Status, by HTTP status (as the Collector maps them). */
const GRPC_CODE: Record<number, number> = {
  400: 3, // INVALID_ARGUMENT
  401: 16, // UNAUTHENTICATED
  403: 7, // PERMISSION_DENIED
  413: 3,
  415: 3,
  429: 8, // RESOURCE_EXHAUSTED
  503: 14, // UNAVAILABLE
};

/** Only OTLP's two encodings: anything else is a 415 (fastify would parse text/plain). */
const mediaType = (req: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
  const type = (req.headers["content-type"] ?? "").toLowerCase();
  if (type.startsWith(PROTOBUF) || type.startsWith(JSON_TYPE)) done();
  else
    done(
      new HttpError(415, "unsupported content-type", [
        `send ${PROTOBUF} or ${JSON_TYPE} (OTLP/HTTP), not ${type || "none"}`,
      ]),
    );
};

/** OTLP's error body: a google.rpc.Status in the request's encoding. */
const statusBody: ErrorBodyFormat = (req, status, body) => {
  const kind = kindOf(req);
  const message = [body.error, ...(body.reasons ?? [])].join(": ");
  return {
    type: kind === "protobuf" ? PROTOBUF : JSON_TYPE,
    payload: encodeStatus(kind, GRPC_CODE[status] ?? 2, message),
  };
};

/**
 * POST /v1/logs, OTLP/HTTP (docs/otlp.md): binary protobuf or JSON, gzip or not, behind the
 * same guards as the native API (authentication before the body, in-flight caps, the
 * client's one token bucket charged per record, the decompressed-size and per-event caps).
 * 200 means what the native API's 202 means: the records are committed to Kafka. Records that
 * cannot be events are counted in partial_success, the rest committed; 429 and 503 carry
 * Retry-After; a payload that is not an ExportLogsServiceRequest is a 400.
 */
export const otlpRoutes: FastifyPluginCallback<{ env: ProducerEnv; metrics: GatewayMetrics }> = (
  app,
  { env, metrics: m },
  done,
) => {
  // Bodies as bytes, in this plugin only: protobuf as is; JSON checked for UTF-8 first (a
  // string decoder would turn invalid bytes into U+FFFD and store text no one sent).
  app.removeContentTypeParser(JSON_TYPE);
  app.addContentTypeParser(JSON_TYPE, { parseAs: "buffer" }, (_req, body, parsed) => {
    const bytes = body as Buffer;
    if (!isUtf8(bytes)) {
      parsed(new HttpError(400, "invalid OTLP payload", ["the JSON body is not valid UTF-8"]), undefined);
      return;
    }
    try {
      parsed(null, JSON.parse(bytes.toString("utf8")));
    } catch (e) {
      parsed(new HttpError(400, "invalid OTLP payload", [`not JSON: ${(e as Error).message}`]), undefined);
    }
  });
  app.addContentTypeParser(PROTOBUF, { parseAs: "buffer" }, (_req, body, parsed) => parsed(null, body));

  app.addHook("onResponse", (_req, reply, next) => {
    if (reply.statusCode === 200) m.ack.observe({ route: "/v1/logs" }, reply.elapsedTime / 1000);
    next();
  });

  app.post(
    "/v1/logs",
    {
      // Authenticated first, then the encoding checked, both before the body is read.
      onRequest: [app.guards.admit, mediaType],
      config: { errorBody: statusBody },
      schema: {
        summary: "Ingest OTLP/HTTP logs (protobuf or JSON): 200 once committed to Kafka",
        hide: false,
      },
    },
    async (req, reply) => {
      const kind = kindOf(req);
      const client = req.client;
      app.ingest.refuseWhileOpen();
      let batches;
      try {
        batches = kind === "protobuf" ? decodeProtobuf(req.body as Buffer) : decodeJson(req.body);
      } catch (e) {
        if (e instanceof OtlpPayloadError) throw new HttpError(400, "invalid OTLP payload", [e.message]);
        throw e;
      }
      const count = batches.reduce((n, b) => n + b.records.length, 0);
      if (count > env.REQUEST_MAX_EVENTS)
        throw new HttpError(413, "too many log records in one request", [
          `${count} records; at most ${env.REQUEST_MAX_EVENTS} (set the exporter's batch size at most that)`,
        ]);
      if (count > 0) await app.guards.rateLimit(client, "otlp", count);
      const receivedAt = new Date().toISOString();
      const refused: string[] = [];
      const events: Prepared[] = [];
      for (const r of toEvents(batches, { receivedAt, writer: writerOf(client) })) {
        const p = r.ok ? prepare(r.event, env.EVENT_MAX_BYTES, r.json) : r.reason;
        if (typeof p === "string") {
          m.itemsRefused.inc({ reason: r.ok ? "event_too_large" : "invalid" });
          refused.push(p);
        } else events.push(p);
      }
      // No idempotency key per record (it would be one Redis key per record): the record's
      // id derives from its content, and PostgreSQL's unique key drops a retry's copies.
      if (events.length > 0) await app.ingest.produce(events);
      const message =
        refused.length > 0
          ? `${refused.length} log records refused: ${[...new Set(refused)].slice(0, 5).join("; ")}`
          : "";
      return reply
        .status(200)
        .type(kind === "protobuf" ? PROTOBUF : JSON_TYPE)
        .send(encodeResponse(kind, refused.length, message));
    },
  );
  done();
};
