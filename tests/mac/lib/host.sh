#!/usr/bin/env bash
# The host side shared by the MAC guest tests (tests/mac/apparmor-guest.sh,
# tests/selinux/selinux-guest.sh; ARCHITECTURE.md "AppArmor" and §11 "SELinux"): the checks
# for the tools every such test needs, the staging directory the guest gets, and the boot
# through scripts/nested-kvm.sh. Sourced after ROOT and BUILD are set.

# mac_skip REASON: exit 77, the tests' "skipped" status.
mac_skip() {
  echo "SKIP: $*"
  exit 77
}

# mac_require BINARY...: QEMU, gcc and a static libc are here, and BUILD/bin holds each BINARY,
# inside ROOT (nested-kvm.sh copies only files inside the project).
mac_require() {
  command -v qemu-system-x86_64 >/dev/null || mac_skip "qemu-system-x86_64 not found (Debian package qemu-system-x86)"
  command -v gcc >/dev/null || mac_skip "gcc not found"
  [ -e /usr/lib/x86_64-linux-gnu/libc.a ] || mac_skip "no static libc (Debian package libc6-dev)"
  local b
  for b in "$@"; do
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
}

# mac_stage NAME: a fresh STAGE=BUILD/NAME (inside the project, as nested-kvm.sh --copy wants)
# with bin/uds_exchange, the guest's static Unix-socket client.
mac_stage() {
  STAGE=$BUILD/$1
  rm -rf "$STAGE"
  mkdir -p "$STAGE/bin"
  gcc -static -O2 -Wall -Wextra -Werror -o "$STAGE/bin/uds_exchange" "$ROOT/tests/mac/uds_exchange.c"
}

# mac_boot TAG APPEND INSIDE: boots the guest kernel with APPEND on its command line, with
# vmm-device, vmm-vtpm, STAGE, the inside library and INSIDE (a script in the project), runs
# INSIDE STAGE BIN there and exits with its status (125: the harness failed).
mac_boot() {
  local tag=$1 append=$2 inside=$3 start rc
  start=$(date +%s)
  set +e
  "$ROOT/scripts/nested-kvm.sh" --timeout 150 --mem 1024 --append "$append" \
    --copy "$BUILD/bin/vmm-device" --copy "$BUILD/bin/vmm-vtpm" --copy "$STAGE" \
    --copy "$ROOT/tests/mac/lib/inside.sh" --copy "$ROOT/$inside" \
    -- /bin/sh "$inside" "${STAGE#"$ROOT"/}" "${BUILD#"$ROOT"/}/bin"
  rc=$?
  set -e
  echo "$tag: exit $rc after $(($(date +%s) - start)) s"
  exit "$rc"
}
