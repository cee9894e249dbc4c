#!/usr/bin/env bash
# SELinux under an enforcing kernel (issue 21 item 2, ARCHITECTURE.md §11 "SELinux"): links our
# module (selinux/) and a test-only helper module (vmm_guest_test.te, never installed) with
# Debian's reference policy, boots Debian's cloud kernel in a QEMU TCG guest with
# selinux=1 security=selinux enforcing=1 (scripts/nested-kvm.sh), loads that policy there,
# runs two VMs' vmm-device blk and vmm-vtpm in their domains at their MCS levels and shows
# the kernel allowing each its own files and denying the other VM's and the other role's,
# with the AVC records read back (selinux-guest-inside.sh does that part).
#
# Usage: tests/selinux/selinux-guest.sh [BUILD_DIR]      (default: build)
# Exit status: 0 every check passed; 1 a check failed; 77 skipped (a tool is missing);
# 125 the QEMU harness failed (kernel download, boot).
set -euo pipefail
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd -- "$HERE/../.." && pwd -P)
BUILD=$(cd -- "${1:-$ROOT/build}" && pwd -P)
# shellcheck source-path=SCRIPTDIR source=policy_lib.sh
. "$HERE/policy_lib.sh"
# shellcheck source=tests/mac/lib/host.sh disable=SC1091  # checked on its own
. "$ROOT/tests/mac/lib/host.sh"
[ -f "$vmm_selinux_devel_makefile" ] || mac_skip "$vmm_selinux_devel_makefile missing (Debian package selinux-policy-dev)"
[ -d "$vmm_selinux_store" ] || mac_skip "$vmm_selinux_store missing (Debian package selinux-policy-default)"
for tool in semodule checkmodule chcon; do
  command -v "$tool" >/dev/null || mac_skip "$tool not found (Debian packages semodule-utils, checkpolicy, coreutils)"
done
mac_require vmm-device vmm-vtpm

# What the guest gets: the linked policy and chcon.
mac_stage mac-selinux
mkdir -p "$STAGE/module"
cp "$ROOT"/selinux/vmm.te "$ROOT"/selinux/vmm.if "$ROOT"/selinux/vmm.fc "$HERE/vmm_guest_test.te" "$STAGE/module/"
vmm_selinux_build_module "$STAGE/module" vmm || exit 1
vmm_selinux_build_module "$STAGE/module" vmm_guest_test || exit 1
policy=$(vmm_selinux_link "$STAGE/root" "$STAGE/module/vmm.pp" "$STAGE/module/vmm_guest_test.pp") || exit 1
cp "$policy" "$STAGE/policy"
rm -rf "$STAGE/root"
cp "$(command -v chcon)" "$STAGE/bin/"
echo "selinux-guest: policy $(basename "$policy") ($(stat -c %s "$STAGE/policy") bytes): reference policy + vmm + vmm_guest_test"

mac_boot selinux-guest "selinux=1 security=selinux enforcing=1" tests/selinux/selinux-guest-inside.sh
