#!/usr/bin/env bash
# Java components from Maven Central, cached by version:
#   Kafka broker + tools (Log4j 2); the KafkaTopic CRD generated from Strimzi's api jar;
#   Strimzi's topic operator runtime (../shared/strimzi/pom.xml + its three lib/ jars).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

command -v mvn >/dev/null || die "mvn (Apache Maven) is not installed: apt-get install maven, then retry"
MVN=(mvn -B -q -Dmaven.repo.local="${LP_M2_REPO:-$HOME/.m2/repository}")
COPY=org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies
POMS="$HACK_DIR/tools/maven"

KAFKA_HOME="$LP_CACHE/kafka-$KAFKA_VERSION"
step "Kafka $KAFKA_VERSION (kafka_$KAFKA_SCALA_VERSION, kafka-tools, Log4j $LOG4J_VERSION) from Maven Central"
if [ -f "$KAFKA_HOME/.complete" ]; then skip_step "$KAFKA_HOME/libs"; else
  rm -rf "$KAFKA_HOME" && mkdir -p "$KAFKA_HOME/libs"
  run_logged "$LP_CACHE/logs/maven-kafka.log" "${MVN[@]}" -f "$POMS/kafka.pom.xml" $COPY \
    -Dkafka.version="$KAFKA_VERSION" -Dkafka.scala="$KAFKA_SCALA_VERSION" -Dlog4j.version="$LOG4J_VERSION" \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs"
  touch "$KAFKA_HOME/.complete"
  done_step "$(ls "$KAFKA_HOME/libs" | wc -l) jars in $KAFKA_HOME/libs"
fi

CRD_OUT="$LP_CACHE/crds/strimzi-$STRIMZI_API_VERSION"
# KafkaTopic (the stack serves it for the topic operator), and Kafka + KafkaNodePool, so the
# kind path's Kafka cluster (hack/kind/kafka.yaml) is validated against Strimzi's own schema.
STRIMZI_CRDS=(
  "io.strimzi.api.kafka.model.topic.KafkaTopic=kafkatopics.kafka.strimzi.io.yaml"
  "io.strimzi.api.kafka.model.kafka.Kafka=kafkas.kafka.strimzi.io.yaml"
  "io.strimzi.api.kafka.model.nodepool.KafkaNodePool=kafkanodepools.kafka.strimzi.io.yaml"
)
step "Strimzi CRDs (kafka.strimzi.io/v1: KafkaTopic, Kafka, KafkaNodePool) generated from io.strimzi:api:$STRIMZI_API_VERSION"
missing=()
for c in "${STRIMZI_CRDS[@]}"; do [ -s "$CRD_OUT/${c#*=}" ] || missing+=("${c%%=*}=$CRD_OUT/${c#*=}"); done
if [ ${#missing[@]} -eq 0 ]; then skip_step "$CRD_OUT"; else
  JAVA21=$(find_java21) || die "Strimzi's jars need Java 21 or newer and none was found under /usr/lib/jvm (set JAVA21_HOME)"
  gen="$LP_CACHE/strimzi-crd-generator-$STRIMZI_CRD_GENERATOR_VERSION-api-$STRIMZI_API_VERSION"
  mkdir -p "$gen" "$CRD_OUT"
  run_logged "$LP_CACHE/logs/maven-strimzi-crd.log" "${MVN[@]}" -f "$POMS/strimzi-crd.pom.xml" $COPY \
    -Dstrimzi.api.version="$STRIMZI_API_VERSION" -Dstrimzi.crdgen.version="$STRIMZI_CRD_GENERATOR_VERSION" \
    -DincludeScope=runtime -DoutputDirectory="$gen"
  run_logged "$LP_CACHE/logs/strimzi-crd-generate.log" "$JAVA21" -cp "$gen/*" io.strimzi.crdgenerator.CrdGenerator \
    --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml "${missing[@]}"
  done_step "$CRD_OUT"
fi

# Strimzi's topic operator: present only where ../shared/strimzi (or LP_STRIMZI_DIR) exists.
STRIMZI_SRC=""
for d in ${LP_STRIMZI_DIR:-} "$REPO_ROOT/../shared/strimzi" /work/shared/strimzi; do
  [ -f "$d/pom.xml" ] && [ -d "$d/lib" ] && STRIMZI_SRC="$(cd "$d" && pwd)" && break
done
TO_HOME="$LP_CACHE/strimzi-topic-operator-$STRIMZI_API_VERSION"
step "Strimzi topic operator $STRIMZI_API_VERSION runtime"
if [ -f "$TO_HOME/.complete" ]; then skip_step "$TO_HOME/libs"
elif [ -z "$STRIMZI_SRC" ]; then
  printf '    skipped — no strimzi/ folder with pom.xml and lib/ (set LP_STRIMZI_DIR); kafka.mode=strimzi tests will be skipped\n' >&2
else
  rm -rf "$TO_HOME" && mkdir -p "$TO_HOME/libs"
  run_logged "$LP_CACHE/logs/maven-strimzi-to.log" "${MVN[@]}" -f "$STRIMZI_SRC/pom.xml" $COPY \
    -DincludeScope=runtime -DexcludeTransitive=true -DoutputDirectory="$TO_HOME/libs"
  cp "$STRIMZI_SRC"/lib/*.jar "$TO_HOME/libs/"
  touch "$TO_HOME/.complete"
  done_step "$(ls "$TO_HOME/libs" | wc -l) jars from $STRIMZI_SRC"
fi
