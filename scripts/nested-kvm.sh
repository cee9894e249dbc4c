#!/usr/bin/env bash
# nested-kvm.sh - run a command where a real /dev/kvm exists, even on hosts
# without KVM: boots Debian's cloud kernel in a QEMU TCG guest whose CPU
# (-cpu max) emulates AMD SVM + NPT, loads kvm/kvm_amd there and runs the
# command inside, with a copy of the files it needs.
#
# Usage: scripts/nested-kvm.sh [options] -- COMMAND [ARGS...]
#        scripts/nested-kvm.sh --smoke            (build + run tests/nested/kvm_smoke.c)
#        scripts/nested-kvm.sh --probe [-- ARGS]  (build + run tests/nested/kvm_probe.c)
# Run with --help for the options.
#
# QEMU runs single-threaded TCG (-accel tcg,thread=single): with MTTCG the
# guest hangs every few dozen runs (see tests/nested/README.md).
#
# Exit status: the command's exit status, or 125 if the harness itself failed
# (kernel fetch, kvm_amd load, no /dev/kvm, QEMU missing/crashed, timeout),
# or 2 for a usage error.
#
# Needs (Debian packages): qemu-system-x86, busybox-static, apt, dpkg,
# coreutils, findutils, grep, sed, mawk (awk), gzip, libc-bin (ldd),
# util-linux (flock); plus gcc, libc6-dev and linux-libc-dev for
# --smoke/--probe.
set -euo pipefail

# The whole script is one { ... } block so that bash parses all of it before
# running: editing or replacing this file cannot break runs in progress.
{
HARNESS_FAIL=125
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
NESTED_DIR="$ROOT/build/nested"
KERNEL_DIR="$NESTED_DIR/kernel"
KERNEL_META_PKG=${NESTED_KVM_KERNEL_META:-linux-image-cloud-amd64}
QEMU=${NESTED_KVM_QEMU:-qemu-system-x86_64}
BUSYBOX=${NESTED_KVM_BUSYBOX:-/bin/busybox}
# Modules to load (with their dependencies, in order).
WANT_MODULES=(kvm-amd)

PROG=nested-kvm
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit "$HARNESS_FAIL"; }
usage_error() { say "$*"; say "run '$0 --help' for usage"; exit 2; }

usage() {
    cat <<'EOF'
Usage: scripts/nested-kvm.sh [OPTIONS] -- COMMAND [ARGS...]
       scripts/nested-kvm.sh [OPTIONS] --smoke
       scripts/nested-kvm.sh [OPTIONS] --probe [-- PROBE-ARGS...]

Boots a QEMU TCG guest (-cpu max: emulated AMD SVM + nested paging) with
Debian's cloud kernel, loads kvm + kvm_amd there and runs COMMAND with a real
/dev/kvm.  Inside the guest the project root is mirrored at /work (only the
--copy paths are present) and COMMAND runs with cwd /work, stdin /dev/null.
Only COMMAND's output (stdout and stderr, merged) is shown, on stdout; the
full serial console is saved to build/nested/last-console.log.

Options:
  --timeout SECS     time limit for COMMAND inside the guest (default 600)
  --mem MB           guest memory (default 1024)
  --cpus N           guest vCPUs (default 2)
  --copy PATH        file or directory inside the project (PATH relative to
                     the current directory, or absolute), copied into the
                     guest at the same project-relative path below /work,
                     with the shared libraries (and loader) its ELF files
                     need (found with ldd on this host); repeatable
  --smoke            build tests/nested/kvm_smoke.c and run it
  --probe            build tests/nested/kvm_probe.c and run it (args after
                     -- go to it, e.g. -- bench 20000)
  --cpu MODEL        QEMU -cpu model (default max)
  --mttcg            multi-threaded TCG (one host thread per vCPU).  Not
                     the default: with it QEMU 7.2 hangs the guest now and
                     then when KVM creates/destroys VMs (kernel text_poke of
                     static keys, see tests/nested/README.md)
  --modparam M.P=V   module parameter, e.g. kvm_amd.npt=0; repeatable
  --append ARGS      extra guest kernel command line
  --qemu-arg ARG     extra QEMU argument (one word); repeatable
  --refresh-kernel   fetch the kernel package again (else cached)
  -v, --verbose      also echo the rest of the guest console (boot, kernel
                     messages) to stderr
  -h, --help         this text

Exit status: COMMAND's exit status; 125 when the harness failed (kernel
fetch, kvm_amd not loading, no /dev/kvm, QEMU missing, timeout); 2 on a
usage error.
Environment: NESTED_KVM_KERNEL_DEB=FILE uses that linux-image .deb instead
of apt-get download; NESTED_KVM_QEMU overrides the QEMU binary.
EOF
}

