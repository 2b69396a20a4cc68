#!/usr/bin/env bash
# Runs vitest on Node 24 and writes its JSON report (for .ci/run's summary line).
# Usage: hack/test.sh unit|integration|e2e|all   (all: unit and integration, then e2e on the node)
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
  e2e) exec bash "$HACK_DIR/e2e.sh" "$report" ;;
  *) die "usage: hack/test.sh unit|integration|e2e|all" ;;
esac
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" = "$NODE_MAJOR" ] || die "tests must run on Node $NODE_MAJOR, found $(node --version) at $(command -v node): run make npm"
trap - ERR
if [ "${1:-all}" != all ]; then
  exec vitest run "${projects[@]}" --reporter=default --reporter=json --outputFile.json="$report"
fi
# all: the suites in two runs (the e2e suite needs the node, the integration tests a stack
# without one), one report summed from both for .ci/run.
set +e
vitest run "${projects[@]}" --reporter=default --reporter=json --outputFile.json="$report.integration"
rc_integration=$?
bash "$HACK_DIR/e2e.sh" "$report.e2e"
rc_e2e=$?
node -e '
  const fs = require("fs");
  const path = require("path");
  const [out, ...parts] = process.argv.slice(1);
  const keys = ["numTotalTests", "numPassedTests", "numFailedTests", "numPendingTests", "numTodoTests"];
  const sum = Object.fromEntries(keys.map((k) => [k, 0]));
  const failures = [];
  // Checks of the development toolchain (the stack, the tools, the kind path) are counted
  // apart from the product tests: test/integration/toolchain.
  const toolchain = { passed: 0, failed: 0 };
  for (const p of parts) {
    let r = {};
    try { r = JSON.parse(fs.readFileSync(p, "utf8")); } catch {
      sum.numFailedTests += 1;
      failures.push(`${path.basename(p)}: no report (the run stopped before writing it)`);
      continue;
    }
    for (const k of keys) sum[k] += r[k] ?? 0;
    for (const file of r.testResults ?? []) {
      const name = path.relative(process.cwd(), file.name ?? "");
      if (name.startsWith("test/integration/toolchain/"))
        for (const t of file.assertionResults ?? []) {
          if (t.status === "passed") toolchain.passed++;
          if (t.status === "failed") toolchain.failed++;
        }
      for (const t of file.assertionResults ?? []) {
        if (t.status !== "failed") continue;
        const why = String(t.failureMessages?.[0] ?? "").split("\n")[0].slice(0, 300);
        failures.push(`${name} > ${t.fullName}: ${why}`);
      }
      // A file that failed with no failed test (its beforeAll or import threw, its tests were
      // skipped) is a failure too, counted once, with the reason vitest gives.
      const failedTests = (file.assertionResults ?? []).filter((t) => t.status === "failed").length;
      if (file.status === "failed" && failedTests === 0) {
        sum.numFailedTests += 1;
        if (name.startsWith("test/integration/toolchain/")) toolchain.failed++;
        failures.push(`${name}: the file failed before or around its tests: ${String(file.message ?? "").split("\n")[0].slice(0, 300)}`);
      }
    }
  }
  fs.writeFileSync(out, JSON.stringify({ ...sum, toolchain, success: sum.numFailedTests === 0, failures }));
' "$report" "$report.integration" "$report.e2e"
rm -f "$report.integration" "$report.e2e"
[ $rc_integration -eq 0 ] && [ $rc_e2e -eq 0 ]
