# shellcheck shell=bash
# debian-kernel.sh - Debian's kernel package for the project's guests, in one place:
# which package, its download, its unpacking and the modules a guest loads, dependencies
# first. Sourced by scripts/make-default-guest.sh and scripts/nested-kvm.sh, which keep
# their own caches; the caller defines say MESSAGE and die MESSAGE (die does not return).
#
#   pkg=$(debian_kernel_resolve linux-image-cloud-amd64) || die "..."
#   deb=$(debian_kernel_download "$pkg" "$dir")
#   debian_kernel_unpack "$deb" "$dir/x"      # sets DK_VMLINUZ, DK_RELEASE, DK_MODDIR
#   debian_kernel_modules "$BUSYBOX" virtio_blk kvm-amd   # sets DK_MODULES, DK_MODPATH
#
# Needs (Debian packages): apt, dpkg, busybox-static (depmod; kmod's is used otherwise), mawk.

# debian_kernel_resolve META: prints the linux-image-<release> package META depends on (e.g.
# linux-image-6.1.0-57-cloud-amd64 for linux-image-cloud-amd64). As root, runs apt-get update
# once when apt does not know META. Fails, printing nothing, when it cannot resolve it.
debian_kernel_resolve() {
    local meta=$1 pkg log
    _dk_depends() {
        apt-cache depends "$1" 2>/dev/null |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }' || true
    }
    pkg=$(_dk_depends "$meta")
    if [[ -z $pkg && $(id -u) -eq 0 ]]; then
        say "'$meta' unknown to apt; running apt-get update"
        log=$(mktemp)
        if ! apt-get update -qq >"$log" 2>&1; then
            cat "$log" >&2
            rm -f -- "$log"
            die "apt-get update failed"
        fi
        rm -f -- "$log"
        pkg=$(_dk_depends "$meta")
    fi
    [[ -n $pkg ]] || return 1
    printf '%s\n' "$pkg"
}

# debian_kernel_download PKG DIR: downloads PKG's .deb into DIR (apt-get download) and prints
# its path.
debian_kernel_download() {
    local pkg=$1 dir=$2 deb
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: cannot fetch the Debian kernel"
    if ! (cd "$dir" && apt-get download -q "$pkg") >"$dir/apt-download.log" 2>&1; then
        cat "$dir/apt-download.log" >&2
        die "apt-get download $pkg failed"
    fi
    rm -f -- "$dir/apt-download.log"
    deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
    [[ -n $deb ]] || die "apt-get download $pkg produced no .deb"
    printf '%s\n' "$deb"
}

# debian_kernel_unpack DEB DIR: unpacks DEB into DIR and sets DK_VMLINUZ (its bzImage),
# DK_RELEASE (e.g. 6.1.0-57-cloud-amd64) and DK_MODDIR (DIR/lib/modules/DK_RELEASE, or
# below usr/).
debian_kernel_unpack() {
    local deb=$1 dir=$2
    mkdir -p "$dir"
    dpkg-deb -x "$deb" "$dir" || die "cannot unpack $(basename -- "$deb")"
    DK_VMLINUZ=$(find "$dir/boot" -maxdepth 1 -name 'vmlinuz-*' -print -quit 2>/dev/null || true)
    [[ -n $DK_VMLINUZ ]] || die "no /boot/vmlinuz-* in $(basename -- "$deb")"
    DK_RELEASE=${DK_VMLINUZ##*/vmlinuz-}
    DK_MODDIR=$dir/lib/modules/$DK_RELEASE
    [[ -d $DK_MODDIR ]] || DK_MODDIR=$dir/usr/lib/modules/$DK_RELEASE
    [[ -d $DK_MODDIR ]] || die "no modules directory for $DK_RELEASE in $(basename -- "$deb")"
}

# debian_kernel_modules BUSYBOX NAME...: after debian_kernel_unpack, the modules NAME... and
# everything they depend on, dependencies first: sets DK_MODULES (names, '-' as '_') and
# DK_MODPATH[name] (the path below DK_MODDIR). A module built into the kernel is skipped.
# Debian's package has no modules.dep (depmod runs at install time), so this makes one in
# DK_MODDIR with busybox's depmod (kmod's when that fails); it lists each module's
# dependencies, transitively.
debian_kernel_modules() {
    local busybox=$1 base=${DK_MODDIR%/lib/modules/"$DK_RELEASE"} w
    shift
    "$busybox" depmod -b "$base" "$DK_RELEASE" 2>/dev/null || true
    if [[ ! -s $DK_MODDIR/modules.dep ]] && command -v depmod >/dev/null 2>&1; then
        depmod -b "$base" "$DK_RELEASE" || true
    fi
    [[ -s $DK_MODDIR/modules.dep ]] || die "could not generate modules.dep for $DK_RELEASE"
    DK_MODULES=()
    declare -gA DK_MODPATH=()
    declare -gA _DK_SEEN=()
    for w in "$@"; do _dk_resolve "$w"; done
}

# _dk_dep_line NAME: the modules.dep line of a module (names compare with '-' as '_').
_dk_dep_line() {
    awk -v n="$1" '{ m = $1; sub(/:$/, "", m); sub(/.*\//, "", m); sub(/\.ko.*/, "", m);
                     gsub(/-/, "_", m); if (m == n) { print; exit } }' "$DK_MODDIR/modules.dep"
}
_dk_is_builtin() {
    [[ -f $DK_MODDIR/modules.builtin ]] || return 1
    sed 's#.*/##; s#\.ko.*##; s#-#_#g' "$DK_MODDIR/modules.builtin" | grep -qx -- "$1"
}
_dk_resolve() { # depth first, dependencies first
    local n=${1//-/_} d dn line
    [[ -n ${_DK_SEEN[$n]:-} ]] && return 0
    _DK_SEEN[$n]=1
    line=$(_dk_dep_line "$n")
    if [[ -z $line ]]; then
        _dk_is_builtin "$n" && { say "module $n is built into the kernel"; return 0; }
        die "module $1 is neither in the kernel package nor built in"
    fi
    DK_MODPATH[$n]=${line%%:*}
    [[ ${DK_MODPATH[$n]} == *.ko ]] || die "compressed module ${DK_MODPATH[$n]} is not supported (busybox insmod)"
    for d in ${line#*:}; do
        dn=${d##*/}
        dn=${dn%%.ko*}
        _dk_resolve "$dn"
    done
    DK_MODULES+=("$n")
}
