#!/usr/bin/env bash
# Builds the Debian package from the tree (dpkg-buildpackage), installs it into a clean Debian 12
# root (debootstrap minbase from the mirror apt uses, cached) and boots the installed test guest
# with the installed vmm: README.md "Installing". Registered as ctest package_install.
#   tests/install/package_install.sh SOURCE_DIR WORK_DIR [BUILD_DIR]
# With BUILD_DIR (ctest passes its own build tree) the .deb packages that tree as built and
# tested (debian/rules: VMM_PREBUILT_BUILD_DIR), when it is configured as the package needs
# (prefix /usr, the package's systemd directories, an optimised build, the test guest, no
# sanitizers); otherwise, or with VMM_PACKAGE_FROM_SOURCE=1, dpkg-buildpackage compiles the tree.
# WORK_DIR keeps what is worth keeping between runs: the base root (base/, with the package's
# runtime dependencies), a compiler cache when the caller has none (ccache/), the last .deb.
# Exit 77 (skipped) with the reason when this host cannot: not root, no /dev/kvm, no
# dpkg-buildpackage or debootstrap, or the mirror unreachable for a first base.
set -euo pipefail
src="$(cd "$1" && pwd)"
work="$2"
build="${3:-}"
mirror="${VMM_DEBOOTSTRAP_MIRROR:-http://deb.debian.org/debian}"
skip() { echo "package_install: SKIPPED: $*"; exit 77; }
say() { printf 'package_install: %s\n' "$*"; }
now() { date +%s; }

[ "$(id -u)" -eq 0 ] || skip "needs root (chroot, mounts, dpkg --root)"
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then skip "no usable /dev/kvm"; fi
for tool in dpkg-buildpackage debootstrap chroot git; do
  command -v "$tool" >/dev/null || skip "$tool not found (scripts/install-deps.sh installs it)"
done
mkdir -p "$work"
work="$(cd "$work" && pwd)"

# 1. The package, from a copy of the tree (tracked and new files, as git sees them), so that
# the build's files stay out of the checkout. The copy's path never changes and the compiler
# cache hashes relative paths, so a rebuild is mostly cache hits. With a usable BUILD_DIR
# nothing is compiled: the package holds that tree's installed files.
prebuilt_mismatch() {  # prints why BUILD_DIR cannot be packaged, nothing when it can
  local cache="$1/CMakeCache.txt" key want got
  [ -r "$cache" ] || { echo "$1 has no CMakeCache.txt"; return; }
  for want in CMAKE_INSTALL_PREFIX=/usr VMM_SYSTEMD_UNIT_DIR=/lib/systemd/system \
              VMM_SYSTEMD_LIB_DIR=/usr/lib VMM_BUILD_GUEST=ON VMM_SANITIZE=OFF VMM_FUZZ=OFF; do
    key="${want%%=*}"
    got=$(sed -n "s/^$key:[A-Z]*=//p" "$cache")
    [ "$got" = "${want#*=}" ] || { echo "$key is '$got', the package needs '${want#*=}'"; return; }
  done
  got=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache")
  case "$got" in "" | RelWithDebInfo | Release) ;; *) echo "CMAKE_BUILD_TYPE is '$got', not an optimised build"; return ;; esac
  got=$(sed -n 's/^CMAKE_HOME_DIRECTORY:[A-Z]*=//p' "$cache")
  [ "$got" -ef "$src" ] || echo "it was configured from '$got', not from $src"
}
mode=source
if [ "${VMM_PACKAGE_FROM_SOURCE:-0}" = 1 ]; then
  say "mode: from source (VMM_PACKAGE_FROM_SOURCE=1)"
elif [ -z "$build" ]; then
  say "mode: from source (no build directory given)"
else
  build="$(cd "$build" && pwd)"
  why=$(prebuilt_mismatch "$build")
  if [ -n "$why" ]; then
    say "mode: from source, the build tree $build cannot be packaged as built: $why"
  else
    mode=prebuilt
    say "mode: prebuilt, the .deb packages $build as built and tested (nothing recompiled)"
  fi
fi
t0=$(now)
if [ "$mode" = prebuilt ]; then
  # Up to date with the checkout (a no-op right after the build the suite ran).
  cmake --build "$build" -j "${VMM_PACKAGE_JOBS:-$(nproc)}" >"$work/prebuilt-build.log" 2>&1 ||
    { tail -20 "$work/prebuilt-build.log"; echo "package_install: FAIL: cmake --build $build"; exit 1; }
  export VMM_PREBUILT_BUILD_DIR="$build"
fi
rm -rf "$work/src" "$work"/vmm_*.deb "$work"/vmm-dbgsym_* "$work"/vmm_*.buildinfo "$work"/vmm_*.changes
mkdir -p "$work/src"
git -C "$src" ls-files -z --cached --others --exclude-standard |
  (cd "$src" && xargs -0 tar --no-recursion -cf - --ignore-failed-read) | tar -xf - -C "$work/src"
