#!/usr/bin/env bash
# make-default-guest.sh - builds the default Linux guest from Debian packages only:
# Debian's cloud kernel (as a bzImage and as the PVH-bootable ELF vmlinux inside it)
# and a busybox initramfs that loads the virtio modules, runs the checks and powers off.
#
# Usage: scripts/make-default-guest.sh [--refresh] [--kernel-deb FILE] [--symbols] [--checks-dir DIR] [-q]
# Run with --help for details. Output (cached; rebuilt only when an input changed):
#   build/default-guest/vmlinuz            the kernel package's bzImage
#   build/default-guest/vmlinux            ELF extracted from it, with the Xen PVH entry note
#   build/default-guest/initramfs.cpio.gz  busybox + virtio modules + /init (cpio newc, gzip)
#   build/default-guest/System.map         with --symbols: the kernel's symbols, for
#                                          `vmm run --profile` (found beside the vmlinux)
#   build/default-guest/{release,package,config,modules.load,pvh-entry,symbols}
#   build/default-guest/deb/*.deb          the downloaded kernel package
#
# Needs (Debian packages): apt, dpkg, busybox-static, coreutils, diffutils, findutils, grep,
# gzip, util-linux (flock), and the decompressor of the kernel's payload: lz4 (Debian's cloud
# kernel), xz-utils, zstd or bzip2 for other kernels; cmake and g++ to build
# build/bin/kernel-info (tools/kernel-info: the VMM's own kernel image parsers) when missing.
set -euo pipefail

PROG=make-default-guest
SCRIPT_PATH=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)/$(basename -- "${BASH_SOURCE[0]}")
ROOT=$(cd -- "$(dirname -- "$SCRIPT_PATH")/.." && pwd -P)
OUT=$ROOT/build/default-guest
NESTED_KERNEL_DIR=$ROOT/build/nested/kernel
KERNEL_META_PKG=${DEFAULT_GUEST_KERNEL_META:-linux-image-cloud-amd64}
BUSYBOX=${DEFAULT_GUEST_BUSYBOX:-/bin/busybox}
CHECKS_DIR=${DEFAULT_GUEST_CHECKS_DIR:-$ROOT/tests/linux/checks.d}

# Modules the initramfs loads (with their dependencies from modules.dep, in order).
# A module the kernel has built in is skipped.
WANT_MODULES=(virtio_ring virtio virtio_mmio virtio_pci_legacy_dev virtio_pci_modern_dev
    virtio_pci virtio_blk virtio-rng vmw_vsock_virtio_transport)

