#!/bin/sh
# bench/verify in its shortest form (1 round, 1 s a figure, 5 processes each): it must finish,
# say which bundle it used, find the results the same with and without the chain cache, print
# its table and goal line, and say what it could not run. The figures depend on the host and
# its load, so they are not judged.
#   verify_quick_test.sh BIN_DIR SOURCE_DIR
set -u
# shellcheck source=quick_lib.sh
. "$(dirname "$0")/quick_lib.sh"
run_quick "$1" "$2" verify 1 1 5
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
