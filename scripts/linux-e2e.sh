#!/usr/bin/env bash
# linux-e2e.sh - the end-to-end check of real-world compatibility: boots the default Linux
# guest (Debian's cloud kernel + busybox initramfs, scripts/make-default-guest.sh) under
# build/bin/vmm and reports, in ms from the VMM's start, when each boot milestone appeared on
# the serial console (timestamped outside the guest by build/bin/milestones):
#   first output, "Linux version", "Run /init", "VMM-GUEST: init started",
#   "VMM-GUEST: done", "reboot: Power down", and the VMM's exit (status 0 = powered off).
# Without /dev/kvm it runs inside scripts/nested-kvm.sh (kvm_amd in a QEMU TCG guest).
# With --runner qemu the same kernel and initramfs boot under QEMU TCG instead, for comparison.
# Under vmm it also checks measured boot: the guest's binary_bios_measurements must be the
# host's copy of the event log (vmm run --event-log-out) byte for byte, and its PCRs the
# values vmm measure predicts for the same flags.
#
# Usage: scripts/linux-e2e.sh [--boot pvh|bzimage] [--runner vmm|qemu] [OPTIONS]
# Run with --help for the options. Exit status: 0 pass; 1 the guest did not boot to
# "VMM-GUEST: done" and power off (or a check failed); 2 usage; 125 harness failure.
#
# Needs: what scripts/make-default-guest.sh needs; cmake and g++ to build the milestones
# helper; qemu-system-x86 for --runner qemu and for the nested KVM harness.
set -euo pipefail

PROG=linux-e2e
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
GUEST_DIR=$ROOT/build/default-guest
OUT_DIR=$ROOT/build/linux-e2e
VMM=$ROOT/build/bin/vmm
MILESTONES=$ROOT/build/bin/milestones
QEMU=${LINUX_E2E_QEMU:-qemu-system-x86_64}
HARNESS_FAIL=125

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit "$HARNESS_FAIL"; }
usage_error() { say "$*"; say "run '$0 --help' for usage"; exit 2; }

usage() {
    cat <<'EOF'
Usage: scripts/linux-e2e.sh [OPTIONS]

Boots Debian's cloud kernel with the default initramfs (scripts/make-default-guest.sh)
and prints when each milestone appeared, in ms from the start of the VMM process:
  first-output   first byte on the serial console
  linux-version  "Linux version" (the kernel proper is running)
  run-init       "Run /init"
  init-started   "VMM-GUEST: init started"
  done           "VMM-GUEST: done" (after the checks of /etc/vmm-checks.d)
  power-down     "reboot: Power down" (the kernel is about to enter ACPI S5)
  exit           the VMM exited (status 0: the guest powered off)
Passes when the guest reached "VMM-GUEST: done", no check printed FAIL, and the VMM
exited with status 0 after the kernel's power-down (not a reset). Under vmm, measured
boot too: the guest's /sys/kernel/security/tpm0/binary_bios_measurements (printed by
tests/linux/checks.d/event-log) must equal the event log the VM got, as vmm run
--event-log-out kept it on the host, and its /sys/class/tpm/tpm0/pcr-sha256/N and
pcr-sha384/N the values vmm measure gives for the same flags (a clear skip when the
guest does not reach user space).

Options:
  --boot pvh|bzimage   boot vmlinux by its PVH entry (default) or vmlinuz as a bzImage
  --runner vmm|qemu    boot under build/bin/vmm (default) or QEMU TCG (q35, -cpu max),
                       the comparison; QEMU never needs KVM
  --cpus N             vCPUs (default 2)
  --memory SIZE        guest RAM, e.g. 512M (default 512M)
  --cmdline TEXT       replace the kernel command line (default:
                       "console=ttyS0 earlyprintk=serial panic=-1")
  --append TEXT        add to the kernel command line (e.g. loglevel=8); repeatable
  --profile            vmm only: sample the guest RIP (vmm run --profile) and print the
                       busiest kernel functions and where the VM exits went at the end
  --no-symbols         do not fetch the kernel's System.map (make-default-guest.sh
                       --symbols: its -dbg package, about 280 MB, once per kernel);
                       without it --profile and error messages show addresses only
  --timeout SECS       stop the guest after SECS (default 900)
  --stall SECS         stop the guest when the console has been silent for SECS
                       (default 240)
  --nested / --no-nested
                       force running inside scripts/nested-kvm.sh, or never (default:
                       only when /dev/kvm is missing; never for --runner qemu)
  --nested-mem MB      memory of the nested KVM host guest (default 2048)
  --tcg multi|single   TCG threading of the nested KVM host guest (default multi:
                       see the note below)
  --nested-arg ARG     pass ARG to scripts/nested-kvm.sh; repeatable
  --retries N          run again (up to N times) when the nested KVM harness itself
                       failed or hung before the VMM reported anything (default 1)
  --log FILE           serial log (default build/linux-e2e/<boot>-<runner>.log)
  -v, --verbose        echo the guest's console to stderr as it arrives
  -h, --help           this text

