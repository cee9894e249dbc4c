#!/usr/bin/env bash
# bench/linux-boot: the default Linux guest (Debian's cloud kernel by its PVH entry + the
# busybox initramfs of scripts/make-default-guest.sh) under our VMM and under QEMU with KVM
# (microvm, the same vmlinux, initramfs and command line), alternating, with the time from
# process start to each milestone: "Linux version", "Run /init", "VMM-GUEST: done" (the
# guest's checks ran) and "reboot: Power down", and the process exit. Medians over RUNS.
#
#   bench/linux-boot/run.sh [RUNS]     (default 3)
#
# On a host with /dev/kvm both run there. On a kvm_pvm host QEMU 7.2 is expected to stop at
# KVM's first emulation failure (DESIGN.md §6): the table then shows the last milestone it
# reached and its exit status. Without /dev/kvm (this project's CI hosts) both run in one
# QEMU TCG guest with nested SVM (scripts/nested-kvm.sh --mttcg), one vCPU each, where the
# kvm_pvm compatibility module is off (auto) and absolute times are ~10x real hardware.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
runs="${1:-3}"
[ "${VMM_SKIP_INSTALL:-0}" = 1 ] || scripts/install-deps.sh
[ "${VMM_SKIP_BUILD:-0}" = 1 ] || scripts/build.sh build
scripts/make-default-guest.sh -q

qdir=build/bench-qemu
mkdir -p "$qdir/share"
cp -f "$(command -v qemu-system-x86_64)" "$qdir/"
cp -f /usr/share/qemu/bios-microvm.bin /usr/share/qemu/pvh.bin /usr/share/qemu/linuxboot_dma.bin "$qdir/share/"
cpu=host
[ -d /sys/module/kvm_pvm ] && cpu=kvm64,-pni  # DESIGN.md section 6: what QEMU needs on kvm_pvm

g=build/default-guest
cmdline="console=ttyS0 panic=-1"
ms=(--timeout 900 --stall 240
  --milestone linux-version='Linux version ' --milestone run-init='Run /init'
  --milestone done='VMM-GUEST: done' --milestone power-down='reboot: Power down')
vmm=(build/bin/milestones "${ms[@]}" -- build/bin/vmm run --kernel $g/vmlinux
  --initramfs $g/initramfs.cpio.gz --cmdline "$cmdline" --cpus 1 --memory 512M)
qemu=(build/bin/milestones "${ms[@]}" -- "$qdir/qemu-system-x86_64" -L "$qdir/share"
  -M microvm,acpi=on -accel kvm -cpu "$cpu" -smp 1 -m 512 -nodefaults -no-user-config
  -display none -serial stdio -no-reboot -kernel $g/vmlinux -initrd $g/initramfs.cpio.gz
  -append "$cmdline")

# One shell loop, so that on the nested path both share one nested boot.
quote() { printf '%q ' "$@"; }
loop="for i in \$(seq $runs); do echo 'RUN vmm'; $(quote "${vmm[@]}") </dev/null 2>&1;
  echo 'RUN qemu'; $(quote "${qemu[@]}") </dev/null 2>&1; done"
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
awk '
  /^RUN / { who = $2; next }
  /^milestone / {
    name = $2; v = $3
    if (name == "exit") { st = $4; sub("status=", "", st); status[who] = status[who] " " st }
    if (v == "missing") { miss[who, name]++; next }
    n = ++cnt[who, name]; val[who, name, n] = v
  }
  function median(who, name,   n, i, j, t, a) {
    n = cnt[who, name]; if (n == 0) return "-"
    for (i = 1; i <= n; i++) a[i] = val[who, name, i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((n + 1) / 2)]
  }
  END {
    split("linux-version run-init done power-down exit", order, " ")
    printf "| milestone (ms from process start, median) | vmm | QEMU microvm + KVM | ratio |\n|---|---|---|---|\n"
    for (k = 1; k <= 5; k++) {
      m = order[k]; a = median("vmm", m); b = median("qemu", m)
      r = (a != "-" && b != "-" && b > 0) ? sprintf("%.2f", a / b) : "-"
      printf "| %s | %s | %s | %s |\n", m, a, b, r
    }
    printf "\nexit statuses: vmm%s; qemu%s\n", status["vmm"], status["qemu"]
  }' "$out"
echo "bench/linux-boot: raw log in $out"
