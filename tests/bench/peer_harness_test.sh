#!/bin/sh
# The benches' handling of a peer that cannot run the payload or hangs, without KVM: each
# case runs a bench driver against tests/bench/fake_peer.sh and checks that it reports the
# peer as "cannot ..." with its first error line, keeps our figures, and finishes within a
# few seconds although the fake peer would wait 600 s.
#   peer_harness_test.sh CASE BIN_DIR SOURCE_DIR
# Cases: boot-kvm-error boot-silent boot-ours-cannot exits-kvm-error backend-silent
#        vtpm-silent linux-boot-table
set -u
case_name=$1 bin=$2 src=$3
fake="$src/tests/bench/fake_peer.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/peer-harness.XXXXXX")
server=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  [ -z "$server" ] || { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; }
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0

# run MAX_SECONDS CMD...: runs CMD, output (stdout and stderr) in $tmp/out, status in $status.
run() {
  max=$1
  shift
  start=$(date +%s)
  "$@" >"$tmp/out" 2>&1
  status=$?
  elapsed=$(( $(date +%s) - start ))
  echo "--- $* (status $status, ${elapsed} s):"
  cat "$tmp/out"
  echo "---"
  if [ "$elapsed" -gt "$max" ]; then
    echo "FAIL: took ${elapsed} s, more than ${max} s: the hung peer was not stopped promptly"
    fail=1
  fi
}
want_status() {
  [ "$status" -eq "$1" ] || { echo "FAIL: exit status $status, want $1"; fail=1; }
}
want() {  # ERE that some line of the output must match
  grep -Eq -- "$1" "$tmp/out" || { echo "FAIL: no line matches: $1"; fail=1; }
}

case $case_name in
  boot-kvm-error)
    run 15 "$bin/boot_bench" --runs 3 --marker "testguest: hello" --timeout 20 --stall 10 \
      --name vmm -- sh "$fake" boot-ok --vs-name qemu-microvm -- sh "$fake" boot-kvm-error
    want_status 0
    want '^first serial line \(ms\) +[0-9]+\.[0-9] +cannot boot +n/a$'
    want '^process exit \(ms\) +[0-9]+\.[0-9] +cannot boot +n/a$'
    want '^qemu-microvm: cannot boot: KVM internal error\. Suberror: 1 \(stopped on this line [0-9]+ ms after start\)$'
    want '^vmm: 3 runs, exit min [0-9.]+ ms max [0-9.]+ ms, 0 runs failed$' ;;
  boot-silent)
    run 15 "$bin/boot_bench" --runs 2 --marker "testguest: hello" --timeout 20 --stall 2 \
      --name vmm -- sh "$fake" boot-ok --vs-name qemu-microvm -- sh "$fake" hang-silent
    want_status 0
    want '^peak RSS \(MiB\) +[0-9]+\.[0-9] +cannot boot +n/a$'
    want '^qemu-microvm: cannot boot: testguest: hello \(boot=pvh\) \(no output for 2 s, [0-9]+ ms after start\)$' ;;
  boot-ours-cannot)
    run 15 "$bin/boot_bench" --runs 2 --marker "testguest: hello" --timeout 20 --stall 10 \
      --name vmm -- sh "$fake" boot-kvm-error --vs-name qemu-microvm -- sh "$fake" boot-ok
    want_status 1
    want '^first serial line \(ms\) +cannot boot +[0-9]+\.[0-9] +n/a$'
    want '^vmm: cannot boot: KVM internal error\. Suberror: 1 '
    want '^qemu-microvm: 2 runs, .* 0 runs failed$' ;;
  exits-kvm-error)
    run 15 "$bin/exits_bench" --runs 2 --timeout 20 --stall 10 \
      --name vmm -- sh "$fake" exits-ok --vs-name qemu -- sh "$fake" exits-kvm-error
    want_status 0
    want '^\(1\) MMIO read \(virtio reg\) +[0-9]+ +[0-9]+ +[0-9]+ +cannot run +- +- +n/a$'
    want '^qemu: cannot run: KVM internal error\. Suberror: 1 \(stopped on this line [0-9]+ ms after start\)$'
    want '^vmm: 2 runs, 0 did not finish or exit cleanly$' ;;
  backend-silent)
    sh "$fake" silent-unix "$tmp/peer.sock" & server=$!
    i=0
    while [ ! -S "$tmp/peer.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    run 10 "$bin/backend_bench" --socket "$tmp/peer.sock" --name qemu-storage-daemon --stall 2 \
      --requests 10 --warmup 1
    want_status 1
    want '^backend_bench: qemu-storage-daemon: no progress for 2 s during the vhost-user handshake: the peer stopped answering$' ;;
  vtpm-silent)
    sh "$fake" silent-tcp "$tmp/port" & server=$!
    i=0
    while [ ! -s "$tmp/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    run 10 "$bin/vtpm_bench" --tcti "swtpm:host=127.0.0.1,port=$(cat "$tmp/port")" --name swtpm \
      --stall 2 --iterations 5 --warmup 1
    want_status 1
    want '^vtpm_bench: swtpm: no progress for 2 s during .*: the peer stopped answering$' ;;
  linux-boot-table)
    # Two runs each, as bench/linux-boot/run.sh logs them; QEMU stopped on its fail line.
    cat >"$tmp/log" <<'LOG'
RUN vmm
milestone linux-version 4237
milestone run-init 18048
milestone done 18874
milestone power-down 19100
milestone exit 19341 status=0
RUN qemu
milestone linux-version 2980
milestone error 3105 KVM internal error. Suberror: 1
milestone run-init missing
milestone done missing
milestone power-down missing
milestone exit 3320 status=143
RUN vmm
milestone linux-version 4301
milestone run-init 18100
milestone done 18900
milestone power-down 19150
milestone exit 19400 status=0
RUN qemu
milestone linux-version 2990
milestone stall 243000
milestone run-init missing
milestone done missing
milestone power-down missing
milestone last-line [    2.5] rcu: INFO: rcu_sched self-detected stall on CPU
milestone exit 243100 status=143
LOG
    run 5 awk -f "$src/bench/linux-boot/table.awk" "$tmp/log"
    want_status 0
    want '^\| linux-version \| 4237 \| cannot boot \| - \|$'
    want '^\| exit \| 19341 \| cannot boot \| - \|$'
    want '^qemu: cannot boot: KVM internal error\. Suberror: 1 \(stopped on this line; 2 of 2 runs failed; exit statuses: 143 143; the first reached: linux-version 2980 ms\)$'
    want '^vmm: 2 runs; exit statuses: 0 0$' ;;
  *)
    echo "unknown case '$case_name'" >&2
    exit 2 ;;
esac
[ $fail -eq 0 ] && echo "PASS: $case_name"
exit $fail
