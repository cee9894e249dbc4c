#!/usr/bin/env bash
# make-eventlog-samples.sh - captures real TCG event logs written by OVMF, for the tests of
# attestation/ (the event log parser and replayer).
#
# Boots QEMU (q35, TCG) with Debian's OVMF, a swtpm TPM 2.0 on tpm-tis and Debian's cloud
# kernel with a tiny busybox initramfs. The guest's /init mounts securityfs, prints the
# kernel's copy of the firmware log (/sys/kernel/security/tpm0/binary_bios_measurements) as
# base64 between markers on the serial console, prints the TPM's PCRs of every bank from
# /sys/class/tpm/tpm0/pcr-<alg>/<n>, and powers off. The log is written to
# OUTDIR/NAME.bin and the PCRs to OUTDIR/NAME.pcrs ("<alg> <pcr> <hex>" per line).
#
# Usage: scripts/make-eventlog-samples.sh [--out DIR] [--kernel-deb FILE] [--banks LIST] [--name NAME]
#   --out DIR          where the samples go (default tests/data/eventlogs)
#   --kernel-deb FILE  a linux-image .deb (default: build/default-guest/deb/*.deb when present,
#                      else the package linux-image-cloud-amd64 depends on, via apt-get download)
#   --banks LIST       PCR banks swtpm_setup activates, e.g. sha256 or sha1,sha256,sha384
#                      (default sha256,sha384); '-' leaves all of libtpms's banks active
#   --name NAME        base name of the output files (default ovmf-q35-<banks>)
#   --timeout SEC      how long the guest may run (default 600)
#   --console FILE     also keep the guest's serial console output there
# Needs (Debian packages): qemu-system-x86, ovmf, swtpm, swtpm-tools, busybox-static, cpio,
# gzip, coreutils, dpkg, apt. Exit status: 0 captured; 1 failure; 2 usage; 77 a tool missing.
set -euo pipefail

