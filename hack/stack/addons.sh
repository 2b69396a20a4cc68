#!/usr/bin/env bash
# What the stack applies to its cluster rather than runs as a process: the CRDs (project,
# Strimzi's KafkaTopic, Prometheus Operator's) and the stack's RBAC, once the controller
# manager runs; with a node, the add-ons that run as pods (CoreDNS, local-path volumes,
# metrics-server) and Strimzi's bootstrap Service name, once kube-proxy runs.

install_crds() {
  step "CRDs (project + KafkaTopic + ServiceMonitor + PrometheusRule) and stack RBAC"
  local files=("$REPO_ROOT"/crds/*.yaml "$LP_CACHE/crds/strimzi-$STRIMZI_API_VERSION"/*.yaml
    "$LP_CACHE/crds/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"/*.yaml)
  local f
  for f in "${files[@]}"; do
    [ -f "$f" ] || die "CRD file missing: $f (run make tools)"
    run_logged "$LP_RUN_DIR/logs/crds.log" kubectl_admin apply --server-side --force-conflicts -f "$f"
  done
  run_logged "$LP_RUN_DIR/logs/crds.log" kubectl_admin wait --for condition=Established --timeout=60s crd --all
  # The topic operator's own identity may touch KafkaTopics in its namespace only.
  ensure_namespace "$STRIMZI_NAMESPACE"
  sed -e "s/__NAMESPACE__/$STRIMZI_NAMESPACE/g" "$HACK_DIR/stack/strimzi-rbac.yaml" \
    | run_logged "$LP_RUN_DIR/logs/crds.log" kubectl_admin apply --server-side -f -
  done_step "${#files[@]} CRD files"
}

# The add-ons of a node, after kube-proxy (kube_proxy_up).
node_addons() {
  node_dns
  node_volumes
  node_metrics
  node_kafka_bootstrap
}

# The OpenTelemetry Collector's image (one static binary, like the add-ons'), for the e2e
# suite's sidecar that ships a container's log file over OTLP (docs/otlp.md). Made on every
# `up` with a node (imported once), so a node started before the image existed gets it too.
node_otelcol_image() {
  step "image localhost/logpipeline/lp-otelcol:$OTELCOL_BUILDER_VERSION (the Collector, for OTLP sidecars)"
  addon_image lp-otelcol "$LP_BIN/lp-otelcol" "$OTELCOL_BUILDER_VERSION" >/dev/null
  done_step
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
    [ -x "$bin" ] || die "$name is not built: run make tools (hack/tools/go-tools.sh)"
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

# The metrics API is served by a pod on the node: without the node, an APIService pointing
# at it would be unavailable, and the namespace controller cannot delete namespaces while
# an aggregated API fails discovery. It goes with the node (node_metrics registers it again).
node_metrics_unregister() {
  kubectl --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout=5s delete apiservice v1beta1.metrics.k8s.io \
    --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
