#!/usr/bin/env bash
# The node (LP_NODE=1, `make stack-up NODE=1`): kube-scheduler, containerd (+ runc, bridge
# CNI on the stack's own bridge), kubelet and kube-proxy as local processes, so pods run
# for real. Sourced by stack.sh, which owns launch/stop/wait_for and the PKI.
# The machine's traps: no CAP_SYS_RESOURCE (containerd
# restrict_oom_score_adj, kube-proxy oomScoreAdj 0 and no conntrack sizing), a cgroup v1
# host (kubelet failCgroupV1: false, cgroupfs, no QoS cgroups), runc not crun.

NODE_NAME="${LP_NODE_NAME:-lp-node}"
NODE_DIR="$LP_RUN_DIR/node"
CONTAINERD_SOCK="$NODE_DIR/containerd/containerd.sock"
SCHEDULER_PORT=$((10259 + LP_PORT_OFFSET))
KUBELET_PORT=$((10250 + LP_PORT_OFFSET))
KUBELET_HEALTHZ_PORT=$((10248 + LP_PORT_OFFSET))
KUBE_PROXY_HEALTHZ_PORT=$((10256 + LP_PORT_OFFSET))
KUBE_PROXY_METRICS_PORT=$((10249 + LP_PORT_OFFSET))
# Pod addresses come from the upper half of the bridge's /16; the stack's own addresses
# (the bridge IP) stay in the lower part.
POD_RANGE_START="${LP_POD_RANGE_START:-${LP_BRIDGE_IP%.*.*}.128.2}"
POD_RANGE_END="${LP_POD_RANGE_END:-${LP_BRIDGE_IP%.*.*}.255.254}"
POD_CIDR="${LP_BRIDGE_IP%.*.*}.0.0/$LP_BRIDGE_PREFIX"
CLUSTER_DNS_IP="${LP_CLUSTER_DNS_IP:-${LP_SERVICE_CIDR%.*.*}.0.10}"
PAUSE_IMAGE="localhost/logpipeline/pause:local"

