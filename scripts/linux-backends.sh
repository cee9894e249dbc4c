#!/usr/bin/env bash
# linux-backends.sh - a real Linux driver against our confined device processes, quickly:
# QEMU with TCG boots the default Linux guest (Debian's cloud kernel + busybox initramfs,
# scripts/make-default-guest.sh) with its virtio-blk and virtio-rng served by two
# `vmm-device` processes over vhost-user, and a TPM 2.0 (QEMU's tpm-crb) served by
# `vmm-vtpm` over swtpm's socket protocol (QEMU -tpmdev emulator). The guest's checks
# (tests/linux/checks.d) write, flush and read back a pattern on /dev/vda, read /dev/hwrng,
# and send raw TPM2_GetRandom, TPM2_PCR_Extend (PCR 16) and TPM2_PCR_Read through /dev/tpm0
# (the command line says vmm.expect_tpm=1, so a missing TPM fails).
#
# Passes when: the three checks print ok, the guest powers off, the three back-ends exit 0
# after QEMU, the image holds the pattern at 4 KiB, the PCR 16 value the guest printed is
# SHA-256(32 zero bytes || the check's digest) computed here, and while the guest ran each
# back-end's confined process showed Seccomp 2 (filter), NoNewPrivs 1, CapEff 0, its own
# pid/net/mount/ipc/uts namespaces, and only its fds (stdio, its sockets, the image for
# blk, plus the guest RAM memfd and vring eventfds the front-end sent to the devices).
#
# Usage: scripts/linux-backends.sh [--timeout SECS] [--keep]
# Exit status: 0 pass; 1 fail; 77 skipped (no qemu-system-x86_64); 125 harness failure.
# Needs: qemu-system-x86, coreutils (sha256sum), xxd or python3.
set -euo pipefail

PROG=linux-backends
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
DEVICE=$ROOT/build/bin/vmm-device
VTPM=$ROOT/build/bin/vmm-vtpm
GUEST=$ROOT/build/default-guest
HELP_LINES=2,22
# shellcheck source=lib/qemu-backends.sh
. "$ROOT/scripts/lib/qemu-backends.sh"
backends_parse_args "$@"

