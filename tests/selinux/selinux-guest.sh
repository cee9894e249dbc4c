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
skip() {
  echo "SKIP: $*"
  exit 77
}
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not found (Debian package qemu-system-x86)"
[ -f "$vmm_selinux_devel_makefile" ] || skip "$vmm_selinux_devel_makefile missing (Debian package selinux-policy-dev)"
[ -d "$vmm_selinux_store" ] || skip "$vmm_selinux_store missing (Debian package selinux-policy-default)"
for tool in semodule checkmodule chcon gcc; do
  command -v "$tool" >/dev/null || skip "$tool not found (Debian packages semodule-utils, checkpolicy, coreutils, gcc)"
done
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || skip "no static libc (Debian package libc6-dev)"
for b in vmm-device vmm-vtpm; do
  [ -x "$BUILD/bin/$b" ] || {
    echo "FAIL: $BUILD/bin/$b not built"
    exit 1
  }
done
case $BUILD/ in "$ROOT"/*) ;; *)
  echo "FAIL: the build directory must be inside $ROOT"
  exit 1
  ;;
esac

# What the guest gets, under BUILD (inside the project, as nested-kvm.sh --copy wants).
STAGE=$BUILD/mac-selinux
rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/module"
cp "$ROOT"/selinux/vmm.te "$ROOT"/selinux/vmm.if "$ROOT"/selinux/vmm.fc "$HERE/vmm_guest_test.te" "$STAGE/module/"
vmm_selinux_build_module "$STAGE/module" vmm || exit 1
vmm_selinux_build_module "$STAGE/module" vmm_guest_test || exit 1
policy=$(vmm_selinux_link "$STAGE/root" "$STAGE/module/vmm.pp" "$STAGE/module/vmm_guest_test.pp") || exit 1
cp "$policy" "$STAGE/policy"
rm -rf "$STAGE/root"
cp "$(command -v chcon)" "$STAGE/bin/"
gcc -static -O2 -Wall -Wextra -Werror -o "$STAGE/bin/uds_exchange" "$ROOT/tests/mac/uds_exchange.c"
echo "selinux-guest: policy $(basename "$policy") ($(stat -c %s "$STAGE/policy") bytes): reference policy + vmm + vmm_guest_test"

rel() { echo "${1#"$ROOT"/}"; }
start=$(date +%s)
set +e
"$ROOT/scripts/nested-kvm.sh" --timeout 150 --mem 1024 --append "selinux=1 security=selinux enforcing=1" \
  --copy "$BUILD/bin/vmm-device" --copy "$BUILD/bin/vmm-vtpm" --copy "$STAGE" \
  --copy "$HERE/selinux-guest-inside.sh" \
  -- /bin/sh tests/selinux/selinux-guest-inside.sh "$(rel "$STAGE")" "$(rel "$BUILD/bin")"
rc=$?
set -e
echo "selinux-guest: exit $rc after $(($(date +%s) - start)) s"
exit "$rc"
