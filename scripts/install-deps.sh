#!/usr/bin/env bash
# Installs every build and test dependency from Debian 12's own packages. Nothing else is
# downloaded. Run as root (or through sudo) on a fresh Debian 12 machine.
set -euo pipefail

PACKAGES=(
  # toolchain and build
  build-essential cmake g++ clang clang-format libclang-rt-14-dev pkg-config python3
  # libraries the VMM links
  nlohmann-json3-dev libcli11-dev libseccomp-dev libcap-ng-dev libselinux1-dev libssl-dev libtpms-dev
  libtss2-dev swtpm-dev libcpp-httplib-dev libaudit-dev rapidjson-dev
  # tests and benchmarks
  googletest libgtest-dev libgmock-dev libbenchmark-dev acpica-tools
  # nested KVM harness (hosts without /dev/kvm), the QEMU side-by-side bench, and the
  # Debian kernel it boots
  qemu-system-x86 busybox-static cpio kmod zstd xz-utils lz4 gzip util-linux
  # the vTPM side-by-side bench and interoperability checks: swtpm, tpm2-tools, openssl
  swtpm swtpm-tools tpm2-tools openssl
  # real firmware event logs for attestation/ (scripts/make-eventlog-samples.sh boots OVMF)
  ovmf
  # the SELinux policy module (selinux/) and its setools analysis (tests/selinux)
  selinux-policy-dev selinux-policy-default checkpolicy setools policycoreutils semodule-utils
  # the shellcheck_scripts test: every script of scripts/, bench/ and tests/
  shellcheck
  # AppArmor: libapparmor for the manager (aa_is_enabled), apparmor_parser for the profiles'
  # compile check and the enforcing-kernel test (tests/mac/)
  apparmor apparmor-utils libapparmor-dev
  # the Debian package (debian/, man pages from --help) and its install test (package_install)
  dpkg-dev debhelper fakeroot help2man debootstrap ccache
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (sudo $0) to install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
