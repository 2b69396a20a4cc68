#!/usr/bin/env bash
# Kafka (KRaft, one broker and controller) from Maven Central's distribution: PLAINTEXT on
# 127.0.0.1 for host clients, on the bridge for pods, and a SASL/SCRAM listener so the
# clients' authentication is tested against the real broker.

KAFKA_HOME="$LP_CACHE/kafka-$KAFKA_VERSION"
kafka_java() { "${KAFKA_JAVA:-java}" "$@"; }

kafka_up() {
  step "Kafka $KAFKA_VERSION 127.0.0.1:$KAFKA_PORT (pods: $LP_BRIDGE_IP:$KAFKA_BRIDGE_PORT)"
  already kafka && return
  [ -f "$KAFKA_HOME/.complete" ] || die "Kafka is not installed in $KAFKA_HOME: run make tools"
  port_free "$KAFKA_PORT"
  port_free "$KAFKA_BRIDGE_PORT"
  port_free "$KAFKA_CONTROLLER_PORT"
  port_free "$KAFKA_SASL_PORT"
  local dir="$LP_RUN_DIR/kafka"
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOT
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,BRIDGE://$LP_BRIDGE_IP:$KAFKA_BRIDGE_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL://127.0.0.1:$KAFKA_SASL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,BRIDGE://$LP_BRIDGE_IP:$KAFKA_BRIDGE_PORT,SASL://127.0.0.1:$KAFKA_SASL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,BRIDGE:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL:SASL_PLAINTEXT
# A SASL/SCRAM listener, so the clients' authentication is tested against the real broker.
listener.name.sasl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
# One broker: internal topics and transactions must work with replication factor 1.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOT
  cat >"$dir/log4j2.properties" <<'EOT'
rootLogger.level=INFO
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=INFO
logger.state.name=state.change.logger
logger.state.level=WARN
EOT
  if [ ! -f "$dir/data/meta.properties" ]; then
    run_logged "$LP_RUN_DIR/logs/kafka-format.log" kafka_java -cp "$KAFKA_HOME/libs/*" kafka.tools.StorageTool \
      format --standalone -t "$(kafka_java -cp "$KAFKA_HOME/libs/*" kafka.tools.StorageTool random-uuid)" -c "$dir/server.properties"
  fi
  launch kafka "${KAFKA_JAVA:-java}" -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$dir/server.properties"
  kafka_wait
  # The SCRAM user of the SASL listener (stored in the cluster's metadata; idempotent).
  [ -f "$PKI/kafka-scram.password" ] || random_secret >"$PKI/kafka-scram.password"
  run_logged "$LP_RUN_DIR/logs/kafka-scram.log" kafka_java -cp "$KAFKA_HOME/libs/*" kafka.admin.ConfigCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter --entity-type users --entity-name logpipeline \
    --add-config "SCRAM-SHA-512=[password=$(cat "$PKI/kafka-scram.password")]"
  done_step
}
kafka_wait() {
  wait_for kafka 60 kafka_status
  # A real metadata request through the broker's client listener.
  wait_for kafka 60 kafka_java -cp "$KAFKA_HOME/libs/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list
}
kafka_status() { tcp_open 127.0.0.1 "$KAFKA_PORT"; }
kafka_down() { stop_process kafka TERM; }
kafka_version() { echo "$KAFKA_VERSION"; }
kafka_address() { echo "127.0.0.1:$KAFKA_PORT, $LP_BRIDGE_IP:$KAFKA_BRIDGE_PORT, SASL 127.0.0.1:$KAFKA_SASL_PORT"; }
