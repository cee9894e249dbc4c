#!/bin/sh
# Sourced by the benches' quick tests (measure_quick_test.sh, verify_quick_test.sh): runs one
# bench driver in its shortest form and checks lines of what it printed.
#   . "$(dirname "$0")/quick_lib.sh"
#   run_quick BIN_DIR SOURCE_DIR measure 1 1 1   # bench/measure/run.sh 1 1 1, output in $out
#   want '^some ERE$'                            # fail=1 unless a line matches
#   exit "$fail"

# out and fail are for the sourcing test to read.
# shellcheck disable=SC2034

# Runs bench/NAME/run.sh with ARGS (no install, no build, the binaries from BIN_DIR), prints
# its output, and sets out (its file, removed at exit) and fail (1 unless it exited 0).
run_quick() {  # BIN_DIR SOURCE_DIR NAME ARGS...
  _bin=$1 _src=$2 _name=$3
  shift 3
  out=$(mktemp "${TMPDIR:-/tmp}/$_name-quick.XXXXXX")
  trap 'rm -f "$out"' EXIT
  VMM_SKIP_INSTALL=1 VMM_SKIP_BUILD=1 VMM_BENCH_BIN=$_bin bash "$_src/bench/$_name/run.sh" "$@" >"$out" 2>&1
  _status=$?
  cat "$out"
  fail=0
  [ "$_status" -eq 0 ] || { echo "FAIL: exit status $_status, want 0"; fail=1; }
}

want() {  # ERE that some line of the output must match
  grep -Eq -- "$1" "$out" || { echo "FAIL: no line matches: $1"; fail=1; }
}
