#!/usr/bin/env bash
# `make test-e2e`: the e2e suite (test/e2e) on the local node. Brings the stack up with the
# node (or adds the node to a running stack), builds and loads the images, runs the suite
# with the stack's kubeconfig, then stops what it started: the whole stack if it was down,
# the node alone if only the node was.
# Usage: hack/e2e.sh [REPORT.json]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$HACK_DIR/stack/config.sh"
cd "$REPO_ROOT"
export PATH="$REPO_ROOT/node_modules/.bin:$LP_BIN:$PATH"
report="${1:-${LP_TEST_REPORT:-$REPO_ROOT/.vitest-report.json}}"
STACK=(bash "$HACK_DIR/stack/stack.sh")
NODE_PARTS=(kube-proxy kubelet containerd kube-scheduler)

pid_alive() { local f="$LP_RUN_DIR/pids/$1.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }
stack_was_up=0
node_was_up=0
"${STACK[@]}" status --quiet && stack_was_up=1
pid_alive kubelet && node_was_up=1

cleanup() {
  local rc=$?
  if [ "${LP_KEEP_STACK:-0}" = 1 ]; then
    printf '==> LP_KEEP_STACK=1: the stack stays up\n' >&2
  elif [ "$stack_was_up" = 0 ]; then
    LP_NODE=1 "${STACK[@]}" down
  elif [ "$node_was_up" = 0 ]; then
    for c in "${NODE_PARTS[@]}"; do "${STACK[@]}" stop "$c"; done
  fi
  exit "$rc"
}
trap cleanup EXIT

# Namespaces an interrupted integration run left (label logpipeline.io/test=true) would put
# their pods on the node once it joins: they go first (their pipelines' finalizers dropped,
# as no operator of theirs runs any more).
"${STACK[@]}" up
k=(kubectl --kubeconfig "$KUBECONFIG_ADMIN")
leftover=$("${k[@]}" get ns -l logpipeline.io/test=true -o name 2>/dev/null || true)
if [ -n "$leftover" ]; then
  step "remove namespaces earlier test runs left: $(echo "$leftover" | tr '\n' ' ')"
  for n in $leftover; do
    for lp in $("${k[@]}" get lp -n "${n#namespace/}" -o name 2>/dev/null); do
      "${k[@]}" patch -n "${n#namespace/}" "$lp" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
    done
  done
  "${k[@]}" delete $leftover --wait=true --timeout=120s >/dev/null 2>&1 || true
  done_step
fi
LP_NODE=1 "${STACK[@]}" up
bash "$HACK_DIR/images/build.sh" build
step "e2e suite (test/e2e) against $KUBECONFIG_ADMIN"
printf '\n' >&2
trap - ERR
set +e
LP_E2E_KUBECONFIG="$KUBECONFIG_ADMIN" LP_E2E_VALUES="$HACK_DIR/local-values.yaml" \
  LP_E2E_KAFKA_CLUSTER="$STRIMZI_CLUSTER" LP_E2E_KAFKA_NAMESPACE="$STRIMZI_NAMESPACE" \
  LP_E2E_COLLECTOR_IMAGE="localhost/logpipeline/lp-otelcol:$OTELCOL_BUILDER_VERSION" \
  LP_E2E_NETWORK_EGRESS="[{\"to\":[{\"ipBlock\":{\"cidr\":\"$LP_BRIDGE_IP/32\"}}],\"ports\":[{\"port\":$KAFKA_BRIDGE_PORT}]}]" \
  LP_E2E_EVENTS="${LP_E2E_EVENTS:-$([ "${LP_TEST_SCALE:-}" = full ] && echo 50000 || echo 10000)}" \
  vitest run --project e2e --reporter=default --reporter=json --outputFile.json="$report"
