#!/bin/sh
# The inside of tests/selinux/selinux-guest.sh, run by busybox sh (as kernel_t) in a QEMU guest
# booted with selinux=1 security=selinux enforcing=1 (ARCHITECTURE.md §11 "SELinux"): loads
# the reference policy with our module, labels two VMs' files with their MCS pairs, starts VM
# A's vmm-device blk and vmm-vtpm in their domains at A's level, and checks that the kernel
# allows them their own files and denies the rest, reading the AVC records back from dmesg.
# Usage (cwd /work): selinux-guest-inside.sh STAGE_DIR BIN_DIR
set -u
S=$1
B=$2
TAG=selinux-guest
A=s0:c1,c2
BL=s0:c3,c4
U=system_u:system_r
O=system_u:object_r
# as CONTEXT COMMAND...: exec COMMAND in CONTEXT, as the manager's SpawnRole does (setexeccon:
# the process's attr/exec, then exec).
as() {
  sh -c 'printf %s "$0" >/proc/self/attr/exec && exec "$@"' "$@"
}
pids_of() { label_pids "$1"; }
# shellcheck source=tests/mac/lib/inside.sh disable=SC1091  # checked on its own
. tests/mac/lib/inside.sh

mkdir -p /sys/fs/selinux
mount -t selinuxfs selinuxfs /sys/fs/selinux 2>/dev/null
[ -e /sys/fs/selinux/load ] ||
  fatal "no selinuxfs: SELinux is not enabled in the guest kernel ($(cat /sys/kernel/security/lsm 2>/dev/null))"
# One write(2) of the whole policy, as selinuxfs wants (cat writes in pieces).
dd if="$S/policy" of=/sys/fs/selinux/load bs=16M count=1 2>/dev/null || fatal "the kernel refused the policy"
[ "$(cat /sys/fs/selinux/enforce)" = 1 ] || fatal "the kernel is not enforcing"
ok "policy loaded, enforcing ($(cat /sys/fs/selinux/policyvers 2>/dev/null) policy version, kernel $(uname -r)); this shell runs as $(cat /proc/self/attr/current)"
# libselinux (in our binaries) takes SELinux as on only where this file exists.
mkdir -p /etc/selinux && printf 'SELINUX=enforcing\nSELINUXTYPE=default\n' >/etc/selinux/config

# The guest's own files carry no labels (initramfs): give the libraries and binaries theirs.
for d in /lib /lib64 /usr/lib /usr/lib64; do [ -d "$d" ] && "$S/bin/chcon" -R -t lib_t "$d" 2>/dev/null; done
for f in /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2; do
  [ -e "$f" ] && "$S/bin/chcon" -t ld_so_t "$f"
done
if ! "$S/bin/chcon" -t vmm_device_exec_t "$B/vmm-device" || ! "$S/bin/chcon" -t vmm_vtpm_exec_t "$B/vmm-vtpm"; then
  bad "labelling the binaries"
fi
"$S/bin/chcon" -t null_device_t /dev/null 2>/dev/null

# The two VMs' files on a tmpfs, labelled as the manager labels them (the VM's pair):
# /vm/<vm>/disk.img (vmm_image_t), /vm/<vm>/tpm/ and /vm/<vm>/key (vmm_vtpm_state_t).
mkdir -p /vm
mount -t tmpfs -o mode=0755 tmpfs /vm
mkdir -p /vm/run
for v in a b; do
  case $v in a) l=$A ;; *) l=$BL ;; esac
  make_vm_files "/vm/$v"
  if ! "$S/bin/chcon" "$O:vmm_image_t:$l" "/vm/$v/disk.img" ||
    ! "$S/bin/chcon" "$O:vmm_vtpm_state_t:$l" "/vm/$v/tpm" "/vm/$v/key"; then
    bad "labelling VM $v's files"
  fi
done

# avc SCONTEXT TCONTEXT: the AVC denial records naming both contexts.
avc() { dmesg | grep 'avc:  denied' | grep "scontext=$1 " | grep "tcontext=$2 "; }
# expect_denied WHAT SCONTEXT TCONTEXT COMMAND...: the command, run in SCONTEXT, fails and
# the kernel logged an AVC denial of SCONTEXT against TCONTEXT.
expect_denied() {
  what=$1 scon=$2 tcon=$3
  shift 3
  out=$(as "$scon" "$@" </dev/null 2>&1)
  rc=$?
  rec=$(avc "$scon" "$tcon" | tail -1)
  if [ $rc -ne 0 ] && [ -n "$rec" ]; then
    ok "$what: denied (exit $rc: $(echo "$out" | tail -1))"
    echo "    ${rec#*audit*: }"
  else
    bad "$what: exit $rc, AVC record: ${rec:-none}; output: $out"
  fi
}

BLK_A=$U:vmm_device_blk_t:$A
VTPM_A=$U:vmm_vtpm_t:$A

# 1. Allowed: VM A's disk back-end opens A's image, confines itself and answers a front-end.
check_blk_serves "$BLK_A" /vm/run/a-blk0.sock /vm/a

# 2. Denied: VM A's device opening VM B's image and VM B's vTPM key (other category pair).
expect_denied "device A opens VM B's image" "$BLK_A" "$O:vmm_image_t:$BL" \
  "$B/vmm-device" blk --socket /vm/run/a-blk0.sock --image /vm/b/disk.img
expect_denied "device A opens VM B's vTPM key" "$BLK_A" "$O:vmm_vtpm_state_t:$BL" \
  "$B/vmm-device" blk --socket /vm/run/a-blk0.sock --image /vm/b/key

# 3. Allowed: VM A's vTPM starts with A's state directory and key, and saves its state.
check_vtpm_saves "$VTPM_A" /vm/run/a-tpm.ctrl /vm/a

# 4. Denied: VM A's vTPM opening A's image (as its key: another type, same pair) and VM B's
# state directory (same type, other pair); VM A's device opening A's vTPM state.
expect_denied "vTPM A opens A's image (as its key)" "$VTPM_A" "$O:vmm_image_t:$A" \
  "$B/vmm-vtpm" --ctrl unix:/vm/run/a-tpm.ctrl --state /vm/a/tpm --key /vm/a/disk.img
expect_denied "vTPM A opens VM B's state directory" "$VTPM_A" "$O:vmm_vtpm_state_t:$BL" \
  "$B/vmm-vtpm" --ctrl unix:/vm/run/a-tpm.ctrl --state /vm/b/tpm --key /vm/a/key
expect_denied "device A opens A's vTPM key" "$BLK_A" "$O:vmm_vtpm_state_t:$A" \
  "$B/vmm-device" blk --socket /vm/run/a-blk0.sock --image /vm/a/key

echo "selinux-guest: every AVC denial of our domains:"
dmesg | grep 'avc:  denied' | grep 'scontext=system_u:system_r:vmm_' | sed 's/^.*avc:  denied/  denied/'
finish
