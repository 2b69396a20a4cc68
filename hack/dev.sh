#!/usr/bin/env bash
# `make dev`: the stack is up (make's prerequisite); print where everything is.
# The full-node issue extends this to images, helm install and a sample LogPipeline.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$HACK_DIR/stack/config.sh"
bash "$HACK_DIR/stack/stack.sh" status || die "the stack is not healthy: see make stack-status and $LP_RUN_DIR/logs"
cat <<EOF

The local stack is running. Next:
  source $LP_RUN_DIR/stack.env          # KUBECONFIG, LP_KAFKA_BOOTSTRAP, LP_PG_URL, LP_REDIS_URL
  kubectl get crd                        # LogPipeline, KafkaTopic, ServiceMonitor, PrometheusRule
  kubectl -n $STRIMZI_NAMESPACE get kafkatopics      # topics managed by Strimzi's topic operator
  psql "\$LP_PG_URL"                      # PostgreSQL
  redis-cli -u "\$LP_REDIS_URL" ping      # Redis
Logs: $LP_RUN_DIR/logs/<component>.log     Stop: make stack-down
EOF
