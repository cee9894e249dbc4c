#!/usr/bin/env bash
# bench/exits: the cost of single VM exits and of one virtio-blk request, our VMM vs QEMU
# microvm running the very same guest (bench/exits/guest, built as bin/exits_guest.elf):
#   (1) a 32-bit read of a virtio-mmio register (MagicValue): KVM_EXIT_MMIO, answered by the
#       VMM in user space (ours: MmioTransport in the vCPU process; QEMU: its virtio-mmio);
#   (2) a port read of the 16550 scratch register 0x3FF: KVM_EXIT_IO;
#   (3) a virtio-blk READ of one 512-byte sector, QueueNotify to used-ring update (ours:
#       ioeventfd -> `vmm-device blk` over vhost-user, irqfd back; QEMU: ioeventfd -> its
#       in-process virtio-blk and thread-pool pread, no separate device process).
# Runs on /dev/kvm when the host has one; otherwise both run inside one QEMU TCG guest with
# nested SVM (scripts/nested-kvm.sh), side by side, so the ratios still hold.
#   bench/exits/run.sh [ITERATIONS [RUNS]]   (defaults 10000 and 5; blk does ITERATIONS/10)
#   VMM_SKIP_INSTALL=1 skips scripts/install-deps.sh; VMM_SKIP_BUILD=1 skips scripts/build.sh.
set -euo pipefail
# shellcheck source=bench/common/bench.sh disable=SC1091  # checked on its own
. "$(dirname "${BASH_SOURCE[0]}")/../common/bench.sh"  # sets root and cds there
iters="${1:-10000}"
runs="${2:-5}"
bench_begin "[ITERATIONS [RUNS]]" "$iters" "$runs"
[ "${VMM_SKIP_BUILD:-0}" = 1 ] || scripts/build.sh build

# QEMU, its firmware and the disk image, in the build tree so the nested harness can carry them.
dir=build/bench-exits
bench_qemu "$dir"
rm -f "$dir/disk.img"
truncate -s 1M "$dir/disk.img"  # 2048 sectors; the guest reads them in turn (page cache)

guest=build/bin/exits_guest.elf
args="exits.n=$iters exits.blk_n=$((iters / 10 > 0 ? iters / 10 : 1))"
# Ours: the first virtio-mmio window is 0xD0000000 (vmm/contract/layout.h). QEMU microvm
# has 24 transports of 512 bytes from 0xFEB00000; the guest picks the one holding virtio-blk.
# shellcheck disable=SC2054  # the commas are QEMU option syntax, not array separators
cmd=(build/bin/exits_bench --runs "$runs"
  --name vmm -- build/bin/vmm run --kernel "$guest" --cpus 1 --memory 64M
  --disk "path=$dir/disk.img,readonly=on" --cmdline "$args exits.mmio=0xd0000000"
  --vs-name qemu -- "$dir/qemu-system-x86_64" -L "$dir/share" -M microvm,acpi=on
  -accel kvm -cpu "$qemu_cpu" -smp 1 -m 64 -nodefaults -no-user-config -display none -serial stdio
  -no-reboot -global virtio-mmio.force-legacy=false
  -drive "id=d0,file=$dir/disk.img,format=raw,if=none,readonly=on" -device virtio-blk-device,drive=d0
  -kernel "$guest" -append "$args exits.mmio=0xfeb00000 exits.stride=512 exits.slots=24")

echo "bench/exits: ${runs} runs each, alternating; ${iters} MMIO and port reads, $((iters / 10 > 0 ? iters / 10 : 1)) blk requests per run; guest = $guest"
echo "bench/exits: (3) has no like-for-like QEMU counterpart: QEMU serves virtio-blk in its own"
echo "  process (ioeventfd -> main loop -> thread-pool pread), ours in the confined vmm-device"
echo "  process over vhost-user; the qemu column is QEMU's default virtio-blk path."
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  echo "bench/exits: on this host's /dev/kvm"
  "${cmd[@]}"
else
  echo "bench/exits: no /dev/kvm here; both VMMs run under nested KVM in one QEMU TCG guest"
  scripts/nested-kvm.sh --mem 1024 --timeout 1800 --copy build/bin/vmm --copy build/bin/vmm-vcpu \
    --copy build/bin/vmm-device --copy build/bin/exits_bench --copy "$guest" --copy "$dir" -- "${cmd[@]}"
fi
