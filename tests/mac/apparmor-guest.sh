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
skip() { echo "SKIP: $*"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not found (Debian package qemu-system-x86)"
PARSER=$(command -v apparmor_parser || echo /usr/sbin/apparmor_parser)
[ -x "$PARSER" ] || skip "apparmor_parser not found (Debian package apparmor)"
command -v gcc >/dev/null || skip "gcc not found"
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || skip "no static libc (Debian package libc6-dev)"
for b in vmm vmm-device vmm-vtpm; do
  [ -x "$BUILD/bin/$b" ] || { echo "FAIL: $BUILD/bin/$b not built"; exit 1; }
done
case $BUILD/ in "$ROOT"/*) ;; *) echo "FAIL: the build directory must be inside $ROOT"; exit 1 ;; esac

# What the guest gets, under BUILD (inside the project, as nested-kvm.sh --copy wants).
STAGE=$BUILD/mac-apparmor
rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/etc/apparmor.d" "$STAGE/profiles"
cp "$PARSER" "$STAGE/bin/apparmor_parser"
cp -r /etc/apparmor.d/tunables /etc/apparmor.d/abi "$STAGE/etc/apparmor.d/"
cp -r "$ROOT/apparmor/abstractions" "$STAGE/etc/apparmor.d/"
gcc -static -O2 -Wall -Wextra -Werror -o "$STAGE/bin/uds_exchange" "$ROOT/tests/mac/uds_exchange.c"
for v in a b; do
  "$BUILD/bin/vmm" apparmor profile --id "$v" --disk "/var/lib/vmm/$v/disk.img" \
    --disk-socket "/run/vmm/$v-blk0.sock" --tpm-state "/var/lib/vmm/$v/tpm" \
    --tpm-key "/var/lib/vmm/$v/key" --tpm-socket "/run/vmm/$v-tpm.ctrl" >"$STAGE/profiles/vm-$v"
done
echo "apparmor-guest: VM a's profiles as vmm generated them:"
sed 's/^/  /' "$STAGE/profiles/vm-a"

rel() { echo "${1#"$ROOT"/}"; }
start=$(date +%s)
set +e
"$ROOT/scripts/nested-kvm.sh" --timeout 150 --mem 1024 --append "apparmor=1 security=apparmor" \
  --copy "$BUILD/bin/vmm-device" --copy "$BUILD/bin/vmm-vtpm" --copy "$STAGE" \
  --copy "$ROOT/tests/mac/apparmor-guest-inside.sh" \
  -- /bin/sh tests/mac/apparmor-guest-inside.sh "$(rel "$STAGE")" "$(rel "$BUILD/bin")"
rc=$?
set -e
echo "apparmor-guest: exit $rc after $(($(date +%s) - start)) s"
exit "$rc"
