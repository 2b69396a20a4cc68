#!/usr/bin/env bash
# `make dev`: with the stack up (make's prerequisite), run the three workloads as local
# processes against it, send a few events through the ingest API, read them back through
# the query API, and print where everything is. `make dev-down` stops it all.
# (The full-node issue replaces the local processes with pods installed by the Helm chart.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$HACK_DIR/stack/config.sh"
LP_RETRY_HINT="make dev-down && make dev (logs: $LP_RUN_DIR/logs/dev-*.log)"
export PATH="$REPO_ROOT/node_modules/.bin:$LP_BIN:$PATH"

PRODUCER_PORT=$((18080 + LP_PORT_OFFSET))
QUERY_PORT=$((18081 + LP_PORT_OFFSET))
CONSUMER_METRICS_PORT=$((19090 + LP_PORT_OFFSET))
DEV="$LP_RUN_DIR/dev"
PKI="$LP_RUN_DIR/pki"

cmd_down() {
  local w pf
  for w in producer query consumer; do
    pf="$LP_RUN_DIR/pids/dev-$w.pid"
    [ -f "$pf" ] || continue
    if kill -0 "$(cat "$pf")" 2>/dev/null; then
      printf '==> stopping %s (pid %s)\n' "$w" "$(cat "$pf")" >&2
      kill -TERM "$(cat "$pf")" 2>/dev/null || true
      for _ in $(seq 1 80); do kill -0 "$(cat "$pf")" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$(cat "$pf")" 2>/dev/null || true
    fi
    rm -f "$pf"
  done
}

if [ "${1:-}" = down ]; then
  cmd_down
  exit 0
fi

bash "$HACK_DIR/stack/stack.sh" status --quiet || die "the stack is not healthy: see make stack-status and $LP_RUN_DIR/logs"
mkdir -p "$DEV" && chmod 700 "$DEV"
KAFKA_LIBS="$LP_CACHE/kafka-$KAFKA_VERSION/libs/*"

step "topics dev.logs (6 partitions) and dev.logs.dlq"
for t in dev.logs:6 dev.logs.dlq:1; do
  run_logged "$LP_RUN_DIR/logs/dev-topics.log" java -cp "$KAFKA_LIBS" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --create --if-not-exists --topic "${t%%:*}" --partitions "${t##*:}"
done
done_step

step "API keys (ingest and read) in $DEV"
[ -f "$DEV/ingest-keys" ] || echo "dev:$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$DEV/ingest-keys"
[ -f "$DEV/read-keys" ] || echo "reader:$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$DEV/read-keys"
INGEST_KEY=$(cut -d: -f2 "$DEV/ingest-keys")
READ_KEY=$(cut -d: -f2 "$DEV/read-keys")
done_step

common_env=(
  PIPELINE_NAME=dev LOG_LEVEL=info
  KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT" KAFKA_TOPIC=dev.logs
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT" REDIS_PASSWORD_FILE="$PKI/redis.password"
)
pg_env=(
  PG_HOST=127.0.0.1 PG_PORT="$POSTGRES_PORT" PG_USER=postgres PG_DATABASE=postgres
  PG_PASSWORD_FILE="$PKI/postgres.password" PG_SSLMODE=disable PG_SCHEMA=dev PG_TABLE=logs
)

