#!/usr/bin/env bash
# Builds the Go-based tools from the Go module proxy into the cache, each keyed by version:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl
#   (one pinned k8s.io/kubernetes through a wrapper module), etcd, helm, controller-gen;
#   for the node: coredns, metrics-server, local-path-provisioner, and kube-router (its
#   NetworkPolicy controller only: the local node's enforcer, see docs/security.md).
# Usage: go-tools.sh [kube|etcd|helm|controller-gen|node ...]   (default: all but node)
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

command -v go >/dev/null || die "go is not installed; install Go 1.26+ (https://go.dev/dl) and retry"
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0   # static binaries: they also go into FROM scratch images later

KUBE_DIR="$LP_CACHE/kube-$KUBE_VERSION"
KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

build_kube() {
  step "kubernetes $KUBE_VERSION (${KUBE_BINS[*]}) from the Go module proxy"
  local missing=0 b
  for b in "${KUBE_BINS[@]}"; do [ -x "$KUBE_DIR/bin/$b" ] || missing=1; done
  if [ $missing = 0 ]; then skip_step "$KUBE_DIR/bin"; link_bins "$KUBE_DIR/bin" "${KUBE_BINS[@]}"; return; fi
  local src="$KUBE_DIR/src"
  mkdir -p "$src" "$KUBE_DIR/bin"
  # A wrapper module: requires k8s.io/kubernetes and replaces each ./staging/src module
  # (listed in its go.mod) with the published module at the matching v0 version.
  curl -fsS "${GOPROXY_URL:-https://proxy.golang.org}/k8s.io/kubernetes/@v/$KUBE_VERSION.mod" -o "$src/upstream.mod" \
    || die "could not download k8s.io/kubernetes@$KUBE_VERSION go.mod from the Go module proxy"
  {
    echo "module logpipeline.local/kube-wrapper"
    echo
    echo "go $(awk '/^go /{print $2; exit}' "$src/upstream.mod")"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$src/upstream.mod" \
      | awk -v v="$KUBE_STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}'
  } >"$src/go.mod"
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local pkgs=() b
  for b in "${KUBE_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  (cd "$src" && run_logged "$KUBE_DIR/build.log" go build -trimpath -ldflags "$ld" -o "$KUBE_DIR/bin/" "${pkgs[@]}")
  done_step "$KUBE_DIR/bin"
  link_bins "$KUBE_DIR/bin" "${KUBE_BINS[@]}"
}

build_etcd() {
  local dir="$LP_CACHE/etcd-$ETCD_VERSION"
  step "etcd $ETCD_VERSION from the Go module proxy"
  if [ -x "$dir/bin/etcd" ]; then skip_step "$dir/bin"; link_bins "$dir/bin" etcd; return; fi
  mkdir -p "$dir/src" "$dir/bin"
  cat >"$dir/src/go.mod" <<EOM
module logpipeline.local/etcd-wrapper

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOM
  # etcd's own main is in a module with replace directives; this is the same two lines.
  cat >"$dir/src/main.go" <<'EOM'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOM
  (cd "$dir/src" && run_logged "$dir/build.log" go build -trimpath -ldflags "-s -w" -o "$dir/bin/etcd" .)
  done_step "$dir/bin/etcd"
  link_bins "$dir/bin" etcd
}

build_helm() {
  local dir="$LP_CACHE/helm-$HELM_VERSION" major="${HELM_VERSION%%.*}"
  step "helm $HELM_VERSION from the Go module proxy"
  if [ -x "$dir/bin/helm" ]; then skip_step "$dir/bin"; link_bins "$dir/bin" helm; return; fi
  mkdir -p "$dir/bin"
  GOBIN="$dir/bin" run_logged "$dir/build.log" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION -X helm.sh/helm/$major/internal/version.gitTreeState=clean" \
    "helm.sh/helm/$major/cmd/helm@$HELM_VERSION"
  done_step "$dir/bin/helm"
  link_bins "$dir/bin" helm
}

build_controller_gen() {
  local dir="$LP_CACHE/controller-tools-$CONTROLLER_TOOLS_VERSION"
  step "controller-gen $CONTROLLER_TOOLS_VERSION from the Go module proxy"
  if [ -x "$dir/bin/controller-gen" ]; then skip_step "$dir/bin"; link_bins "$dir/bin" controller-gen; return; fi
  mkdir -p "$dir/bin"
  GOBIN="$dir/bin" run_logged "$dir/build.log" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_TOOLS_VERSION"
  done_step "$dir/bin/controller-gen"
  link_bins "$dir/bin" controller-gen
}

