#!/usr/bin/env bash
# The main job: install, build, provision the VM's vTPM (EK and AK certificates signed by a vTPM
# CA, the EKs checked with openssl), write the tenant's reference-value policy with `vmm
# measure`, boot the default guest (the project's test guest, two vCPUs, a virtio disk, a
# virtio-rng and the vTPM, each device in its own confined process) with measured boot, attest
# it with a fresh nonce (`vmm attest`) and verify the evidence with `vmm-verify` against the
# policy: affirming. Then it changes one byte of the kernel (a letter of the guest's hello
# line), boots and attests again: contraindicated, naming PCR 4 and the kernel's event. The
# guest's own checks include the TPM and the event log. Where this host has no /dev/kvm the VMs
# run inside a QEMU TCG guest with nested SVM (scripts/nested-kvm.sh), and this says so.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ "${VMM_SKIP_INSTALL:-0}" = 1 ] || "$root/scripts/install-deps.sh"
"$root/scripts/build.sh" build
rm -f build/demo-disk.img
truncate -s 16M build/demo-disk.img
# A fresh vTPM for the demo VM: sealed state and key in build/demo-vtpm, the CA beside it
# (an operator keeps the CA outside every VM's directory: /var/lib/vmm/vtpm-ca by default).
rm -rf build/demo-vtpm build/demo-vtpm-ca
mkdir -m 0700 build/demo-vtpm
tpm="state=build/demo-vtpm/state,key=build/demo-vtpm/key"
echo "demo: build/bin/vmm vtpm provision --vm $tpm --ca build/demo-vtpm-ca --vm-id demo"
build/bin/vmm vtpm provision --vm "$tpm" --ca build/demo-vtpm-ca --vm-id demo 2>&1 | grep '^vtpm:'
build/bin/vmm vtpm ek --vm "$tpm" --ca build/demo-vtpm-ca --out build/demo-vtpm 2>&1 | grep '^vtpm:'
for kind in rsa2048 eccp256; do
  openssl verify -CAfile build/demo-vtpm-ca/vtpm-ca.crt "build/demo-vtpm/ek-$kind.crt.pem" |
    sed 's/^/demo: openssl verify: /'
done
# VMM_DEMO_NESTED=1 takes the nested path on a host with /dev/kvm too (to try it).
if [ "${VMM_DEMO_NESTED:-0}" != 1 ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  where=()
  compat=()
else
  echo "demo: this host has no usable /dev/kvm; the VMs run under nested KVM in QEMU (TCG)"
  # Only the binaries the VMs need: all of build/bin (test binaries with debug info) would not
  # fit the nested guest's RAM.
  where=("$root/scripts/nested-kvm.sh" --copy build/demo-disk.img
         --copy build/demo-vtpm --copy build/demo-vtpm-ca --copy scripts/lib/demo-attest.sh
         --copy build/demo-policy.json --copy build/demo-tampered.elf)
  for b in vmm vmm-vcpu vmm-device vmm-vtpm vmm-verify testguest.elf; do
    where+=(--copy "build/bin/$b")
  done
  where+=(--)
  compat=(--kvm-compat off)  # nested SVM, whatever this host's KVM is
fi
# The guest lingers 30 s after its checks so that it is running when it is quoted.
vm=(--cpus 2 --memory 256M --disk path=build/demo-disk.img --rng --tpm "$tpm" "${compat[@]}"
    --cmdline "expect_cpus=2 expect_virtio=blk,rng expect_tpm=crb linger=30")
rm -f build/demo-policy.json
echo "demo: build/bin/vmm measure --kernel build/bin/testguest.elf ${vm[*]} --policy-out build/demo-policy.json"
build/bin/vmm measure --kernel build/bin/testguest.elf "${vm[@]}" \
  --policy-out build/demo-policy.json --policy-id demo-testguest >/dev/null
# The same kernel with one byte changed: "testguest: hello" becomes "testguest: Hello".
cp build/bin/testguest.elf build/demo-tampered.elf
offset=$(grep -obUa 'testguest: hello' build/demo-tampered.elf | head -n1 | cut -d: -f1)
printf 'H' | dd of=build/demo-tampered.elf bs=1 seek=$((offset + 11)) conv=notrunc status=none
attest() {  # NAME KERNEL
  local nonce
  nonce=$(openssl rand -hex 16)
  echo "demo: build/bin/vmm run --kernel $2 ${vm[*]} --api-socket build/demo-$1.sock"
  echo "demo: build/bin/vmm attest --api-socket build/demo-$1.sock --nonce $nonce --out build/demo-$1-evidence.json"
  "${where[@]}" sh scripts/lib/demo-attest.sh "$1" "$nonce" build/demo-policy.json \
    build/demo-vtpm-ca -- build/bin/vmm run --kernel "$2" "${vm[@]}"
}
set +e
attest good build/bin/testguest.elf
good=$?
attest tampered build/demo-tampered.elf
tampered=$?
set -e
verdict=build/demo-tampered-verdict.txt
if [ "$good" -eq 0 ] && [ "$tampered" -eq 1 ] && grep -q 'PCR 4' "$verdict" &&
   grep -q 'kernel' "$verdict"; then
  echo "demo: VERDICT: PASS (the measured guest attested affirming against the policy vmm"
  echo "demo: measure made; the kernel with one byte changed attested contraindicated:"
  grep -m1 'PCR 4' "$verdict" | sed 's/^/demo:   /'
  echo "demo: )"
  exit 0
fi
echo "demo: VERDICT: FAIL (first boot: vmm-verify exit $good, want 0 (affirming); one-byte kernel"
echo "demo: change: exit $tampered, want 1 (contraindicated) naming PCR 4 and the kernel)"
exit 1
