#!/usr/bin/env bash
# Third-party CRDs generated at set-up (never checked in):
#   ServiceMonitor and PrometheusRule, by controller-gen over the prometheus-operator API
#   Go module. (The KafkaTopic CRD is generated from Strimzi's jars in maven.sh.)
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

OUT="$LP_CACHE/crds/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
MOD=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring
step "ServiceMonitor + PrometheusRule CRDs from $MOD@$PROMETHEUS_OPERATOR_VERSION"
if [ -s "$OUT/monitoring.coreos.com_servicemonitors.yaml" ] && [ -s "$OUT/monitoring.coreos.com_prometheusrules.yaml" ]; then
  skip_step "$OUT"
  exit 0
fi
[ -x "$LP_BIN/controller-gen" ] || die "controller-gen is missing: run hack/tools/go-tools.sh controller-gen"
export GOFLAGS="-mod=mod -buildvcs=false"
work="$LP_CACHE/src/prometheus-operator-apis-$PROMETHEUS_OPERATOR_VERSION"
log="$LP_CACHE/logs/crds-prometheus-operator.log"
rm -rf "$work" && mkdir -p "$work" "$OUT"
run_logged "$log" go mod download -json "$MOD@$PROMETHEUS_OPERATOR_VERSION"
src="$(go env GOMODCACHE)/$MOD@$PROMETHEUS_OPERATOR_VERSION"
# controller-gen loads packages with the go tool, which needs a writable module root.
cp -r "$src"/. "$work/" && chmod -R u+w "$work"
gen="$work/.generated"
(cd "$work" && run_logged "$log" "$LP_BIN/controller-gen" crd:crdVersions=v1,allowDangerousTypes=true \
  paths=./v1 "output:crd:dir=$gen")
cp "$gen/monitoring.coreos.com_servicemonitors.yaml" "$gen/monitoring.coreos.com_prometheusrules.yaml" "$OUT/"
rm -rf "$work"
done_step "$OUT"
