#!/usr/bin/env bash
# The node's NetworkPolicy enforcer: kube-router's policy controller as a host process, with
# its router and service proxy off (kube-proxy stays the service proxy, CNI's bridge the
# network). It programs iptables (Debian's nf_tables backend) and ipsets from the cluster's
# NetworkPolicies, so the pipelines' default-deny policies are enforced and tested here.
# kube-router v2.1.0 is the only v2 release the Go module proxy serves and has reported
# security flaws: it is this local test cluster's enforcer only (docs/security.md).

KUBE_ROUTER_CHAINS_RE='^(KUBE-ROUTER-|KUBE-POD-FW-|KUBE-NWPLCY-)'

kube_router_up() {
  step "kube-router $KUBE_ROUTER_VERSION (NetworkPolicy enforcement only)"
  already kube-router && return
  command -v kube-router >/dev/null || die "kube-router is not built: run make tools (hack/tools/go-tools.sh node)"
  command -v ipset >/dev/null || die "ipset is missing: run make tools (hack/tools/apt.sh)"
  kube_router_identity
  # No health or metrics listener: kube-router binds those on every interface. Readiness is
  # its chains in the filter table (kube_router_status).
  launch kube-router kube-router --run-firewall=true --run-router=false --run-service-proxy=false \
    --enable-cni=false --enable-ipv6=false --health-port=0 --metrics-port=0 \
    --kubeconfig "$NODE_DIR/kube-router.kubeconfig" --hostname-override "$NODE_NAME" \
    --service-cluster-ip-range "$LP_SERVICE_CIDR" --iptables-sync-period=30s
  kube_router_wait
  done_step
}

# A client certificate of its own, bound to a read-only ClusterRole: it watches pods,
# namespaces, NetworkPolicies, Services and endpoints, and reads its Node; it writes nothing.
kube_router_identity() {
  if [ ! -f "$PKI/node/kube-router.crt" ]; then
    (
      cd "$PKI/node"
      set -e
      openssl req -newkey rsa:2048 -nodes -keyout kube-router.key -out kube-router.csr -subj "/CN=system:kube-router"
      printf 'extendedKeyUsage=clientAuth\n' >kube-router.ext
      openssl x509 -req -in kube-router.csr -CA ../ca.crt -CAkey ../ca.key -CAcreateserial -out kube-router.crt -days 3650 -extfile kube-router.ext
      rm -f kube-router.csr ../*.srl
    ) >>"$(logfile kube-router)" 2>&1 || die "kube-router's certificate could not be made" "$(logfile kube-router)"
  fi
  cert_kubeconfig "$NODE_DIR/kube-router.kubeconfig" kube-router
  kubectl_admin apply --server-side --force-conflicts -f - >>"$(logfile kube-router)" 2>&1 <<'YAML' || die "could not apply kube-router's RBAC" "$(logfile kube-router)"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: logpipeline-stack:kube-router
  labels: {app.kubernetes.io/part-of: logpipeline-local-stack}
rules:
  - apiGroups: [""]
    resources: [namespaces, pods, services, endpoints, nodes]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: logpipeline-stack:kube-router
  labels: {app.kubernetes.io/part-of: logpipeline-local-stack}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "logpipeline-stack:kube-router"}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-router"}
YAML
}

kube_router_wait() { wait_for kube-router 60 kube_router_status; }
# Ready once the jumps from the built-in chains to its own are in place.
kube_router_status() {
  local c
  for c in INPUT FORWARD OUTPUT; do iptables -w -S "$c" 2>/dev/null | grep -q -- "-j KUBE-ROUTER-$c" || return 1; done
}
kube_router_down() {
  if [ -f "$(pidfile kube-router)" ]; then
    stop_process kube-router TERM
    kube_router_cleanup
  fi
}
# What it leaves behind when stopped (its own cleanup flag also tears down routes and IPVS):
# the jumps, then its chains, then its ipsets.
kube_router_cleanup() {
  local c rule chains
  # Each step tolerates finding nothing (a second stack-down, a kube-router that never synced).
  for c in INPUT FORWARD OUTPUT; do
    while read -r rule; do
      [ -n "$rule" ] || continue
      eval "iptables -w ${rule/-A/-D}" || true
    done < <(iptables -w -S "$c" 2>/dev/null | grep -- "-j KUBE-ROUTER-$c" || true)
  done
  chains=$(iptables -w -S 2>/dev/null | awk '$1 == "-N" {print $2}' | grep -E "$KUBE_ROUTER_CHAINS_RE" || true)
  for c in $chains; do iptables -w -F "$c" 2>/dev/null || true; done
  for c in $chains; do iptables -w -X "$c" 2>/dev/null || true; done
  for c in $(ipset list -n 2>/dev/null | grep -E '^(KUBE-|kube-router-)' || true); do
    ipset destroy "$c" 2>/dev/null || true
  done
  return 0
}
kube_router_version() { echo "$KUBE_ROUTER_VERSION"; }
kube_router_address() { echo "iptables filter: KUBE-ROUTER-{INPUT,FORWARD,OUTPUT}"; }