say() { ((QUIET)) || printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s\n%s: run %s --help for usage\n' "$PROG" "$*" "$PROG" "$0" >&2; exit 2; }

usage() {
    cat <<'EOF'
Usage: scripts/make-default-guest.sh [OPTIONS]

Builds the default Linux guest under build/default-guest/ from Debian packages:
the kernel package that linux-image-cloud-amd64 depends on (apt-get download),
its bzImage (vmlinuz), the ELF vmlinux extracted from it (PVH entry checked) and
an initramfs (initramfs.cpio.gz) with busybox-static, the virtio modules and an
/init that prints "VMM-GUEST: init started", loads the modules, runs every
executable of /etc/vmm-checks.d/ (copied from tests/linux/checks.d/; each prints
"check <name>: ok|FAIL ..."), prints "VMM-GUEST: done" and powers off (ACPI S5).
Nothing is rebuilt when the outputs are up to date.

Options:
  --refresh          resolve and download the kernel package again
  --kernel-deb FILE  use this linux-image .deb instead of downloading one
  --symbols          also keep the kernel's System.map as build/default-guest/System.map,
                     where `vmm run --profile` finds it. Debian's linux-image package
                     ships only a placeholder /boot/System.map-*; the real one is in
                     linux-image-<release>-dbg (about 280 MB, downloaded with apt-get,
                     the System.map taken out of it, the package deleted again)
  --dbg-deb FILE     with --symbols: take the System.map from this -dbg .deb
  --checks-dir DIR   directory of check programs (default tests/linux/checks.d)
  -q, --quiet        print only errors
  -h, --help         this text

Environment: DEFAULT_GUEST_KERNEL_DEB=FILE (as --kernel-deb; NESTED_KVM_KERNEL_DEB
is honoured too), DEFAULT_GUEST_KERNEL_META (default linux-image-cloud-amd64),
DEFAULT_GUEST_BUSYBOX (default /bin/busybox), DEFAULT_GUEST_CHECKS_DIR (as --checks-dir),
DEFAULT_GUEST_SYMBOLS=1 (as --symbols), DEFAULT_GUEST_DBG_DEB=FILE (as --dbg-deb).
Exit status: 0 built or up to date; 1 failure; 2 usage error.
EOF
}

# ---------------------------------------------------------------- arguments
REFRESH=0
QUIET=0
KERNEL_DEB=${DEFAULT_GUEST_KERNEL_DEB:-${NESTED_KVM_KERNEL_DEB:-}}
SYMBOLS=${DEFAULT_GUEST_SYMBOLS:-0}
DBG_DEB=${DEFAULT_GUEST_DBG_DEB:-}
while [[ $# -gt 0 ]]; do
    case $1 in
        --refresh) REFRESH=1; shift ;;
        --kernel-deb) [[ $# -ge 2 ]] || usage_error "--kernel-deb needs a file"; KERNEL_DEB=$2; shift 2 ;;
        --kernel-deb=*) KERNEL_DEB=${1#*=}; shift ;;
        --symbols) SYMBOLS=1; shift ;;
        --dbg-deb) [[ $# -ge 2 ]] || usage_error "--dbg-deb needs a file"; DBG_DEB=$2; shift 2 ;;
        --dbg-deb=*) DBG_DEB=${1#*=}; shift ;;
        --checks-dir) [[ $# -ge 2 ]] || usage_error "--checks-dir needs a directory"; CHECKS_DIR=$2; shift 2 ;;
        --checks-dir=*) CHECKS_DIR=${1#*=}; shift ;;
        -q|--quiet) QUIET=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown argument '$1'" ;;
    esac
done
if [[ -n $KERNEL_DEB ]]; then
    [[ -f $KERNEL_DEB ]] || die "kernel package '$KERNEL_DEB' does not exist"
    KERNEL_DEB=$(realpath -e -- "$KERNEL_DEB")
fi
[[ $SYMBOLS == 0 || $SYMBOLS == 1 ]] || usage_error "DEFAULT_GUEST_SYMBOLS must be 0 or 1"
if [[ -n $DBG_DEB ]]; then
    [[ -f $DBG_DEB ]] || die "debug package '$DBG_DEB' does not exist"
    DBG_DEB=$(realpath -e -- "$DBG_DEB")
fi
if [[ -e $CHECKS_DIR ]]; then
    [[ -d $CHECKS_DIR ]] || die "checks directory '$CHECKS_DIR' is not a directory"
    CHECKS_DIR=$(realpath -e -- "$CHECKS_DIR")
fi

# ---------------------------------------------------------------- prerequisites
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found: install the Debian package busybox-static"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    die "$BUSYBOX is dynamically linked: install the Debian package busybox-static"
fi
for tool in dpkg-deb gzip flock cmp sha256sum find sort; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (needed by $PROG)"
done

mkdir -p "$OUT/deb" || die "cannot create $OUT"
exec 9>"$OUT/.lock"
flock -w 900 9 || die "timed out waiting for another $PROG run (lock $OUT/.lock)"

TMP=""
DBG_TMP=""
cleanup() {
    [[ -z $TMP ]] || rm -rf -- "$TMP"
    [[ -z $DBG_TMP ]] || rm -rf -- "$DBG_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ---------------------------------------------------------------- the kernel package
# shellcheck source=lib/debian-kernel.sh
. "$ROOT/scripts/lib/debian-kernel.sh"

# Chooses the .deb to build from, downloading it when needed; prints its path.
obtain_kernel_deb() {
    if [[ -n $KERNEL_DEB ]]; then
        printf '%s\n' "$KERNEL_DEB"
        return 0
    fi
    local cached
    cached=$(find "$OUT/deb" -maxdepth 1 -name 'linux-image-*.deb' -print 2>/dev/null | LC_ALL=C sort | tail -n1)
    if ((REFRESH == 0)) && [[ -n $cached ]]; then
        printf '%s\n' "$cached"
        return 0
    fi
    # scripts/nested-kvm.sh records the package it used; reuse that very file when it is
    # still around (it keeps only the unpacked kernel, so usually only apt's cache has it).
    if ((REFRESH == 0)) && [[ -f $NESTED_KERNEL_DIR/package ]]; then
        local name d
        name=$(head -n1 "$NESTED_KERNEL_DIR/package")
        if [[ $name =~ ^linux-image-[A-Za-z0-9.+~%_-]+\.deb$ ]]; then
            for d in "$NESTED_KERNEL_DIR" "$ROOT/build/nested" /var/cache/apt/archives; do
                if [[ -f $d/$name ]] && dpkg-deb --info "$d/$name" >/dev/null 2>&1; then
                    say "reusing $name from ${d#"$ROOT"/}"
                    cp -- "$d/$name" "$OUT/deb/$name.tmp" && mv -f -- "$OUT/deb/$name.tmp" "$OUT/deb/$name"
                    printf '%s\n' "$OUT/deb/$name"
                    return 0
                fi
            done
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: cannot fetch the Debian kernel (use --kernel-deb)"
    local pkg
    pkg=$(debian_kernel_resolve "$KERNEL_META_PKG") || pkg=""
    if [[ -z $pkg ]]; then
        [[ -n $cached ]] && { say "cannot resolve $KERNEL_META_PKG; keeping ${cached##*/}"; printf '%s\n' "$cached"; return 0; }
        die "cannot resolve '$KERNEL_META_PKG' to a kernel package (run apt-get update, or use --kernel-deb)"
    fi
    local dl
    dl=$(mktemp -d "$OUT/deb/dl.XXXXXX")
    say "downloading Debian package $pkg"
    local deb
    deb=$(debian_kernel_download "$pkg" "$dl") || { rm -rf -- "$dl"; exit 1; }
    # Keep only the newest package in the cache.
    find "$OUT/deb" -maxdepth 1 -name 'linux-image-*.deb' -delete
    mv -f -- "$deb" "$OUT/deb/"
    rm -rf -- "$dl"
    printf '%s\n' "$OUT/deb/${deb##*/}"
}

# ---------------------------------------------------------------- kernel images
# The ELF notes and setup headers are read by tools/kernel-info, the VMM's own (tested and
# fuzzed) parsers, built here when build/bin lacks it: in the project's build tree when it is
# configured, else on its own (tools -> build/tools).
KERNEL_INFO=$ROOT/build/bin/kernel-info
ensure_kernel_info() {
    local log=$OUT/kernel-info-build.log
    command -v cmake >/dev/null 2>&1 || die "cmake not found: cannot build build/bin/kernel-info"
    if [[ -f $ROOT/build/CMakeCache.txt ]] &&
        cmake --build "$ROOT/build" --target kernel-info >"$log" 2>&1; then
        [[ -x $KERNEL_INFO ]] && return 0
    fi
    say "building build/bin/kernel-info (standalone: tools -> build/tools)"
    { cmake -S "$ROOT/tools" -B "$ROOT/build/tools" -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$ROOT/build/bin" &&
        cmake --build "$ROOT/build/tools" --target kernel-info; } >>"$log" 2>&1 || {
        cat "$log" >&2
        die "cannot build build/bin/kernel-info"
    }
    [[ -x $KERNEL_INFO ]] || die "build/bin/kernel-info missing after the build"
}
# info_field KEY LINES: the value of KEY in kernel-info's key=value lines.
info_field() { sed -n "s/^$1=//p" <<<"$2"; }

# Decompression command for a payload format of kernel-info (payload_format).
decompressor_for() { # decompressor_for FORMAT
    case $1 in
        lz4) echo "lz4 -dc" ;;
        xz) echo "xz -dc" ;;
        zstd) echo "zstd -dcq" ;;
        gzip) echo "gzip -dc" ;;
        bzip2) echo "bzip2 -dc" ;;
        lzma) echo "xz -dc --format=lzma" ;;
        *) return 1 ;;
    esac
}
package_of() { # the Debian package of a decompression tool
    case $1 in
        lz4) echo lz4 ;; xz) echo xz-utils ;; zstd) echo zstd ;; gzip) echo gzip ;; bzip2) echo bzip2 ;;
    esac
}
need_tool() {
    command -v "$1" >/dev/null 2>&1 ||
        die "the kernel payload needs '$1' to decompress: install the Debian package $(package_of "$1")"
}

