#!/bin/sh
# The guest side shared by the MAC guest tests (tests/mac/apparmor-guest-inside.sh,
# tests/selinux/selinux-guest-inside.sh; ARCHITECTURE.md "AppArmor" and §11 "SELinux"), run by
# busybox sh: results, the VMs' files, and the two allowed runs (VM A's disk back-end serving
# its image, VM A's vTPM saving its state). Sourced with TAG set; `as LABEL COMMAND...` (exec
# COMMAND under LABEL, as the manager's SpawnRole does) and `pids_of LABEL` come from the caller.
# Usage: . tests/mac/lib/inside.sh

fails=0
ok() { echo "$TAG: ok: $*"; }
bad() {
  echo "$TAG: FAIL: $*"
  fails=$((fails + 1))
}
# fatal WHY: a setup step failed; nothing after it can be checked.
fatal() {
  echo "$TAG: FAIL: $*"
  exit 1
}
# With no audit daemon the kernel prints its audit records through printk_ratelimit() (10 in 5 s):
# the denials the tests read back must not be dropped.
echo 0 >/proc/sys/kernel/printk_ratelimit

# make_vm_files DIR: VM DIR's image (1 MiB), its vTPM state directory and key.
make_vm_files() {
  mkdir -p "$1/tpm"
  dd if=/dev/zero of="$1/disk.img" bs=1024 count=1024 2>/dev/null
  head -c 32 /dev/urandom >"$1/key"
  chmod 600 "$1/key"
}

# label_pids LABEL: the pids whose attr/current is LABEL.
label_pids() {
  for p in /proc/[0-9]*; do
    case "$(cat "$p/attr/current" 2>/dev/null)" in "$1") echo "${p#/proc/}" ;; esac
  done
}

wait_socket() {
  i=0
  while [ ! -S "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  [ -S "$1" ]
}

# check_blk_serves LABEL SOCKET VMDIR: VM A's disk back-end, run under LABEL, opens VMDIR's
# image, confines itself and answers a front-end on SOCKET.
check_blk_serves() {
  as "$1" "$B/vmm-device" blk --socket "$2" --image "$3/disk.img" </dev/null 2>&1 |
    sed 's/^/  [a-blk0] /' &
  if wait_socket "$2"; then
    echo "  running as $1: pids $(pids_of "$1" | tr '\n' ' ')"
    # VHOST_USER_GET_FEATURES (1), then GET_CONFIG (24) of the first 8 bytes: virtio-blk's
    # capacity, 2048 sectors of the 1 MiB image, read from the image the back-end holds.
    reply=$("$S/bin/uds_exchange" "$2" \
      010000000100000000000000180000000100000014000000000000000800000000000000""0000000000000000 52)
    case $reply in
    010000000500000008000000????????????????180000000500000014000000000000000800000000000000""0008000000000000)
      ok "device A serves its own image: GET_FEATURES and GET_CONFIG answered, capacity 2048 sectors"
      ;;
    *) bad "device A's answers to GET_FEATURES and GET_CONFIG: '$reply'" ;;
    esac
  else
    bad "device A did not listen with its own image"
  fi
  wait
}

# check_vtpm_saves LABEL SOCKET VMDIR: VM A's vTPM, run under LABEL, starts with VMDIR's state
# directory and key, answers CMD_INIT on its control SOCKET and saves its state.
check_vtpm_saves() {
  as "$1" "$B/vmm-vtpm" --ctrl "unix:$2" --state "$3/tpm" --key "$3/key" </dev/null 2>&1 |
    sed 's/^/  [a-vtpm] /' &
  if wait_socket "$2"; then
    echo "  running as $1: pids $(pids_of "$1" | tr '\n' ' ')"
    # CMD_INIT (2) with no flags: libtpms manufactures the TPM and stores its permanent state.
    init=$("$S/bin/uds_exchange" "$2" 0000000200000000 4)
    saved=$(ls "$3/tpm")
    if [ "$init" = 00000000 ] && [ -n "$saved" ]; then
      ok "vTPM A saved its state in its own directory: $(echo "$saved" | tr '\n' ' ')"
    else
      bad "vTPM A: CMD_INIT answered '$init', state directory holds '$saved'"
    fi
    "$S/bin/uds_exchange" "$2" 00000003 4 >/dev/null # CMD_SHUTDOWN
  else
    bad "vTPM A did not listen"
  fi
  wait
}

# finish: the exit status of the whole run.
finish() {
  if [ "$fails" -ne 0 ]; then
    echo "$TAG: $fails check(s) failed"
    exit 1
  fi
  echo "$TAG: PASS"
  exit 0
}