if command -v ccache >/dev/null; then
  export CCACHE_DIR="${CCACHE_DIR:-$work/ccache}" CCACHE_BASEDIR="${CCACHE_BASEDIR:-$work/src}"
fi
say "dpkg-buildpackage -us -uc -b (log: $work/build.log)"
if ! (cd "$work/src" && DEB_BUILD_OPTIONS="nocheck parallel=${VMM_PACKAGE_JOBS:-$(nproc)}" dpkg-buildpackage -us -uc -b) \
    >"$work/build.log" 2>&1; then
  tail -40 "$work/build.log"
  echo "package_install: FAIL: dpkg-buildpackage failed"
  exit 1
fi
deb=$(ls "$work"/vmm_*_amd64.deb)
say "built $(basename "$deb") ($mode): $(du -k "$deb" | cut -f1) KiB; package step took $(($(now) - t0)) s"
dpkg-deb --info "$deb" | sed -n 's/^ \(Installed-Size\|Depends\):/  \1:/p'
rm -rf "$work/src"

# 2. The clean root: Debian 12 minbase, made once and kept as base/ (base.stamp names the suite
# and mirror), plus the package's runtime dependencies, added to base/ when the .deb's Depends
# name one it lacks; each run installs into a fresh copy of it.
want="debootstrap --variant=minbase bookworm $mirror"
if [ "$(cat "$work/base.stamp" 2>/dev/null)" != "$want" ]; then
  t0=$(now)
  rm -rf "$work/base" "$work/base.stamp"
  say "$want"
  debootstrap --variant=minbase bookworm "$work/base" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -5 "$work/debootstrap.log"; rm -rf "$work/base"; skip "debootstrap from $mirror failed (offline?)"; }
  printf '%s' "$want" >"$work/base.stamp"
  say "minbase made in $(($(now) - t0)) s"
fi
packages=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/[(|].*//; s/ //g' | grep -v '^$' | sort -u)
missing=()
for p in $packages; do
  # shellcheck disable=SC2016  # ${Status} is dpkg-query's format, not the shell's
  chroot "$work/base" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  t0=$(now)
  cp /etc/resolv.conf "$work/base/etc/resolv.conf"
  mount -t proc proc "$work/base/proc"
  if ! chroot "$work/base" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"' \
      sh "${missing[@]}" >>"$work/debootstrap.log" 2>&1; then
    umount "$work/base/proc"
    tail -5 "$work/debootstrap.log"
    skip "installing ${missing[*]} into the base failed (offline?)"
  fi
  umount "$work/base/proc"
  chroot "$work/base" apt-get clean
  say "runtime dependencies added to the base in $(($(now) - t0)) s: ${missing[*]}"
fi
say "base root: $(du -sm "$work/base" | cut -f1) MiB"

root="$work/root"
mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
  # Never delete through a mount that is still there (the host's /dev, /sys or /proc).
  if awk -v r="$root" '$2 == r || index($2, r "/") == 1 { found = 1 } END { exit !found }' \
       /proc/self/mounts; then
    echo "package_install: $root still has mounts; not removed" >&2
  else
    rm -rf "$root"
  fi
}
trap cleanup EXIT
rm -rf "$root"
t0=$(now)
cp -a "$work/base" "$root"
# The root is a mount point of its own (pivot_root(2) in the sandboxes needs one), with /proc,
# /sys (read-only: the manager reads /sys/module/kvm_pvm), and a /dev holding only what a VM
# needs: /dev/kvm bound from the host, null, zero, urandom.
mount --bind "$root" "$root" && mounts+=("$root")
mount -t proc proc "$root/proc" && mounts+=("$root/proc")
mount --rbind /sys "$root/sys" && mounts+=("$root/sys")
mount -o remount,bind,ro "$root/sys"
mount -t tmpfs -o mode=0755,nosuid dev "$root/dev" && mounts+=("$root/dev")
for node in kvm null zero urandom random; do
  touch "$root/dev/$node"
  mount --bind "/dev/$node" "$root/dev/$node" && mounts+=("$root/dev/$node")
done
cp "$deb" "$root/tmp/"
in_root() { chroot "$root" "$@"; }
fail() { echo "package_install: FAIL: $*"; exit 1; }