Exit status: 0 pass; 1 fail; 2 usage error; 125 the harness failed (build, guest
images, nested KVM).

Note on nested KVM (hosts without /dev/kvm): with single-threaded TCG, the
default of scripts/nested-kvm.sh, this 2-vCPU Linux guest stalls in most runs
(both vCPUs end up spinning in native_queued_spin_lock_slowpath, or halted in
the PV spinlock slow path, never woken); QEMU+KVM as the VMM stalls the same way
there. With multi-threaded TCG it boots, but the nested host guest itself hangs
now and then when KVM patches a static key (tests/nested/README.md): hence
--tcg multi by default and one retry when the harness hangs.
EOF
}

# ---------------------------------------------------------------- arguments
BOOT=pvh
RUNNER=vmm
CPUS=2
MEMORY=512M
CMDLINE="console=ttyS0 earlyprintk=serial panic=-1"
APPEND=""
TIMEOUT=900
STALL=240
NESTED=auto
NESTED_MEM=2048
NESTED_ARGS=()
TCG=multi
RETRIES=1
LOG=""
VERBOSE=0
PROFILE=0
SYMBOLS=1

# shellcheck source=lib/options.sh
. "$SCRIPT_DIR/lib/options.sh"
while [[ $# -gt 0 ]]; do
    if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi  # --name=value
    case $1 in
        --boot) need_arg "$@"; BOOT=$2; shift 2 ;;
        --runner) need_arg "$@"; RUNNER=$2; shift 2 ;;
        --cpus) need_arg "$@"; CPUS=$2; shift 2 ;;
        --memory) need_arg "$@"; MEMORY=$2; shift 2 ;;
        --cmdline) need_arg "$@"; CMDLINE=$2; shift 2 ;;
        --append) need_arg "$@"; APPEND+=" $2"; shift 2 ;;
        --profile) PROFILE=1; shift ;;
        --no-symbols) SYMBOLS=0; shift ;;
        --timeout) need_arg "$@"; TIMEOUT=$2; shift 2 ;;
        --stall) need_arg "$@"; STALL=$2; shift 2 ;;
        --nested) NESTED=yes; shift ;;
        --no-nested) NESTED=no; shift ;;
        --nested-mem) need_arg "$@"; NESTED_MEM=$2; shift 2 ;;
        --tcg) need_arg "$@"; TCG=$2; shift 2 ;;
        --retries) need_arg "$@"; RETRIES=$2; shift 2 ;;
        --nested-arg) need_arg "$@"; NESTED_ARGS+=("$2"); shift 2 ;;
        --log) need_arg "$@"; LOG=$2; shift 2 ;;
        -v|--verbose) VERBOSE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown argument '$1'" ;;
    esac
done
case $BOOT in pvh|bzimage) ;; *) usage_error "--boot must be pvh or bzimage" ;; esac
case $RUNNER in vmm|qemu) ;; *) usage_error "--runner must be vmm or qemu" ;; esac
case $TCG in multi|single) ;; *) usage_error "--tcg must be multi or single" ;; esac
if ! [[ $RETRIES =~ ^[0-9]+$ ]] || ((RETRIES > 5)); then usage_error "--retries must be 0..5"; fi
if ! [[ $CPUS =~ ^[0-9]+$ ]] || ((CPUS < 1 || CPUS > 64)); then usage_error "--cpus must be 1..64"; fi
[[ $MEMORY =~ ^[0-9]+[KMGkmg]?$ ]] || usage_error "--memory must be a size such as 512M"
if ! [[ $TIMEOUT =~ ^[0-9]+$ ]] || ((TIMEOUT < 10)); then usage_error "--timeout must be an integer >= 10 (seconds)"; fi
if ! [[ $STALL =~ ^[0-9]+$ ]] || ((STALL < 10)); then usage_error "--stall must be an integer >= 10 (seconds)"; fi
if ! [[ $NESTED_MEM =~ ^[0-9]+$ ]] || ((NESTED_MEM < 512)); then usage_error "--nested-mem must be an integer >= 512 (MiB)"; fi
CMDLINE+=$APPEND
[[ $CMDLINE != *$'\n'* ]] || usage_error "the command line must be one line"

