#!/bin/sh
# bench/measure in its shortest form (1 round, 1 s a figure, 1 boot run): it must finish,
# check its digests against `openssl dgst`, print its table and goal lines, and say what it
# skipped. The figures themselves depend on the host and its load, so they are not judged.
#   measure_quick_test.sh BIN_DIR SOURCE_DIR
set -u
# shellcheck source=quick_lib.sh
. "$(dirname "$0")/quick_lib.sh"
run_quick "$1" "$2" measure 1 1 1
want '^bench/measure: our digests of both inputs .* equal openssl dgst'"'"'s$'
for d in 'SHA-256' 'SHA-384' 'both banks, one pass'; do
  want "^\| $d \| [0-9]+ \| [0-9]+ \| [0-9]+( \(sum of times\))? \| [0-9]+%, [0-9]+% \|$"
done
want '^MeasureVm \(what vmm run --tpm measures: both banks over 74 MiB and the rest\): [0-9]+ ms of CPU'
want '^goal \(90% of openssl speed, same digest\): SHA-256: [0-9]+% of [0-9]+ MB/s at worst: (met|NOT met)$'
want '^goal \(90% of openssl speed, same digest\): SHA-384: '
want '^vmm measure \(10 MiB kernel, 64 MiB initramfs; .*\): median [0-9]+ ms'
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  want '^first serial line \(ms\) +[0-9.]+ +[0-9.]+ +[0-9.]+$'
else
  want '^bench/measure: no usable /dev/kvm here: the vmm run comparison .* is skipped$'
fi
exit "$fail"
