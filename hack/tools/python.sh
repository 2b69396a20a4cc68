#!/usr/bin/env bash
# Python packages the tests use, in a virtualenv in the cache keyed by the requirements' hash:
# the OpenTelemetry Python SDK with its OTLP/HTTP exporter (hack/tools/python/otel-requirements.txt).
# $LP_BIN/otel-python runs the venv's interpreter.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

command -v python3 >/dev/null || die "python3 is not installed: apt-get install python3 python3-venv"
req="$HACK_DIR/tools/python/otel-requirements.txt"
hash=$(sha256sum "$req" | cut -c1-12)
venv="$LP_CACHE/python-otel-$hash"
step "OpenTelemetry Python SDK (PyPI, $(grep -c '==' "$req") pinned packages)"
if [ -x "$venv/bin/python" ] && [ -f "$venv/.complete" ]; then
  skip_step "$venv"
else
  rm -rf "$venv"
  run_logged "$LP_CACHE/logs/python-otel.log" python3 -m venv "$venv"
  run_logged "$LP_CACHE/logs/python-otel.log" "$venv/bin/pip" install --no-input -q -r "$req"
  touch "$venv/.complete"
  done_step "$venv"
fi
# A wrapper, not a link: a venv's interpreter finds its packages from where it is started.
rm -f "$LP_BIN/otel-python"
printf '#!/bin/sh\nexec "%s/bin/python" "$@"\n' "$venv" >"$LP_BIN/otel-python"
chmod +x "$LP_BIN/otel-python"