case ${MEMORY: -1} in
    [Kk]) MEM_MIB=$((${MEMORY%?} / 1024)) ;;
    [Mm]) MEM_MIB=${MEMORY%?} ;;
    [Gg]) MEM_MIB=$((${MEMORY%?} * 1024)) ;;
    *) MEM_MIB=$((MEMORY >> 20)) ;;
esac

if [[ $RUNNER == qemu ]]; then
    [[ $NESTED == yes ]] && usage_error "--nested applies to --runner vmm only"
    ((PROFILE == 0)) || usage_error "--profile applies to --runner vmm only"
    SYMBOLS=0
    NESTED=no
elif [[ $NESTED == auto ]]; then
    if [[ -r /dev/kvm && -w /dev/kvm ]]; then NESTED=no; else NESTED=yes; fi
fi

mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
[[ -n $LOG ]] || LOG=$OUT_DIR/$BOOT-$RUNNER.log
LOG=$(realpath -m -- "$LOG")
mkdir -p "$(dirname -- "$LOG")"

# ---------------------------------------------------------------- prerequisites
# The kernel's System.map beside the vmlinux, so that vmm names kernel functions in
# --profile output and in error messages (Debian keeps it in the kernel's -dbg package).
if ((SYMBOLS)) && ! "$SCRIPT_DIR/make-default-guest.sh" -q --symbols; then
    say "warning: could not get the kernel's System.map; profiles and errors show addresses"
fi
"$SCRIPT_DIR/make-default-guest.sh" -q || die "scripts/make-default-guest.sh failed"
INITRAMFS=$GUEST_DIR/initramfs.cpio.gz
SYMBOL_FILE=""
((SYMBOLS)) && [[ -s $GUEST_DIR/System.map ]] && SYMBOL_FILE=$GUEST_DIR/System.map
if [[ $BOOT == pvh ]]; then KERNEL=$GUEST_DIR/vmlinux; else KERNEL=$GUEST_DIR/vmlinuz; fi
[[ -s $KERNEL && -s $INITRAMFS ]] || die "the default guest is incomplete (rerun scripts/make-default-guest.sh)"

build_milestones() {
    local src=$ROOT/tests/linux/milestones.cc
    [[ -x $MILESTONES && ! $src -nt $MILESTONES ]] && return 0
    command -v cmake >/dev/null 2>&1 || die "cmake not found: cannot build build/bin/milestones"
    # In the project's build tree when tests/linux is part of it, else on its own.
    if [[ -f $ROOT/build/CMakeCache.txt ]] &&
        cmake --build "$ROOT/build" --target milestones >"$OUT_DIR/milestones-build.log" 2>&1; then
        return 0
    fi
    say "building build/bin/milestones (standalone: tests/linux -> build/linux-tools)"
    { cmake -S "$ROOT/tests/linux" -B "$ROOT/build/linux-tools" -DBUILD_TESTING=OFF \
        -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$ROOT/build/bin" &&
        cmake --build "$ROOT/build/linux-tools"; } >>"$OUT_DIR/milestones-build.log" 2>&1 || {
        cat "$OUT_DIR/milestones-build.log" >&2
        die "cannot build build/bin/milestones"
    }
}
build_milestones
[[ -x $MILESTONES ]] || die "build/bin/milestones missing after the build"

if [[ $RUNNER == vmm ]]; then
    if [[ ! -x $VMM ]]; then
        say "build/bin/vmm missing: running scripts/build.sh build"
        "$SCRIPT_DIR/build.sh" build || die "scripts/build.sh failed"
    fi
    [[ -x $VMM ]] || die "build/bin/vmm missing"
else
    command -v "$QEMU" >/dev/null 2>&1 || die "'$QEMU' not found: install the Debian package qemu-system-x86"
fi

