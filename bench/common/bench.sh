# shellcheck shell=bash
# Shell helpers shared by the bench/*/run.sh scripts. Sourced, not run: sets root to the
# repository root and changes to it.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit

# bench_counts USAGE N...: exits 2 with "usage: $0 USAGE" unless every N is a positive integer.
bench_counts() {
  local usage=$1 n
  shift
  for n in "$@"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 $usage" >&2; exit 2; }
  done
}

# bench_begin USAGE N...: bench_counts, then scripts/install-deps.sh unless VMM_SKIP_INSTALL=1.
bench_begin() {
  bench_counts "$@"
  [ "${VMM_SKIP_INSTALL:-0}" = 1 ] || scripts/install-deps.sh
}

# bench_deps_or_warn: like bench_begin's scripts/install-deps.sh, but a failure is said and not
# fatal: a bench whose peer could not be installed still measures ours.
bench_deps_or_warn() {
  [ "${VMM_SKIP_INSTALL:-0}" = 1 ] && return 0
  scripts/install-deps.sh ||
    echo "$0: scripts/install-deps.sh failed; going on with what is installed" >&2
}

# bench_begin_warn USAGE N...: bench_counts, then bench_deps_or_warn; sets bin to the folder of
# the binaries (VMM_BENCH_BIN, default build/bin).
# shellcheck disable=SC2034  # bin: read by the sourcing script
bench_begin_warn() {
  bench_counts "$@"
  bench_deps_or_warn
  bin=${VMM_BENCH_BIN:-build/bin}
}

# bench_wait_guest LOG PID: waits (up to 60 s) until the test guest's result line is in LOG;
# says why and returns 1 when process PID ended first or the time ran out.
bench_wait_guest() {
  local tries=0
  until grep -q '^testguest: result' "$1"; do
    if ! kill -0 "$2" 2>/dev/null || [ "$tries" -ge 600 ]; then
      echo "the test guest did not reach its result line: $(tail -n1 "$1")"
      return 1
    fi
    tries=$((tries + 1))
    sleep 0.1
  done
}

# bench_need_tool WHO TOOL PACKAGE: exits 1, saying so as WHO, unless TOOL is on PATH.
bench_need_tool() {
  command -v "$2" >/dev/null || { echo "$1: $2 is not installed (Debian package $3)" >&2; exit 1; }
}

# bench_build TARGET...: configures build/ and builds only TARGETs (-j2, quietly), unless
# VMM_SKIP_BUILD=1.
bench_build() {
  [ "${VMM_SKIP_BUILD:-0}" = 1 ] && return 0
  cmake -S . -B build >/dev/null
  cmake --build build -j2 --target "$@" >/dev/null
}

# bench_awk PROGRAM FILE...: awk PROGRAM over FILEs, with the helpers of bench/common/table.awk.
bench_awk() {
  local program=$1
  shift
  awk "$(cat "$root/bench/common/table.awk")
$program" "$@"
}

# bench_qemu DIR: copies qemu-system-x86_64 into DIR and the firmware its microvm and PVH boots
# read into DIR/share, where the nested harness (scripts/nested-kvm.sh --copy) can carry them;
# sets qemu_cpu to the -cpu QEMU needs on this host.
# shellcheck disable=SC2034  # qemu_cpu: read by the sourcing script
bench_qemu() {
  mkdir -p "$1/share"
  cp -f "$(command -v qemu-system-x86_64)" "$1/"
  cp -f /usr/share/qemu/bios-microvm.bin /usr/share/qemu/pvh.bin /usr/share/qemu/linuxboot_dma.bin "$1/share/"
  qemu_cpu=host
  [ -d /sys/module/kvm_pvm ] && qemu_cpu=kvm64,-pni  # ARCHITECTURE.md §5: what QEMU needs on kvm_pvm
  return 0
}

# bench_vm_dir NAME: sets dir to a fresh temporary folder and vm_pid to empty; on exit, stops the
# VM in vm_pid if there is one and removes dir.
# shellcheck disable=SC2034  # dir, vm_pid: read by the sourcing script
bench_vm_dir() {
  dir="$(mktemp -d "${TMPDIR:-/tmp}/bench-$1.XXXXXX")"
  vm_pid=
  trap bench_vm_cleanup EXIT
}
# shellcheck disable=SC2317  # invoked through the EXIT trap
bench_vm_cleanup() {
  [ -n "$vm_pid" ] && kill -TERM "$vm_pid" 2>/dev/null && wait "$vm_pid" 2>/dev/null
  rm -rf "$dir"
}

# bench_attested_vm POLICY_ID LINGER: in $dir, provisions a persistent vTPM (its CA in $dir/ca),
# writes the policy of `vmm measure` to $dir/policy.json and boots the test guest with it under
# `vmm run --api-socket $dir/api.sock`, lingering LINGER seconds; sets vm_pid once it runs.
# Prints why not and returns 1 when it cannot.
bench_attested_vm() {
  local tpm vm
  mkdir -m 0700 "$dir/vtpm"
  tpm="state=$dir/vtpm/state,key=$dir/vtpm/key"
  "$bin/vmm" vtpm provision --vm "$tpm" --ca "$dir/ca" --vm-id bench >"$dir/provision.log" 2>&1 ||
    { echo "vmm vtpm provision failed: $(tail -n1 "$dir/provision.log")"; return 1; }
  vm=(--cpus 1 --memory 256M --tpm "$tpm" --cmdline "expect_tpm=crb linger=$2")
  "$bin/vmm" measure --kernel "$bin/testguest.elf" "${vm[@]}" --policy-out "$dir/policy.json" \
    --policy-id "$1" >/dev/null 2>"$dir/measure.log" ||
    { echo "vmm measure failed: $(tail -n1 "$dir/measure.log")"; return 1; }
  "$bin/vmm" run --kernel "$bin/testguest.elf" "${vm[@]}" --api-socket "$dir/api.sock" \
    >"$dir/serial.log" 2>&1 &
  vm_pid=$!
  bench_wait_guest "$dir/serial.log" "$vm_pid"
}
