#!/bin/sh
# The inside of tests/mac/apparmor-guest.sh, run by busybox sh in a QEMU guest booted with
# apparmor=1 security=apparmor (ARCHITECTURE.md "AppArmor"): loads two VMs' generated profiles,
# starts each VM's vmm-device blk and vmm-vtpm under them, and checks that the kernel
# allows each its own files and denies the rest, reading the DENIED records back from dmesg.
# Usage (cwd /work): apparmor-guest-inside.sh STAGE_DIR BIN_DIR
set -u
S=$1
B=$2
fails=0
ok() { echo "apparmor-guest: ok: $*"; }
bad() { echo "apparmor-guest: FAIL: $*"; fails=$((fails + 1)); }

mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
# With no audit daemon the kernel prints its audit records through printk_ratelimit() (10 in 5 s):
# the denials this script reads back must not be dropped.
echo 0 >/proc/sys/kernel/printk_ratelimit
[ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] ||
  { echo "apparmor-guest: FAIL: AppArmor is not enabled in the guest kernel"; exit 1; }
echo "apparmor-guest: kernel $(uname -r), LSMs: $(cat /sys/kernel/security/lsm)"

# The two VMs' files, where their profiles (made by `vmm apparmor profile`) say they are:
# /var/lib/vmm/<vm>/ holds the VM's image, its vTPM key and state directory.
mkdir -p /run/vmm
for v in a b; do
  mkdir -p "/var/lib/vmm/$v/tpm"
  dd if=/dev/zero of="/var/lib/vmm/$v/disk.img" bs=1024 count=1024 2>/dev/null
  head -c 32 /dev/urandom >"/var/lib/vmm/$v/key"
  chmod 600 "/var/lib/vmm/$v/key"
done

"$S/bin/apparmor_parser" --replace --skip-cache -I "$S/etc/apparmor.d" "$S/profiles/vm-a" "$S/profiles/vm-b" ||
  { echo "apparmor-guest: FAIL: apparmor_parser could not load the profiles"; exit 1; }
loaded=$(grep -c '^vmm-[ab]-' /sys/kernel/security/apparmor/profiles)
grep '^vmm-' /sys/kernel/security/apparmor/profiles | sed 's/^/  loaded: /'
if [ "$loaded" -eq 6 ]; then ok "6 profiles loaded in enforce mode"; else bad "$loaded of 6 profiles loaded"; fi

# as PROFILE COMMAND...: exec COMMAND under PROFILE, as the manager's SpawnRole does
# (change_onexec through the process's own attr file).
as() {
  sh -c 'printf "exec %s" "$0" >/proc/self/attr/apparmor/exec && exec "$@"' "$@"
}
# label_of PROFILE: the pids the kernel shows running under PROFILE.
label_of() {
  for p in /proc/[0-9]*; do
    case "$(cat "$p/attr/current" 2>/dev/null)" in "$1 (enforce)") echo "${p#/proc/}" ;; esac
  done
}
wait_socket() {
  i=0
  while [ ! -S "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  [ -S "$1" ]
}
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
as vmm-a-blk0 "$B/vmm-device" blk --socket /run/vmm/a-blk0.sock --image /var/lib/vmm/a/disk.img \
  </dev/null 2>&1 | sed 's/^/  [a-blk0] /' &
if wait_socket /run/vmm/a-blk0.sock; then
  echo "  running as vmm-a-blk0: pids $(label_of vmm-a-blk0 | tr '\n' ' ')"
  # VHOST_USER_GET_FEATURES (1), then GET_CONFIG (24) of the first 8 bytes: virtio-blk's
  # capacity, 2048 sectors of the 1 MiB image, read from the image the back-end holds.
  reply=$("$S/bin/uds_exchange" /run/vmm/a-blk0.sock \
    010000000100000000000000180000000100000014000000000000000800000000000000""0000000000000000 52)
  case $reply in
    010000000500000008000000????????????????180000000500000014000000000000000800000000000000""0008000000000000)
      ok "device A serves its own image: GET_FEATURES and GET_CONFIG answered, capacity 2048 sectors" ;;
    *) bad "device A's answers to GET_FEATURES and GET_CONFIG: '$reply'" ;;
  esac
else
  bad "device A did not listen with its own image"
fi
wait

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
as vmm-a-vtpm "$B/vmm-vtpm" --ctrl unix:/run/vmm/a-tpm.ctrl --state /var/lib/vmm/a/tpm \
  --key /var/lib/vmm/a/key </dev/null 2>&1 | sed 's/^/  [a-vtpm] /' &
if wait_socket /run/vmm/a-tpm.ctrl; then
  echo "  running as vmm-a-vtpm: pids $(label_of vmm-a-vtpm | tr '\n' ' ')"
  # CMD_INIT (2) with no flags: libtpms manufactures the TPM and stores its permanent state.
  init=$("$S/bin/uds_exchange" /run/vmm/a-tpm.ctrl 0000000200000000 4)
  saved=$(ls /var/lib/vmm/a/tpm)
  if [ "$init" = 00000000 ] && [ -n "$saved" ]; then
    ok "vTPM A saved its state: $(echo "$saved" | tr '\n' ' ')"
  else
    bad "vTPM A: CMD_INIT answered '$init', state directory holds '$saved'"
  fi
  "$S/bin/uds_exchange" /run/vmm/a-tpm.ctrl 00000003 4 >/dev/null  # CMD_SHUTDOWN
else
  bad "vTPM A did not listen"
fi
wait

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
if [ "$fails" -ne 0 ]; then
  echo "apparmor-guest: $fails check(s) failed"
  exit 1
fi
echo "apparmor-guest: PASS"
