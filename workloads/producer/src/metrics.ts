import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { LATENCY_BUCKETS } from "../../common/src/metrics.js";

/** The gateway's metrics; each plugin takes the ones it moves. */
export type GatewayMetrics = ReturnType<typeof gatewayMetrics>;

export function gatewayMetrics(registry: Registry) {
  const r = [registry];
  /** Read at each scrape; the plugins that know the figures set them. */
  const probes = { buffered: () => 0, redisUp: () => 0 };
  return {
    probes,
    sent: new Counter({
      name: "log_producer_send_success_total",
      help: "Events durably written to Kafka (committed)",
      registers: r,
    }),
    failed: new Counter({
      name: "log_producer_send_failure_total",
      help: "Events whose write to Kafka failed (client got 503)",
      registers: r,
    }),
    aborts: new Counter({
      name: "log_producer_transaction_abort_total",
      help: "Kafka transactions aborted",
      registers: r,
    }),
    idemHits: new Counter({
      name: "idempotency_cache_hit_total",
      help: "Requests answered as duplicates from the idempotency cache",
      registers: r,
    }),
    itemsRefused: new Counter({
      name: "log_producer_batch_items_refused_total",
      help: "Events of a batch reported as failed (the rest of the batch accepted), by reason",
      labelNames: ["reason"],
      registers: r,
    }),
    recordsRefused: new Counter({
      name: "log_producer_records_refused_total",
      help: "Requests failed because Kafka refused one of their records (the rest of their transaction was sent again without them)",
      registers: r,
    }),
    inFlight: new Gauge({
      name: "log_producer_ingest_in_flight",
      help: "Ingest requests authenticated and not yet answered (INGEST_MAX_IN_FLIGHT caps it)",
      registers: r,
    }),
    rateLimited: new Counter({
      name: "log_producer_rate_limited_total",
      help: "Requests refused by the rate limiter",
      labelNames: ["route"],
      registers: r,
    }),
    ack: new Histogram({
      name: "log_producer_ack_duration_seconds",
      help: "Request received to 202 sent",
      labelNames: ["route"],
      buckets: LATENCY_BUCKETS,
      registers: r,
    }),
    batchSize: new Histogram({
      name: "log_producer_batch_size",
      help: "Events per Kafka transaction",
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000],
      registers: r,
    }),
    batchSeconds: new Histogram({
      name: "log_producer_batch_duration_seconds",
      help: "Time to write and commit one batch",
      buckets: LATENCY_BUCKETS,
      registers: r,
    }),
    circuit: new Gauge({
      name: "log_producer_circuit_state",
      help: "Kafka circuit breaker: 0 closed, 1 half-open, 2 open",
      registers: r,
    }),
    buffered: new Gauge({
      collect() {
        this.set(probes.buffered());
      },
      name: "log_producer_buffered_events",
      help: "Events waiting for their batch",
      registers: r,
    }),
    redisUp: new Gauge({
      collect() {
        this.set(probes.redisUp());
      },
      name: "log_producer_redis_available",
      help: "1 when Redis answers; 0 means idempotency and rate limits run degraded",
      registers: r,
    }),
  };
}