ctr_() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# Client certificates for the node's identities (Node authorizer: system:node:<name> in
# system:nodes; kube-proxy: system:kube-proxy) and the kubelet's serving certificate.
ensure_node_pki() {
  step "node certificates ($PKI/node)"
  if [ -f "$PKI/node/.complete" ]; then skip_step; return; fi
  mkdir -p "$PKI/node"
  (
    cd "$PKI/node"
    set -e
    sign() { # sign NAME SUBJECT EXT
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ../ca.crt -CAkey ../ca.key -CAcreateserial -out "$1.crt" -days 3650 -extfile "$1.ext"
    }
    sign kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" "extendedKeyUsage=clientAuth"
    sign kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" \
      "$(printf 'extendedKeyUsage=serverAuth\nsubjectAltName=IP:%s,DNS:%s' "$LP_BRIDGE_IP" "$NODE_NAME")"
    sign kube-proxy "/CN=system:kube-proxy" "extendedKeyUsage=clientAuth"
    rm -f ./*.csr ../*.srl
  ) >"$LP_RUN_DIR/logs/node-pki.log" 2>&1 || die "node certificate generation failed" "$LP_RUN_DIR/logs/node-pki.log"
  touch "$PKI/node/.complete"
  done_step
}

# cert_kubeconfig FILE NAME: a kubeconfig authenticating with $PKI/node/NAME.{crt,key}.
cert_kubeconfig() {
  write_kubeconfig "$1" "$2" "{client-certificate: \"$PKI/node/$2.crt\", client-key: \"$PKI/node/$2.key\"}"
}

start_scheduler() {
  step "kube-scheduler 127.0.0.1:$SCHEDULER_PORT"
  if running kube-scheduler; then already kube-scheduler; return; fi
  port_free "$SCHEDULER_PORT"
  kubeconfig_for "$LP_RUN_DIR/scheduler.kubeconfig" system:kube-scheduler
  launch kube-scheduler kube-scheduler --kubeconfig "$LP_RUN_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$LP_RUN_DIR/scheduler.kubeconfig" --authorization-kubeconfig "$LP_RUN_DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false
  wait_for kube-scheduler 60 curl -fsSk "https://127.0.0.1:$SCHEDULER_PORT/healthz"
  done_step
}

start_containerd() {
  step "containerd ($CONTAINERD_SOCK), runc, bridge CNI on $LP_BRIDGE"
  if running containerd; then already containerd; return; fi
  mkdir -p "$NODE_DIR/containerd" "$NODE_DIR/cni/net.d" "$NODE_DIR/cni/ipam"
  cat >"$NODE_DIR/cni/net.d/10-logpipeline.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "logpipeline",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$LP_BRIDGE",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR", "rangeStart": "$POD_RANGE_START", "rangeEnd": "$POD_RANGE_END", "gateway": "$LP_BRIDGE_IP" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
  cat >"$NODE_DIR/containerd/config.toml" <<EOF
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$NODE_DIR/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This machine lacks CAP_SYS_RESOURCE: without this every pod sandbox fails.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
  launch containerd containerd --config "$NODE_DIR/containerd/config.toml"
  wait_for containerd 30 ctr_ version
  node_base_images
  done_step
}

# image_tar ROOTFS NAME OUT ENTRYPOINT_JSON: a docker-archive image of one layer, made with
# tar and sha256sum only (no image builder needed for the node's own small images).
image_tar() {
  local rootfs="$1" name="$2" out="$3" entry="$4" work
  work=$(mktemp -d)
  tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -cf "$work/layer.tar" .
  local diff
  diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"User":"65532:65532"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$entry" "$diff" >"$work/config.json"
  printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$name" >"$work/manifest.json"
  tar -C "$work" -cf "$out" manifest.json config.json layer.tar
  rm -rf "$work"
}

# The pause image (the pod sandbox) and a busybox image, from the cache's static pause
# binary and Debian's busybox-static, imported into containerd once per run dir.
node_base_images() {
  local images="$NODE_DIR/images" root
  mkdir -p "$images"
  if [ ! -f "$images/pause.tar" ]; then
    root=$(mktemp -d)
    install -D -m 0755 "$LP_BIN/pause" "$root/pause"
    image_tar "$root" "$PAUSE_IMAGE" "$images/pause.tar" '["/pause"]'
    rm -rf "$root"
  fi
  if [ ! -f "$images/busybox.tar" ]; then
    root=$(mktemp -d)
    install -D -m 0755 /bin/busybox "$root/bin/busybox"
    local applet
    for applet in $(/bin/busybox --list); do [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"; done
    mkdir -p "$root/tmp" "$root/etc" && chmod 1777 "$root/tmp"
    printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65532:65532:nobody:/:/bin/sh\n' >"$root/etc/passwd"
    image_tar "$root" "localhost/logpipeline/busybox:local" "$images/busybox.tar" '["/bin/sh"]'
    rm -rf "$root"
  fi
  local t
  for t in "$images"/*.tar; do ctr_ images import --no-unpack=false "$t" >/dev/null || die "could not import $t into containerd" "$(logfile containerd)"; done
}

start_kubelet() {
  step "kubelet $NODE_NAME ($LP_BRIDGE_IP:$KUBELET_PORT)"
  if running kubelet; then already kubelet; return; fi
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
  wait_for kubelet 60 curl -fsS "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
  wait_for kubelet 90 sh -c "kubectl --kubeconfig '$KUBECONFIG_ADMIN' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  done_step
}

# Pod → Service → pod on the same bridge is routed through the host (kube-proxy's DNAT), so
# the node needs IPv4 forwarding; a table of the stack's own confines forwarding to the
# bridge, so pods reach each other and the stack but never another network. The previous
# setting is restored by stack-down.
node_forwarding_on() {
  local table="logpipeline_$LP_BRIDGE"
  [ -f "$NODE_DIR/ip_forward.before" ] || cat /proc/sys/net/ipv4/ip_forward >"$NODE_DIR/ip_forward.before"
  nft -f - <<EOF
table inet $table {
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "$LP_BRIDGE" oifname != "$LP_BRIDGE" drop
    oifname "$LP_BRIDGE" iifname != "$LP_BRIDGE" drop
  }
}
EOF
  echo 1 >/proc/sys/net/ipv4/ip_forward
}

node_forwarding_off() {
  nft delete table inet "logpipeline_$LP_BRIDGE" 2>/dev/null || true
  if [ -f "$NODE_DIR/ip_forward.before" ]; then
    cat "$NODE_DIR/ip_forward.before" >/proc/sys/net/ipv4/ip_forward
    rm -f "$NODE_DIR/ip_forward.before"
  fi
}

# kube-proxy has a rule for the API's Service address (with its endpoint) in its table.
api_service_programmed() {
  [[ "$(nft list map ip kube-proxy service-ips 2>/dev/null)" == *"$LP_SERVICE_API_IP . tcp . 443 : goto service-"* ]]
}

start_kube_proxy() {
  step "kube-proxy (nftables; NodePorts on $LP_BRIDGE_IP only)"
  if running kube-proxy; then already kube-proxy; return; fi
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
  wait_for kube-proxy 60 curl -fsS "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"
  # Pods reach the API through its Service address: CoreDNS started before kube-proxy has
  # programmed it sends its first connection un-NATed, and that connection hangs (a
  # fresh-clone run waited out its whole start-up this way).
  wait_for kube-proxy 60 api_service_programmed
  done_step
  node_dns
  node_volumes
  node_metrics
  node_kafka_bootstrap
}

# Strimzi's bootstrap Service name for the stack's Kafka (kafka.mode: strimzi).
node_kafka_bootstrap() {
  [ "$LP_STRIMZI" = on ] || return 0
  step "Service $STRIMZI_CLUSTER-kafka-bootstrap.$STRIMZI_NAMESPACE → $LP_BRIDGE_IP:$KAFKA_BRIDGE_PORT"
  sed -e "s|@CLUSTER@|$STRIMZI_CLUSTER|g" -e "s|@NAMESPACE@|$STRIMZI_NAMESPACE|g" \
    -e "s|@KAFKA_PORT@|$KAFKA_BRIDGE_PORT|g" -e "s|@BRIDGE_IP@|$LP_BRIDGE_IP|g" \
    "$HACK_DIR/stack/addons/kafka-bootstrap.yaml" \
    | kubectl --kubeconfig "$KUBECONFIG_ADMIN" apply --server-side --force-conflicts -f - >>"$LP_RUN_DIR/logs/addons.log" 2>&1 \
    || die "could not apply the Kafka bootstrap Service" "$LP_RUN_DIR/logs/addons.log"
  done_step
}

# Resource metrics (kubectl top, HPAs on CPU): metrics-server behind the aggregation layer.
node_metrics() {
  step "metrics-server (v1beta1.metrics.k8s.io)"
  local image k=(kubectl --kubeconfig "$KUBECONFIG_ADMIN")
  image=$(addon_image metrics-server "$LP_BIN/metrics-server" "$METRICS_SERVER_VERSION")
  sed -e "s|@METRICS_SERVER_IMAGE@|$image|g" "$HACK_DIR/stack/addons/metrics-server.yaml" \
    | "${k[@]}" apply --server-side --force-conflicts -f - >>"$LP_RUN_DIR/logs/addons.log" 2>&1 \
    || die "could not apply metrics-server" "$LP_RUN_DIR/logs/addons.log"
  # Started, not waited for: its first scrape takes a resolution period; HPAs wait for it anyway.
  done_step
}

# addon_image NAME BINARY: an image of one static binary at /NAME, imported once.
addon_image() {
  local name="$1" bin="$2" image="localhost/logpipeline/$1:$3" root
  if ! ctr_ images ls -q | grep -qx "$image"; then
    [ -x "$bin" ] || die "$name is not built: run make tools (hack/tools/go-tools.sh node)"
    root=$(mktemp -d)
    install -D -m 0755 "$(readlink -f "$bin")" "$root/$name"
    image_tar "$root" "$image" "$NODE_DIR/images/$name.tar" "[\"/$name\"]"
    rm -rf "$root"
    ctr_ images import "$NODE_DIR/images/$name.tar" >/dev/null || die "could not import the $name image" "$(logfile containerd)"
  fi
  echo "$image"
}

# Dynamic volumes: local-path-provisioner and the default StorageClass.
node_volumes() {
  step "local-path-provisioner (default StorageClass local-path, volumes in $NODE_DIR/volumes)"
  local image k=(kubectl --kubeconfig "$KUBECONFIG_ADMIN")
  image=$(addon_image local-path-provisioner "$LP_BIN/local-path-provisioner" "$LOCAL_PATH_PROVISIONER_VERSION")
  mkdir -p "$NODE_DIR/volumes"
  sed -e "s|@LPP_IMAGE@|$image|g" -e "s|@BUSYBOX_IMAGE@|localhost/logpipeline/busybox:local|g" \
    -e "s|@VOLUMES_DIR@|$NODE_DIR/volumes|g" "$HACK_DIR/stack/addons/local-path.yaml" \
    | "${k[@]}" apply --server-side --force-conflicts -f - >>"$LP_RUN_DIR/logs/addons.log" 2>&1 \
    || die "could not apply local-path-provisioner" "$LP_RUN_DIR/logs/addons.log"
  wait_for kube-proxy 90 "${k[@]}" -n local-path-storage rollout status deploy/local-path-provisioner --timeout=5s
  done_step
}

# Cluster DNS: CoreDNS as a pod (its image is the binary alone), Service kube-dns at the
# kubelet's clusterDNS address.
node_dns() {
  step "CoreDNS (kube-dns at $CLUSTER_DNS_IP)"
  local image="localhost/logpipeline/coredns:$COREDNS_VERSION" root k=(kubectl --kubeconfig "$KUBECONFIG_ADMIN")
  [ -x "$LP_BIN/coredns" ] || die "coredns is not built: run make tools with NODE=1 (hack/tools/go-tools.sh node)"
  if ! ctr_ images ls -q | grep -qx "$image"; then
    root=$(mktemp -d)
    install -D -m 0755 "$(readlink -f "$LP_BIN/coredns")" "$root/coredns"
    image_tar "$root" "$image" "$NODE_DIR/images/coredns.tar" '["/coredns"]'
    rm -rf "$root"
    ctr_ images import "$NODE_DIR/images/coredns.tar" >/dev/null || die "could not import the CoreDNS image" "$(logfile containerd)"
  fi
  sed -e "s|@CLUSTER_DNS_IP@|$CLUSTER_DNS_IP|g" -e "s|@COREDNS_IMAGE@|$image|g" "$HACK_DIR/stack/addons/coredns.yaml" \
    | "${k[@]}" apply --server-side --force-conflicts -f - >>"$LP_RUN_DIR/logs/addons.log" 2>&1 \
    || die "could not apply CoreDNS" "$LP_RUN_DIR/logs/addons.log"
  wait_for kube-proxy 90 "${k[@]}" -n kube-system rollout status deploy/coredns --timeout=5s
  done_step
}

node_forget() {
  kubectl --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout=5s delete node "$NODE_NAME" --ignore-not-found --wait=false \
    >/dev/null 2>&1 || true
  node_metrics_unregister
}

# The metrics API is served by a pod on the node: without the node, an APIService pointing
# at it would be unavailable, and the namespace controller cannot delete namespaces while
# an aggregated API fails discovery. It goes with the node (node_metrics registers it again).
node_metrics_unregister() {
  kubectl --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout=5s delete apiservice v1beta1.metrics.k8s.io \
    --ignore-not-found --wait=false >/dev/null 2>&1 || true
}

# Removes what the node's kubelet and kube-proxy left in the host's packet filter.
node_packet_filter_cleanup() {
  kube-proxy --cleanup --proxy-mode=nftables >/dev/null 2>&1 || true
  node_forwarding_off
  [ -f "$NODE_DIR/iptables-ours" ] || return 0
  local ipt t c
  for ipt in iptables ip6tables; do
    "$ipt" -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
    "$ipt" -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
    for t in filter nat mangle; do
      for c in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        "$ipt" -t "$t" -F "$c" 2>/dev/null || true
        "$ipt" -t "$t" -X "$c" 2>/dev/null || true
      done
    done
  done
  rm -f "$NODE_DIR/iptables-ours"
}

# Stops every pod's containers through containerd and removes their network namespaces,
# so nothing the node started outlives it (the shims are not containerd's children).
node_teardown() {
  running containerd || return 0
  local id
  for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$id" >/dev/null 2>&1 || true; done
  sleep 1
  for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
  # Only the network namespaces of this node's own pod sandboxes, read from their specs.
  local netns=() path
  for id in $(ctr_ containers ls -q 2>/dev/null); do
    path=$(ctr_ containers info "$id" 2>/dev/null | grep -o '"/var/run/netns/cni-[0-9a-f-]*"' | head -1 | tr -d '"')
    [ -n "$path" ] && netns+=("$path")
    ctr_ containers delete "$id" >/dev/null 2>&1 || true
  done
  for path in "${netns[@]}"; do ip netns delete "$(basename "$path")" 2>/dev/null || true; done
  # What the runtime and the kubelet mounted under the run dir (sandbox /dev/shm, volumes).
  local m
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(findmnt -rn -o TARGET | awk -v d="$NODE_DIR/" 'index($0, d) == 1' | sort -r)
  rm -rf "$NODE_DIR/cni/ipam"
}
