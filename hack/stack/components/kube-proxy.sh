#!/usr/bin/env bash
# kube-proxy (nftables), NodePorts on the bridge address only; once it has programmed the
# API's Service, the cluster add-ons are applied (addons.sh): CoreDNS, local-path volumes,
# metrics-server and Strimzi's bootstrap Service name for the stack's Kafka.

kube_proxy_up() {
  step "kube-proxy (nftables; NodePorts on $LP_BRIDGE_IP only)"
  already kube-proxy && return
  node_forwarding_on
  cert_kubeconfig "$NODE_DIR/kube-proxy.kubeconfig" kube-proxy
  cat >"$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$NODE_DIR/kube-proxy.kubeconfig"}
hostnameOverride: $NODE_NAME
mode: nftables
clusterCIDR: $POD_CIDR
# Never the machine's external addresses: NodePorts answer on the stack's bridge only.
nodePortAddresses: ["$LP_BRIDGE_IP/32"]
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
# No CAP_SYS_RESOURCE: keep the OOM score and leave conntrack sizing alone.
oomScoreAdj: 0
conntrack: {maxPerCore: 0}
EOF
  launch kube-proxy kube-proxy --config "$NODE_DIR/kube-proxy.yaml"
  kube_proxy_wait
  done_step
  node_addons
}
kube_proxy_wait() {
  wait_for kube-proxy 60 kube_proxy_status
  # Pods reach the API through its Service address: CoreDNS started before kube-proxy has
  # programmed it sends its first connection un-NATed, and that connection hangs (a
  # fresh-clone run waited out its whole start-up this way).
  wait_for kube-proxy 60 api_service_programmed
}
kube_proxy_status() { curl -fsS "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"; }
# Only a stack that ran kube-proxy cleans the packet filter up: kube-proxy's nftables table is
# one per host, so a stack without a node (an isolated test stack going down) must not remove
# the rules of the node that is running.
kube_proxy_down() {
  if [ -f "$(pidfile kube-proxy)" ]; then
    stop_process kube-proxy TERM && node_packet_filter_cleanup
  else
    node_forwarding_off
  fi
}
kube_proxy_version() { kube-proxy --version 2>/dev/null | awk '{print $2}'; }
kube_proxy_address() { echo "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"; }
