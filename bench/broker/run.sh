#!/usr/bin/env bash
# bench/broker: how many secrets the key broker (vmm-verify serve's KeyBroker) releases per
# second on one core, beside its peer: `vmm-verify` run as a process per bundle, the one-shot
# verification a tenant would script around vmm attest without a broker.
#   A real VM: a persistent vTPM made with `vmm vtpm provision`, the test guest booted with it
#   (`vmm run --api-socket`, the guest lingers) and the policy of `vmm measure`. bin/broker_bench
#   takes COUNT challenges from an in-process KeyBroker, has `vmm attest` quote the VM for each
#   (SHA-256(nonce || a fresh client key) as the nonce; untimed: that is the manager's and the
#   vTPM's time, bench/api measures it), then times, on its thread's CPU clock, KeyBroker::Handle
#   of every attestation message: the bundle verified against the CA and policy (with the
#   broker's chain cache, as it serves), the secret sealed (ECDH, HKDF, AES-GCM), the log line.
#   Each answer is then opened with its client key to check the release. The peer: INVOCATIONS
#   runs of `vmm-verify --evidence --ca --policy --nonce` on the first bundle, CPU time (user +
#   system) of all of them. Needs /dev/kvm: without it the bench says so and exits 0.
#   bench/broker/run.sh [ROUNDS [COUNT [INVOCATIONS]]]   (defaults 3, 50 and 50)
#   VMM_SKIP_INSTALL=1 skips scripts/install-deps.sh; VMM_SKIP_BUILD=1 skips the build;
#   VMM_BENCH_BIN=DIR takes the binaries from DIR (default build/bin).
# Exit status: 0; 1 when our side could not run.
set -euo pipefail
# shellcheck source=bench/common/bench.sh disable=SC1091  # checked on its own
. "$(dirname "${BASH_SOURCE[0]}")/../common/bench.sh"  # sets root and cds there
rounds="${1:-3}"
count="${2:-50}"
invocations="${3:-50}"
bench_begin_warn "[ROUNDS [COUNT [INVOCATIONS]]]" "$rounds" "$count" "$invocations"
bench_build broker_bench vmm-verify vmm vmm-vcpu vmm-vtpm vmm-device testguest

if ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
  echo "bench/broker: cannot run: no usable /dev/kvm (the evidence must come from a real vTPM)"
  exit 0
fi
bench_vm_dir broker

bench_attested_vm bench-broker 600 >"$dir/why" || { echo "bench/broker: $(cat "$dir/why")" >&2; exit 1; }

echo "bench/broker: $rounds rounds of $count releases, alternating with $invocations vmm-verify" \
  "processes; $(openssl version | cut -d' ' -f1-2)," \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs," \
  "load average $(cut -d' ' -f1 /proc/loadavg)"
results=$dir/results
: >"$results"
ours() {
  rm -rf "$dir/out" && mkdir "$dir/out"
  "$bin/broker_bench" --vmm "$bin/vmm" --api-socket "$dir/api.sock" --ca-dir "$dir/ca" \
    --ca "$dir/ca/vtpm-ca.crt" --policy "$dir/policy.json" --count "$count" --out "$dir/out" \
    >>"$results" || { echo "bench/broker: broker_bench failed" >&2; exit 1; }
}
theirs() {
  local nonce t
  [ -s "$dir/out/evidence.json" ] || return 0
  cp "$dir/out/evidence.json" "$dir/peer.json"
  nonce=$(cat "$dir/out/nonce")
  "$bin/vmm-verify" --evidence "$dir/peer.json" --ca "$dir/ca/vtpm-ca.crt" \
    --policy "$dir/policy.json" --nonce "$nonce" >"$dir/peer.out" 2>&1 ||
    { echo "cannot vmm-verify $(tail -n1 "$dir/peer.out")" >>"$results"; return 0; }
  t=$( { TIMEFORMAT='%U %S %R'; time { for _ in $(seq 1 "$invocations"); do
    "$bin/vmm-verify" --evidence "$dir/peer.json" --ca "$dir/ca/vtpm-ca.crt" \
      --policy "$dir/policy.json" --nonce "$nonce" >/dev/null 2>&1 || exit 1; done; }; } 2>&1 ) ||
    { echo "cannot vmm-verify a run failed" >>"$results"; return 0; }
  echo "process vmm-verify $t" | awk '{ print $1, $2, $3 + $4, $5 }' >>"$results"
}
for r in $(seq 1 "$rounds"); do
  ours
  theirs
  [ "$r" -lt "$rounds" ] || break
done

bench_awk '
  function med(key) { return median(v, key, n[key]) }
  function add(key, x) { n[key]++; v[key, n[key]] = x }
  $1 == "broker_bench:" { for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                          add("release", f["per_cpu_s"]); released += f["released"] }
  $1 == "process" { add("peer", inv / $3); add("peer_wall", 1000 * $4 / inv) }
  $1 == "cannot" { why = $0; sub(/^cannot [^ ]+ /, "", why) }
  END {
    print ""
    print "| figure (one core; median of " n["release"] " rounds) | per CPU second | µs of CPU each |"
    print "|---|---|---|"
    r = med("release")
    printf "| key broker release: verify (chain cached) + seal + log line, in process | %.0f | %.0f |\n", r, 1e6 / r
    if (n["peer"] > 0) {
      p = med("peer")
      printf "| peer: vmm-verify, a process per bundle (verify only, no secret) | %.0f | %.0f |\n", p, 1e6 / p
      printf "vmm-verify: %.1f ms of wall time each; the broker releases %.1fx as many per core\n", med("peer_wall"), r / p
    } else {
      printf "| peer: vmm-verify, a process per bundle | cannot run: %s | - |\n", why
    }
    printf "released and opened: %d of %d\n", released, n["release"] * count
  }' inv="$invocations" count="$count" "$results"
