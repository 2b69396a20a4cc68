#!/usr/bin/env bash
# Runs vitest on Node 24 and writes its JSON report (for .ci/run's summary line).
# Usage: hack/test.sh unit|integration|all
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
export PATH="$REPO_ROOT/node_modules/.bin:$LP_BIN:$PATH"
report="${LP_TEST_REPORT:-$REPO_ROOT/.vitest-report.json}"
rm -f "$report"
projects=()
case "${1:-all}" in
  unit) projects=(--project unit) ;;
  integration) projects=(--project integration) ;;
  all) projects=(--project unit --project integration) ;;
  *) die "usage: hack/test.sh unit|integration|all" ;;
esac
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" = "$NODE_MAJOR" ] || die "tests must run on Node $NODE_MAJOR, found $(node --version) at $(command -v node): run make npm"
trap - ERR
vitest run "${projects[@]}" --reporter=default --reporter=json --outputFile.json="$report"
