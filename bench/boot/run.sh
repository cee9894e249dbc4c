#!/usr/bin/env bash
# bench/boot: our VMM vs QEMU microvm booting the very same PVH ELF (the test guest, 2 vCPUs,
# 256 MiB), from process start to the first serial line and to exit, with peak RSS.
# Runs on /dev/kvm when the host has one; otherwise both run inside one QEMU TCG guest with
# nested SVM (scripts/nested-kvm.sh), side by side, so the comparison still holds.
#   bench/boot/run.sh [RUNS]        (default 10)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
runs="${1:-10}"
[ "${VMM_SKIP_INSTALL:-0}" = 1 ] || scripts/install-deps.sh
scripts/build.sh build

# QEMU and its firmware, copied into the build tree so the nested harness can carry them.
qdir=build/bench-qemu
mkdir -p "$qdir/share"
cp -f "$(command -v qemu-system-x86_64)" "$qdir/"
cp -f /usr/share/qemu/bios-microvm.bin /usr/share/qemu/pvh.bin /usr/share/qemu/linuxboot_dma.bin "$qdir/share/"
cpu=host
[ -d /sys/module/kvm_pvm ] && cpu=kvm64,-pni  # DESIGN.md section 6: what QEMU needs on kvm_pvm

guest=build/bin/testguest.elf
cmd=(build/bin/boot_bench --runs "$runs" --marker "testguest: hello"
  --name vmm -- build/bin/vmm run --kernel "$guest" --cpus 2 --memory 256M --cmdline expect_cpus=2
  --vs-name qemu-microvm -- "$qdir/qemu-system-x86_64" -L "$qdir/share" -M microvm,acpi=on
  -accel kvm -cpu "$cpu" -smp 2 -m 256 -nodefaults -no-user-config -display none -serial stdio
  -no-reboot -kernel "$guest" -append expect_cpus=2)

echo "bench/boot: ${runs} runs each, alternating; guest = $guest"
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  echo "bench/boot: on this host's /dev/kvm"
  "${cmd[@]}"
else
  echo "bench/boot: no /dev/kvm here; both VMMs run under nested KVM in one QEMU TCG guest"
  scripts/nested-kvm.sh --mem 2048 --timeout 1200 --copy build/bin --copy "$qdir" -- "${cmd[@]}"
fi