PROG=make-eventlog-samples
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
OUTDIR=$ROOT/tests/data/eventlogs
KERNEL_DEB=""
BANKS=sha256,sha384
NAME=""
TIMEOUT=600
CONSOLE=""
BUSYBOX=/bin/busybox
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
skip() { printf '%s: skipped: %s\n' "$PROG" "$*" >&2; exit 77; }
usage_error() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --out) [[ $# -ge 2 ]] || usage_error "--out needs a directory"; OUTDIR=$2; shift 2 ;;
        --kernel-deb) [[ $# -ge 2 ]] || usage_error "--kernel-deb needs a file"; KERNEL_DEB=$2; shift 2 ;;
        --banks) [[ $# -ge 2 ]] || usage_error "--banks needs a list"; BANKS=$2; shift 2 ;;
        --name) [[ $# -ge 2 ]] || usage_error "--name needs a name"; NAME=$2; shift 2 ;;
        --console) [[ $# -ge 2 ]] || usage_error "--console needs a file"; CONSOLE=$2; shift 2 ;;
        --timeout) [[ $# -ge 2 ]] || usage_error "--timeout needs seconds"; TIMEOUT=$2; shift 2 ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) usage_error "unknown argument '$1' (try --help)" ;;
    esac
done
[[ $TIMEOUT =~ ^[0-9]+$ ]] || usage_error "--timeout must be a number of seconds"
[[ -n $NAME ]] || NAME=ovmf-q35-${BANKS//,/-}
[[ $NAME =~ ^[A-Za-z0-9._-]+$ ]] || usage_error "--name may hold only letters, digits, '.', '_' and '-'"

for tool in qemu-system-x86_64 swtpm swtpm_setup cpio gzip base64 dpkg-deb timeout; do
    command -v "$tool" >/dev/null 2>&1 || skip "'$tool' not found (see scripts/install-deps.sh)"
done
[[ -r $OVMF_CODE && -r $OVMF_VARS ]] || skip "$OVMF_CODE not found: install the Debian package ovmf"
[[ -x $BUSYBOX ]] || skip "$BUSYBOX not found: install the Debian package busybox-static"

TMP=$(mktemp -d)
SWTPM_PID=""
cleanup() {
    if [[ -n $SWTPM_PID ]]; then kill "$SWTPM_PID" 2>/dev/null || true; fi
    rm -rf -- "$TMP"
}
trap cleanup EXIT

# ---------------------------------------------------------------- kernel
# shellcheck source=lib/debian-kernel.sh
. "$ROOT/scripts/lib/debian-kernel.sh"
if [[ -z $KERNEL_DEB ]]; then
    KERNEL_DEB=$(find "$ROOT/build/default-guest/deb" -maxdepth 1 -name 'linux-image-*.deb' -print 2>/dev/null |
        LC_ALL=C sort | tail -n1)
fi
if [[ -z $KERNEL_DEB ]]; then
    pkg=$(debian_kernel_resolve linux-image-cloud-amd64) || die "cannot resolve linux-image-cloud-amd64 (apt-get update, or --kernel-deb)"
    say "downloading $pkg"
    KERNEL_DEB=$(debian_kernel_download "$pkg" "$TMP")
fi
[[ -f $KERNEL_DEB ]] || die "kernel package '$KERNEL_DEB' does not exist"
debian_kernel_unpack "$KERNEL_DEB" "$TMP/kernel"
config=$TMP/kernel/boot/config-$DK_RELEASE
for opt in CONFIG_TCG_TPM CONFIG_TCG_TIS CONFIG_SECURITYFS; do
    grep -qx "$opt=y" "$config" || die "$DK_RELEASE lacks $opt=y (this script loads no modules)"
done
say "kernel $DK_RELEASE (tpm_tis built in)"

# ---------------------------------------------------------------- initramfs
mkdir -p "$TMP/initramfs/bin" "$TMP/initramfs/proc" "$TMP/initramfs/sys" "$TMP/initramfs/dev"
cp -- "$BUSYBOX" "$TMP/initramfs/bin/busybox"
cat >"$TMP/initramfs/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t securityfs securityfs /sys/kernel/security
echo 0 >/proc/sys/kernel/printk
log=/sys/kernel/security/tpm0/binary_bios_measurements
if [ -r "$log" ]; then
  echo "EVENTLOG-BEGIN"
  base64 "$log"
  echo "EVENTLOG-END"
else
  echo "EVENTLOG-MISSING"
fi
echo "PCRS-BEGIN"
for bank in /sys/class/tpm/tpm0/pcr-*; do
  [ -d "$bank" ] || continue
  alg=${bank##*/pcr-}
  n=0
  while [ $n -le 23 ]; do
    [ -r "$bank/$n" ] && echo "PCR $alg $n $(cat "$bank/$n")"
    n=$((n + 1))
  done
done
echo "PCRS-END"
poweroff -f
EOF
chmod +x "$TMP/initramfs/init"
(cd "$TMP/initramfs" && find . | cpio -o -H newc --quiet | gzip -9) >"$TMP/initramfs.cpio.gz"

# ---------------------------------------------------------------- swtpm
mkdir -p "$TMP/tpm"
if [[ $BANKS != - ]]; then
    swtpm_setup --tpm2 --tpmstate "$TMP/tpm" --pcr-banks "$BANKS" --createek \
        --overwrite >"$TMP/swtpm_setup.log" 2>&1 || { cat "$TMP/swtpm_setup.log" >&2; die "swtpm_setup failed"; }
fi
swtpm socket --tpm2 --tpmstate dir="$TMP/tpm" --ctrl type=unixio,path="$TMP/swtpm.sock" \
    --log file="$TMP/swtpm.log" --terminate &
SWTPM_PID=$!
for _ in $(seq 50); do [[ -S $TMP/swtpm.sock ]] && break; sleep 0.1; done
[[ -S $TMP/swtpm.sock ]] || die "swtpm did not create its socket"

# ---------------------------------------------------------------- boot
cp -- "$OVMF_VARS" "$TMP/vars.fd"
say "booting QEMU (q35, TCG) with OVMF and swtpm (banks: $BANKS)"
start=$(date +%s)
rc=0
timeout "$TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg -m 512 -smp 1 \
    -display none -no-reboot -monitor none -serial "file:$TMP/console.log" \
    -drive if=pflash,format=raw,unit=0,readonly=on,file="$OVMF_CODE" \
    -drive if=pflash,format=raw,unit=1,file="$TMP/vars.fd" \
    -chardev socket,id=chrtpm,path="$TMP/swtpm.sock" \
    -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0 \
    -kernel "$DK_VMLINUZ" -initrd "$TMP/initramfs.cpio.gz" \
    -append "console=ttyS0 quiet loglevel=0 panic=-1" >"$TMP/qemu.log" 2>&1 || rc=$?
elapsed=$(($(date +%s) - start))
say "QEMU ran ${elapsed}s (exit $rc)"
if [[ -n $CONSOLE ]]; then cp -- "$TMP/console.log" "$CONSOLE"; fi
if ! grep -q EVENTLOG-END "$TMP/console.log" 2>/dev/null; then
    cat "$TMP/qemu.log" >&2
    tail -c 3000 "$TMP/console.log" >&2 2>/dev/null || true
    die "no event log on the console (see above)"
fi

tr -d '\r' <"$TMP/console.log" | sed -n '/EVENTLOG-BEGIN$/,/^EVENTLOG-END$/p' | sed '1d;$d' |
    base64 -d >"$TMP/log.bin" || die "the base64 between the markers does not decode"
tr -d '\r' <"$TMP/console.log" | sed -n 's/^PCR \([a-z0-9]*\) \([0-9]*\) \([0-9A-Fa-f]*\)$/\1 \2 \3/p' |
    tr 'A-F' 'a-f' >"$TMP/pcrs.txt"
if [[ ! -s $TMP/log.bin ]]; then
    tail -c 3000 "$TMP/console.log" >&2
    die "the event log is empty (console above)"
fi
mkdir -p "$OUTDIR"
cp -- "$TMP/log.bin" "$OUTDIR/$NAME.bin"
cp -- "$TMP/pcrs.txt" "$OUTDIR/$NAME.pcrs"
say "wrote $OUTDIR/$NAME.bin ($(stat -c %s "$OUTDIR/$NAME.bin") bytes) and $NAME.pcrs ($(wc -l <"$OUTDIR/$NAME.pcrs") PCR values) in ${elapsed}s of QEMU"
