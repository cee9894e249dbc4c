#!/usr/bin/env bash
# bench/verify: how many evidence bundles the tenant's verifier checks per second on one core,
# beside tpm2_checkquote and with `openssl speed ecdsap256`'s verify rate as the ceiling (a
# bundle's quote is one ECDSA P-256 signature).
#   The bundle: with a usable /dev/kvm, a real one: a persistent vTPM made with `vmm vtpm
#   provision` (EK and AK certificates from a fresh CA), the test guest booted with it (`vmm run
#   --api-socket`, the guest lingers), `vmm attest` with a fresh nonce, and the policy of
#   `vmm measure`. Otherwise, or if that fails, a synthetic one from `verify_bench make` (the
#   unit tests' software TPM and CA, the same format and checks); the output says which.
#   (1) bin/verify_bench times, single-threaded, per CPU second of its own (so per core):
#       VerifyBundle (JSON in, verdict out) with every certificate check each time (a), and
#       with a ChainCache that holds this bundle's chain (b); and, to show where the time goes,
#       the JSON parse alone, the quote signature alone, and (b) without the JSON. Before timing
#       it checks that the cached and uncached results are the same text. Beside it, in
#       alternating rounds, `openssl speed -seconds S -mr ecdsap256` (verifies per user-CPU
#       second). The table gives medians.
#   (2) per process: INVOCATIONS runs of `tpm2_checkquote` on the same quote (from `vmm-verify
#       unpack`; it checks the signature, nonce and PCR digest only: no certificates, no event
#       log) and of `vmm-verify` (every check), CPU time (user + system) of all of them.
#   bench/verify/run.sh [ROUNDS [SECONDS [INVOCATIONS]]]   (defaults 3, 2 and 100)
#   VMM_SKIP_INSTALL=1 skips scripts/install-deps.sh; VMM_SKIP_BUILD=1 skips the build;
#   VMM_BENCH_BIN=DIR takes the binaries from DIR (default build/bin); VMM_BENCH_SYNTHETIC=1
#   uses the synthetic bundle even where a real one could be made.
# Exit status: 0; 1 when our side could not run or its results differ with the cache.
set -euo pipefail
# shellcheck source=bench/common/bench.sh disable=SC1091  # checked on its own
. "$(dirname "${BASH_SOURCE[0]}")/../common/bench.sh"  # sets root and cds there
rounds="${1:-3}"
seconds="${2:-2}"
invocations="${3:-100}"
bench_begin_warn "[ROUNDS [SECONDS [INVOCATIONS]]]" "$rounds" "$seconds" "$invocations"
bench_build verify_bench vmm-verify vmm vmm-vcpu vmm-vtpm vmm-device testguest
bench_need_tool bench/verify openssl openssl

bench_vm_dir verify

# real_bundle: writes $dir/evidence.json, ca.pem, policy.json, nonce from a vTPM quoted through
# the manager of a running test guest; prints why not and returns 1 when it cannot.
real_bundle() {
  local nonce
  if ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then echo "no usable /dev/kvm"; return 1; fi
  for f in vmm vmm-vcpu vmm-vtpm vmm-device testguest.elf; do
    [ -e "$bin/$f" ] || { echo "$bin/$f is not built"; return 1; }
  done
  bench_attested_vm bench-verify 60 || return 1
  nonce=$(openssl rand -hex 16)
  "$bin/vmm" attest --api-socket "$dir/api.sock" --nonce "$nonce" --out "$dir/evidence.json" \
    --ca "$dir/ca" >"$dir/attest.log" 2>&1 ||
    { echo "vmm attest failed: $(tail -n1 "$dir/attest.log")"; return 1; }
  kill -TERM "$vm_pid" 2>/dev/null
  wait "$vm_pid" 2>/dev/null || true
  vm_pid=
  cp "$dir/ca/vtpm-ca.crt" "$dir/ca.pem"
  echo "$nonce" >"$dir/nonce"
}

source_line=
if [ "${VMM_BENCH_SYNTHETIC:-0}" != 1 ] && why=$(real_bundle); then
  source_line="real: vmm vtpm provision, the test guest under vmm run, vmm attest (manager's quote)"
else
  [ "${VMM_BENCH_SYNTHETIC:-0}" = 1 ] && why="VMM_BENCH_SYNTHETIC=1"
  rm -f "$dir/evidence.json"
  "$bin/verify_bench" make --dir "$dir" || { echo "bench/verify: verify_bench make failed" >&2; exit 1; }
  source_line="synthetic: verify_bench make, the unit tests' software TPM and CA (no real bundle: $why)"
fi
nonce=$(cat "$dir/nonce")
echo "bench/verify: bundle $source_line; $(stat -c %s "$dir/evidence.json") bytes"
"$bin/vmm-verify" --evidence "$dir/evidence.json" --ca "$dir/ca.pem" --policy "$dir/policy.json" \
  --nonce "$nonce" >"$dir/verdict.txt" 2>&1 || true
