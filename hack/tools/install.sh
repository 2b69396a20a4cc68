#!/usr/bin/env bash
# `make tools`: everything the project needs, installed or built into the cache
# (${XDG_CACHE_HOME:-~/.cache}/logpipeline, keyed by version) and reused when present.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
printf 'Installing tools into %s (cached by version; re-runs reuse them)\n' "$LP_CACHE" >&2
bash "$HACK_DIR/tools/apt.sh"
bash "$HACK_DIR/tools/npm.sh"
bash "$HACK_DIR/tools/maven.sh"
bash "$HACK_DIR/tools/python.sh"
# The node's tools too (pause, CoreDNS, metrics-server, local-path-provisioner, kube-router):
# the node's own test runs in make test; and the OpenTelemetry Collector OTLP's tests ship with.
bash "$HACK_DIR/tools/go-tools.sh" etcd helm controller-gen kube node otelcol
bash "$HACK_DIR/tools/crds.sh"
total_time