# start_workload NAME READY_URL ENV...: one local process per workload, PID in the run dir.
start_workload() {
  local name="$1" ready="$2" pf="$LP_RUN_DIR/pids/dev-$1.pid"
  shift 2
  step "$name"
  if [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; then
    printf '    already running (pid %s)\n' "$(cat "$pf")" >&2
    return
  fi
  # Started directly (no wrapper), so the recorded PID is the workload's own.
  env -i PATH="$PATH" HOME="$HOME" "$@" node --import tsx "$REPO_ROOT/workloads/$name/src/main.ts" \
    >>"$LP_RUN_DIR/logs/dev-$name.log" 2>&1 </dev/null &
  echo $! >"$pf"
  for _ in $(seq 1 120); do
    curl -fsS "$ready" >/dev/null 2>&1 && { done_step "pid $(cat "$pf")"; return; }
    kill -0 "$(cat "$pf")" 2>/dev/null || die "$name exited during start-up" "$LP_RUN_DIR/logs/dev-$name.log"
    sleep 0.5
  done
  die "$name was not ready after 60s" "$LP_RUN_DIR/logs/dev-$name.log"
}

start_workload consumer "http://127.0.0.1:$CONSUMER_METRICS_PORT/readyz" "${common_env[@]}" "${pg_env[@]}" \
  KAFKA_GROUP_ID=dev-consumer KAFKA_DLQ_TOPIC=dev.logs.dlq METRICS_PORT="$CONSUMER_METRICS_PORT"
start_workload producer "http://127.0.0.1:$PRODUCER_PORT/readyz" "${common_env[@]}" \
  TRANSACTIONAL_ID=dev-producer API_KEYS_FILE="$DEV/ingest-keys" HOST=127.0.0.1 PORT="$PRODUCER_PORT"
start_workload query "http://127.0.0.1:$QUERY_PORT/readyz" PIPELINE_NAME=dev LOG_LEVEL=info \
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT" REDIS_PASSWORD_FILE="$PKI/redis.password" "${pg_env[@]}" \
  API_KEYS_FILE="$DEV/read-keys" HOST=127.0.0.1 PORT="$QUERY_PORT"

step "send three events and read them back"
curl -fsS -X POST "http://127.0.0.1:$PRODUCER_PORT/api/logs/batch" -H "x-api-key: $INGEST_KEY" \
  -H 'content-type: application/json' \
  -d '[{"level":"INFO","source":"make-dev","message":"hello from make dev"},
       {"level":"ERROR","source":"make-dev","message":"payment declined for order 42"},
       {"level":"WARN","source":"make-dev","message":"slow response from inventory"}]' >"$DEV/last-ingest.json" \
  || die "the ingest API refused the sample events" "$LP_RUN_DIR/logs/dev-producer.log"
mapfile -t ids < <(grep -o '[0-9a-f]\{8\}-[0-9a-f-]\{27\}' "$DEV/last-ingest.json" || true)
[ "${#ids[@]}" -eq 3 ] || die "the ingest API did not return three event ids: $(cat "$DEV/last-ingest.json")"
found=0
for _ in $(seq 1 60); do
  found=0
  for id in "${ids[@]}"; do
    curl -fsS -o /dev/null "http://127.0.0.1:$QUERY_PORT/api/logs/$id" -H "x-api-key: $READ_KEY" 2>/dev/null && found=$((found + 1))
  done
  [ "$found" -eq 3 ] && break
  sleep 0.5
done
[ "$found" -eq 3 ] || die "the events did not reach PostgreSQL" "$LP_RUN_DIR/logs/dev-consumer.log"
done_step "the 3 events are in PostgreSQL, read back through the query API"

cat <<EOF

The pipeline runs locally on the stack's real components:
  ingest   http://127.0.0.1:$PRODUCER_PORT   (OpenAPI: /docs/json)   key: $INGEST_KEY
  query    http://127.0.0.1:$QUERY_PORT   (OpenAPI: /docs/json)   key: $READ_KEY
  consumer metrics http://127.0.0.1:$CONSUMER_METRICS_PORT/metrics

  curl -X POST http://127.0.0.1:$PRODUCER_PORT/api/logs -H 'x-api-key: $INGEST_KEY' -H 'content-type: application/json' \\
       -d '{"level":"ERROR","source":"checkout","message":"payment declined"}'
  curl 'http://127.0.0.1:$QUERY_PORT/api/logs?q=payment' -H 'x-api-key: $READ_KEY'

  source $LP_RUN_DIR/stack.env   # KUBECONFIG, LP_KAFKA_BOOTSTRAP, LP_PG_URL, LP_REDIS_URL
  kubectl get crd                # LogPipeline, KafkaTopic, ServiceMonitor, PrometheusRule
  psql "\$LP_PG_URL" -c 'select level, source, message from dev.logs order by ts desc limit 5'
Logs: $LP_RUN_DIR/logs/ (dev-producer.log, dev-consumer.log, dev-query.log, and each component's)
Stop: make dev-down
EOF
total_time