# 3. Install, then what dpkg says and what the postinst made.
in_root dpkg -i "/tmp/$(basename "$deb")" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i"; }
say "dpkg -i in $(($(now) - t0)) s (fresh root included)"
status=$(in_root dpkg -s vmm | sed -n 's/^Status: //p')
[ "$status" = "install ok installed" ] || fail "dpkg -s vmm: Status '$status'"
say "dpkg -s vmm: Status: $status, Version: $(in_root dpkg -s vmm | sed -n 's/^Version: //p')"
files=$(in_root dpkg -L vmm)
for f in /usr/bin/vmm /usr/bin/vmm-verify /usr/libexec/vmm/vmm-vcpu /usr/libexec/vmm/vmm-device \
         /usr/libexec/vmm/vmm-vtpm /usr/share/vmm/testguest.elf /usr/share/vmm/testguest.bzImage \
         /usr/share/vmm/schema/vmm-launch-policy-1.schema.json /lib/systemd/system/vmm@.service \
         /usr/lib/tmpfiles.d/vmm.conf /usr/lib/sysusers.d/vmm.conf /usr/share/man/man1/vmm.1.gz \
         /usr/share/man/man1/vmm-run.1.gz /usr/share/doc/vmm/examples/testguest.json; do
  grep -qx "$f" <<<"$files" || fail "dpkg -L vmm lacks $f"
done
say "dpkg -L vmm: $(wc -l <<<"$files") paths, every expected one present"
for f in $files; do
  case "$f" in */bench*|*_test*|*fuzzer*|*/kernel-info) fail "test or bench file installed: $f" ;; esac
done
in_root getent passwd vmm >/dev/null || fail "no vmm user"
for d in /var/lib/vmm /var/log/vmm; do
  got=$(in_root stat -c '%U:%G %a' "$d")
  [ "$got" = "vmm:vmm 750" ] || fail "$d is '$got', not vmm:vmm 750"
done
say "user $(in_root id vmm); /var/lib/vmm, /var/log/vmm: vmm:vmm 0750"

# 4. The installed vmm boots the installed test guest: two vCPUs, a disk, an rng, the vTPM.
truncate -s 16M "$root/var/lib/vmm/disk.img"
# --user root: in a chroot the kernel refuses to create user namespaces (user_namespaces(7)), which
# a manager that dropped to the vmm user needs for its children; the drop itself is tested
# outside a chroot (UnprivilegedManagerKvm).
boot() {  # boot LOG [WRAPPER...]: the installed vmm, run inside the root
  local log="$1"
  shift
  timeout 120 chroot "$root" "$@" /usr/bin/vmm run --user root --kernel /usr/share/vmm/testguest.elf --cpus 2 \
    --memory 256M --disk path=/var/lib/vmm/disk.img --rng --tpm ephemeral \
    --cmdline "expect_cpus=2 expect_virtio=blk,rng expect_tpm=crb" >"$log" 2>&1
}
t0=$(now)
boot "$work/boot.log" || { tail -20 "$work/boot.log"; fail "vmm run (exit $?)"; }
grep -q 'testguest: result PASS' "$work/boot.log" || { tail -20 "$work/boot.log"; fail "no PASS"; }
say "installed vmm booted the installed test guest: $(grep -o 'result PASS.*' "$work/boot.log") in $(($(now) - t0)) s"
[ -s "$root/var/log/vmm/audit.jsonl" ] || fail "no audit log in /var/log/vmm"
say "audit records in /var/log/vmm/audit.jsonl: $(wc -l <"$root/var/log/vmm/audit.jsonl")"

# 5. The same boot under the unit's capability bounding set and no_new_privs (setpriv, as
# systemd applies CapabilityBoundingSet= and NoNewPrivileges=).
unit="$root/lib/systemd/system/vmm@.service"
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr '[:upper:]' '[:lower:]' | sed 's/cap_/+/g; s/ /,/g')
[ -n "$caps" ] || fail "the unit names no CapabilityBoundingSet"
boot "$work/boot-unit-caps.log" setpriv --no-new-privs --bounding-set "-all,$caps" ||
  { tail -20 "$work/boot-unit-caps.log"; fail "vmm run under the unit's capabilities"; }
grep -q 'testguest: result PASS' "$work/boot-unit-caps.log" || fail "no PASS under the unit's capabilities"
say "the same under the unit's bounding set (-all,$caps) and no_new_privs: PASS"

# 6. The unit as systemd reads it (when systemd-analyze is here). The root has no systemd, so
# the installed unit is verified on this host with the manager's path pointing into the root;
# systemd-analyze exits 0 on unknown keys and bad values, so any output fails too.
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$work/unit"
  sed "s|/usr/bin/vmm |$root/usr/bin/vmm |g" "$unit" >"$work/unit/vmm@test.service"
  out=$(systemd-analyze verify --man=no "$work/unit/vmm@test.service" 2>&1) ||
    { printf '%s\n' "$out"; fail "systemd-analyze verify vmm@test.service"; }
  [ -z "$out" ] || { printf '%s\n' "$out"; fail "systemd-analyze verify printed warnings"; }
  say "systemd-analyze verify vmm@test.service: ok, no warnings"
  score=$(systemd-analyze security --offline=true "$work/unit/vmm@test.service" 2>/dev/null |
          grep -o 'Overall exposure level.*' || true)
  [ -z "$score" ] || say "systemd-analyze security: $score"
else
  say "systemd-analyze not found: the unit was not verified"
fi
echo "package_install: PASS"
