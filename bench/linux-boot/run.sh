#!/usr/bin/env bash
# bench/linux-boot: the default Linux guest (Debian's cloud kernel by its PVH entry + the
# busybox initramfs of scripts/make-default-guest.sh) under our VMM and under QEMU with KVM
# (microvm, the same vmlinux, initramfs and command line), alternating, with the time from
# process start to each milestone: "Linux version", "Run /init", "VMM-GUEST: done" (the
# guest's checks ran) and "reboot: Power down", and the process exit. Medians over RUNS.
#
#   bench/linux-boot/run.sh [RUNS]     (default 3)
#
# A runner that cannot boot the guest does not stall or fail the bench: milestones(1) stops
# it at once on a --fail-on line (QEMU's "KVM internal error", after which it pauses instead
# of exiting; on a kvm_pvm host QEMU 7.2 stops at KVM's first emulation failure, ARCHITECTURE.md
# §6), or after --stall / --timeout. A runner none of whose runs exited 0 reads "cannot boot"
# in the table, with its first error line and the milestones it reached below it
# (bench/linux-boot/table.awk). Exit status: 0, or 1 when our VMM could not boot it (the table
# is printed anyway).
# On a host with /dev/kvm both run there. Without /dev/kvm (this project's CI hosts) both run
# in one QEMU TCG guest with nested SVM (scripts/nested-kvm.sh --mttcg), one vCPU each, where
# the kvm_pvm compatibility module is off (auto) and absolute times are ~10x real hardware.
set -euo pipefail
# shellcheck source=bench/common/bench.sh disable=SC1091  # checked on its own
. "$(dirname "${BASH_SOURCE[0]}")/../common/bench.sh"  # sets root and cds there
runs="${1:-3}"
[ "${VMM_SKIP_INSTALL:-0}" = 1 ] || scripts/install-deps.sh
[ "${VMM_SKIP_BUILD:-0}" = 1 ] || scripts/build.sh build
scripts/make-default-guest.sh -q

qdir=build/bench-qemu
bench_qemu "$qdir"

g=build/default-guest
cmdline="console=ttyS0 panic=-1"
ms=(--timeout 900 --stall 240 --fail-on 'KVM internal error' --fail-on 'KVM: entry failed'
  --milestone linux-version='Linux version ' --milestone run-init='Run /init'
  --milestone done='VMM-GUEST: done' --milestone power-down='reboot: Power down')
vmm=(build/bin/milestones "${ms[@]}" -- build/bin/vmm run --kernel "$g/vmlinux"
  --initramfs "$g/initramfs.cpio.gz" --cmdline "$cmdline" --cpus 1 --memory 512M)
# shellcheck disable=SC2054  # the commas are QEMU option syntax, not array separators
qemu=(build/bin/milestones "${ms[@]}" -- "$qdir/qemu-system-x86_64" -L "$qdir/share"
  -M microvm,acpi=on -accel kvm -cpu "$qemu_cpu" -smp 1 -m 512 -nodefaults -no-user-config
  -display none -serial stdio -no-reboot -kernel "$g/vmlinux" -initrd "$g/initramfs.cpio.gz"
  -append "$cmdline")

# One shell loop, so that on the nested path both share one nested boot. A run's own status
# is in the log ("milestone exit"); the loop ends 0, so that a failed run cannot stop the
# script before its table.
quote() { printf '%q ' "$@"; }
loop="for i in \$(seq $runs); do echo 'RUN vmm'; $(quote "${vmm[@]}") </dev/null 2>&1;
  echo 'RUN qemu'; $(quote "${qemu[@]}") </dev/null 2>&1; done; true"
out=build/bench-linux-boot.log
echo "bench/linux-boot: $runs runs each, alternating: $g/vmlinux + initramfs, 1 vCPU, 512 MiB"
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  echo "bench/linux-boot: on this host's /dev/kvm"
  bash -c "$loop" >"$out"
else
  echo "bench/linux-boot: no /dev/kvm here; both run under nested KVM (QEMU TCG, --mttcg)"
  scripts/nested-kvm.sh --mttcg --mem 2048 --timeout 3600 --copy build/bin --copy "$qdir" \
    --copy $g/vmlinux --copy $g/initramfs.cpio.gz -- /bin/sh -c "$loop" >"$out"
fi

# "milestone NAME MS" lines (milestones(1)); medians per runner and milestone.
status=0
awk -f bench/linux-boot/table.awk "$out" || status=$?
echo "bench/linux-boot: raw log in $out"
exit "$status"
