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
#   VMM_SKIP_INSTALL=1 skips scripts/install-deps.sh; VMM_SKIP_BUILD=1 skips the build;
#   SWTPM=CMD runs CMD in swtpm's place.
# A server that cannot serve (swtpm not installed, exits or does not listen at start, the
# client fails against it, or it stops answering: vtpm_bench gives up after --stall 15 s
# without progress) is not run again; its column reads "cannot serve" and the line under the
# table gives its first error line. Exit status: 0, or 1 when vmm-vtpm could not serve (the
# table is printed anyway).
set -euo pipefail
# shellcheck source=bench/common/bench.sh disable=SC1091  # checked on its own
. "$(dirname "${BASH_SOURCE[0]}")/../common/bench.sh"  # sets root and cds there
iterations="${1:-200}"
rounds="${2:-3}"
bench_begin_warn "[ITERATIONS [ROUNDS]]" "$iterations" "$rounds"
# shellcheck source=bench/common/peer.sh disable=SC1091  # checked on its own
. bench/common/peer.sh
swtpm=${SWTPM:-swtpm}
declare -A cannot=()  # server -> "cannot serve: LINE (HOW)"
command -v "$swtpm" >/dev/null ||
  cannot[swtpm]="cannot serve: $swtpm is not installed (Debian package swtpm; scripts/install-deps.sh lists it)"
bench_build vtpm_bench vmm-vtpm

dir="$(mktemp -d "${TMPDIR:-/tmp}/bench-vtpm.XXXXXX")"
mkdir "$dir/vmm-vtpm" "$dir/swtpm"
ours_pid="" swtpm_pid=""
stop() { stop_pid 5 "$1" || true; }  # PID
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
wait_ready() {  # NAME PID PORT LOG; on failure sets cannot[NAME] and stops the server
  for _ in $(seq 1 100); do
    if ! kill -0 "$2" 2>/dev/null; then
      cannot[$1]="cannot serve: $(error_line "$4") (exited at start)"
      stop "$2"
      return 1
    fi
    listening "$3" && listening $(( $3 + 1 )) && return 0
    sleep 0.05
  done
  cannot[$1]="cannot serve: $(error_line "$4") (not listening on 127.0.0.1:$3 and :$(( $3 + 1 )) after 5 s)"
  stop "$2"
  return 1
}

(cd "$dir/vmm-vtpm" && exec "$root/build/bin/vmm-vtpm" --server "tcp:127.0.0.1:$ours_port" \
  --ctrl "tcp:127.0.0.1:$(( ours_port + 1 ))" 2>"$dir/vmm-vtpm.log") & ours_pid=$!
if [ -z "${cannot[swtpm]:-}" ]; then
  (cd "$dir/swtpm" && exec "$swtpm" socket --tpm2 \
    --server "type=tcp,port=$swtpm_port,bindaddr=127.0.0.1" \
    --ctrl "type=tcp,port=$(( swtpm_port + 1 )),bindaddr=127.0.0.1" \
    --tpmstate "dir=$dir/swtpm" --flags not-need-init,startup-clear >"$dir/swtpm.log" 2>&1) & swtpm_pid=$!
fi
wait_ready vmm-vtpm "$ours_pid" "$ours_port" "$dir/vmm-vtpm.log" || ours_pid=""
[ -z "$swtpm_pid" ] || wait_ready swtpm "$swtpm_pid" "$swtpm_port" "$dir/swtpm.log" || swtpm_pid=""

results="$dir/results.txt"
: >"$results"
# Per client run: 60 s, plus 20 ms a call (0.05 to 0.5 ms each here, when the server works).
run_timeout=$(( 60 + (iterations + 10) * 3 * 20 / 1000 ))
run_one() {  # NAME ROUND
  local port log dlog="$dir/$1.driver.log" st=0 how
  case $1 in
    vmm-vtpm) port=$ours_port log="$dir/vmm-vtpm.log" ;;
    swtpm) port=$swtpm_port log="$dir/swtpm.log" ;;
  esac
  timeout "$run_timeout" build/bin/vtpm_bench --tcti "swtpm:host=127.0.0.1,port=$port" --name "$1" \
    --iterations "$iterations" --warmup 10 >>"$results" 2>"$dlog" || st=$?
  [ "$st" != 0 ] || return 0
  how="vtpm_bench exit status $st"
  [ "$st" != 124 ] || how="no result within ${run_timeout} s"
  cannot[$1]="cannot serve: $(error_line "$log" "$dlog") ($how, round $2)"
  case $1 in
    vmm-vtpm) stop "$ours_pid"; ours_pid="" ;;
    swtpm) stop "$swtpm_pid"; swtpm_pid="" ;;
  esac
}

swtpm_version=$({ timeout 5 "$swtpm" --version 2>/dev/null || true; } | head -1 | sed -n 's/.*version \([0-9.]*\).*/\1/p')
echo "bench/vtpm: $rounds rounds, alternating; per round and server 10 warm-ups, then" \
  "$iterations timed calls of each operation, one ESAPI client (tpm2-tss" \
  "$(pkg-config --modversion tss2-esys 2>/dev/null || echo '?')) over the swtpm TCTI on localhost TCP"
echo "bench/vtpm: vmm-vtpm (ephemeral) serves from a confined child (seccomp, namespaces, Landlock);" \
  "swtpm ${swtpm_version:-(version unknown)} runs unconfined"
peer_rounds "$rounds" vtpm_bench vmm-vtpm swtpm

stop "$ours_pid"; ours_pid=""
stop "$swtpm_pid"; swtpm_pid=""

# Medians over the rounds; ratio = vmm-vtpm / swtpm, p50.
bench_awk '
  { collect_run("_us$") }
  function cell(name, k) {
    return served_cell(name, sprintf("%.1f / %.1f", run_median(name, k "_p50_us"), run_median(name, k "_p99_us")))
  }
  END {
    split("extend getrandom quote", keys, " ")
    split("TPM2_PCR_Extend (PCR 16, SHA-256)|TPM2_GetRandom (32 bytes)|TPM2_Quote (ECC P-256, 9 PCRs)", labels, "|")
    table_header("op (µs, median of " (runs["vmm-vtpm"] + 0) " rounds)", "vmm-vtpm p50 / p99",
      "swtpm p50 / p99", "ratio (ours/swtpm p50)")
    for (i = 1; i <= 3; i++) {
      r = ratio_cell(runs["vmm-vtpm"] && runs["swtpm"], run_median("vmm-vtpm", keys[i] "_p50_us"),
        run_median("swtpm", keys[i] "_p50_us"))
      printf "| %s | %s | %s | %s |\n", labels[i], cell("vmm-vtpm", keys[i]), cell("swtpm", keys[i]), r
    }
  }' "$results"
peer_verdict vmm-vtpm swtpm