# ---------------------------------------------------------------- the run
MS_ARGS=(--echo 'G| '
    --milestone first-output=
    --milestone linux-version='Linux version '
    --milestone run-init='Run /init'
    --milestone init-started='VMM-GUEST: init started'
    --milestone done='VMM-GUEST: done'
    --milestone power-down='reboot: Power down'
    --milestone panic='Kernel panic'
    --milestone vmm-error='vmm: error'
    --milestone reset='reboot is not supported')
ORDER=(first-output linux-version run-init init-started 'done' power-down exit)
declare -A LABEL=([first-output]="first output on the console" [linux-version]='"Linux version"'
    [run-init]='"Run /init"' [init-started]='"VMM-GUEST: init started"'
    [done]='"VMM-GUEST: done"' [power-down]='"reboot: Power down"' [exit]="exit of the $RUNNER process")

rel() { printf '%s' "${1#"$ROOT"/}"; }
# A fresh disk for the guest's virtio-blk check, and a virtio-rng: under vmm each is served
# by its own confined vmm-device process; under QEMU by QEMU's own devices. Under vmm also
# an ephemeral TPM (its own confined vmm-vtpm process), and vmm.expect_tpm=1 on the command
# line so that the guest's tpm check fails rather than skips without one; QEMU gets none.
DISK=$OUT_DIR/disk.img
rm -f -- "$DISK"
truncate -s 64M "$DISK"
# Measured boot (vmm only): the log the VM gets is kept beside it (EVENT_LOG), and vmm
# measure predicts the PCRs for the same flags (MEASURE). Nested, the VM runs under the nested
# host's KVM (not kvm_pvm: the compatibility module is off there, as --kvm-compat off says),
# and the kept log comes back as one "HOSTLOG <hex>" line after the run.
EVENT_LOG=$OUT_DIR/event-log.bin
MEASURE=$OUT_DIR/measure.txt
HOST_LOG_HEX=""
rm -f -- "$EVENT_LOG" "$MEASURE"
if [[ $RUNNER == vmm ]]; then
    CMDLINE+=" vmm.expect_tpm=1"
    VM_FLAGS=(--kernel "$(rel "$KERNEL")" --initramfs "$(rel "$INITRAMFS")"
        --cmdline "$CMDLINE" --cpus "$CPUS" --memory "$MEMORY" --disk "path=$(rel "$DISK")" --rng
        --tpm ephemeral)
    MEASURE_FLAGS=("${VM_FLAGS[@]}")
    [[ $NESTED == yes ]] && MEASURE_FLAGS+=(--kvm-compat off)
    (cd "$ROOT" && "$VMM" measure "${MEASURE_FLAGS[@]}") >"$MEASURE" ||
        die "vmm measure failed for these flags"
    RUN=("$(rel "$VMM")" run "${VM_FLAGS[@]}" --event-log-out "$(rel "$EVENT_LOG")")
    [[ -z $SYMBOL_FILE ]] || RUN+=(--profile-symbols "$(rel "$SYMBOL_FILE")")
    ((PROFILE == 0)) || RUN+=(--profile)
else
    RUN=("$QEMU" -M q35 -accel tcg -cpu max -smp "$CPUS" -m "$MEM_MIB" -nographic -no-reboot
        -nic none -kernel "$(rel "$KERNEL")" -initrd "$(rel "$INITRAMFS")" -append "$CMDLINE"
        -drive "file=$(rel "$DISK"),if=none,id=d0,format=raw" -device 'virtio-blk-pci,drive=d0'
        -device virtio-rng-pci)
fi

