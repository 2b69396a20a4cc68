#!/usr/bin/env bash
# Shared helpers for hack/ scripts: cache location, progress lines, clear failures.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HACK_DIR/.." && pwd)"
# shellcheck source=versions.env
source "$HACK_DIR/versions.env"

# Everything installed lives outside the repo, keyed by version, reused when present.
LP_CACHE="${LP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/logpipeline}"
LP_BIN="$LP_CACHE/bin"
mkdir -p "$LP_BIN"

_lp_start_ts=$(date +%s)
_lp_step_ts=$_lp_start_ts
_lp_step_name=""

# step NAME: print a progress line and remember the step for error messages.
step() {
  _lp_step_name="$1"
  _lp_step_ts=$(date +%s)
  printf '==> %s\n' "$1" >&2
}

# done_step [DETAIL]: close the current step with its duration.
done_step() {
  local now
  now=$(date +%s)
  printf '    ok (%ss)%s\n' "$((now - _lp_step_ts))" "${1:+ — $1}" >&2
}

# skip_step REASON: the step's result is already cached.
skip_step() {
  printf '    cached%s\n' "${1:+ — $1}" >&2
}

total_time() {
  printf '==> total %ss\n' "$(($(date +%s) - _lp_start_ts))" >&2
}

# die MESSAGE [LOG]: a failure that names what failed, where to look and how to retry.
die() {
  printf '\nERROR: %s\n' "$1" >&2
  [ -n "${2:-}" ] && printf '       log: %s\n' "$2" >&2 && tail -n 20 "$2" >&2 || true
  printf '       retry: %s\n' "${LP_RETRY_HINT:-re-run the same make target; completed steps are cached}" >&2
  exit 1
}

_on_err() {
  local rc=$?
  [ -n "$_lp_step_name" ] && printf '\nERROR: step "%s" failed (exit %s)\n' "$_lp_step_name" "$rc" >&2
  printf '       retry: %s\n' "${LP_RETRY_HINT:-re-run the same make target; completed steps are cached}" >&2
}
trap _on_err ERR

# run_logged LOG CMD...: run a long command with its output in LOG; on failure show its tail.
run_logged() {
  local log="$1"
  shift
  mkdir -p "$(dirname "$log")"
  if ! "$@" >"$log" 2>&1; then
    trap - ERR
    die "step \"$_lp_step_name\" failed: $*" "$log"
  fi
}

# The JDK for Strimzi (its 1.x jars need Java 21+): first installed JDK with major >= 21.
find_java21() {
  local j v
  for j in ${JAVA21_HOME:+$JAVA21_HOME/bin/java} /usr/lib/jvm/*/bin/java; do
    [ -x "$j" ] || continue
    v=$("$j" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/{print $2}')
    if [ "${v%%.*}" -ge 21 ] 2>/dev/null; then
      echo "$j"
      return 0
    fi
  done
  return 1
}
