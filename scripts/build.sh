#!/usr/bin/env bash
# Configures and builds one build tree. Usage: scripts/build.sh [DIR] [cmake -D options...]
#   scripts/build.sh                     -> build/ (release with debug info)
#   scripts/build.sh build-asan -DVMM_SANITIZE=ON
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-build}"
shift || true
case "$dir" in /*) ;; *) dir="$root/$dir" ;; esac
# Install paths as the Debian package has them (debian/rules), so that the package test can
# package this tree as built (tests/install/package_install.sh); a later -D of the caller wins.
# The build tree never installs anything by itself.
cmake -S "$root" -B "$dir" -DCMAKE_INSTALL_PREFIX=/usr -DVMM_SYSTEMD_UNIT_DIR=/lib/systemd/system \
  -DVMM_SYSTEMD_LIB_DIR=/usr/lib "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)"