if [[ $NESTED == yes ]]; then
    SYMBOL_COPY=()
    [[ -z $SYMBOL_FILE ]] || SYMBOL_COPY=(--copy "$(rel "$SYMBOL_FILE")")
    # Our own time limit first (it reports), the harness's a little later.
    INNER=("$(rel "$MILESTONES")" --timeout "$TIMEOUT" --stall "$STALL" "${MS_ARGS[@]}" -- "${RUN[@]}")
    if [[ $RUNNER == vmm ]]; then
        # shellcheck disable=SC2016 # expanded by the nested host's sh
        INNER=(sh -c 'L=$1; shift; "$@"; s=$?
            if [ -s "$L" ]; then printf "HOSTLOG "; od -An -v -tx1 "$L" | tr -d " \n"; echo; fi; exit $s'
            sh "$(rel "$EVENT_LOG")" "${INNER[@]}")
    fi
    [[ $TCG == multi ]] && NESTED_ARGS=(--mttcg "${NESTED_ARGS[@]+"${NESTED_ARGS[@]}"}")
    CMD=("$SCRIPT_DIR/nested-kvm.sh" --timeout $((TIMEOUT + 30)) --mem "$NESTED_MEM" --cpus 2
        "${NESTED_ARGS[@]+"${NESTED_ARGS[@]}"}"
        --copy "$(rel "$VMM")" --copy "$(rel "$VMM")-vcpu" --copy "$(rel "$VMM")-device"
        --copy "$(rel "$VMM")-vtpm"
        --copy "$(rel "$DISK")" --copy "$(rel "$MILESTONES")"
        --copy "$(rel "$KERNEL")" --copy "$(rel "$INITRAMFS")"
        "${SYMBOL_COPY[@]+"${SYMBOL_COPY[@]}"}" -- "${INNER[@]}")
    WHERE="nested KVM (kvm_amd in QEMU TCG, scripts/nested-kvm.sh${NESTED_ARGS[*]+ ${NESTED_ARGS[*]}})"
else
    CMD=("$MILESTONES" --timeout "$TIMEOUT" --stall "$STALL" "${MS_ARGS[@]}" -- "${RUN[@]}")
    if [[ $RUNNER == vmm ]]; then WHERE="/dev/kvm of this host"; else WHERE="QEMU TCG on this host"; fi
fi

say "boot=$BOOT runner=$RUNNER on $WHERE: $(rel "$KERNEL") + $(rel "$INITRAMFS"), $CPUS vCPUs, $MEMORY"
say "cmdline: $CMDLINE"
[[ -z $SYMBOL_FILE ]] || say "symbols: $(rel "$SYMBOL_FILE")"
say "serial log: $(rel "$LOG")"

sec() { printf '%d.%d' $(($1 / 1000)) $((($1 % 1000) / 100)); } # ms -> s with one decimal

FIFO=$(mktemp -u "$OUT_DIR/.out.XXXXXX")
CPID=""
# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    stop_child
    rm -f -- "$FIFO"
    exit "$rc"
}
stop_child() {
    if [[ -n $CPID ]] && kill -0 "$CPID" 2>/dev/null; then
        kill -TERM "$CPID" 2>/dev/null || true # nested-kvm.sh / milestones clean up on TERM
        wait "$CPID" 2>/dev/null || true
    fi
    CPID=""
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM HUP

handle_line() {
    local line=$1 name ms rest
    case $line in
        'G| '*)
            printf '%s\n' "${line#G| }" >>"$LOG"
            ((VERBOSE)) && printf '  | %s\n' "${line#G| }" >&2
            ;;
        'milestone '*)
            read -r _ name ms rest <<<"$line"
            case $name in
                timeout) TIMED_OUT=1; say "timed out after $(sec "$ms") s: stopping the guest" ;;
                stall) STALLED=1; say "no console output for ${STALL} s (at $(sec "$ms") s): stopping the guest" ;;
                exit)
                    EXIT_MS=$ms
                    EXIT_STATUS=${rest#status=}
                    ;;
                *)
                    [[ $ms == missing ]] && return 0
                    AT[$name]=$ms
                    say "$(printf '%8s s  %s' "$(sec "$ms")" "${LABEL[$name]:-$name}")"
                    ;;
            esac
            ;;
        'HOSTLOG '*) HOST_LOG_HEX=${line#HOSTLOG } ;; # the kept event log, from the nested host
        *) printf '%s\n' "$line" >&2 ;; # the nested harness, or stray output
    esac
    return 0
}

