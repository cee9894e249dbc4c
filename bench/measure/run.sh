#!/usr/bin/env bash
# bench/measure: what measured boot's hashing costs, beside `openssl speed` on the same
# machine in the same run, and what it adds to `vmm run`'s start.
#   Inputs: a 10 MiB kernel (the test guest's PVH ELF, padded with random bytes, which its
#   loader ignores) and a 64 MiB initramfs (random bytes), in a temporary directory.
#   (1) bin/measure_hash reads them as `vmm run` does (PlanBoot) and times, per input,
#       attestation::HashAll with SHA-256 alone, SHA-384 alone and both banks in one pass,
#       then MeasureVm, the whole measurement `vmm run --tpm` makes (both banks over both
#       files, configuration, ACPI tables, log, replay). Its digests are checked against
#       `openssl dgst`. Beside it, `openssl speed -evp sha256` and `sha384` (16 KiB blocks).
#       Both sides divide by their CPU time (openssl: user time; ours: user and system), so
#       the other jobs of a shared host do not count; rounds alternate which side goes first
#       and the table gives medians. For both banks in one pass, the openssl column is what
#       its two figures predict: the sum of the two times, 1 / (1/sha256 + 1/sha384).
#   (2) `vmm measure` on these inputs, as a process (read, hash, print), wall time.
#   (3) with /dev/kvm: `vmm run` of the test guest (1 vCPU, 256 MiB), from start to its first
#       serial line, with `--tpm ephemeral` against without a vTPM. Measured boot is always on
#       with a vTPM and cannot be switched off alone, so the difference is the vTPM's start
#       (process, TPM2_Startup) plus measured boot (MeasureVm, the extends, the PCR read-back).
#       Twice: (a) with these inputs, (b) with the plain test guest and no initramfs, where
#       hashing costs next to nothing; (a) minus (b) is what hashing 74 MiB adds. Without
#       /dev/kvm this part is skipped, saying so.
#   bench/measure/run.sh [ROUNDS [SECONDS [BOOT_RUNS]]]   (defaults 3, 2 and 5)
#   VMM_SKIP_INSTALL=1 skips scripts/install-deps.sh; VMM_SKIP_BUILD=1 skips the build;
#   VMM_BENCH_BIN=DIR takes the binaries from DIR (default build/bin).
# Exit status: 0; 1 when our side could not run or its digests differ from openssl's.
set -euo pipefail
# shellcheck source=bench/common/bench.sh disable=SC1091  # checked on its own
. "$(dirname "${BASH_SOURCE[0]}")/../common/bench.sh"  # sets root and cds there
rounds="${1:-3}"
seconds="${2:-2}"
boot_runs="${3:-5}"
bench_begin_warn "[ROUNDS [SECONDS [BOOT_RUNS]]]" "$rounds" "$seconds" "$boot_runs"
bench_build measure_hash vmm vmm-vcpu vmm-vtpm vmm-device boot_bench testguest
bench_need_tool bench/measure openssl openssl

dir="$(mktemp -d "${TMPDIR:-/tmp}/bench-measure.XXXXXX")"
trap 'rm -rf "$dir"' EXIT
kernel=$dir/kernel.elf initramfs=$dir/initramfs.img
cp "$bin/testguest.elf" "$kernel"
pad=$(( (10 << 20) - $(stat -c %s "$bin/testguest.elf") ))
head -c "$pad" /dev/urandom >>"$kernel"
head -c $(( 64 << 20 )) /dev/urandom >"$initramfs"

# Our digests must be openssl's: the bench hashes what it says it hashes.
"$bin/measure_hash" --kernel "$kernel" --initramfs "$initramfs" --seconds 0.01 >"$dir/check" ||
  { echo "bench/measure: measure_hash failed" >&2; exit 1; }
check_digest() {  # LINE-ERE FILE ALG KEY: KEY=value on the line matching LINE-ERE
  local want got
  want=$(openssl dgst "-$3" -r "$2" | cut -d' ' -f1)
  got=$(grep -E "$1" "$dir/check" | grep -o "$4=[0-9a-f]*" | head -1 | cut -d= -f2)
  [ "$got" = "$want" ] || { echo "bench/measure: $1 $3: ours ${got:-none}, openssl dgst $want" >&2; exit 1; }
}
for alg in sha256 sha384; do
  check_digest "input=kernel .*digest=$alg " "$kernel" $alg value
  check_digest "input=initramfs .*digest=$alg " "$initramfs" $alg value
  check_digest "input=measure_vm " "$kernel" $alg "pcr4_$alg"
  check_digest "input=measure_vm " "$initramfs" $alg "pcr9_$alg"
done
echo "bench/measure: our digests of both inputs (HashAll and MeasureVm's PCR 4 and 9 events) equal openssl dgst's"

results=$dir/results
: >"$results"
openssl_speed() {  # ALG: one line "openssl ALG BYTES_PER_CPU_SECOND"
  # -mr: "+F:N:ALG:BYTES_PER_SECOND", divided by the user CPU time openssl counted
  openssl speed -mr -evp "$1" -bytes 16384 -seconds "$seconds" 2>/dev/null |
    awk -F: -v a="$1" '$1 == "+F" && $3 == a { print "openssl", a, $4 }'
}
ours() { "$bin/measure_hash" --kernel "$kernel" --initramfs "$initramfs" --seconds "$seconds" >>"$results"; }
theirs() { openssl_speed sha256 >>"$results"; openssl_speed sha384 >>"$results"; }
echo "bench/measure: $rounds rounds, alternating; each figure $seconds s of CPU time;" \
  "$(openssl version | cut -d' ' -f1-2), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
  "SHA extensions: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then ours; theirs; else theirs; ours; fi
