#!/usr/bin/env bash
# Strimzi's topic operator (its jars from ../shared/strimzi, installed by make tools),
# watching KafkaTopics in $STRIMZI_NAMESPACE with its own least-privilege identity.

strimzi_topic_operator_up() {
  step "Strimzi topic operator $STRIMZI_API_VERSION (namespace $STRIMZI_NAMESPACE, cluster $STRIMZI_CLUSTER)"
  if [ "$LP_STRIMZI" = off ]; then skip_step "disabled (LP_STRIMZI=off)"; return; fi
  if [ ! -f "$TO_HOME/.complete" ]; then
    printf '    skipped — not installed (needs ../shared/strimzi or LP_STRIMZI_DIR at make tools); use kafka.mode: external\n' >&2
    return
  fi
  already strimzi-topic-operator && return
  local java21
  java21=$(find_java21) || die "Strimzi's topic operator needs Java 21 or newer; none found under /usr/lib/jvm (set JAVA21_HOME)"
  port_free "$STRIMZI_HEALTH_PORT"
  kubeconfig_for "$LP_RUN_DIR/strimzi.kubeconfig" strimzi-topic-operator
  KUBECONFIG="$LP_RUN_DIR/strimzi.kubeconfig" STRIMZI_NAMESPACE="$STRIMZI_NAMESPACE" \
    STRIMZI_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT" \
    STRIMZI_RESOURCE_LABELS="strimzi.io/cluster=$STRIMZI_CLUSTER" \
    launch strimzi-topic-operator "$java21" -Xms64m -Xmx256m -cp "$TO_HOME/libs/*" io.strimzi.operator.topic.Main
  strimzi_topic_operator_wait
  done_step
}
strimzi_topic_operator_wait() { wait_for strimzi-topic-operator 90 strimzi_topic_operator_status; }
strimzi_topic_operator_status() { curl -fsS "http://127.0.0.1:$STRIMZI_HEALTH_PORT/ready"; }
strimzi_topic_operator_down() { stop_process strimzi-topic-operator TERM; }
strimzi_topic_operator_version() { echo "$STRIMZI_API_VERSION"; }
strimzi_topic_operator_address() { echo "http://127.0.0.1:$STRIMZI_HEALTH_PORT"; }
