#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root) to a summary:
#   1. install dependencies from Debian (scripts/install-deps.sh)
#   2. build and run unit, integration and guest tests (ctest)
#   3. rebuild with ASan+UBSan and run the unit and CLI tests again
#   4. build the libFuzzer harnesses with clang and run each for a bounded time
#   5. where this host has no /dev/kvm, or its /dev/kvm is kvm_pvm: run the KVM tests (again)
#      inside a QEMU TCG guest with nested SVM (scripts/nested-kvm.sh), so they run rather
#      than skip, and so a kvm_pvm host also checks the VMX/SVM behaviour
#   6. Debian's kernel under QEMU TCG with our confined vhost-user back-ends
#      (scripts/linux-backends.sh: vmm-device blk and rng, about 10 s), and QEMU's
#      vhost-user-vsock-pci with vmm-device vsock (scripts/linux-vsock.sh, about 25 s)
# Environment: VMM_SKIP_INSTALL=1 skips step 1; VMM_FUZZ_SECONDS (default 20) per fuzzer;
# VMM_NESTED=0 skips step 5 (the KVM tests then show as skipped).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 1
fuzz_seconds="${VMM_FUZZ_SECONDS:-20}"
summary=()
failed=0

stage() { printf '\n==== %s ====\n' "$*"; }
record() {  # record NAME STATUS DETAIL
  summary+=("$(printf '%-30s %-8s %s' "$1" "$2" "$3")")
  [ "$2" = FAIL ] && failed=1
  return 0
}
# record_exit NAME RC SKIP_RC OK_DETAIL SKIP_DETAIL FAIL_DETAIL: records a stage from its exit
# status: ok when RC is 0, SKIPPED when it is SKIP_RC, else FAIL.
record_exit() {
  if [ "$2" -eq 0 ]; then
    record "$1" ok "$4"
  elif [ "$2" -eq "$3" ]; then
    record "$1" SKIPPED "$5"
  else
    record "$1" FAIL "$6"
  fi
}
# Counts from a ctest log: "N% tests passed, F tests failed out of T" and the skipped list.
ctest_detail() {
  local log="$1" line skipped
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of' "$log" | tail -1)
  skipped=$(grep -cE '\(Skipped\)$' "$log" || true)
  echo "${line:-no result}; ${skipped} skipped"
}

if [ "${VMM_SKIP_INSTALL:-0}" != 1 ]; then
  stage "install dependencies"
  "$root/scripts/install-deps.sh" || { echo "test.sh: installing dependencies failed" >&2; exit 1; }
fi

stage "build (build/)"
if "$root/scripts/build.sh" build; then record build ok "build/bin"; else record build FAIL "see above"; fi

stage "unit, integration and guest tests (build/)"
log=build/ctest.log
ctest --test-dir build --output-on-failure -j "$(nproc)" 2>&1 | tee "$log"
if [ "${PIPESTATUS[0]}" -eq 0 ]; then record tests ok "$(ctest_detail "$log")"; else record tests FAIL "$(ctest_detail "$log")"; fi

stage "ASan+UBSan build (build-asan/): unit and CLI tests"
if "$root/scripts/build.sh" build-asan -DVMM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug; then
  log=build-asan/ctest.log
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$(nproc)" -L 'unit|integration' 2>&1 | tee "$log"
  if [ "${PIPESTATUS[0]}" -eq 0 ]; then record asan ok "$(ctest_detail "$log")"; else record asan FAIL "$(ctest_detail "$log")"; fi
else
  record asan FAIL "build failed"
fi

stage "fuzzers (build-fuzz/, ${fuzz_seconds}s each)"
if CC=clang CXX=clang++ "$root/scripts/build.sh" build-fuzz -DVMM_FUZZ=ON -DBUILD_TESTING=OFF -DVMM_BUILD_GUEST=OFF; then
  for fuzzer in build-fuzz/bin/*_fuzzer; do
    name=$(basename "$fuzzer")
    corpus="build-fuzz/corpus/$name"
    mkdir -p "$corpus"
    [ -d "tests/fuzz/corpus/$name" ] && cp -n tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null
    out=$("$fuzzer" -max_total_time="$fuzz_seconds" -print_final_stats=1 "$corpus" 2>&1)
    rc=$?
    runs=$(printf '%s\n' "$out" | sed -n 's/^stat::number_of_executed_units: *//p')
    if [ $rc -eq 0 ]; then
      record "fuzz $name" ok "${runs:-?} executions"
    else
      printf '%s\n' "$out" | tail -40
      record "fuzz $name" FAIL "crash or leak after ${runs:-?} executions (artifact in cwd)"
    fi
  done
else
  record fuzz FAIL "clang build failed"
fi

kvm_kind=none
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  kvm_kind=native
  [ -d /sys/module/kvm_pvm ] && kvm_kind=kvm_pvm
  record "KVM tests ($kvm_kind)" ok "ran natively above, on this host's /dev/kvm"
fi
if [ "$kvm_kind" = native ]; then
  :  # VMX/SVM: the native run above is the whole story
elif [ "${VMM_NESTED:-1}" = 0 ]; then
  record "KVM tests (nested)" SKIPPED "VMM_NESTED=0 (the VMX/SVM path is not run on this host)"
else
  stage "KVM tests under nested SVM KVM in QEMU TCG (this host: /dev/kvm $kvm_kind)"
  # Every test with Kvm in its name, from both binaries, in one nested boot.
  "$root/scripts/nested-kvm.sh" --mem 4096 --timeout 900 --copy build/bin -- /bin/sh -c \
    "build/bin/vmm_integration_tests --gtest_filter='*Kvm*' --gtest_color=no &&
     build/bin/vmm_unit_tests --gtest_filter='*Kvm*' --gtest_color=no" 2>&1 | tee build/nested-tests.log
  rc=${PIPESTATUS[0]}
  passed=$(grep -E '^\[  PASSED  \] [0-9]+ tests?' build/nested-tests.log | grep -oE '[0-9]+' |
           awk '{ n += $1 } END { print n }')
  record_exit "KVM tests (nested)" "$rc" 125 "${passed:-?} passed in a QEMU TCG guest with kvm_amd" \
    "the nested-KVM harness could not start (see above)" \
    "exit $rc; console log in build/nested/last-console.log"
fi

# linux_script_stage TITLE SCRIPT NAME SKIP_REASON: runs scripts/SCRIPT.sh (77 = skipped), its
# output kept in build/SCRIPT.log, and records it as NAME.
linux_script_stage() {
  local title=$1 script=$2 name=$3 skip=$4 rc
  stage "$title (scripts/$script.sh)"
  "$root/scripts/$script.sh" >"build/$script.log" 2>&1
  rc=$?
  cat "build/$script.log"
  record_exit "$name" "$rc" 77 "$(grep -o 'PASS in [0-9]* ms' "build/$script.log")" "$skip" \
    "exit $rc; see build/$script.log"
}
linux_script_stage "Linux under QEMU TCG with our confined vhost-user back-ends" linux-backends \
  "Linux + vhost-user back-ends" "qemu-system-x86_64 missing"
linux_script_stage "Linux under QEMU TCG with the confined vsock back-end" linux-vsock \
  "Linux + vhost-user vsock" "qemu-system-x86_64, gcc or python3 missing"

printf '\n==== summary ====\n'
printf '%s\n' "${summary[@]}"
if [ $failed -ne 0 ]; then
  echo "RESULT: FAIL"
  exit 1
fi
echo "RESULT: PASS"
