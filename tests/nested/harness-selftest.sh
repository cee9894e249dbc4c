#!/usr/bin/env bash
# harness-selftest.sh - checks scripts/nested-kvm.sh itself: exit status
# propagation, argument quoting, --copy of files and directories (with the
# shared libraries of a dynamically linked C++ program), cwd, output
# filtering, the timeout path (exit 125) and usage errors (exit 2).
# Boots the nested guest several times: takes about a minute.
#
# Usage: tests/nested/harness-selftest.sh
# Prints "N passed, N failed"; exit status 0 when everything passed.
# shellcheck disable=SC2015,SC2016
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)
H="$ROOT/scripts/nested-kvm.sh"
WORK="$ROOT/build/nested/selftest"
PASS=0
FAIL=0

ok() { echo "PASS: $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL: $*"; FAIL=$((FAIL + 1)); }

rm -rf -- "$WORK"
mkdir -p "$WORK/tree/sub dir"
echo "data-1" >"$WORK/tree/file1"
echo "data-2" >"$WORK/tree/sub dir/file 2"
ln -s file1 "$WORK/tree/link1"
cat >"$WORK/hello.cc" <<'EOF'
#include <cstdio>
#include <string>
#include <vector>
#include <unistd.h>
int main(int argc, char **argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    for (auto &a : args) std::printf("arg[%s]\n", a.c_str());
    char cwd[4096];
    std::printf("cwd=%s\n", getcwd(cwd, sizeof cwd));
    std::fprintf(stderr, "to-stderr\n");
    return args.empty() ? 0 : std::stoi(args.back());
}
EOF
c++ -O1 -o "$WORK/tree/hello" "$WORK/hello.cc"

# 1. Exit status, quoting, cwd, dynamic C++ binary, stderr, output filtering.
set +e
out=$(cd / && "$H" --copy "$WORK/tree" -- build/nested/selftest/tree/hello "a b" "it's" '$HOME' '*' 7 2>"$WORK/err1")
rc=$?
set -e
[[ $rc -eq 7 ]] && ok "exit status propagated (7)" || bad "exit status: got $rc, want 7"
expected=$'arg[a b]\narg[it\'s]\narg[$HOME]\narg[*]\narg[7]\ncwd=/work\nto-stderr'
[[ $out == "$expected" ]] && ok "arguments, cwd and output (only the command's)" ||
    { bad "output mismatch"; printf '%s\n' "--- got:" "$out" "--- want:" "$expected"; cat "$WORK/err1"; }

# 2. Copied directory tree: contents, names with spaces, symlinks dereferenced.
set +e
out=$("$H" --copy build/nested/selftest/tree -- sh -c \
    'cat build/nested/selftest/tree/file1 "build/nested/selftest/tree/sub dir/file 2" build/nested/selftest/tree/link1; ls /dev/kvm' 2>&1)
rc=$?
set -e
[[ $rc -eq 0 && $out == $'data-1\ndata-2\ndata-1\n/dev/kvm' ]] && ok "--copy directory (relative path from the project root)" ||
    { bad "--copy directory (rc=$rc)"; printf '%s\n' "$out"; }

# 3. Output without a trailing newline and a signal death (128+9).
set +e
out=$("$H" -- sh -c 'printf "no-newline"; kill -9 $$' 2>&1)
rc=$?
set -e
[[ $rc -eq 137 && $out == "no-newline" ]] && ok "partial last line kept, killed command gives 137" ||
    { bad "partial line / signal (rc=$rc)"; printf '%s\n' "$out"; }

# 4. Timeout inside the guest -> 125 with a message.
set +e
out=$("$H" --timeout 3 -- sh -c 'echo started; sleep 100' 2>&1)
rc=$?
set -e
[[ $rc -eq 125 && $out == *started* && $out == *"timed out"* ]] && ok "timeout gives 125" ||
    { bad "timeout (rc=$rc)"; printf '%s\n' "$out"; }

# 5. A module that fails to load -> 125 (bogus module parameter).
set +e
out=$("$H" --modparam kvm_amd.npt=bogus -- true 2>&1)
rc=$?
set -e
[[ $rc -eq 125 && $out == *"insmod"* ]] && ok "kvm_amd load failure gives 125" ||
    { bad "module failure (rc=$rc)"; printf '%s\n' "$out"; }

# 6. Usage errors and a missing QEMU.
set +e
"$H" >/dev/null 2>&1; rc1=$?
"$H" --copy /etc/hostname -- true >/dev/null 2>&1; rc2=$?
NESTED_KVM_QEMU=no-such-qemu "$H" -- true >/dev/null 2>&1; rc3=$?
set -e
[[ $rc1 -eq 2 ]] && ok "no command: exit 2" || bad "no command: got $rc1"
[[ $rc2 -eq 125 ]] && ok "--copy outside the project: exit 125" || bad "--copy outside: got $rc2"
[[ $rc3 -eq 125 ]] && ok "missing QEMU: exit 125" || bad "missing QEMU: got $rc3"

rm -rf -- "$WORK"
echo "$PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
