#!/usr/bin/env bash
# The peer of `make bench-peer`, from Maven Central, cached by version: Kafka Connect (standalone,
# connect-runtime and connect-json at the stack's Kafka version) on one classpath, and Debezium's
# JDBC sink connector as Debezium ships it, its plugin archive (the connector with Hibernate and
# the JDBC drivers), unpacked into the worker's plugin.path. Bench only: `make test` never
# installs it.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

command -v mvn >/dev/null || die "mvn (Apache Maven) is not installed: apt-get install maven, then retry"
PEER_HOME="$LP_CACHE/connect-peer-$KAFKA_VERSION-debezium-jdbc-$DEBEZIUM_JDBC_VERSION"
step "Kafka Connect $KAFKA_VERSION + Debezium JDBC sink $DEBEZIUM_JDBC_VERSION from Maven Central"
if [ -f "$PEER_HOME/.complete" ]; then skip_step "$PEER_HOME/libs"; else
  rm -rf "$PEER_HOME" && mkdir -p "$PEER_HOME/libs" "$PEER_HOME/plugins" "$LP_CACHE/logs"
  MVN=(mvn -B -q -Dmaven.repo.local="${LP_M2_REPO:-$HOME/.m2/repository}")
  run_logged "$LP_CACHE/logs/maven-connect-peer.log" "${MVN[@]}" \
    -f "$HACK_DIR/tools/maven/connect-peer.pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -Dkafka.version="$KAFKA_VERSION" -Dlog4j.version="$LOG4J_VERSION" \
    -DincludeScope=runtime -DoutputDirectory="$PEER_HOME/libs"
  run_logged "$LP_CACHE/logs/maven-connect-peer.log" "${MVN[@]}" \
    -f "$HACK_DIR/tools/maven/connect-peer.pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dkafka.version="$KAFKA_VERSION" -Dlog4j.version="$LOG4J_VERSION" \
    -Dartifact="io.debezium:debezium-connector-jdbc:$DEBEZIUM_JDBC_VERSION:tar.gz:plugin" \
    -DoutputDirectory="$PEER_HOME"
  tar -xzf "$PEER_HOME/debezium-connector-jdbc-$DEBEZIUM_JDBC_VERSION-plugin.tar.gz" -C "$PEER_HOME/plugins"
  touch "$PEER_HOME/.complete"
  done_step "$(ls "$PEER_HOME/libs" | wc -l) runtime jars, $(ls "$PEER_HOME"/plugins/*/ | wc -l) in the connector's plugin"
fi