# ---------------------------------------------------------------- arguments
TIMEOUT=600
MEM=1024
CPUS=2
CPU_MODEL=max
TCG_THREAD=single
COPIES=()
MODPARAMS=()
EXTRA_APPEND=""
QEMU_EXTRA=()
SMOKE=0
PROBE=0
REFRESH=0
VERBOSE=0
CMD=()

# shellcheck source=lib/options.sh
. "$SCRIPT_DIR/lib/options.sh"
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

while [[ $# -gt 0 ]]; do
    if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi  # --name=value
    case $1 in
        --timeout) need_arg "$@"; TIMEOUT=$2; shift 2 ;;
        --mem) need_arg "$@"; MEM=$2; shift 2 ;;
        --cpus) need_arg "$@"; CPUS=$2; shift 2 ;;
        --copy) need_arg "$@"; COPIES+=("$2"); shift 2 ;;
        --cpu) need_arg "$@"; CPU_MODEL=$2; shift 2 ;;
        --modparam) need_arg "$@"; MODPARAMS+=("$2"); shift 2 ;;
        --append) need_arg "$@"; EXTRA_APPEND+=" $2"; shift 2 ;;
        --qemu-arg) need_arg "$@"; QEMU_EXTRA+=("$2"); shift 2 ;;
        --mttcg) TCG_THREAD=multi; shift ;;
        --smoke) SMOKE=1; shift ;;
        --probe) PROBE=1; shift ;;
        --refresh-kernel) REFRESH=1; shift ;;
        -v|--verbose) VERBOSE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; CMD=("$@"); break ;;
        *) usage_error "unknown option '$1' (put the command after --)" ;;
    esac
done

if ! is_uint "$TIMEOUT" || ((TIMEOUT == 0)); then
    usage_error "--timeout must be a positive integer (seconds)"
fi
if ! is_uint "$MEM" || ((MEM < 256)); then
    usage_error "--mem must be an integer >= 256 (MiB)"
fi
if ! is_uint "$CPUS" || ((CPUS < 1 || CPUS > 64)); then
    usage_error "--cpus must be an integer in 1..64"
