#!/usr/bin/env bash
# linux-vsock.sh - QEMU's vhost-user-vsock-pci against our confined `vmm-device vsock`, with
# a Linux guest: QEMU (TCG) boots the default Linux guest (scripts/make-default-guest.sh)
# whose only check is tests/linux/vsock/vsock_check.c (gcc -static). The guest connects to
# CID 2 port 5000, which the back-end turns into a connection to the host's unix listener
# UPATH_5000 (served here by python3); then the guest listens on port 52 and a host client
# connects to UPATH, sends "CONNECT 52\n", gets "OK <port>\n" and its line echoed.
#
# Passes when: the guest prints "check vsock: ok" and the host's answer, the host side saw
# the guest's line and its echo, and the back-end exits 0 after QEMU.
#
# Usage: scripts/linux-vsock.sh [--timeout SECS] [--keep]
# Exit status: 0 pass; 1 fail; 77 skipped (no qemu-system-x86_64, gcc or python3); 125 harness failure.
set -euo pipefail

PROG=linux-vsock
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
DEVICE=$ROOT/build/bin/vmm-device
GUEST=$ROOT/build/default-guest
HELP_LINES=2,13
# shellcheck source=lib/qemu-backends.sh
. "$ROOT/scripts/lib/qemu-backends.sh"
backends_parse_args "$@"

for tool in "$QEMU" gcc python3; do
    command -v "$tool" >/dev/null || { say "SKIPPED: $tool not installed"; exit 77; }
done
[[ -x $DEVICE ]] || die "$DEVICE missing: build first (scripts/build.sh)"

backends_make_work

mkdir "$WORK/checks"
gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/checks/vsock" "$ROOT/tests/linux/vsock/vsock_check.c" ||
    die "could not build the guest's vsock check"
DEFAULT_GUEST_CHECKS_DIR=$WORK/checks "$ROOT/scripts/make-default-guest.sh" -q ||
    die "could not build the default guest"

"$DEVICE" vsock --socket "$WORK/vs.sock" --guest-cid 3 --uds-path "$WORK/v.sock" \
    >"$WORK/vsock.log" 2>&1 &
dev_pid=$!; pids+=("$dev_pid")
for _ in $(seq 100); do [[ -S $WORK/vs.sock ]] && break; sleep 0.05; done
[[ -S $WORK/vs.sock ]] || { cat "$WORK/vsock.log" >&2; die "the back-end did not start"; }

# The host side: the listener for guest port 5000, then a client for the guest's port 52
# once the guest says it listens.
python3 - "$WORK" >"$WORK/host.log" 2>&1 <<'PY' &
import os, socket, sys, time
work = sys.argv[1]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(os.path.join(work, "v.sock_5000")); srv.listen(1); srv.settimeout(110)
conn, _ = srv.accept(); conn.settimeout(30)
line = conn.makefile("rb").readline()
print("host: guest sent", line); sys.stdout.flush()
conn.sendall(b"hello from the host\n"); conn.close()
deadline = time.time() + 60
while time.time() < deadline:
    with open(os.path.join(work, "console.log"), "rb") as f:
        if b"listening on port 52" in f.read(): break
    time.sleep(0.2)
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.settimeout(30)
c.connect(os.path.join(work, "v.sock")); c.sendall(b"CONNECT 52\n")
r = c.makefile("rb")
ok = r.readline(); print("host: answer", ok)
c.sendall(b"ping port 52\n"); echo = r.readline(); print("host: echo", echo)
sys.exit(0 if line == b"hello from the guest\n" and ok.startswith(b"OK ") and echo == b"ping port 52\n" else 1)
PY
host_pid=$!; pids+=("$host_pid")

backends_start_qemu "console=ttyS0 panic=-1" \
    -chardev socket,id=vs,path="$WORK/vs.sock" -device vhost-user-vsock-pci,chardev=vs
qemu_rc=0; wait "$qemu_pid" || qemu_rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
host_rc=0; wait "$host_pid" || host_rc=$?
for _ in $(seq 100); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$dev_pid" 2>/dev/null && { say "vmm-device vsock still running 10 s after QEMU; killing it"; kill -9 "$dev_pid"; }
dev_rc=0; wait "$dev_pid" || dev_rc=$?
pids=()

fail=0
grep -a -E '^check |^vsock: |VMM-GUEST' "$WORK/console.log" | tr -d '\r' || true
cat "$WORK/host.log"
grep -aq '^check vsock: ok' "$WORK/console.log" || { say "FAIL: the guest's vsock check"; fail=1; }
grep -aq '^vsock: host answered: hello from the host' "$WORK/console.log" || { say "FAIL: the host's answer did not reach the guest"; fail=1; }
[[ $host_rc = 0 ]] || { say "FAIL: host side exit status $host_rc"; fail=1; }
[[ $qemu_rc = 0 ]] || { say "FAIL: qemu exit status $qemu_rc"; fail=1; }
[[ $dev_rc = 0 ]] || { say "FAIL: vmm-device vsock exit status $dev_rc"; cat "$WORK/vsock.log" >&2; fail=1; }
if [[ $fail = 0 ]]; then
    say "PASS in $ms ms (QEMU TCG vhost-user-vsock-pci, Debian $(cat "$GUEST/release"), vmm-device vsock confined)"
else
    say "FAIL (console: $WORK/console.log; run with --keep to keep it)"
fi
exit $fail
