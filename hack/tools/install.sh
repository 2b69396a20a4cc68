#!/usr/bin/env bash
# `make tools`: everything the project needs, installed or built into the cache
# (${XDG_CACHE_HOME:-~/.cache}/logpipeline, keyed by version) and reused when present.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
printf 'Installing tools into %s (cached by version; re-runs reuse them)\n' "$LP_CACHE" >&2
bash "$HACK_DIR/tools/apt.sh"
bash "$HACK_DIR/tools/npm.sh"
bash "$HACK_DIR/tools/maven.sh"
bash "$HACK_DIR/tools/go-tools.sh" etcd helm controller-gen kube pause
# The node's tools (make stack-up NODE=1): LP_NODE=1 also adds its Debian packages above.
[ "${LP_NODE:-0}" = 1 ] && bash "$HACK_DIR/tools/go-tools.sh" node
bash "$HACK_DIR/tools/crds.sh"
total_time