# One run; sets AT, EXIT_STATUS, EXIT_MS, TIMED_OUT, STALLED, HUNG, rc, WALL_MS.
# HUNG: nothing at all arrived for HOST_STALL seconds (the nested host guest itself hung:
# build/milestones' own --stall cannot fire then).
HOST_STALL=$((STALL + 180))
run_once() {
    declare -gA AT=()
    EXIT_STATUS="" EXIT_MS="" TIMED_OUT=0 STALLED=0 HUNG=0 rc=0
    : >"$LOG"
    LOAD=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
    rm -f -- "$FIFO"
    mkfifo "$FIFO"
    local start end line partial="" last=$SECONDS st
    start=$EPOCHREALTIME
    (cd "$ROOT" && exec "${CMD[@]}" </dev/null >"$FIFO") &
    CPID=$!
    exec 3<"$FIFO"
    while :; do
        st=0
        IFS= read -r -t 10 line <&3 || st=$?
        if ((st == 0)); then
            handle_line "$partial$line"
            partial=""
            last=$SECONDS
            continue
        fi
        if ((st > 128)); then # no complete line within 10 s
            if [[ -n $line ]]; then partial+=$line; last=$SECONDS; fi
            if ((SECONDS - last >= HOST_STALL)); then
                HUNG=1
                say "nothing arrived for ${HOST_STALL} s: the run hung; stopping it"
                stop_child
                break
            fi
            continue
        fi
        [[ -z $partial$line ]] || handle_line "$partial$line" # EOF
        break
    done
    exec 3<&-
    if [[ -n $CPID ]]; then
        wait "$CPID" || rc=$?
        CPID=""
    fi
    end=$EPOCHREALTIME
    WALL_MS=$(((${end/./} - ${start/./}) / 1000))
}

attempt=0
while :; do
    attempt=$((attempt + 1))
    run_once
    # Retry only when the nested KVM host guest failed or hung before the VMM reported
    # anything: that is the harness (see tests/nested/README.md), not the VMM.
    if [[ $NESTED == yes && -z $EXIT_STATUS ]] && ((HUNG || rc == HARNESS_FAIL)) && ((attempt <= RETRIES)); then
        say "the nested KVM harness failed (attempt $attempt); retrying"
        continue
    fi
    break
done