fi
for mp in "${MODPARAMS[@]+"${MODPARAMS[@]}"}"; do
    [[ $mp =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_]+=[^[:space:]\']*$ ]] ||
        usage_error "--modparam '$mp' is not of the form module.param=value"
done
[[ $CPU_MODEL =~ ^[A-Za-z0-9_.,+=-]+$ ]] || usage_error "--cpu '$CPU_MODEL' is not a valid CPU model string"

if ((SMOKE == 0 && PROBE == 0)) && [[ ${#CMD[@]} -eq 0 ]]; then
    usage_error "no command given (usage: $0 [OPTIONS] -- COMMAND [ARGS...])"
fi
if ((SMOKE == 1 && PROBE == 0)) && [[ ${#CMD[@]} -gt 0 ]]; then
    usage_error "--smoke takes no command"
fi

# ---------------------------------------------------------------- prerequisites
command -v "$QEMU" >/dev/null 2>&1 ||
    die "'$QEMU' not found: install the Debian package qemu-system-x86"
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found: install the Debian package busybox-static"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    die "$BUSYBOX is dynamically linked: install the Debian package busybox-static"
fi
for tool in gzip flock ldd find dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (needed by $PROG)"
done

mkdir -p "$NESTED_DIR" || die "cannot create $NESTED_DIR"

# ---------------------------------------------------------------- cleanup
RUN_DIR=""
QPID=""
# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [[ -n $QPID ]] && kill -0 "$QPID" 2>/dev/null; then
        # QPID is the coreutils 'timeout' wrapping QEMU: TERM is forwarded.
        kill -TERM "$QPID" 2>/dev/null || true
        local _
        for _ in $(seq 1 50); do
            kill -0 "$QPID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$QPID" 2>/dev/null || true
    fi
    if [[ -n $RUN_DIR && -f $RUN_DIR/qemu.pid ]]; then
        local qp
        qp=$(cat "$RUN_DIR/qemu.pid" 2>/dev/null || true)
        if [[ $qp =~ ^[0-9]+$ ]] && kill -0 "$qp" 2>/dev/null &&
            grep -q qemu "/proc/$qp/cmdline" 2>/dev/null; then
            kill -KILL "$qp" 2>/dev/null || true
        fi
    fi
    if [[ -n $RUN_DIR && -d $RUN_DIR ]]; then
        rm -rf -- "$RUN_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM HUP

# ---------------------------------------------------------------- kernel cache
# $KERNEL_DIR/{vmlinuz,release,package,modules/*.ko,modules.load,base.cpio.gz}
# is built once (under a lock, in a temp dir renamed into place) and reused.

# shellcheck source=lib/debian-kernel.sh
. "$SCRIPT_DIR/lib/debian-kernel.sh"

populate_kernel_cache() {
    local tmp=$1 deb pkg
    if [[ -n ${NESTED_KVM_KERNEL_DEB:-} ]]; then
        deb=$NESTED_KVM_KERNEL_DEB
        [[ -f $deb ]] || die "NESTED_KVM_KERNEL_DEB=$deb: no such file"
        say "using kernel package $(basename -- "$deb")"
    else
        command -v apt-get >/dev/null 2>&1 || die "apt-get not found: cannot fetch the Debian kernel"
        pkg=$(debian_kernel_resolve "$KERNEL_META_PKG") ||
            die "cannot resolve '$KERNEL_META_PKG' to a kernel package (run apt-get update?)"
        say "downloading Debian package $pkg (cached in build/nested/kernel)"
        deb=$(debian_kernel_download "$pkg" "$tmp")
    fi

    mkdir -p "$tmp/out/modules"
    debian_kernel_unpack "$deb" "$tmp/x"
    debian_kernel_modules "$BUSYBOX" "${WANT_MODULES[@]}"
    local n
    : >"$tmp/out/modules.load"
    for n in "${DK_MODULES[@]+"${DK_MODULES[@]}"}"; do
        cp "$DK_MODDIR/${DK_MODPATH[$n]}" "$tmp/out/modules/$n.ko"
        printf '%s %s.ko\n' "$n" "$n" >>"$tmp/out/modules.load"
    done
    cp "$DK_VMLINUZ" "$tmp/out/vmlinuz"
    [[ -f $tmp/x/boot/config-$DK_RELEASE ]] && cp "$tmp/x/boot/config-$DK_RELEASE" "$tmp/out/config"
    printf '%s\n' "$DK_RELEASE" >"$tmp/out/release"
    basename -- "$deb" >"$tmp/out/package"
    rm -rf -- "$tmp/x"
}

ensure_kernel() {
    if ((REFRESH == 0)) && [[ -f $KERNEL_DIR/.complete ]]; then
        return 0
    fi
    exec 8>"$NESTED_DIR/.kernel.lock"
    flock -w 900 8 || die "timed out waiting for another run to fetch the kernel"
    if ((REFRESH == 1)) || [[ ! -f $KERNEL_DIR/.complete ]]; then
        local tmp
        tmp=$(mktemp -d "$NESTED_DIR/kernel.tmp.XXXXXX")
        # Run in a subshell (with errexit still active: not in a tested
        # context) so that a failure leaves no half-populated cache.
        local prc=0
        set +e
        (
            set -e
            populate_kernel_cache "$tmp"
        )
        prc=$?
        set -e
        if ((prc != 0)); then
            rm -rf -- "$tmp"
            die "could not obtain the Debian cloud kernel"
        fi
        : >"$tmp/out/.complete"
        rm -rf -- "$KERNEL_DIR.old"
        [[ -e $KERNEL_DIR ]] && mv -- "$KERNEL_DIR" "$KERNEL_DIR.old"
        mv -- "$tmp/out" "$KERNEL_DIR"
        rm -rf -- "$tmp" "$KERNEL_DIR.old"
        say "kernel $(cat "$KERNEL_DIR/release") cached; modules: $(cut -d' ' -f1 "$KERNEL_DIR/modules.load" | tr '\n' ' ')"
    fi
    flock -u 8
    exec 8>&-
}

# The part of the initramfs that does not change between runs: busybox and the
# modules.  Rebuilt when busybox changes.  The per-run part is appended as a
# second cpio archive (the kernel unpacks concatenated archives in order).
ensure_base_cpio() {
    local stamp
    stamp="$(stat -L -c '%s %Y %i' "$BUSYBOX") $(cat "$KERNEL_DIR/release")"
    if [[ -f $KERNEL_DIR/base.cpio.gz && "$(cat "$KERNEL_DIR/base.stamp" 2>/dev/null)" == "$stamp" ]]; then
        return 0
    fi
    exec 8>"$NESTED_DIR/.kernel.lock"
    flock -w 300 8 || die "timed out waiting for the initramfs lock"
    if [[ ! -f $KERNEL_DIR/base.cpio.gz || "$(cat "$KERNEL_DIR/base.stamp" 2>/dev/null)" != "$stamp" ]]; then
        local b
        b=$(mktemp -d "$NESTED_DIR/base.tmp.XXXXXX")
        mkdir -p "$b/root/bin" "$b/root/sbin" "$b/root/lib/nested-kvm" "$b/root/dev" \
            "$b/root/proc" "$b/root/sys" "$b/root/tmp" "$b/root/run" "$b/root/root" \
            "$b/root/etc" "$b/root/work" "$b/root/usr/bin" "$b/root/usr/sbin" "$b/root/lib64"
        cp "$BUSYBOX" "$b/root/bin/busybox"
        cp "$KERNEL_DIR"/modules/*.ko "$KERNEL_DIR/modules.load" "$b/root/lib/nested-kvm/"
        printf 'root:x:0:0:root:/root:/bin/sh\n' >"$b/root/etc/passwd"
        printf 'root:x:0:\n' >"$b/root/etc/group"
        (cd "$b/root" && find . -mindepth 1 | LC_ALL=C sort |
            "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -1 >"$b/base.cpio.gz" ||
            { rm -rf -- "$b"; die "cannot build the base initramfs"; }
        mv -f -- "$b/base.cpio.gz" "$KERNEL_DIR/base.cpio.gz"
        printf '%s\n' "$stamp" >"$KERNEL_DIR/base.stamp"
        rm -rf -- "$b"
    fi
    flock -u 8
    exec 8>&-
}

ensure_kernel
ensure_base_cpio

# ---------------------------------------------------------------- test programs
build_c() { # build_c SRC OUT [extra cc args]
    local src=$1 out=$2
    shift 2
    command -v cc >/dev/null 2>&1 || die "cc not found (install gcc) to build ${src#"$ROOT"/}"
    if [[ ! -x $out || $src -nt $out ]]; then
        local tmpout
        tmpout=$(mktemp "$out.XXXXXX")
        cc -O2 -Wall -Wextra -o "$tmpout" "$src" "$@" || { rm -f -- "$tmpout"; die "failed to build ${src#"$ROOT"/}"; }
        mv -f -- "$tmpout" "$out"
    fi
}

if ((SMOKE == 1 || PROBE == 1)); then
    if ((SMOKE == 1)); then
        build_c "$ROOT/tests/nested/kvm_smoke.c" "$NESTED_DIR/kvm_smoke"
        COPIES+=("$NESTED_DIR/kvm_smoke")
    fi
    if ((PROBE == 1)); then
        build_c "$ROOT/tests/nested/kvm_probe.c" "$NESTED_DIR/kvm_probe" -pthread
        COPIES+=("$NESTED_DIR/kvm_probe")
    fi
    if ((SMOKE == 1 && PROBE == 1)); then
        CMD=(sh -c 'build/nested/kvm_smoke && exec build/nested/kvm_probe "$@"' kvm_probe "${CMD[@]+"${CMD[@]}"}")
    elif ((SMOKE == 1)); then
        CMD=(build/nested/kvm_smoke)
    else
        CMD=(build/nested/kvm_probe "${CMD[@]+"${CMD[@]}"}")
    fi
fi

# ---------------------------------------------------------------- per-run initramfs
RUN_DIR=$(mktemp -d "$NESTED_DIR/run.XXXXXX")
STAGE=$RUN_DIR/stage
mkdir -p "$STAGE/work"
NONCE=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

# Hard-link when possible (same filesystem), else copy.
copy_tree() { # copy_tree SRC DST
    cp -aL --link -- "$1" "$2" 2>/dev/null || { rm -rf -- "$2"; cp -aL -- "$1" "$2"; }
}

declare -A LIBS=()
for p in "${COPIES[@]+"${COPIES[@]}"}"; do
    abs=$(realpath -e -- "$p" 2>/dev/null) || die "--copy $p: no such file or directory"
    if [[ $abs == "$ROOT" ]]; then
        die "--copy $p: refusing to copy the whole project root; copy what the command needs"
    fi
    [[ $abs == "$ROOT"/* ]] || die "--copy $p: not inside the project ($abs is outside the project root)"
    rel=${abs#"$ROOT"/}
    mkdir -p "$STAGE/work/$(dirname -- "$rel")"
    [[ -e $STAGE/work/$rel ]] && rm -rf -- "${STAGE:?}/work/$rel"
    copy_tree "$abs" "$STAGE/work/$rel" || die "--copy $p: copy failed"
done

# Shared libraries (and the dynamic loader) of every ELF that was copied.
is_elf() { [[ $(head -c4 -- "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; }
while IFS= read -r -d '' f; do
    is_elf "$f" || continue
    out=$(ldd -- "$f" 2>&1) || continue # static, or not an executable / shared object
    while IFS= read -r line; do
        lib=""
        case $line in
            *"=> not found"*) die "${f#"$STAGE"/}: shared library ${line%% =>*} not found on the host (ldd)" ;;
            *"=> /"*) lib=${line#*=> }; lib=${lib%% (*} ;;
            [[:space:]]/*) lib=${line#"${line%%[![:space:]]*}"}; lib=${lib%% (*} ;;
        esac
        [[ -n $lib ]] && LIBS[$lib]=1
    done <<<"$out"
done < <(find "$STAGE/work" -type f \( -perm /111 -o -name '*.so' -o -name '*.so.*' \) -print0)
for lib in "${!LIBS[@]}"; do
    [[ $lib == "$STAGE"/* ]] && continue # a copied library, already there
    [[ -e $lib ]] || die "library $lib (from ldd) does not exist"
    mkdir -p "$STAGE$(dirname -- "$lib")"
    cp -L -- "$lib" "$STAGE$lib" || die "cannot copy $lib"
done

# /init: everything in it is generated here; the command's words are quoted.
shq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
CMD_WORDS=""
for w in "${CMD[@]}"; do CMD_WORDS+=" $(shq "$w")"; done

cat >"$STAGE/init" <<EOF
#!/bin/busybox sh
# Generated by scripts/nested-kvm.sh.
M=$NONCE
TIMEOUT=$TIMEOUT
set --$CMD_WORDS
EOF
cat >>"$STAGE/init" <<'EOF'
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
# A cgroup v2 hierarchy with every controller, as a systemd host has: the command runs in its
# root, so vmm can make per-VM cgroups with limits (the CgroupKvm tests).
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || echo "nested-kvm: no cgroup2"
hostname nested-kvm

fail() {
    echo "NESTED_KVM_FAIL_$M $*"
    echo "NESTED_KVM_DMESG_$M"
    dmesg
    echo "NESTED_KVM_DMESG_END_$M"
    poweroff -f
    sleep 60
}

# Load the modules in dependency order; module.param=value words of the
# kernel command line are passed on, as modprobe would do.
while read -r name file; do
    params=""
    for tok in $(cat /proc/cmdline); do
        case $tok in
            "$name".*=*) params="$params ${tok#"$name".}" ;;
            "$(echo "$name" | tr _ -)".*=*) params="$params ${tok#*.}" ;;
        esac
    done
    echo "nested-kvm: insmod $file$params"
    # shellcheck disable=SC2086
    insmod "/lib/nested-kvm/$file" $params || fail "insmod $file$params failed"
done </lib/nested-kvm/modules.load
[ -c /dev/kvm ] || fail "/dev/kvm did not appear after loading kvm_amd"
echo "nested-kvm: kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs"
for p in /sys/module/kvm_amd/parameters/*; do echo "nested-kvm: kvm_amd.${p##*/}=$(cat "$p")"; done
dmesg | grep -i -E 'kvm|svm'

cd /work || fail "no /work"
# Keep kernel messages off the console while the command runs (they are in
# the dmesg dump after the end marker), except emergencies (panic, soft
# lockup) and except when the user chose a loglevel= on the command line.
case " $(cat /proc/cmdline) " in
    *" loglevel="*) ;;
    *) dmesg -n 2 ;;
esac
echo "NESTED_KVM_START_$M"
setsid "$@" </dev/null &
pid=$!
( sleep "$TIMEOUT"; echo > /tmp/.nested-kvm-timeout; kill -KILL -"$pid" 2>/dev/null || kill -KILL "$pid" ) </dev/null >/dev/null 2>&1 &
wd=$!
# (stderr: ash would report "Killed" etc. on the console for a signalled job)
wait "$pid" 2>/dev/null
rc=$?
kill "$wd" 2>/dev/null
if [ -e /tmp/.nested-kvm-timeout ]; then
    echo "NESTED_KVM_TIMEOUT_$M"
fi
echo "NESTED_KVM_END_$M rc=$rc"
echo "NESTED_KVM_DMESG_$M"
dmesg
echo "NESTED_KVM_DMESG_END_$M"
poweroff -f
sleep 60
EOF
chmod 755 "$STAGE/init"

# The initramfs is unpacked into guest RAM (and the compressed copy is held
# until then): warn before the guest runs out of memory while booting.
STAGE_MB=$(($(du -sk "$STAGE" | cut -f1) / 1024 + 40))
if ((STAGE_MB * 2 > MEM)); then
    say "warning: ~${STAGE_MB} MiB of files for a ${MEM} MiB guest; raise --mem if the guest fails to boot"
fi
(cd "$STAGE" && find . -mindepth 1 | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) |
    gzip -1 >"$RUN_DIR/run.cpio.gz" || die "cannot build the initramfs"
cat "$KERNEL_DIR/base.cpio.gz" "$RUN_DIR/run.cpio.gz" >"$RUN_DIR/initrd.gz"
rm -rf -- "$STAGE" "$RUN_DIR/run.cpio.gz"

# ---------------------------------------------------------------- boot
APPEND="console=ttyS0 quiet panic=-1 i8042.noaux i8042.nokbd i8042.nopnp"
for mp in "${MODPARAMS[@]+"${MODPARAMS[@]}"}"; do APPEND+=" $mp"; done
APPEND+="$EXTRA_APPEND"

# Boot + module load + poweroff margin on top of the command's time limit.
HOST_TIMEOUT=$((TIMEOUT + 120 + $(stat -c %s "$RUN_DIR/initrd.gz") / 10000000))
LOG=$RUN_DIR/console.log
FIFO=$RUN_DIR/console.fifo
mkfifo "$FIFO"
: >"$LOG"

timeout --kill-after=10 "$HOST_TIMEOUT" \
    "$QEMU" -M q35 -accel "tcg,thread=$TCG_THREAD" -cpu "$CPU_MODEL" -smp "$CPUS" -m "$MEM" \
    -nographic -no-reboot -nic none -pidfile "$RUN_DIR/qemu.pid" \
    -kernel "$KERNEL_DIR/vmlinuz" -initrd "$RUN_DIR/initrd.gz" -append "$APPEND" \
    "${QEMU_EXTRA[@]+"${QEMU_EXTRA[@]}"}" \
    </dev/null >"$FIFO" 2>"$RUN_DIR/qemu.stderr" &
QPID=$!

STATE=boot # boot -> run -> done | fail
CMD_RC=""
TIMED_OUT=0
FAIL_MSG=""
FAIL_LINES=()
START_M="NESTED_KVM_START_$NONCE"
END_M="NESTED_KVM_END_$NONCE rc="
FAIL_M="NESTED_KVM_FAIL_$NONCE "
TIMEOUT_M="NESTED_KVM_TIMEOUT_$NONCE"

exec 3<"$FIFO"
while IFS= read -r line <&3 || [[ -n $line ]]; do
    line=${line%$'\r'}
    printf '%s\n' "$line" >>"$LOG"
    if ((VERBOSE)) && [[ $STATE != run ]]; then
        printf '%s\n' "$line" >&2
    fi
    case $STATE in
        boot)
            if [[ $line == *"$START_M"* ]]; then
                STATE=run
            elif [[ $line == *"$FAIL_M"* ]]; then
                STATE=fail
                FAIL_MSG=${line#*"$FAIL_M"}
            fi
            ;;
        run)
            if [[ $line == *"$TIMEOUT_M"* ]]; then
                TIMED_OUT=1
                pre=${line%%"$TIMEOUT_M"*}
                [[ -z $pre ]] || printf '%s\n' "$pre"
            elif [[ $line == *"$END_M"* ]]; then
                pre=${line%%"$END_M"*}
                [[ -z $pre ]] || printf '%s\n' "$pre"
                CMD_RC=${line#*"$END_M"}
                CMD_RC=${CMD_RC%%[!0-9]*}
                STATE='done'
            else
                printf '%s\n' "$line"
            fi
            ;;
        fail)
            [[ $line == *NESTED_KVM_*"$NONCE"* ]] || FAIL_LINES+=("$line")
            ;;
        done) ;;
    esac
done
exec 3<&-

QRC=0
wait "$QPID" || QRC=$?
QPID=""
cp -f -- "$LOG" "$NESTED_DIR/last-console.log.tmp.$$" &&
    mv -f -- "$NESTED_DIR/last-console.log.tmp.$$" "$NESTED_DIR/last-console.log"

show_tail() {
    say "last console lines (full log: build/nested/last-console.log):"
    tail -n "${1:-25}" "$LOG" | sed 's/^/    /' >&2
    if [[ -s $RUN_DIR/qemu.stderr ]]; then
        say "QEMU stderr:"
        sed 's/^/    /' "$RUN_DIR/qemu.stderr" >&2
    fi
}

case $STATE in
    done)
        if ((TIMED_OUT)); then
            die "command timed out after ${TIMEOUT}s inside the guest (killed; --timeout to raise)"
        fi
        [[ -n $CMD_RC ]] || die "could not parse the command's exit status"
        exit "$CMD_RC"
        ;;
    fail)
        say "error: guest setup failed: $FAIL_MSG"
        say "guest kernel log (kvm/svm lines):"
        printf '%s\n' "${FAIL_LINES[@]+"${FAIL_LINES[@]}"}" | grep -i -E 'kvm|svm|insmod|module' | sed 's/^/    /' >&2 || true
        say "full log: build/nested/last-console.log"
        exit "$HARNESS_FAIL"
        ;;
    *)
        if ((QRC == 124 || QRC == 137)); then
            show_tail 25
            die "QEMU did not finish within ${HOST_TIMEOUT}s (killed it)"
        fi
        show_tail 25
        if [[ $STATE == boot ]]; then
            die "guest stopped before running the command (QEMU exit status $QRC)"
        fi
        die "guest stopped while the command was running, no exit status (QEMU exit status $QRC; kernel panic?)"
        ;;
esac
}