# Prints the entry address (hex) of the XEN_ELFNOTE_PHYS32_ENTRY note of a 64-bit ELF the
# VMM can boot, or fails.
pvh_entry() {
    local info
    info=$("$KERNEL_INFO" "$1" 2>/dev/null) && [[ $(info_field format "$info") == pvh-elf64 ]] || return 1
    info_field pvh_entry "$info"
}

# Extracts the ELF kernel from a bzImage: first at the payload the setup header points to
# (boot protocol 2.08+), else at every offset where a known compression magic appears.
extract_vmlinux() { # extract_vmlinux BZIMAGE OUT
    local img=$1 out=$2 cmd info
    info=$("$KERNEL_INFO" "$img") || die "$(basename -- "$img") is not a bzImage the VMM can boot"
    [[ $(info_field format "$info") == bzimage ]] || die "$(basename -- "$img") is not a bzImage"
    local poff plen
    poff=$(info_field payload_offset "$info")
    plen=$(info_field payload_length "$info")
    if [[ -n $poff ]] && cmd=$(decompressor_for "$(info_field payload_format "$info")"); then
        need_tool "${cmd%% *}"
        say "payload: ${cmd%% *} at offset $poff, $plen bytes"
        # The build appends the uncompressed size (le32) to the stream, which some tools
        # (lz4) then reject with a bare exit status 1: judge by the output instead.
        dd if="$img" bs=1M iflag=skip_bytes,count_bytes skip="$poff" count="$plen" status=none |
            $cmd >"$out" 2>"$out.err" || true
        local want got
        want=$(info_field payload_output_size "$info")
        want=${want:--1}
        got=$(stat -c %s -- "$out")
        if ((got != want)); then
            say "payload at the header's offset decompressed to $got bytes, not $want: $(head -c 300 "$out.err")"
        elif pvh_entry "$out" >/dev/null; then
            rm -f -- "$out.err"
            return 0
        else
            say "payload at the header's offset is not an ELF with a PVH entry note"
        fi
    fi
    # Fallback (as the kernel's scripts/extract-vmlinux does): try each magic found.
    local magic o
    for magic in 'lz4 \x02\x21\x4c\x18' 'xz \xfd\x37\x7a\x58\x5a\x00' 'zstd \x28\xb5\x2f\xfd' \
        'gzip \x1f\x8b\x08' 'bzip2 \x42\x5a\x68'; do
        cmd=$(decompressor_for "${magic%% *}")
        command -v "${cmd%% *}" >/dev/null 2>&1 || continue
        while IFS=: read -r o _; do
            [[ -n $o ]] || continue
            # Trailing bytes after the stream make some tools complain: judge by the result.
            tail -c +$((o + 1)) -- "$img" | $cmd >"$out" 2>/dev/null || true
            if pvh_entry "$out" >/dev/null; then
                say "payload: ${cmd%% *} at offset $o (found by its magic)"
                rm -f -- "$out.err"
                return 0
            fi
        done < <(LC_ALL=C grep -obUaP "${magic#* }" -- "$img" 2>/dev/null | head -n 20 || true)
    done
    rm -f -- "$out" "$out.err"
    die "no compressed ELF kernel with a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) found in $(basename -- "$img")"
}

