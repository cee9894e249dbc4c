#!/usr/bin/env bash
# The project's C++ sources as .clang-format says. Usage:
#   scripts/format.sh           rewrite the files in place
#   scripts/format.sh --check   list the files that differ and exit 1 (the ctest clang_format)
# The freestanding test guests (tests/guest, bench/exits/guest) keep their own C style.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v clang-format >/dev/null || { echo "clang-format not found: install the Debian package clang-format"; exit 77; }
mapfile -t files < <(git ls-files '*.cc' '*.h' | grep -v -e '^tests/guest/' -e '^bench/exits/guest/')
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in "${files[@]}"; do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
      echo "not formatted: $f (scripts/format.sh rewrites it)"
      bad=1
    fi
  done
  [ "$bad" -eq 0 ] && echo "clang-format: ${#files[@]} files as .clang-format says"
  exit "$bad"
fi
clang-format -i "${files[@]}"
