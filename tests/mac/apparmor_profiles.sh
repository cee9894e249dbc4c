#!/usr/bin/env bash
# Compiles every AppArmor profile of apparmor/ and one VM's generated profiles (`vmm apparmor
# profile`, ARCHITECTURE.md "AppArmor") with apparmor_parser, without loading them (-Q -K): a syntax
# or semantic error fails. A deliberately broken copy must fail too, so the check can fail.
# Skipped (77) where apparmor_parser is missing (Debian package apparmor).
# Usage: apparmor_profiles.sh SOURCE_DIR BIN_DIR
set -uo pipefail
src="$1"
bin="$2"
parser=$(command -v apparmor_parser || echo /usr/sbin/apparmor_parser)
[ -x "$parser" ] || { echo "SKIP: apparmor_parser not found (Debian package apparmor)"; exit 77; }
[ -d /etc/apparmor.d/tunables ] || { echo "SKIP: /etc/apparmor.d/tunables missing (Debian package apparmor)"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# compile FILE: 0 when apparmor_parser accepts it (the abstractions come from our tree).
compile() {
  "$parser" --skip-kernel-load --skip-cache --skip-read-cache -o /dev/null \
    -I "$src/apparmor" -I /etc/apparmor.d "$1" 2>"$work/err"
  local rc=$?
  grep -v 'Cache read/write disabled' "$work/err" >&2
  return $rc
}
expect_ok() {
  if compile "$1"; then echo "ok: $2"; else echo "FAIL: $2 does not compile"; failures=$((failures + 1)); fi
}

for profile in "$src"/apparmor/*; do
  [ -f "$profile" ] && expect_ok "$profile" "apparmor/${profile##*/}"
done

# One VM's profiles with unusual but valid paths (spaces, commas, '#', UTF-8), as vmm writes them.
"$bin/vmm" apparmor profile --id 0123abcd --disk "/srv/vm a/disk,0#.img" --disk /srv/b.img \
  --disk-socket /run/vmm/a.sock --rng --vsock-dir "/run/vmm/vsock/vm 1" --tpm-state "/var/lib/vmm/vm é/tpm" \
  --tpm-key /var/lib/vmm/vm1/key --tpm-socket /run/vmm/tpm.ctrl >"$work/vm" ||
  { echo "FAIL: vmm apparmor profile"; failures=$((failures + 1)); }
expect_ok "$work/vm" "generated per-VM profiles ($(grep -c '^profile ' "$work/vm") profiles)"
for name in vcpu blk0 blk1 rng0 vsock0 vtpm; do
  grep -q "^profile vmm-0123abcd-$name " "$work/vm" || { echo "FAIL: no profile vmm-0123abcd-$name"; failures=$((failures + 1)); }
done
# A path that would break out of its rule is refused by vmm, not written.
if "$bin/vmm" apparmor profile --id ab --disk $'/srv/a"\n/** rwx,\n"' >"$work/bad" 2>&1; then
  echo "FAIL: vmm accepted a path with a quote and newlines"; failures=$((failures + 1))
else
  echo "ok: refused: $(tail -1 "$work/bad")"
fi

# The check itself: a profile with one rule broken must not compile.
sed 's/^  include <abstractions\/vmm\/device>$/  include <abstractions\/vmm\/device>\n  \/srv\/x rwz,/' \
  "$src/apparmor/vmm-device" >"$work/broken"
grep -q 'rwz' "$work/broken" || { echo "FAIL: could not break a copy of vmm-device"; failures=$((failures + 1)); }
if compile "$work/broken" 2>/dev/null; then
  echo "FAIL: a profile with a bad permission compiled: the check cannot fail"; failures=$((failures + 1))
else
  echo "ok: a broken copy of vmm-device is refused"
fi

if [ "$failures" -ne 0 ]; then echo "$failures AppArmor check(s) failed"; exit 1; fi
echo "apparmor: every profile compiles"
