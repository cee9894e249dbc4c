#!/bin/sh
# bench/verify in its shortest form (1 round, 1 s a figure, 5 processes each): it must finish,
# say which bundle it used, find the results the same with and without the chain cache, print
# its table and goal line, and say what it could not run. The figures depend on the host and
# its load, so they are not judged.
#   verify_quick_test.sh BIN_DIR SOURCE_DIR
set -u
bin=$1 src=$2
out=$(mktemp "${TMPDIR:-/tmp}/verify-quick.XXXXXX")
trap 'rm -f "$out"' EXIT
VMM_SKIP_INSTALL=1 VMM_SKIP_BUILD=1 VMM_BENCH_BIN=$bin bash "$src/bench/verify/run.sh" 1 1 5 >"$out" 2>&1
status=$?
cat "$out"
fail=0
[ "$status" -eq 0 ] || { echo "FAIL: exit status $status, want 0"; fail=1; }
want() {  # ERE that some line of the output must match
  grep -Eq -- "$1" "$out" || { echo "FAIL: no line matches: $1"; fail=1; }
}
want '^bench/verify: bundle (real|synthetic): .*; [0-9]+ bytes$'
want '^bench/verify: vmm-verify says verdict: affirming$'
num='[0-9]+ \| [0-9.]+ \| [0-9]+%'
want "^\| \(a\) VerifyBundle, certificate chain verified every time \| $num \|$"
want "^\| \(b\) VerifyBundle, chain cached \(ChainCache\) \| $num \|$"
want "^\| \(b\) without the JSON: .* \| $num \|$"
want "^\| the quote signature alone .* \| $num \|$"
want "^\| tpm2_checkquote, a process per quote .* \| ($num|cannot run \| - \| -) \|$"
want "^\| vmm-verify, a process per bundle .* \| $num \|$"
want "^\| openssl speed ecdsap256, verify \(the ceiling\) \| [0-9]+ \| [0-9.]+ \| 100% \|$"
want '^goal \(\(b\) at least 50% of openssl ecdsap256 verify\): \(b\) [0-9]+% of [0-9]+/s: (met|NOT met); without the JSON [0-9]+%: (met|NOT met)$'
if ! command -v tpm2_checkquote >/dev/null; then
  want '^tpm2_checkquote: cannot run: not installed'
fi
exit "$fail"