# ---------------------------------------------------------------- symbols
# is_system_map FILE: a System.map with text symbols (Debian's linux-image package ships a
# one-line placeholder pointing at the -dbg package instead).
is_system_map() { [[ -s $1 ]] && grep -qm1 -E '^[0-9a-f]{8,16} [Tt] ' -- "$1"; }

# vmlinux_text VMLINUX: the virtual address of its first PT_LOAD (where _text is), in hex.
vmlinux_text() {
    local info
    info=$("$KERNEL_INFO" "$1" 2>/dev/null) || return 1
    info_field first_load_vaddr "$info" | grep . || return 1
}

# check_system_map MAP VMLINUX: the map belongs to this kernel (same _text address).
check_system_map() {
    local text want
    is_system_map "$1" || { say "$1 has no text symbols"; return 1; }
    text=$(awk '$3 == "_text" { print $1; exit }' "$1")
    want=$(vmlinux_text "$2") || { say "cannot read the program headers of $2"; return 1; }
    if [[ -z $text ]] || (( 16#$text != want )); then
        say "System.map's _text (${text:-none}) is not the vmlinux's first segment ($want)"
        return 1
    fi
}

# Puts the kernel's real System.map at $OUT/System.map (and "RELEASE SOURCE" in
# $OUT/symbols), from the -dbg package of the same version; nothing when it is already there.
obtain_symbols() {
    local release version pkg dbg map
    release=$(cat "$OUT/release")
    if [[ -s $OUT/symbols && $(cut -d' ' -f1 "$OUT/symbols") == "$release" ]] && is_system_map "$OUT/System.map"; then
        return 0
    fi
    rm -f -- "$OUT/System.map" "$OUT/symbols"
    ensure_kernel_info
    DBG_TMP=$(mktemp -d "$OUT/deb/dbg.XXXXXX")
    if [[ -n $DBG_DEB ]]; then
        dbg=$DBG_DEB
    else
        command -v apt-get >/dev/null 2>&1 || die "apt-get not found: cannot fetch the kernel's symbols (use --dbg-deb)"
        version=$(dpkg-deb -f "$DEB" Version) || die "no version in $(basename -- "$DEB")"
        pkg=linux-image-$release-dbg
        say "downloading Debian package $pkg $version (the kernel's System.map; about 280 MB, deleted after use)"
        if ! (cd "$DBG_TMP" && apt-get download -q "$pkg=$version") >"$DBG_TMP/log" 2>&1; then
            cat "$DBG_TMP/log" >&2
            die "apt-get download $pkg=$version failed (run apt-get update, use --dbg-deb, or drop --symbols)"
        fi
        dbg=$(find "$DBG_TMP" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
        [[ -n $dbg ]] || die "apt-get download $pkg produced no .deb"
    fi
    map=./usr/lib/debug/boot/System.map-$release
    # --occurrence=1 stops reading once the map is out (it comes early in Debian's package);
    # dpkg-deb then complains of a broken pipe, so judge by the file.
    dpkg-deb --fsys-tarfile "$dbg" 2>/dev/null | tar -x -C "$DBG_TMP" --occurrence=1 "$map" 2>/dev/null || true
    [[ -s $DBG_TMP/$map ]] || die "no ${map#.} in $(basename -- "$dbg")"
    check_system_map "$DBG_TMP/$map" "$OUT/vmlinux" || die "the System.map in $(basename -- "$dbg") is not this kernel's"
    mv -f -- "$DBG_TMP/$map" "$OUT/System.map"
    printf '%s %s\n' "$release" "$(basename -- "$dbg")" >"$OUT/symbols"
    rm -rf -- "$DBG_TMP"
    DBG_TMP=""
}

# ---------------------------------------------------------------- stamp
DEB=$(obtain_kernel_deb)
dpkg-deb --info "$DEB" >/dev/null 2>&1 || die "'$DEB' is not a valid .deb"
checks_hash=none
if [[ -d $CHECKS_DIR ]]; then
    # shellcheck disable=SC2016 # the $f are expanded by the sh that xargs runs
    checks_hash=$(cd "$CHECKS_DIR" && find . -type f -print0 | LC_ALL=C sort -z |
        xargs -0r sh -c 'for f; do printf "%s %s\n" "$f" "$(stat -c %a "$f")"; cat -- "$f"; done' sh |
        sha256sum | cut -d' ' -f1)
fi
STAMP="deb=$(basename -- "$DEB") $(stat -L -c '%s %Y' -- "$DEB")
script=$(cat -- "$SCRIPT_PATH" "$ROOT/scripts/lib/debian-kernel.sh" | sha256sum | cut -d' ' -f1)
busybox=$(stat -L -c '%s %Y %i' -- "$BUSYBOX")
checks=$CHECKS_DIR $checks_hash"
OUTPUTS=(vmlinuz vmlinux initramfs.cpio.gz release package pvh-entry modules.load)

up_to_date() {
    [[ -f $OUT/.stamp && "$(cat "$OUT/.stamp")" == "$STAMP" ]] || return 1
    local f
    for f in "${OUTPUTS[@]}"; do [[ -s $OUT/$f ]] || return 1; done
}
print_result() {
    say "kernel $(cat "$OUT/release") ($(cat "$OUT/package")), PVH entry $(cat "$OUT/pvh-entry")"
    say "  ${OUT#"$ROOT"/}/vmlinuz (bzImage), ${OUT#"$ROOT"/}/vmlinux (PVH ELF)"
    if [[ -s $OUT/symbols ]] && is_system_map "$OUT/System.map"; then
        say "  ${OUT#"$ROOT"/}/System.map ($(grep -cE '^[0-9a-f]+ [Tt] ' "$OUT/System.map") text symbols, from $(cut -d' ' -f2 "$OUT/symbols"))"
    fi
    say "  ${OUT#"$ROOT"/}/initramfs.cpio.gz ($(($(stat -c %s "$OUT/initramfs.cpio.gz") / 1024)) KiB); modules: $(cut -d' ' -f1 "$OUT/modules.load" | tr '\n' ' ')"
}
if up_to_date; then
    say "up to date"
    ((SYMBOLS == 0)) || obtain_symbols
    print_result
    exit 0
fi

# ---------------------------------------------------------------- build
TMP=$(mktemp -d "$OUT/build.XXXXXX")
say "unpacking $(basename -- "$DEB")"
debian_kernel_unpack "$DEB" "$TMP/x"
RELEASE=$DK_RELEASE
MODDIR=$DK_MODDIR
mkdir -p "$TMP/out"
cp -- "$DK_VMLINUZ" "$TMP/out/vmlinuz"
[[ -f $TMP/x/boot/config-$RELEASE ]] && cp -- "$TMP/x/boot/config-$RELEASE" "$TMP/out/config"
printf '%s\n' "$RELEASE" >"$TMP/out/release"
basename -- "$DEB" >"$TMP/out/package"

say "extracting vmlinux"
ensure_kernel_info
extract_vmlinux "$TMP/out/vmlinuz" "$TMP/out/vmlinux"
pvh_entry "$TMP/out/vmlinux" >"$TMP/out/pvh-entry"
# A kernel package with a real System.map (not Debian's placeholder) gives it for free.
if check_system_map "$TMP/x/boot/System.map-$RELEASE" "$TMP/out/vmlinux" 2>/dev/null; then
    cp -- "$TMP/x/boot/System.map-$RELEASE" "$TMP/out/System.map"
    printf '%s %s\n' "$RELEASE" "$(basename -- "$DEB")" >"$TMP/out/symbols"
fi

# The modules and their dependencies, in load order.
debian_kernel_modules "$BUSYBOX" "${WANT_MODULES[@]}"

R=$TMP/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,etc/vmm-checks.d,lib/modules/"$RELEASE"}
: >"$TMP/out/modules.load"
for n in "${DK_MODULES[@]+"${DK_MODULES[@]}"}"; do
    p=${DK_MODPATH[$n]}
    mkdir -p "$R/lib/modules/$RELEASE/$(dirname -- "$p")"
    cp -- "$MODDIR/$p" "$R/lib/modules/$RELEASE/$p"
    printf '%s %s\n' "$n" "$p" >>"$TMP/out/modules.load"
    grep -- "^$p:" "$MODDIR/modules.dep" >>"$R/lib/modules/$RELEASE/modules.dep"
done
cp -- "$TMP/out/modules.load" "$R/etc/vmm-modules.load"
cp -- "$MODDIR/modules.builtin" "$R/lib/modules/$RELEASE/" 2>/dev/null || true
: >>"$R/lib/modules/$RELEASE/modules.dep"

# busybox and its applets as symlinks, made here rather than by --install at boot: every
# guest kernel instruction counts on slow hosts.
cp -- "$BUSYBOX" "$R/bin/busybox"
mapfile -t APPLETS < <("$BUSYBOX" --list-full)
declare -A APPLET_DIRS=()
for applet in "${APPLETS[@]}"; do [[ $applet == */* ]] && APPLET_DIRS[${applet%/*}]=1; done
((${#APPLET_DIRS[@]} == 0)) || (cd "$R" && mkdir -p -- "${!APPLET_DIRS[@]}")
for applet in "${APPLETS[@]}"; do
    [[ -n $applet && $applet != bin/busybox && $applet != /* && $applet != *..* ]] || continue
    [[ -e $R/$applet || -L $R/$applet ]] || ln -s /bin/busybox "$R/$applet"
done
[[ -L $R/bin/sh ]] || ln -s busybox "$R/bin/sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"

if [[ -d $CHECKS_DIR ]]; then
    while IFS= read -r -d '' f; do
        [[ -x $f ]] || { say "note: ${f#"$ROOT"/} is not executable; /init will skip it"; }
        cp -p -- "$f" "$R/etc/vmm-checks.d/"
    done < <(find "$CHECKS_DIR" -maxdepth 1 -type f -print0)
fi

cat >"$R/init" <<'EOF'
#!/bin/sh
# /init of the default Linux guest (generated by scripts/make-default-guest.sh).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "VMM-GUEST: init started"

# The virtio modules, dependencies first (list made from modules.dep at build time).
failed=""
loaded=0
while read -r name path; do
    [ -n "$name" ] || continue
    if [ -d "/sys/module/$name" ]; then continue; fi
    if err=$(insmod "/lib/modules/$(uname -r)/$path" 2>&1); then
        loaded=$((loaded + 1))
    else
        failed="$failed $name($err)"
    fi
done </etc/vmm-modules.load
if [ -z "$failed" ]; then
    echo "check modules: ok ($loaded loaded)"
else
    echo "check modules: FAIL insmod failed:$failed"
fi

ran=0
bad=0
for c in /etc/vmm-checks.d/*; do
    [ -f "$c" ] && [ -x "$c" ] || continue
    ran=$((ran + 1))
    timeout 120 "$c" </dev/null
    rc=$?
    if [ "$rc" -ne 0 ]; then
        bad=$((bad + 1))
        echo "check ${c##*/}: FAIL exit status $rc"
    fi
done
echo "VMM-GUEST: $ran checks run, $bad exited non-zero"
echo "VMM-GUEST: done"
# Our output may still sit in the serial driver's buffer, and poweroff -f does not wait for
# it: setting the console's (unchanged) attributes waits until it is sent (TCSADRAIN).
stty -F /dev/console "$(stty -F /dev/console -g)" 2>/dev/null
poweroff -f
echo "VMM-GUEST: poweroff -f returned"
sleep 5
exit 1
EOF
chmod 755 "$R/init"

say "building initramfs.cpio.gz"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) |
    gzip -9 -n >"$TMP/out/initramfs.cpio.gz" || die "cannot build the initramfs"
head -c 2 -- "$TMP/out/initramfs.cpio.gz" | cmp -s - <(printf '\037\213') || die "initramfs is not gzip"

# Install: stamp last, so an interrupted run rebuilds next time. Symbols of the kernel
# before are kept only if they are this release's (obtain_symbols checks).
rm -f -- "$OUT/.stamp"
if [[ ! -f $TMP/out/symbols && -f $OUT/symbols && $(cut -d' ' -f1 "$OUT/symbols") != "$RELEASE" ]]; then
    rm -f -- "$OUT/System.map" "$OUT/symbols" # another kernel's: --profile would misname
fi
for f in "$TMP"/out/*; do mv -f -- "$f" "$OUT/"; done
printf '%s\n' "$STAMP" >"$OUT/.stamp"
((SYMBOLS == 0)) || obtain_symbols
print_result
