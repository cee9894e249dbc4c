#!/usr/bin/env bash
# The prologue shared by the scripts that boot the default Linux guest under QEMU (TCG)
# against our `vmm-device` back-ends over vhost-user (linux-backends.sh, linux-vsock.sh).
# The sourcing script sets PROG and HELP_LINES (the range of its header that --help prints).
#   backends_parse_args "$@"      # --timeout SECS, --keep, --help: sets TIMEOUT and KEEP
#   backends_make_work            # WORK (a temporary folder), pids, cleanup on exit
#   backends_start_qemu "console=ttyS0 ..." -chardev ... -device ...  # sets qemu_pid, start

QEMU=${LINUX_BACKENDS_QEMU:-qemu-system-x86_64}
TIMEOUT=120
KEEP=0

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 125; }

backends_parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --timeout) TIMEOUT=$2; shift 2 ;;
            --keep) KEEP=1; shift ;;
            -h|--help) sed -n "${HELP_LINES}p" "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
            *) say "unknown option '$1'"; exit 2 ;;
        esac
    done
}

# shellcheck disable=SC2317 # invoked through the EXIT trap
backends_cleanup() {
    for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
    if [[ $KEEP = 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}

backends_make_work() {
    WORK=$(mktemp -d "/tmp/$PROG.XXXXXX")
    pids=()
    trap backends_cleanup EXIT
}

# Boots $GUEST with the kernel command line $1 and the device arguments after it; the console
# goes to $WORK/console.log.
backends_start_qemu() {
    local append=$1
    shift
    # shellcheck disable=SC2034 # read by the sourcing script
    start=$(date +%s%N)
    timeout "$TIMEOUT" "$QEMU" -M q35,memory-backend=mem -accel tcg -cpu max -smp 1 -m 512M \
        -object memory-backend-memfd,id=mem,size=512M,share=on \
        -nographic -no-reboot -nodefaults -serial stdio \
        -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initramfs.cpio.gz" \
        -append "$append" "$@" >"$WORK/console.log" 2>&1 &
    qemu_pid=$!
    pids+=("$qemu_pid")
}
