#!/usr/bin/env bash
# The local stack of real components, as processes started and stopped by PID:
#   etcd → kube-apiserver → kube-controller-manager (then the CRDs) → Kafka (KRaft)
#   → Strimzi topic operator → PostgreSQL → Redis.
#   With LP_NODE=1 (make stack-up NODE=1), the node too: kube-scheduler, containerd, kubelet,
#   kube-proxy (then the add-ons) and kube-router's NetworkPolicy enforcer, so pods run for
#   real and their NetworkPolicies hold.
# Usage: stack.sh up | down | status [--quiet] | env | json | stop NAME | start NAME
#   LP_COMPONENTS="kafka postgres redis" brings up only those (a data-services-only instance).
# Each component is one file in components/ (up, wait, down, status, version, address);
# common.sh holds what they share. Addresses and ports: config.sh. Logs, PIDs, data:
# $LP_RUN_DIR.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
source "$HACK_DIR/stack/config.sh"
source "$HACK_DIR/stack/common.sh"
source "$HACK_DIR/stack/node-common.sh"
source "$HACK_DIR/stack/addons.sh"

LP_RETRY_HINT="make stack-down && make stack-up (logs: $LP_RUN_DIR/logs)"
TO_HOME="$LP_CACHE/strimzi-topic-operator-$STRIMZI_API_VERSION"
BASE_COMPONENTS=(etcd kube-apiserver kube-controller-manager kafka strimzi-topic-operator postgres redis)
NODE_COMPONENTS=(kube-scheduler containerd kubelet kube-proxy kube-router)
for c in "${BASE_COMPONENTS[@]}" "${NODE_COMPONENTS[@]}"; do
  # shellcheck source=/dev/null
  source "$HACK_DIR/stack/components/$c.sh"
done
ALL_COMPONENTS=("${BASE_COMPONENTS[@]}")
[ "${LP_NODE:-0}" = 1 ] && ALL_COMPONENTS+=("${NODE_COMPONENTS[@]}")
read -r -a COMPONENTS <<<"${LP_COMPONENTS:-${ALL_COMPONENTS[*]}}"
wanted() { [[ " ${COMPONENTS[*]} " == *" $1 "* ]]; }
export PATH="$LP_BIN:$PATH"

# component NAME ACTION: runs NAME's ACTION function (components/NAME.sh).
component() {
  [[ " ${BASE_COMPONENTS[*]} ${NODE_COMPONENTS[*]} " == *" $1 "* ]] ||
    die "unknown component '$1' (known: ${BASE_COMPONENTS[*]} ${NODE_COMPONENTS[*]})"
  "${1//-/_}_$2"
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "the stack creates a network bridge and runs PostgreSQL as its own user: run as root (or with sudo)"
  if wanted kube-apiserver; then
    for b in etcd kube-apiserver kube-controller-manager kubectl; do
      command -v "$b" >/dev/null || die "$b is not installed in $LP_BIN: run make tools"
    done
  fi
  mkdir -p "$LP_RUN_DIR/logs" "$LP_RUN_DIR/pids"
  chmod 755 "$LP_RUN_DIR"
  ensure_bridge
  ensure_pki
  if wanted kubelet || wanted kube-proxy; then ensure_node_pki; fi
  kubeconfig_for "$KUBECONFIG_ADMIN" admin
  local c
  for c in "${COMPONENTS[@]}"; do component "$c" up; done
  if wanted kube-proxy; then node_otelcol_image; fi
  write_facts
  total_time
  printf '\nstack is up. Use it with:  source %s/stack.env   (kubectl get ns)\n' "$LP_RUN_DIR" >&2
}

cmd_down() {
  local i
  # The image builder's daemon (make images), then the node (whether or not LP_NODE is set
  # now): pods, then the control plane.
  [ -f "$LP_RUN_DIR/docker/dockerd.pid" ] && bash "$HACK_DIR/images/build.sh" dockerd-stop
  for ((i = ${#NODE_COMPONENTS[@]} - 1; i >= 0; i--)); do component "${NODE_COMPONENTS[i]}" down; done
  for ((i = ${#BASE_COMPONENTS[@]} - 1; i >= 0; i--)); do component "${BASE_COMPONENTS[i]}" down; done
  remove_bridge
  total_time
}

# status [--quiet]: a table of components; exit 0 only when every expected one is healthy.
cmd_status() {
  trap - ERR # an unhealthy component is the answer, not a failure of this script
  local quiet="${1:-}" c state pid all=0
  [ "$quiet" = --quiet ] || printf '%-25s %-9s %-10s %-8s %s\n' COMPONENT STATE VERSION PID ADDRESS
  for c in "${COMPONENTS[@]}"; do
    pid="-"
    [ -f "$(pidfile "$c")" ] && pid=$(cat "$(pidfile "$c")")
    if [ "$c" = strimzi-topic-operator ] && ! strimzi_enabled; then
      state=disabled
    elif running "$c" && component "$c" status >/dev/null 2>&1; then
      state=healthy
    elif running "$c"; then
      state=unhealthy
      all=1
    else
      state=stopped
      pid="-"
      all=1
    fi
    [ "$quiet" = --quiet ] || printf '%-25s %-9s %-10s %-8s %s\n' "$c" "$state" "$(component "$c" version)" "$pid" "$(component "$c" address)"
  done
  [ "$quiet" = --quiet ] || printf '\nrun dir: %s   kubeconfig: %s\n' "$LP_RUN_DIR" "$KUBECONFIG_ADMIN"
  return $all
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) shift; cmd_status "${1:-}" ;;
  env) cat "$LP_RUN_DIR/stack.env" ;;
  json) cat "$LP_RUN_DIR/stack.json" ;;
  stop) component "${2:?usage: stack.sh stop COMPONENT}" down ;;
  start) component "${2:?usage: stack.sh start COMPONENT}" up ;;
  *) echo "usage: $0 up|down|status [--quiet]|env|json|stop NAME|start NAME" >&2; exit 2 ;;
esac
