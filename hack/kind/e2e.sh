#!/usr/bin/env bash
# `make e2e-kind`: the same e2e suite (test/e2e) on a kind cluster, for machines with Docker
# and a registry (it cannot run where images cannot be pulled). Steps: kind cluster →
# Strimzi's cluster operator from its official chart + a one-broker Kafka (kafka.yaml) →
# metrics-server from its chart (HPAs on CPU) → the images built on node:24-bookworm-slim and
# `kind load`ed → the suite with this cluster's kubeconfig → the cluster deleted
# (KEEP_CLUSTER=1 keeps it).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$REPO_ROOT"
export PATH="$LP_BIN:$REPO_ROOT/node_modules/.bin:$PATH"
CLUSTER=logpipeline-e2e
STRIMZI_CHART_VERSION="${STRIMZI_CHART_VERSION:-$STRIMZI_API_VERSION}"
METRICS_SERVER_CHART_VERSION="${METRICS_SERVER_CHART_VERSION:-3.13.0}"
WORK="${LP_KIND_DIR:-$LP_CACHE/kind}"
export KUBECONFIG="$WORK/kubeconfig"
report="${LP_TEST_REPORT:-$REPO_ROOT/.vitest-report.json}"
IMAGES=(operator producer consumer query)

for b in kind docker helm kubectl; do command -v "$b" >/dev/null || die "$b is required for make e2e-kind"; done
mkdir -p "$WORK"

step "kind cluster $CLUSTER"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null
  skip_step "exists"
else
  run_logged "$WORK/kind.log" kind create cluster --config "$HACK_DIR/kind/kind-config.yaml" --kubeconfig "$KUBECONFIG" --wait 5m
  done_step
fi
[ "${KEEP_CLUSTER:-0}" = 1 ] || trap 'kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true' EXIT

step "Strimzi $STRIMZI_CHART_VERSION (official chart) and Kafka cluster local in namespace kafka"
run_logged "$WORK/strimzi.log" helm upgrade --install strimzi strimzi-kafka-operator \
  --repo https://strimzi.io/charts/ --version "$STRIMZI_CHART_VERSION" -n kafka --create-namespace --wait --timeout 10m
run_logged "$WORK/strimzi.log" kubectl apply -f "$HACK_DIR/kind/kafka.yaml"
run_logged "$WORK/strimzi.log" kubectl wait -n kafka kafka/local --for=condition=Ready --timeout=15m
done_step

step "metrics-server $METRICS_SERVER_CHART_VERSION (official chart; kind's kubelets serve self-signed certificates)"
run_logged "$WORK/metrics-server.log" helm upgrade --install metrics-server metrics-server \
  --repo https://kubernetes-sigs.github.io/metrics-server/ --version "$METRICS_SERVER_CHART_VERSION" -n kube-system \
  --set 'args={--kubelet-insecure-tls}' --wait --timeout 5m
done_step

for t in "${IMAGES[@]}"; do
  step "image logpipeline/$t:0.1.0 (node:24-bookworm-slim) → kind load"
  run_logged "$WORK/image-$t.log" docker build --build-arg NODE_BASE=node:24-bookworm-slim --target "$t" \
    -t "logpipeline/$t:0.1.0" "$REPO_ROOT"
  run_logged "$WORK/image-$t.log" kind load docker-image --name "$CLUSTER" "logpipeline/$t:0.1.0"
  done_step
done

# The OpenTelemetry Collector of make tools (hack/otelcol), one static binary, for the suite's
# OTLP sidecar.
COLLECTOR_IMAGE="logpipeline/lp-otelcol:${OTELCOL_BUILDER_VERSION#v}"
step "image $COLLECTOR_IMAGE (FROM scratch, the lp-otelcol binary) → kind load"
printf 'FROM scratch\nCOPY lp-otelcol /lp-otelcol\nUSER 65532:65532\nENTRYPOINT ["/lp-otelcol"]\n' >"$WORK/Dockerfile.otelcol"
mkdir -p "$WORK/otelcol" && cp -L "$LP_BIN/lp-otelcol" "$WORK/otelcol/lp-otelcol"
run_logged "$WORK/image-otelcol.log" docker build -f "$WORK/Dockerfile.otelcol" -t "$COLLECTOR_IMAGE" "$WORK/otelcol"
run_logged "$WORK/image-otelcol.log" kind load docker-image --name "$CLUSTER" "$COLLECTOR_IMAGE"
done_step

step "e2e suite (test/e2e) against kind-$CLUSTER"
printf '\n' >&2
LP_E2E_KUBECONFIG="$KUBECONFIG" LP_E2E_VALUES="$HACK_DIR/kind/values.yaml" \
  LP_E2E_KAFKA_CLUSTER=local LP_E2E_KAFKA_NAMESPACE=kafka LP_E2E_EVENTS="${LP_E2E_EVENTS:-10000}" \
  LP_E2E_COLLECTOR_IMAGE="$COLLECTOR_IMAGE" \
  vitest run --project e2e --reporter=default --reporter=json --outputFile.json="$report"