done

bench_awk '
  function med(key) { return median(v, key, n[key]) }
  function add(key, x) { n[key]++; v[key, n[key]] = x }
  $1 == "openssl" { add("openssl " $2, $3) }
  $1 == "measure_hash:" {
    delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    add(f["input"] " " f["digest"], f["cpu_Bps"]); bytes[f["input"]] = f["bytes"]
  }
  function mb(x) { return sprintf("%.0f", x / 1e6) }
  function pct(x, y) { return sprintf("%.0f%%", 100 * x / y) }
  END {
    o256 = med("openssl sha256"); o384 = med("openssl sha384")
    ob = 1 / (1 / o256 + 1 / o384)
    split("sha256 sha384 both", d, " ")
    split("SHA-256|SHA-384|both banks, one pass", label, "|")
    o[1] = o256; o[2] = o384; o[3] = ob
    print ""
    print "| digest (MB/s = 10^6 bytes per CPU second, median of " n["openssl sha256"] ") | ours, 10 MiB kernel | ours, 64 MiB initramfs | openssl speed, 16 KiB blocks | ours/openssl (kernel, initramfs) |"
    print "|---|---|---|---|---|"
    for (i = 1; i <= 3; i++) {
      k = med("kernel " d[i]); r = med("initramfs " d[i])
      printf "| %s | %s | %s | %s%s | %s, %s |\n", label[i], mb(k), mb(r), mb(o[i]),
        (i == 3 ? " (sum of times)" : ""), pct(k, o[i]), pct(r, o[i])
    }
    m = med("measure_vm both")
    printf "\nMeasureVm (what vmm run --tpm measures: both banks over %.0f MiB and the rest): %.0f ms of CPU, %s MB/s, %s of openssl'"'"'s sum of times\n",
      bytes["measure_vm"] / 1048576, 1000 * bytes["measure_vm"] / m, mb(m), pct(m, ob)
    for (i = 1; i <= 2; i++) {
      worst = med("kernel " d[i]); if (med("initramfs " d[i]) < worst) worst = med("initramfs " d[i])
      printf "goal (90%% of openssl speed, same digest): %s: %s of %s MB/s at worst: %s\n", label[i], pct(worst, o[i]), mb(o[i]),
        (worst >= 0.9 * o[i] ? "met" : "NOT met")
    }
  }' "$results"

# (2) vmm measure as a process.
measure_ms=()
for _ in $(seq 1 "$boot_runs"); do
  t0=$(date +%s%N)
  "$bin/vmm" measure --kernel "$kernel" --initramfs "$initramfs" --memory 256M --tpm ephemeral >/dev/null
  measure_ms+=($(( ($(date +%s%N) - t0) / 1000000 )))
done
echo
echo "vmm measure (10 MiB kernel, 64 MiB initramfs; process start to exit, wall): median" \
  "$(printf '%s\n' "${measure_ms[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }') ms" \
  "of $boot_runs (all: ${measure_ms[*]} ms)"

# (3) vmm run's start with and without measured boot.
echo
if ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
  echo "bench/measure: no usable /dev/kvm here: the vmm run comparison (--tpm vs none) is skipped"
  exit 0
fi
run=("$bin/vmm" run --cpus 1 --memory 256M)
echo "bench/measure: vmm run of the test guest, $boot_runs runs each after a warm-up, alternating;" \
  "first serial line = fork to \"testguest: hello\""
boot() {  # LABEL KERNEL [--initramfs FILE]: boot_bench, --tpm ephemeral vs none; prints the difference
  local label=$1 k=$2 st=0
  shift 2
  "$bin/boot_bench" --runs "$boot_runs" --marker "testguest: hello" --timeout 60 --stall 30 \
    --name tpm -- "${run[@]}" --kernel "$k" "$@" --tpm ephemeral \
    --vs-name no-tpm -- "${run[@]}" --kernel "$k" "$@" | tee "$dir/boot.$label" || st=$?
  awk -v l="$label" '/^first serial line \(ms\)/ && $5 + 0 > 0 && $6 + 0 > 0 {
    printf "(%s) --tpm adds %.1f ms to the first serial line\n", l, $5 - $6 }' "$dir/boot.$label"
  return "$st"
}
echo "bench/measure: (a) 10 MiB kernel + 64 MiB initramfs: --tpm ephemeral vs no vTPM"
rc=0
boot a "$kernel" --initramfs "$initramfs" || rc=1
echo
echo "bench/measure: (b) the plain test guest ($(stat -c %s "$bin/testguest.elf") bytes, no initramfs):" \
  "--tpm ephemeral vs no vTPM"
boot b "$bin/testguest.elf" || rc=1
echo
awk '/^first serial line \(ms\)/ { d[FILENAME] = $5 - $6; n++ }
  END { if (n == 2) printf "(a) - (b): hashing 74 MiB more adds %.1f ms to vmm run --tpm'"'"'s start\n", d[ARGV[1]] - d[ARGV[2]] }' \
  "$dir/boot.a" "$dir/boot.b"
exit "$rc"