echo "bench/verify: vmm-verify says $(tail -n1 "$dir/verdict.txt")"

results=$dir/results
: >"$results"
ours() {
  "$bin/verify_bench" run --evidence "$dir/evidence.json" --ca "$dir/ca.pem" --nonce "$nonce" \
    --policy "$dir/policy.json" --seconds "$seconds" >>"$results"
}
theirs() {  # -mr: "+F4:N:256:SIGNS_PER_S:VERIFIES_PER_S", per user-CPU second
  openssl speed -seconds "$seconds" -mr ecdsap256 2>/dev/null |
    awk -F: '$1 == "+F4" { print "openssl ecdsap256", $5 }' >>"$results"
}
echo "bench/verify: $rounds rounds, alternating; each figure $seconds s of CPU time;" \
  "$(openssl version | cut -d' ' -f1-2), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
  "$(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then ours || exit 1; theirs; else theirs; ours || exit 1; fi
done

# per_process NAME CMD...: INVOCATIONS runs of CMD (each must exit 0); one line
# "process NAME CPU_SECONDS WALL_SECONDS", or "cannot NAME REASON".
per_process() {
  local name=$1 t
  shift
  "$@" >/dev/null 2>"$dir/$name.err" ||
    { echo "cannot $name $(head -n1 "$dir/$name.err")" >>"$results"; return 0; }
  t=$( { TIMEFORMAT='%U %S %R'; time { for _ in $(seq 1 "$invocations"); do "$@" >/dev/null 2>&1 || exit 1; done; }; } 2>&1 ) ||
    { echo "cannot $name a run failed" >>"$results"; return 0; }
  echo "process $name $t" | awk '{ print $1, $2, $3 + $4, $5 }' >>"$results"
}
if command -v tpm2_checkquote >/dev/null; then
  "$bin/vmm-verify" unpack --evidence "$dir/evidence.json" --dir "$dir/files"
  per_process tpm2_checkquote tpm2_checkquote -u "$dir/files/ak.pub.pem" -m "$dir/files/quote.msg" \
    -s "$dir/files/quote.sig" -f "$dir/files/quote.pcrs" -g sha256 -q "$nonce"
else
  echo "cannot tpm2_checkquote not installed (Debian package tpm2-tools)" >>"$results"
fi
per_process vmm-verify "$bin/vmm-verify" --evidence "$dir/evidence.json" --ca "$dir/ca.pem" \
  --policy "$dir/policy.json" --nonce "$nonce"

bench_awk '
  function med(key) { return median(v, key, n[key]) }
  function add(key, x) { n[key]++; v[key, n[key]] = x }
  $1 == "openssl" { add("openssl", $3) }
  $1 == "verify_bench:" && $2 ~ /^name=/ {
    delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    add(f["name"], f["per_cpu_s"])
  }
  $1 == "process" { proc_cpu[$2] = $3; proc_wall[$2] = $4 }
  $1 == "cannot" { why = $0; sub(/^cannot [^ ]+ /, "", why); cannot[$2] = why }
  function row(label, rate, ceiling) {
    printf "| %s | %.0f | %.1f | %.0f%% |\n", label, rate, 1e6 / rate, 100 * rate / ceiling
  }
  function process_row(name, label) {
    if (name in cannot) { printf "| %s | cannot run | - | - |\n", label; return }
    row(label, inv / proc_cpu[name], o)
  }
  END {
    o = med("openssl")
    print ""
    print "| figure (one core; median of " n["openssl"] " rounds) | per CPU second | µs of CPU each | of openssl verify |"
    print "|---|---|---|---|"
    row("(a) VerifyBundle, certificate chain verified every time", med("verify-uncached"), o)
    row("(b) VerifyBundle, chain cached (ChainCache)", med("verify-cached"), o)
    row("(b) without the JSON: Verify of the parsed bundle, chain cached", med("checks-cached"), o)
    row("the bundle'"'"'s JSON parse alone (ParseEvidence)", med("parse"), o)
    row("the quote signature alone (AK parsed once)", med("signature"), o)
    process_row("tpm2_checkquote", "tpm2_checkquote, a process per quote (signature, nonce, PCR digest)")
    process_row("vmm-verify", "vmm-verify, a process per bundle (every check)")
    row("openssl speed ecdsap256, verify (the ceiling)", o, o)
    for (k in cannot) printf "%s: cannot run: %s\n", k, cannot[k]
    for (k in proc_wall) printf "%s: %d runs, %.1f ms of wall time each\n", k, inv, 1000 * proc_wall[k] / inv
    b = med("verify-cached"); c = med("checks-cached")
    printf "goal ((b) at least 50%% of openssl ecdsap256 verify): (b) %.0f%% of %.0f/s: %s; without the JSON %.0f%%: %s\n",
      100 * b / o, o, (b >= 0.5 * o ? "met" : "NOT met"), 100 * c / o, (c >= 0.5 * o ? "met" : "NOT met")
  }' inv="$invocations" "$results"
