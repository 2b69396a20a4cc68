import type { FastifyRequest } from "fastify";
import type { FastifyPluginCallbackZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { ProducerEnv } from "../../common/src/config.js";
import { eventIdFromIdempotencyKey, LogEventInput, normalizeEvent, reasons } from "../../common/src/event.js";
import { ErrorBody, HttpError } from "../../common/src/http.js";
import type { Prepared } from "./kafka.js";
import type { GatewayMetrics } from "./metrics.js";

const Accepted = z.object({
  eventId: z.string(),
  status: z.enum(["accepted", "duplicate"]),
  timestamp: z.string(),
});
const BatchQuery = z.object({ atomic: z.stringbool().default(false) });

/**
 * The event with its serialized value (`json`, the whole event as it travels in Kafka: the
 * caller serializes it once), or why it is refused: larger than EVENT_MAX_BYTES, which is
 * below what Kafka takes, so an accepted event can never fail the transaction it shares with
 * other clients' events. (Strings PostgreSQL would refuse were refused by LogEventInput.)
 */
export function prepare(event: Prepared["event"], maxBytes: number, json: string): Prepared | string {
  // UTF-8 takes at most 3 bytes per UTF-16 unit: most events skip the count.
  const bytes = json.length * 3 <= maxBytes ? json.length : Buffer.byteLength(json);
  return bytes > maxBytes ? `the event is ${bytes} bytes serialized; at most ${maxBytes}` : { event, json };
}

/** The API key's name an event records as its writer (none when authentication is off). */
export const writerOf = (client: string) => (client.startsWith("key:") ? client.slice(4) : undefined);

/**
 * The ingest routes: POST /api/logs and /api/logs/batch (202 only after the events' Kafka
 * transaction committed) and /readyz. They use the guards and Kafka plugins, registered
 * before them.
 */
export const ingestRoutes: FastifyPluginCallbackZod<{ env: ProducerEnv; metrics: GatewayMetrics }> = (
  app,
  { env, metrics: m },
  done,
) => {
  app.addHook("onResponse", (req, reply, done) => {
    if (reply.statusCode === 202)
      m.ack.observe({ route: req.routeOptions.url ?? "unmatched" }, reply.elapsedTime / 1000);
    done();
  });

  /**
   * Produces, then confirms the reserved keys (or releases them if the commit failed). Only
   * the keys reserved go to Redis: events the gateway named itself never have one (writing
   * one per event would fill Redis with a key per event for the whole TTL).
   */
  const commitAndAnswer = async (toProduce: Prepared[], reserved: string[]) => {
    try {
      if (toProduce.length > 0) await app.ingest.produce(toProduce);
    } catch (e) {
      await app.guards.release(reserved);
      throw e;
    }
    await app.guards.confirm(reserved);
  };

  const idempotencyKey = (req: FastifyRequest) => {
    const k = req.headers["idempotency-key"];
    return typeof k === "string" && k.length > 0 ? k : undefined;
  };

  app.post(
    "/api/logs",
    {
      onRequest: app.guards.admit,
      schema: {
        summary: "Ingest one log event",
        body: LogEventInput,
        headers: z.object({ "idempotency-key": z.string().max(256).optional() }).loose(),
        response: {
          202: Accepted,
          400: ErrorBody,
          401: ErrorBody,
          409: ErrorBody,
          413: ErrorBody,
          415: ErrorBody,
          429: ErrorBody,
          503: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      const client = req.client;
      app.ingest.refuseWhileOpen();
      await app.guards.rateLimit(client, "single", 1);
      const key = idempotencyKey(req);
      const event = normalizeEvent(req.body, {
        now: new Date(),
        idempotencyEventId: key && eventIdFromIdempotencyKey(client, key),
        writer: writerOf(client),
      });
      const prepared = prepare(event, env.EVENT_MAX_BYTES, JSON.stringify(event));
      if (typeof prepared === "string")
        throw new HttpError(413, "event too large", [prepared], undefined, "event_too_large");
      const { toProduce, duplicates, reserved } = await app.guards.reserve(
        [prepared],
        new Set(req.body.eventId !== undefined || key ? [event.eventId] : []),
      );
      await commitAndAnswer(toProduce, reserved);
      return reply.status(202).send({
        eventId: event.eventId,
        status: duplicates.size > 0 ? "duplicate" : "accepted",
        timestamp: event.receivedAt,
      });
    },
  );

  app.post(
    "/api/logs/batch",
    {
      onRequest: app.guards.admit,
      schema: {
        summary:
          "Ingest an array of log events; invalid items are reported, valid ones accepted (unless ?atomic=true)",
        querystring: BatchQuery,
        body: z.array(z.unknown()).min(1).max(env.REQUEST_MAX_EVENTS),
        response: {
          202: z.object({
            accepted: z.number(),
            duplicates: z.number(),
            failed: z.array(z.object({ index: z.number(), reasons: z.array(z.string()) })),
            eventIds: z.array(z.string().nullable()),
          }),
          400: ErrorBody,
          401: ErrorBody,
          413: ErrorBody,
          415: ErrorBody,
          429: ErrorBody,
          503: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      const client = req.client;
      app.ingest.refuseWhileOpen();
      await app.guards.rateLimit(client, "batch", req.body.length);
      const now = new Date();
      const receivedAt = now.toISOString();
      const failed: { index: number; reasons: string[] }[] = [];
      const eventIds: (string | null)[] = [];
      const events: Prepared[] = [];
      const clientNamed = new Set<string>();
      const writer = writerOf(client);
      req.body.forEach((item, index) => {
        const parsed = LogEventInput.safeParse(item);
        if (!parsed.success) {
          m.itemsRefused.inc({ reason: "invalid" });
          failed.push({ index, reasons: reasons(parsed.error) });
          eventIds.push(null);
          return;
        }
        const event = normalizeEvent(parsed.data, { now, receivedAt, writer });
        const prepared = prepare(event, env.EVENT_MAX_BYTES, JSON.stringify(event));
        if (typeof prepared === "string") {
          m.itemsRefused.inc({ reason: "event_too_large" });
          failed.push({ index, reasons: [prepared] });
          eventIds.push(null);
          return;
        }
        events.push(prepared);
        eventIds.push(event.eventId);
        if (parsed.data.eventId !== undefined) clientNamed.add(event.eventId);
      });
      if (req.query.atomic && failed.length > 0) {
        throw new HttpError(
          400,
          "atomic batch refused: some events are invalid",
          failed.flatMap((f) => f.reasons.map((r) => `[${f.index}] ${r}`)),
        );
      }
      const { toProduce, duplicates, reserved } = await app.guards.reserve(events, clientNamed);
      await commitAndAnswer(toProduce, reserved);
      return reply
        .status(202)
        .send({ accepted: events.length, duplicates: duplicates.size, failed, eventIds });
    },
  );

  app.get("/readyz", { schema: { hide: true } }, (_req, reply) => {
    const body = {
      ...app.ingest.state(),
      redis: app.guards.redisState(),
      redisFailureMode: env.REDIS_FAILURE_MODE,
    };
    return reply.status(app.ingest.ready() ? 200 : 503).send(body);
  });
  done();
};
