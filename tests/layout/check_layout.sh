#!/usr/bin/env bash
# The process model as the build and the tree must keep it (ARCHITECTURE.md §7):
#   1. each role binary needs (DT_NEEDED) only the shared libraries of its role's list;
#   2. base/ and sandbox/ include nothing of vmm/ or vtpm/; base/ nothing of sandbox/;
#   3. attestation/ (linked by the tenant's vmm-verify) includes nothing of vmm/, vtpm/, sandbox/,
#      and policy/ (pure) nothing of those nor of attestation/;
#   4. no file of the VM process (vmm/vm) or of the device process (vmm/device) includes the
#      manager's headers (vmm/manager), and neither includes the other's.
# Usage: check_layout.sh SOURCE_DIR BIN_DIR
set -uo pipefail
src="$1"
bin="$2"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Libraries any role may need: the C and C++ runtimes, the sanitizer runtimes of a
# sanitized build, and the confinement library's own (seccomp, libcap-ng, libselinux).
common='linux-vdso|ld-linux.*|libc|libm|libstdc\+\+|libgcc_s|libasan|libubsan|libseccomp|libcap-ng|libselinux'
declare -A allowed=(
  [vmm-vcpu]="$common"
  [vmm-device]="$common"
  [vmm-vtpm]="$common|libtpms|libcrypto"
  [vmm]="$common|libcrypto|libtss2-esys|libtss2-mu|libtss2-rc|libcpp-httplib|libaudit|libapparmor"
  # The tenant's verifier: no sandbox libraries, no TSS beyond marshalling.
  [vmm-verify]="linux-vdso|ld-linux.*|libc|libm|libstdc\+\+|libgcc_s|libasan|libubsan|libcrypto|libtss2-mu"
)
command -v readelf >/dev/null || { echo "SKIP: readelf not found (Debian package binutils)"; exit 77; }
for role in "${!allowed[@]}"; do
  exe="$bin/$role"
  [ -x "$exe" ] || { fail "$exe not built"; continue; }
  needed=$(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  [ -n "$needed" ] || fail "$role: readelf printed no NEEDED entries"
  for lib in $needed; do
    stem="${lib%%.so*}"
    if [[ ! "$stem" =~ ^(${allowed[$role]})$ ]]; then
      fail "$role needs $lib, outside its role's list"
    fi
  done
  echo "$role: $(echo "$needed" | tr '\n' ' ')"
done

# includes_under DIR PATTERN: lines of files under DIR that include a path matching PATTERN.
includes_under() {
  grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]+\"($2)" "$src/$1" 2>/dev/null |
    sed "s#^$src/##"
}
check() {
  local what="$1" dir="$2" pattern="$3" hits
  hits=$(includes_under "$dir" "$pattern")
  if [ -n "$hits" ]; then
    fail "$what:"
    echo "$hits"
  fi
}
check "base/ includes code of ours outside base/" base 'vmm/|vtpm/|sandbox/'
check "sandbox/ includes vmm/ or vtpm/" sandbox 'vmm/|vtpm/'
check "the VM process includes the manager's headers" vmm/vm 'vmm/manager/'
check "the device process includes the manager's headers" vmm/device 'vmm/manager/'
check "the VM process includes the device process's headers" vmm/vm 'vmm/device/'
check "the device process includes the VM process's headers" vmm/device 'vmm/vm/'
check "the pure formats include a process's headers" vmm/formats 'vmm/(vm|device|manager)/'
check "the manager-VM contract includes a process's headers" vmm/contract 'vmm/(vm|device|manager|formats)/|vtpm/|sandbox/'
check "attestation/ (the verifier's library) includes the VMM's code" attestation 'vmm/|vtpm/|sandbox/'
check "policy/ (the launch policy, pure) includes the VMM's code" policy 'vmm/|vtpm/|sandbox/|attestation/'

if [ "$failures" -ne 0 ]; then
  echo "$failures layout check(s) failed"
  exit 1
fi
echo "layout: every role's libraries and every include direction as ARCHITECTURE.md §7 says"
