#!/usr/bin/env bash
# bench/boot: our VMM vs QEMU microvm booting the very same PVH ELF (the test guest, 2 vCPUs,
# 256 MiB), from process start to the first serial line and to exit, with peak RSS, for two
# payloads side by side, one table each:
#   full:          the test guest with every check, its #BP probe (int3) included;
#   kvm_pvm-safe:  the same guest with exceptions=no-int3, which skips that probe (the
#                  exceptions check says so in its detail), so that it runs none of the
#                  instructions ARCHITECTURE.md §5 lists as beyond kvm_pvm's emulator.
# On a VMX/SVM host both payloads give both columns and a ratio. On a kvm_pvm host QEMU stops
# at the full payload's int3 ("KVM internal error. Suberror: 1", then waits paused): boot_bench
# recognises that line, stops QEMU at once, prints its column as "cannot boot" with that line
# and keeps ours; the kvm_pvm-safe payload still gives a ratio. Any command that exits early,
# prints such a line, runs longer than --timeout or is silent for --stall is handled alike.
# Runs on /dev/kvm when the host has one; otherwise both run inside one QEMU TCG guest with
# nested SVM (scripts/nested-kvm.sh), side by side, so the comparison still holds.
#   bench/boot/run.sh [RUNS]        (default 10)
# Exit status: 0, or 1 when our VMM could not boot a payload (the tables are printed anyway).
set -euo pipefail
# shellcheck source=bench/common/bench.sh disable=SC1091  # checked on its own
. "$(dirname "${BASH_SOURCE[0]}")/../common/bench.sh"  # sets root and cds there
runs="${1:-10}"
bench_begin "[RUNS]" "$runs"
scripts/build.sh build

# QEMU and its firmware, copied into the build tree so the nested harness can carry them.
qdir=build/bench-qemu
bench_qemu "$qdir"

guest=build/bin/testguest.elf
# NAME|GUEST COMMAND LINE
payloads=("full|expect_cpus=2" "kvm_pvm-safe|expect_cpus=2 exceptions=no-int3")

# One script for both payloads, so that on the nested path they share one nested boot.
quote() { printf '%q ' "$@"; }
script="rc=0;"
for p in "${payloads[@]}"; do
  name=${p%%|*} args=${p#*|}
  # shellcheck disable=SC2054  # the commas are QEMU option syntax, not array separators
  cmd=(build/bin/boot_bench --runs "$runs" --marker "testguest: hello" --timeout 60 --stall 30
    --name vmm -- build/bin/vmm run --kernel "$guest" --cpus 2 --memory 256M --cmdline "$args"
    --vs-name qemu-microvm -- "$qdir/qemu-system-x86_64" -L "$qdir/share" -M microvm,acpi=on
    -accel kvm -cpu "$qemu_cpu" -smp 2 -m 256 -nodefaults -no-user-config -display none -serial stdio
    -no-reboot -kernel "$guest" -append "$args")
  script+=" echo; $(quote echo "bench/boot: payload $name: guest command line \"$args\"");"
  script+=" $(quote "${cmd[@]}") || rc=1;"
done
script+=" exit \$rc"

echo "bench/boot: ${runs} runs each (after one warm-up), alternating; guest = $guest;" \
  "payloads: ${payloads[*]%%|*}"
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  echo "bench/boot: on this host's /dev/kvm"
  bash -c "$script"
else
  echo "bench/boot: no /dev/kvm here; both VMMs run under nested KVM in one QEMU TCG guest"
  scripts/nested-kvm.sh --mem 2048 --timeout 1200 --copy build/bin --copy "$qdir" -- /bin/sh -c "$script"
fi
