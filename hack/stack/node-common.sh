#!/usr/bin/env bash
# What the node's components share (LP_NODE=1, `make stack-up NODE=1`: kube-scheduler,
# containerd, kubelet and kube-proxy, in components/): its addresses, certificates, images,
# packet-filter rules and their clean-up. Sourced by stack.sh after common.sh.
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

node_forget() {
  kubectl --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout=5s delete node "$NODE_NAME" --ignore-not-found --wait=false \
    >/dev/null 2>&1 || true
  node_metrics_unregister
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
