#!/bin/sh
# The inside of tests/mac/apparmor-guest.sh, run by busybox sh in a QEMU guest booted with
# apparmor=1 security=apparmor (ARCHITECTURE.md "AppArmor"): loads two VMs' generated profiles,
# starts each VM's vmm-device blk and vmm-vtpm under them, and checks that the kernel
# allows each its own files and denies the rest, reading the DENIED records back from dmesg.
# Usage (cwd /work): apparmor-guest-inside.sh STAGE_DIR BIN_DIR
set -u
S=$1
B=$2
TAG=apparmor-guest
# as PROFILE COMMAND...: exec COMMAND under PROFILE, as the manager's SpawnRole does
# (change_onexec through the process's own attr file).
as() {
  sh -c 'printf "exec %s" "$0" >/proc/self/attr/apparmor/exec && exec "$@"' "$@"
}
# pids_of PROFILE: the pids the kernel shows running under PROFILE.
pids_of() { label_pids "$1 (enforce)"; }
# shellcheck source=tests/mac/lib/inside.sh disable=SC1091  # checked on its own
. tests/mac/lib/inside.sh

mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
[ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] ||
  fatal "AppArmor is not enabled in the guest kernel"
echo "apparmor-guest: kernel $(uname -r), LSMs: $(cat /sys/kernel/security/lsm)"

# The two VMs' files, where their profiles (made by `vmm apparmor profile`) say they are:
# /var/lib/vmm/<vm>/ holds the VM's image, its vTPM key and state directory.
mkdir -p /run/vmm
for v in a b; do make_vm_files "/var/lib/vmm/$v"; done

"$S/bin/apparmor_parser" --replace --skip-cache -I "$S/etc/apparmor.d" "$S/profiles/vm-a" "$S/profiles/vm-b" ||
  fatal "apparmor_parser could not load the profiles"
loaded=$(grep -c '^vmm-[ab]-' /sys/kernel/security/apparmor/profiles)
grep '^vmm-' /sys/kernel/security/apparmor/profiles | sed 's/^/  loaded: /'
if [ "$loaded" -eq 6 ]; then ok "6 profiles loaded in enforce mode"; else bad "$loaded of 6 profiles loaded"; fi

# denied PROFILE NAME OPERATION: the kernel logged that PROFILE was refused NAME.
denied() {
  dmesg | grep 'apparmor="DENIED"' | grep "operation=\"$3\"" | grep "profile=\"$1\"" |
    grep -q "name=\"$2\""
}
# expect_refused WHAT PROFILE NAME OPERATION COMMAND...: the command fails, and the kernel
# logged the denial.
expect_refused() {
  what=$1 prof=$2 name=$3 op=$4
  shift 4
  out=$(as "$prof" "$@" </dev/null 2>&1)
  rc=$?
  if [ $rc -ne 0 ] && denied "$prof" "$name" "$op"; then
    ok "$what: refused (exit $rc: $(echo "$out" | tail -1))"
  else
    bad "$what: exit $rc, DENIED record for $name: $(denied "$prof" "$name" "$op" && echo yes || echo no); output: $out"
  fi
}

# 1. Allowed: VM A's disk back-end opens its image, confines itself and answers a front-end.
check_blk_serves vmm-a-blk0 /run/vmm/a-blk0.sock /var/lib/vmm/a

# 2. Denied: VM A's device opening VM B's image, VM B's vTPM key and /dev/kvm.
expect_refused "device A opens VM B's image" vmm-a-blk0 /var/lib/vmm/b/disk.img open \
  "$B/vmm-device" blk --socket /run/vmm/a-blk0.sock --image /var/lib/vmm/b/disk.img
expect_refused "device A opens VM B's vTPM key" vmm-a-blk0 /var/lib/vmm/b/key open \
  "$B/vmm-device" blk --socket /run/vmm/a-blk0.sock --image /var/lib/vmm/b/key
if [ -c /dev/kvm ]; then
  expect_refused "device A opens /dev/kvm" vmm-a-blk0 /dev/kvm open \
    "$B/vmm-device" blk --socket /run/vmm/a-blk0.sock --image /dev/kvm
fi

# 3. Allowed: VM A's vTPM starts with its state directory and key, and saves its state.
check_vtpm_saves vmm-a-vtpm /run/vmm/a-tpm.ctrl /var/lib/vmm/a

# 4. Denied: VM A's device opening its own VM's vTPM state; VM A's vTPM opening its VM's image
# (beside its key, in a directory it may list), VM B's state directory.
state=""
for f in /var/lib/vmm/a/tpm/*; do [ -f "$f" ] && state=${f##*/} && break; done
if [ -n "$state" ]; then
  expect_refused "device A opens VM A's vTPM state ($state)" vmm-a-blk0 "/var/lib/vmm/a/tpm/$state" open \
    "$B/vmm-device" blk --socket /run/vmm/a-blk0.sock --image "/var/lib/vmm/a/tpm/$state"
fi
expect_refused "vTPM A opens its VM's image (as its key)" vmm-a-vtpm /var/lib/vmm/a/disk.img open \
  "$B/vmm-vtpm" --ctrl unix:/run/vmm/a-tpm.ctrl --state /var/lib/vmm/a/tpm --key /var/lib/vmm/a/disk.img
expect_refused "vTPM A opens VM B's state directory" vmm-a-vtpm /var/lib/vmm/b/tpm/ open \
  "$B/vmm-vtpm" --ctrl unix:/run/vmm/a-tpm.ctrl --state /var/lib/vmm/b/tpm --key /var/lib/vmm/a/key

# 5. Denied to every role: running another program, the network.
expect_refused "a program run under device A's profile execs another" vmm-a-blk0 /bin/busybox exec \
  /bin/busybox sh -c '/bin/busybox true'
out=$(as vmm-b-vtpm /bin/busybox nc 127.0.0.1 9 </dev/null 2>&1)
if dmesg | grep 'apparmor="DENIED"' | grep 'profile="vmm-b-vtpm"' | grep -q 'family="inet"'; then
  ok "a program under vTPM B's profile opens an inet socket: refused ($(echo "$out" | tail -1))"
else
  bad "no DENIED record for an inet socket under vmm-b-vtpm: $out"
fi

echo "apparmor-guest: the kernel's AppArmor records for our profiles:"
dmesg | grep 'apparmor=' | grep 'profile="vmm-' | sed 's/^.*audit([^)]*): /  /'
finish
