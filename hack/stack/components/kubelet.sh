#!/usr/bin/env bash
# The kubelet of the one node ($NODE_NAME, at the bridge address), on containerd; a cgroup
# v1 host: cgroupfs, no QoS cgroups. Ready when its Node is Ready.

kubelet_up() {
  step "kubelet $NODE_NAME ($LP_BRIDGE_IP:$KUBELET_PORT)"
  already kubelet && return
  port_free "$KUBELET_PORT"
  mkdir -p "$NODE_DIR/kubelet" "$NODE_DIR/pod-logs"
  cert_kubeconfig "$NODE_DIR/kubelet.kubeconfig" kubelet-client
  cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $LP_BRIDGE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$PKI/node/kubelet-serving.crt"
tlsPrivateKeyFile: "$PKI/node/kubelet-serving.key"
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
# A cgroup v1 host: allowed explicitly, cgroupfs, no QoS cgroups or node allocatable.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: ["$CLUSTER_DNS_IP"]
podLogsDir: "$NODE_DIR/pod-logs"
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
maxPods: 110
EOF
  # kubelet adds iptables chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY …); remember whether
  # they were there before, so stack-down removes only what this node added.
  if ! iptables -S KUBE-FIREWALL >/dev/null 2>&1; then touch "$NODE_DIR/iptables-ours"; fi
  launch kubelet kubelet --config "$NODE_DIR/kubelet.yaml" --kubeconfig "$NODE_DIR/kubelet.kubeconfig" \
    --root-dir "$NODE_DIR/kubelet" --hostname-override "$NODE_NAME" --node-ip "$LP_BRIDGE_IP"
  kubelet_wait
  done_step
}
kubelet_wait() {
  wait_for kubelet 60 kubelet_status
  wait_for kubelet 90 sh -c "kubectl --kubeconfig '$KUBECONFIG_ADMIN' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
}
kubelet_status() { curl -fsS "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"; }
# A stopped node is gone: its Node object goes too, so the pod garbage collector removes the
# pods bound to it instead of leaving them (and their namespaces) terminating.
kubelet_down() { stop_process kubelet TERM && node_forget; }
kubelet_version() { kubelet --version 2>/dev/null | awk '{print $2}'; }
kubelet_address() { echo "https://$LP_BRIDGE_IP:$KUBELET_PORT (node $NODE_NAME)"; }
