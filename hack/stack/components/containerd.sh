#!/usr/bin/env bash
# containerd (Debian's) with runc and the bridge CNI on the stack's own bridge; the node's
# base images (pause, busybox) are imported when it starts.

containerd_up() {
  step "containerd ($CONTAINERD_SOCK), runc, bridge CNI on $LP_BRIDGE"
  already containerd && return
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
  containerd_wait
  node_base_images
  done_step
}
containerd_wait() { wait_for containerd 30 containerd_status; }
containerd_status() { ctr_ version; }
# Every pod's containers and network namespaces go first (node_teardown), then containerd.
containerd_down() { node_teardown && stop_process containerd TERM; }
containerd_version() { containerd --version 2>/dev/null | awk '{print $3}'; }
containerd_address() { echo "unix://$CONTAINERD_SOCK"; }