# go_install NAME VERSION PACKAGE: a `go install` of one command into the cache, once per version.
go_install() {
  local name="$1" version="$2" pkg="$3" dir="$LP_CACHE/$1-$2"
  step "$name $version from the Go module proxy"
  if [ -x "$dir/bin/$name" ]; then skip_step "$dir/bin"; link_bins "$dir/bin" "$name"; return; fi
  mkdir -p "$dir/bin"
  GOBIN="$dir/bin" run_logged "$dir/build.log" go install -trimpath -ldflags "-s -w" "$pkg@$version"
  [ -x "$dir/bin/$name" ] || mv "$dir/bin/$(basename "${pkg}")" "$dir/bin/$name"
  done_step "$dir/bin/$name"
  link_bins "$dir/bin" "$name"
}

build_pause() {
  local src="$HACK_DIR/node/pause" hash dir
  hash=$(cat "$src/main.go" "$src/go.mod" | sha256sum | cut -c1-12)
  dir="$LP_CACHE/pause-$hash"
  step "pause (the pod sandbox's process) from hack/node/pause"
  if [ -x "$dir/bin/pause" ]; then skip_step "$dir/bin"; link_bins "$dir/bin" pause; return; fi
  mkdir -p "$dir/bin"
  (cd "$src" && run_logged "$dir/build.log" go build -trimpath -ldflags "-s -w" -o "$dir/bin/pause" .)
  done_step "$dir/bin/pause"
  link_bins "$dir/bin" pause
}

build_node_tools() {
  build_pause
  go_install coredns "$COREDNS_VERSION" github.com/coredns/coredns
  go_install metrics-server "$METRICS_SERVER_VERSION" sigs.k8s.io/metrics-server/cmd/metrics-server
  go_install local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" github.com/rancher/local-path-provisioner
  go_install kube-router "$KUBE_ROUTER_VERSION" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
}

# The OpenTelemetry Collector distribution of hack/otelcol/builder.yaml, made by the
# Collector's builder (ocb) at the same release; keyed by the config's hash.
build_otelcol() {
  local cfg="$HACK_DIR/otelcol/builder.yaml" hash dir
  go_install builder "$OTELCOL_BUILDER_VERSION" go.opentelemetry.io/collector/cmd/builder
  hash=$(sha256sum "$cfg" | cut -c1-12)
  dir="$LP_CACHE/otelcol-$OTELCOL_BUILDER_VERSION-$hash"
  step "lp-otelcol (OpenTelemetry Collector $OTELCOL_BUILDER_VERSION: filelog, otlp, batch, otlphttp)"
  if [ -x "$dir/bin/lp-otelcol" ]; then skip_step "$dir/bin"; link_bins "$dir/bin" lp-otelcol; return; fi
  mkdir -p "$dir/src" "$dir/bin"
  # ocb writes the distribution's sources to output_path, then builds them there.
  sed "s|^  version: 0.165.0$|&\n  output_path: $dir/src|" "$cfg" >"$dir/builder.yaml"
  run_logged "$dir/build.log" "$LP_BIN/builder" --config "$dir/builder.yaml"
  mv "$dir/src/lp-otelcol" "$dir/bin/lp-otelcol"
  done_step "$dir/bin/lp-otelcol"
  link_bins "$dir/bin" lp-otelcol
}

# link_bins DIR NAME...: the cache's bin/ holds links to the versioned binaries.
link_bins() {
  local d="$1" b
  shift
  for b in "$@"; do ln -sfn "$d/$b" "$LP_BIN/$b"; done
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(etcd helm controller-gen kube)
for t in "${targets[@]}"; do
  case "$t" in
    kube) build_kube ;;
    etcd) build_etcd ;;
    helm) build_helm ;;
    controller-gen) build_controller_gen ;;
    node) build_node_tools ;;
    pause) build_pause ;;
    otelcol) build_otelcol ;;
    *) die "unknown Go tool '$t' (known: kube etcd helm controller-gen node otelcol)" ;;
  esac
done
