#!/usr/bin/env bash
# The main job: install, build, and boot the default guest (the project's test guest, two
# vCPUs, a virtio disk and a virtio-rng, each device in its own confined process), printing
# its serial console and a verdict. Where this host has no /dev/kvm the VM
# runs inside a QEMU TCG guest with nested SVM (scripts/nested-kvm.sh), and this says so.
# vTPM, measured boot and attestation join this job in later issues (README: Status).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ "${VMM_SKIP_INSTALL:-0}" = 1 ] || "$root/scripts/install-deps.sh"
"$root/scripts/build.sh" build
rm -f build/demo-disk.img
truncate -s 16M build/demo-disk.img
run=(build/bin/vmm run --kernel build/bin/testguest.elf --cpus 2 --memory 256M
     --disk path=build/demo-disk.img --rng --cmdline "expect_cpus=2 expect_virtio=blk,rng")
echo "demo: ${run[*]}"
set +e
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  "${run[@]}" | tee build/demo-serial.log
  rc=${PIPESTATUS[0]}
else
  echo "demo: this host has no usable /dev/kvm; running the VM under nested KVM in QEMU (TCG)"
  "$root/scripts/nested-kvm.sh" --copy build/bin --copy build/demo-disk.img -- "${run[@]}" |
    tee build/demo-serial.log
  rc=${PIPESTATUS[0]}
fi
set -e
if [ "$rc" -eq 0 ] && grep -q '^testguest: result PASS' build/demo-serial.log; then
  echo "demo: VERDICT: PASS (the guest's checks passed and it powered off cleanly)"
  exit 0
fi
echo "demo: VERDICT: FAIL (vmm exit status $rc)"
exit 1