# Measured boot: the guest's event log (its "eventlog: hex" lines) against the host's copy, and
# its PCRs ("eventlog: pcr <bank> <n> <hex>") against vmm measure's "expected PCR values".
# Appends to FAILS; says why it cannot compare when the guest printed no log.
measured_boot_verdict() {
    local guest_hex size host_hex bank n hex want compared=0 at
    if [[ $NESTED == no && -s $EVENT_LOG ]]; then
        host_hex=$(od -An -v -tx1 "$EVENT_LOG" | tr -d ' \n')
    else
        host_hex=$HOST_LOG_HEX
    fi
    size=$(tr -d '\r' <"$LOG" | sed -n 's/^eventlog: size \([0-9]*\)$/\1/p' | tail -n 1)
    if [[ -z $size ]]; then
        if [[ -n ${AT[init-started]:-} ]]; then
            FAILS+=("measured boot: the guest's event-log check printed no log")
        else
            say "measured boot: SKIP, not compared: the guest did not reach user space (host copy: ${#host_hex} hex digits)"
        fi
        return 0
    fi
    [[ -n $host_hex ]] || { FAILS+=("measured boot: no host copy of the event log (--event-log-out)"); return 0; }
    guest_hex=$(tr -d '\r' <"$LOG" | sed -n 's/^eventlog: hex \([0-9a-f]*\)$/\1/p' | tr -d '\n')
    if ((${#guest_hex} != 2 * size)); then
        FAILS+=("measured boot: the guest printed ${#guest_hex} hex digits for a ${size}-byte log (console lost some?)")
    elif [[ $guest_hex != "$host_hex" ]]; then
        at=0
        while [[ ${guest_hex:at:2} == "${host_hex:at:2}" ]]; do at=$((at + 2)); done
        FAILS+=("measured boot: binary_bios_measurements ($size bytes) differs from the host's copy ($((${#host_hex} / 2)) bytes) at byte $((at / 2))")
    else
        say "measured boot: binary_bios_measurements equals the host's copy ($size bytes)"
    fi
    while read -r bank n want; do
        hex=$(tr -d '\r' <"$LOG" | sed -n "s/^eventlog: pcr $bank $n \([0-9a-f]*\)\$/\1/p" | tail -n 1)
        if [[ -z $hex ]]; then
            FAILS+=("measured boot: the guest printed no $bank PCR $n")
        elif [[ $hex != "$want" ]]; then
            FAILS+=("measured boot: $bank PCR $n is $hex in the guest, vmm measure says $want")
        else
            compared=$((compared + 1))
        fi
    done < <(sed -n 's/^  \(sha[0-9]*\):\([0-9]*\) \([0-9a-f]*\)$/\1 \2 \3/p' "$MEASURE")
    ((compared == 0)) || say "measured boot: $compared PCRs equal vmm measure's prediction"
    return 0
}

# ---------------------------------------------------------------- verdict
MS_FILE=${LOG%.log}.milestones
{
    printf '# boot=%s runner=%s where=%s cpus=%s memory=%s\n' "$BOOT" "$RUNNER" "$WHERE" "$CPUS" "$MEMORY"
    printf '# cmdline: %s\n' "$CMDLINE"
    printf '# host load average at the start: %s\n' "$LOAD"
    for n in "${ORDER[@]}"; do
        if [[ $n == exit ]]; then
            printf '%s %s status=%s\n' "$n" "${EXIT_MS:-missing}" "${EXIT_STATUS:-?}"
        else
            printf '%s %s\n' "$n" "${AT[$n]:-missing}"
        fi
    done
    printf 'wall %s\n' "$WALL_MS"
    printf 'attempts %s\n' "$attempt"
} >"$MS_FILE"

printf '\n%s: boot=%s runner=%s on %s (ms from the start of the %s process)\n' \
    "$PROG" "$BOOT" "$RUNNER" "$WHERE" "$RUNNER"
for n in "${ORDER[@]}"; do
    if [[ $n == exit ]]; then
        v=${EXIT_MS:-missing}
        [[ $v == missing ]] || v="$v ms (status ${EXIT_STATUS:-?})"
    else
        v=${AT[$n]:-missing}
        [[ $v == missing ]] || v="$v ms"
    fi
    printf '  %-34s %s\n' "${LABEL[$n]}" "$v"
done
if [[ $NESTED == yes ]]; then
    printf '  %-34s %s ms (attempt %s)\n' "wall time incl. nested KVM host boot" "$WALL_MS" "$attempt"
fi

if ((PROFILE)); then
    # vmm prints both at exit on stderr, which build/bin/milestones merged into the log.
    printf '\n' >&2
    tr -d '\r' <"$LOG" | sed -n '/^profile: [0-9]* samples/,$p' | grep -v '^vmm' >&2 ||
        say "no profile in the log"
fi

FAILS=()
if [[ -z $EXIT_STATUS && $NESTED == yes ]] && ((HUNG || rc == HARNESS_FAIL)); then
    die "the nested KVM harness failed or hung $attempt time(s) (see above; console: build/nested/last-console.log)"
fi
[[ -n $EXIT_STATUS ]] || FAILS+=("no exit status from build/bin/milestones (exit $rc)")
((TIMED_OUT == 0)) || FAILS+=("timed out after ${TIMEOUT} s")
((STALLED == 0)) || FAILS+=("the guest stalled: no console output for ${STALL} s")
[[ -n ${AT[done]:-} ]] || FAILS+=('"VMM-GUEST: done" never appeared')
[[ -n ${AT[power-down]:-} ]] || FAILS+=('the kernel did not power down ("reboot: Power down" missing)')
[[ -z ${AT[panic]:-} ]] || FAILS+=("kernel panic at ${AT[panic]} ms")
[[ -z ${AT[reset]:-} ]] || FAILS+=("the guest reset instead of powering off")
[[ -z ${AT[vmm-error]:-} ]] || FAILS+=("the VMM reported an error at ${AT[vmm-error]} ms")
[[ -z $EXIT_STATUS || $EXIT_STATUS == 0 ]] || FAILS+=("the $RUNNER process exited with status $EXIT_STATUS")
if [[ $RUNNER == vmm ]]; then
    measured_boot_verdict
fi
mapfile -t BAD_CHECKS < <(tr -d '\r' <"$LOG" | grep -E '^check [^ ]+: FAIL' || true)
((${#BAD_CHECKS[@]} == 0)) || FAILS+=("${BAD_CHECKS[@]}")
NCHECKS=$(tr -d '\r' <"$LOG" | grep -cE '^check [^ ]+: (ok|FAIL)' || true)

if ((${#FAILS[@]} == 0)); then
    say "PASS: $NCHECKS checks ok; log $(rel "$LOG"), milestones $(rel "$MS_FILE")"
    exit 0
fi
say "FAIL:"
for f in "${FAILS[@]}"; do say "  $f"; done
say "last lines of the serial log ($(rel "$LOG")):"
tail -n 30 "$LOG" | sed 's/^/    /' >&2
exit 1
