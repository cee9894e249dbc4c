#!/usr/bin/env bash
# bench/vtpm: our vTPM (`vmm-vtpm` standalone: libtpms in a confined child, seccomp,
# namespaces, Landlock) vs swtpm (libtpms too, unconfined), both on localhost TCP speaking
# swtpm's socket protocol. The comparison is like for like: one client, bin/vtpm_bench
# (tpm2-tss ESAPI), drives both through the same TCTI ("swtpm:host=127.0.0.1,port=P") with
# the same commands, in the same run, the servers alternating round by round. Per round and
# server: TPM2_Startup(CLEAR), a restricted ECC P-256 signing key (the AK) made once with
# TPM2_CreatePrimary in the owner hierarchy, then per operation 10 untimed warm-ups and N
# timed calls of TPM2_PCR_Extend (PCR 16, SHA-256, password session), TPM2_GetRandom(32) and
# TPM2_Quote (the AK, SHA-256 PCRs 0-7 and 16, 16-byte nonce). The table gives the median
# over the rounds of each round's p50 and p99, and ours/swtpm for the p50.
# Ours runs ephemeral (no --state) and writes nothing; swtpm keeps its state in a temporary
# directory and (checked with strace) rewrites it once per client run, at the first
# TPM2_Quote, which is a warm-up call: no disk write falls in the timed loops of either.
#   bench/vtpm/run.sh [ITERATIONS [ROUNDS]]   (defaults 200 and 3)
#   VMM_SKIP_INSTALL=1 skips scripts/install-deps.sh; VMM_SKIP_BUILD=1 skips the build.
# Exits 77 (skipped) when swtpm is not installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
iterations="${1:-200}"
rounds="${2:-3}"
[[ $iterations =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [ITERATIONS [ROUNDS]]" >&2; exit 2; }
if [ "${VMM_SKIP_INSTALL:-0}" != 1 ]; then
  scripts/install-deps.sh || echo "bench/vtpm: scripts/install-deps.sh failed; going on with what is installed" >&2
fi
if ! command -v swtpm >/dev/null; then
  echo "bench/vtpm: SKIPPED: swtpm is not installed (Debian package swtpm; scripts/install-deps.sh lists it)" >&2
  exit 77
fi
if [ "${VMM_SKIP_BUILD:-0}" != 1 ]; then
  cmake -S . -B build >/dev/null
  cmake --build build -j2 --target vtpm_bench vmm-vtpm >/dev/null
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/bench-vtpm.XXXXXX")"
mkdir "$dir/vmm-vtpm" "$dir/swtpm"
ours_pid="" swtpm_pid=""
stop() {  # PID
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() { stop "$ours_pid"; stop "$swtpm_pid"; rm -rf "$dir"; }
trap cleanup EXIT

# Two free localhost port pairs (P for the data channel, P+1 for the control channel).
read -r ours_port swtpm_port < <(python3 - <<'PY'
import socket
held, pairs = [], []
while len(pairs) < 2:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        a.close(); b.close(); continue
    held += [a, b]; pairs.append(p)
print(*pairs)
PY
)

listening() {  # PORT: is something listening on 127.0.0.1:PORT?
  local hex
  hex=$(printf '0100007F:%04X' "$1")
  awk -v a="$hex" '$2 == a && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp
}
wait_ready() {  # NAME PID PORT LOG
  for _ in $(seq 1 100); do
    if ! kill -0 "$2" 2>/dev/null; then
      echo "bench/vtpm: $1 exited at start; its log ($4):" >&2; cat "$4" >&2; exit 1
    fi
    listening "$3" && listening $(( $3 + 1 )) && return 0
    sleep 0.05
  done
  echo "bench/vtpm: $1 is not listening on 127.0.0.1:$3 and :$(( $3 + 1 )); its log:" >&2
  cat "$4" >&2
  exit 1
}

(cd "$dir/vmm-vtpm" && exec "$root/build/bin/vmm-vtpm" --server "tcp:127.0.0.1:$ours_port" \
  --ctrl "tcp:127.0.0.1:$(( ours_port + 1 ))" 2>"$dir/vmm-vtpm.log") & ours_pid=$!
(cd "$dir/swtpm" && exec swtpm socket --tpm2 \
  --server "type=tcp,port=$swtpm_port,bindaddr=127.0.0.1" \
  --ctrl "type=tcp,port=$(( swtpm_port + 1 )),bindaddr=127.0.0.1" \
  --tpmstate "dir=$dir/swtpm" --flags not-need-init,startup-clear 2>"$dir/swtpm.log") & swtpm_pid=$!
wait_ready vmm-vtpm "$ours_pid" "$ours_port" "$dir/vmm-vtpm.log"
wait_ready swtpm "$swtpm_pid" "$swtpm_port" "$dir/swtpm.log"

results="$dir/results.txt"
: >"$results"
run_one() {  # NAME
  local port log
  case $1 in
    vmm-vtpm) port=$ours_port log="$dir/vmm-vtpm.log" ;;
    swtpm) port=$swtpm_port log="$dir/swtpm.log" ;;
  esac
  if ! timeout 600 build/bin/vtpm_bench --tcti "swtpm:host=127.0.0.1,port=$port" --name "$1" \
      --iterations "$iterations" --warmup 10 >>"$results"; then
    echo "bench/vtpm: vtpm_bench against $1 failed; its log ($log):" >&2
    cat "$log" >&2
    exit 1
  fi
}

echo "bench/vtpm: $rounds rounds, alternating; per round and server 10 warm-ups, then" \
  "$iterations timed calls of each operation, one ESAPI client (tpm2-tss" \
  "$(pkg-config --modversion tss2-esys 2>/dev/null || echo '?')) over the swtpm TCTI on localhost TCP"
echo "bench/vtpm: vmm-vtpm (ephemeral) serves from a confined child (seccomp, namespaces, Landlock);" \
  "swtpm $(swtpm --version 2>/dev/null | head -1 | sed -n 's/.*version \([0-9.]*\).*/\1/p') runs unconfined"
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then order=(vmm-vtpm swtpm); else order=(swtpm vmm-vtpm); fi
  for name in "${order[@]}"; do
    run_one "$name"
    echo "  round $round: $(tail -1 "$results" | sed 's/^vtpm_bench: //')"
  done
done

stop "$ours_pid"; ours_pid=""
stop "$swtpm_pid"; swtpm_pid=""

# Medians over the rounds; ratio = vmm-vtpm / swtpm, p50.
awk '
  { delete v; for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    name = v["name"]; n[name]++
    for (k in v) if (k ~ /_us$/) vals[name, k, n[name]] = v[k] }
  function median(name, k,   m, i, j, a, t) {
    m = n[name]; for (i = 1; i <= m; i++) a[i] = vals[name, k, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
  END {
    split("extend getrandom quote", keys, " ")
    split("TPM2_PCR_Extend (PCR 16, SHA-256)|TPM2_GetRandom (32 bytes)|TPM2_Quote (ECC P-256, 9 PCRs)", labels, "|")
    print ""
    print "| op (µs, median of " n["vmm-vtpm"] " rounds) | vmm-vtpm p50 / p99 | swtpm p50 / p99 | ratio (ours/swtpm p50) |"
    print "|---|---|---|---|"
    for (i = 1; i <= 3; i++) {
      a50 = median("vmm-vtpm", keys[i] "_p50_us"); a99 = median("vmm-vtpm", keys[i] "_p99_us")
      b50 = median("swtpm", keys[i] "_p50_us"); b99 = median("swtpm", keys[i] "_p99_us")
      printf "| %s | %.1f / %.1f | %.1f / %.1f | %.2f |\n", labels[i], a50, a99, b50, b99, (b50 > 0 ? a50 / b50 : 0)
    }
  }' "$results"