command -v "$QEMU" >/dev/null || { say "SKIPPED: $QEMU not installed (scripts/install-deps.sh installs it)"; exit 77; }
[[ -x $DEVICE ]] || die "$DEVICE missing: build first (scripts/build.sh)"
[[ -x $VTPM ]] || die "$VTPM missing: build first (scripts/build.sh)"
# The digest the guest's tpm check extends PCR 16 with (one source: the check itself).
DIGEST=$(sed -n 's/^digest=\([0-9a-f]\{64\}\)$/\1/p' "$ROOT/tests/linux/checks.d/tpm")
[[ ${#DIGEST} = 64 ]] || die "no digest= line in tests/linux/checks.d/tpm"
if command -v xxd >/dev/null; then
    PCR16=$({ head -c 32 /dev/zero; printf '%s' "$DIGEST" | xxd -r -p; } | sha256sum | cut -d' ' -f1)
elif command -v python3 >/dev/null; then
    PCR16=$(python3 -c 'import hashlib, sys; print(hashlib.sha256(bytes(32) + bytes.fromhex(sys.argv[1])).hexdigest())' "$DIGEST")
else
    die "need xxd or python3 to compute the expected PCR 16"
fi
"$ROOT/scripts/make-default-guest.sh" -q || die "could not build the default guest"

backends_make_work

truncate -s 64M "$WORK/disk.img"
"$DEVICE" blk --socket "$WORK/blk.sock" --image "$WORK/disk.img" --serial linux-backends \
    >"$WORK/blk.log" 2>&1 &
blk_pid=$!; pids+=("$blk_pid")
"$DEVICE" rng --socket "$WORK/rng.sock" >"$WORK/rng.log" 2>&1 &
rng_pid=$!; pids+=("$rng_pid")
"$VTPM" --ctrl "unix:$WORK/tpm.ctrl" >"$WORK/vtpm.log" 2>&1 &
vtpm_pid=$!; pids+=("$vtpm_pid")
for _ in $(seq 100); do
    [[ -S $WORK/blk.sock && -S $WORK/rng.sock && -S $WORK/tpm.ctrl ]] && break
    sleep 0.05
done
[[ -S $WORK/blk.sock && -S $WORK/rng.sock && -S $WORK/tpm.ctrl ]] || { cat "$WORK"/*.log >&2; die "back-ends did not start"; }

backends_start_qemu "console=ttyS0 panic=-1 vmm.expect_tpm=1" \
    -chardev socket,id=blk,path="$WORK/blk.sock" -device vhost-user-blk-pci,chardev=blk \
    -chardev socket,id=rng,path="$WORK/rng.sock" -device vhost-user-rng-pci,chardev=rng \
    -chardev socket,id=chrtpm,path="$WORK/tpm.ctrl" -tpmdev emulator,id=tpm0,chardev=chrtpm \
    -device tpm-crb,tpmdev=tpm0

# The confined child of each back-end, inspected while the guest runs.
inspect() {  # NAME PARENT_PID
    local name=$1 parent=$2 child="" _
    for _ in $(seq 200); do
        child=$(awk '{print $1}' "/proc/$parent/task/$parent/children" 2>/dev/null)
        [[ -n $child ]] && break
        sleep 0.05
    done
    if [[ -z $child ]]; then echo "$name: no confined child seen"; return 1; fi
    local st=/proc/$child/status ok=0
    local seccomp nnp capeff
    seccomp=$(awk '/^Seccomp:/ {print $2}' "$st"); nnp=$(awk '/^NoNewPrivs:/ {print $2}' "$st")
    capeff=$(awk '/^CapEff:/ {print $2}' "$st")
    local ns_same=""
    for ns in pid net mnt ipc uts; do
        [[ $(readlink "/proc/$child/ns/$ns") == $(readlink "/proc/self/ns/$ns") ]] && ns_same+=" $ns"
    done
    local fds
    # shellcheck disable=SC2012 # the entries are fd numbers; ls -l shows where each points
    fds=$(ls -l "/proc/$child/fd" 2>/dev/null | awk 'NR > 1 {print $NF}' | sed 's/:\[[0-9]*\]//' | sort | uniq -c | tr -s ' ' | tr '\n' ',')
    echo "$name: pid $child Seccomp=$seccomp NoNewPrivs=$nnp CapEff=$capeff own namespaces${ns_same:+ except$ns_same}; fds:$fds"
    [[ $seccomp = 2 && $nnp = 1 && $capeff = 0000000000000000 && -z $ns_same ]] || ok=1
    # Anything but the session sockets, the image, the guest RAM memfd, eventfds, the event
    # loop's epoll instance and stderr (the back-end's log here) is a leak.
    # shellcheck disable=SC2012 # as above
    if ls -l "/proc/$child/fd" | awk 'NR > 1 {print $NF}' |
        grep -vE '^(socket:|anon_inode:\[eventfd\]|anon_inode:\[eventpoll\]|/memfd:|/dev/null|pipe:|'"$WORK"'/disk.img|'"$WORK"'/[a-z]+.log)' >/dev/null; then
        echo "$name: unexpected fd"; ok=1
    fi
    # The vTPM sees TPM command bytes only: never guest RAM, never a vring eventfd.
    # shellcheck disable=SC2012 # as above
    if [[ $name = vtpm ]] && ls -l "/proc/$child/fd" | awk 'NR > 1 {print $NF}' |
        grep -E '^(/memfd:|anon_inode:\[eventfd\])' >/dev/null; then
        echo "$name: holds guest RAM or an eventfd"; ok=1
    fi
    return $ok
}
fail=0
sleep 1.5  # until the guest's driver has set up the rings (memfd and eventfds arrived)
inspect blk "$blk_pid" >"$WORK/confine.txt" || fail=1
inspect rng "$rng_pid" >>"$WORK/confine.txt" || fail=1
inspect vtpm "$vtpm_pid" >>"$WORK/confine.txt" || fail=1

qemu_rc=0; wait "$qemu_pid" || qemu_rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
# The back-ends end when QEMU closes their sessions; give them 10 s, then kill (and fail).
for _ in $(seq 100); do
    kill -0 "$blk_pid" 2>/dev/null || kill -0 "$rng_pid" 2>/dev/null || kill -0 "$vtpm_pid" 2>/dev/null || break
    sleep 0.1
done
for p in "$blk_pid" "$rng_pid" "$vtpm_pid"; do
    kill -0 "$p" 2>/dev/null && { say "back-end pid $p still running 10 s after QEMU exited; killing it"; kill -9 "$p"; }
done
blk_rc=0; wait "$blk_pid" || blk_rc=$?
rng_rc=0; wait "$rng_pid" || rng_rc=$?
vtpm_rc=0; wait "$vtpm_pid" || vtpm_rc=$?
pids=()

grep -a -E '^check |^tpm: |VMM-GUEST' "$WORK/console.log" | tr -d '\r' || true
cat "$WORK/confine.txt"
grep -aq '^check virtio-blk: ok' "$WORK/console.log" || { say "FAIL: virtio-blk check"; fail=1; }
grep -aq '^check virtio-rng: ok' "$WORK/console.log" || { say "FAIL: virtio-rng check"; fail=1; }
grep -aq '^check tpm: ok' "$WORK/console.log" || { say "FAIL: tpm check"; fail=1; }
pcr16=$(tr -d '\r' <"$WORK/console.log" | sed -n 's/^tpm: pcr16 sha256 \([0-9a-f]\{64\}\)$/\1/p' | tail -n1)
if [[ $pcr16 != "$PCR16" ]]; then
    say "FAIL: the guest's PCR 16 is '${pcr16:-missing}', not SHA-256(0^32 || $DIGEST) = $PCR16"; fail=1
fi
grep -aq 'reboot: Power down' "$WORK/console.log" || { say "FAIL: the guest did not power off"; fail=1; }
[[ $qemu_rc = 0 ]] || { say "FAIL: qemu exit status $qemu_rc"; fail=1; }
[[ $blk_rc = 0 ]] || { say "FAIL: vmm-device blk exit status $blk_rc"; cat "$WORK/blk.log" >&2; fail=1; }
[[ $rng_rc = 0 ]] || { say "FAIL: vmm-device rng exit status $rng_rc"; cat "$WORK/rng.log" >&2; fail=1; }
[[ $vtpm_rc = 0 ]] || { say "FAIL: vmm-vtpm exit status $vtpm_rc"; cat "$WORK/vtpm.log" >&2; fail=1; }
if ! dd if="$WORK/disk.img" bs=4096 skip=1 count=1 2>/dev/null | head -c 23 | grep -q 'VMM-BLK-PATTERN 000000'; then
    say "FAIL: the image does not hold the guest's pattern at 4 KiB"; fail=1
fi
if [[ $fail = 0 ]]; then
    say "PASS in $ms ms (QEMU TCG, Debian $(cat "$GUEST/release"), vmm-device blk + rng over vhost-user, vmm-vtpm over swtpm's protocol; PCR 16 as computed here)"
else
    say "FAIL (console: $WORK/console.log; run with --keep to keep it)"
fi
exit $fail
