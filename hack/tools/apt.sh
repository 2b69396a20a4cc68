#!/usr/bin/env bash
# Debian packages the stack and the native Kafka client build need. Installs only what is missing.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

PKGS=(
  postgresql redis-server prometheus            # servers + promtool
  libssl-dev zlib1g-dev libzstd-dev libsasl2-dev liblz4-dev libcurl4-openssl-dev  # librdkafka build
  iproute2 openssl curl ca-certificates procps   # the stack's bridge, certificates, probes
)
# The node (a real kubelet; its test runs in make test): container runtime, CNI plugins,
# packet filter, image builds, base images.
PKGS+=(containerd runc containernetworking-plugins docker.io debootstrap busybox-static iptables nftables conntrack
  ipset)   # kube-router's policy controller (the node's NetworkPolicy enforcer) drives ipsets
# The explorer's browser tests (test/browser): Debian's chromium, driven headless by puppeteer-core.
PKGS+=(chromium)
[ -n "${LP_APT_EXTRA:-}" ] && read -r -a extra <<<"$LP_APT_EXTRA" && PKGS+=("${extra[@]}")

step "Debian packages (${#PKGS[@]})"
missing=()
for p in "${PKGS[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == *"install ok installed"* ]] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then skip_step "all installed"; exit 0; fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
log="$LP_CACHE/logs/apt.log"
export DEBIAN_FRONTEND=noninteractive
# Package post-install scripts must not start system services: the stack runs its own.
policy_added=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null && $SUDO chmod +x /usr/sbin/policy-rc.d && policy_added=1
fi
cleanup() { [ $policy_added = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d; return 0; }
trap cleanup EXIT
LP_RETRY_HINT="$SUDO apt-get update && $SUDO apt-get install -y ${missing[*]}, then re-run" \
  run_logged "$log" bash -c "$SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends ${missing[*]}"
done_step "installed: ${missing[*]}"
