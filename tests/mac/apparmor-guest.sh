#!/usr/bin/env bash
# AppArmor under an enforcing kernel (issue 21 item 2, ARCHITECTURE.md "AppArmor"): boots Debian's
# cloud kernel in a QEMU TCG guest with apparmor=1 security=apparmor (scripts/nested-kvm.sh),
# loads two VMs' profiles as `vmm apparmor profile` generates them, runs each VM's
# vmm-device blk and vmm-vtpm under them and shows the kernel allowing their own files and
# denying the other VM's, images to the vTPM, /dev/kvm, exec and the network
# (tests/mac/apparmor-guest-inside.sh does that part).
#
# Usage: tests/mac/apparmor-guest.sh [BUILD_DIR]      (default: build)
# Exit status: 0 every check passed; 1 a check failed; 77 skipped (a tool is missing);
# 125 the QEMU harness failed (kernel download, boot).
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)
BUILD=$(cd -- "${1:-$ROOT/build}" && pwd -P)
# shellcheck source=tests/mac/lib/host.sh disable=SC1091  # checked on its own
. "$ROOT/tests/mac/lib/host.sh"
PARSER=$(command -v apparmor_parser || echo /usr/sbin/apparmor_parser)
[ -x "$PARSER" ] || mac_skip "apparmor_parser not found (Debian package apparmor)"
mac_require vmm vmm-device vmm-vtpm

# What the guest gets: the parser, its includes and the two VMs' profiles.
mac_stage mac-apparmor
mkdir -p "$STAGE/etc/apparmor.d" "$STAGE/profiles"
cp "$PARSER" "$STAGE/bin/apparmor_parser"
cp -r /etc/apparmor.d/tunables /etc/apparmor.d/abi "$STAGE/etc/apparmor.d/"
cp -r "$ROOT/apparmor/abstractions" "$STAGE/etc/apparmor.d/"
for v in a b; do
  "$BUILD/bin/vmm" apparmor profile --id "$v" --disk "/var/lib/vmm/$v/disk.img" \
    --disk-socket "/run/vmm/$v-blk0.sock" --tpm-state "/var/lib/vmm/$v/tpm" \
    --tpm-key "/var/lib/vmm/$v/key" --tpm-socket "/run/vmm/$v-tpm.ctrl" >"$STAGE/profiles/vm-$v"
done
echo "apparmor-guest: VM a's profiles as vmm generated them:"
sed 's/^/  /' "$STAGE/profiles/vm-a"

mac_boot apparmor-guest "apparmor=1 security=apparmor" tests/mac/apparmor-guest-inside.sh
