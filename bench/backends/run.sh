#!/usr/bin/env bash
# bench/backends: our confined vhost-user-blk back-end (`vmm-device blk`) vs QEMU's
# qemu-storage-daemon vhost-user-blk export, on the same 256 MiB raw image, driven by the
# same front-end and guest driver (bin/backend_bench: our vhost-user front-end library, a
# sealed-memfd "guest RAM", one split ring, queue depth 1). No VM and no /dev/kvm: it all
# runs natively. Both serve from the page cache (ours pread/pwrite, qsd cache.direct=off),
# and the driver negotiates VIRTIO_BLK_F_FLUSH so both keep a write-back cache.
#   bench/backends/run.sh [REQUESTS [ROUNDS]]   (defaults 20000 and 3; the back-ends alternate)
#   BENCH_NO_FLUSH=1 negotiates VERSION_1 only: ours then makes each write stable (fdatasync).
#   VMM_SKIP_INSTALL=1 skips scripts/install-deps.sh; VMM_SKIP_BUILD=1 skips the build;
#   QEMU_STORAGE_DAEMON=CMD runs CMD in qemu-storage-daemon's place.
# A back-end that cannot serve (missing, exits at start, the driver fails against it, or it
# stops answering: backend_bench gives up after --stall 15 s without progress) is not run
# again; its column reads "cannot serve" and the line under the table gives its first error
# line. Exit status: 0, or 1 when vmm-device could not serve (the table is printed anyway).
set -euo pipefail
# shellcheck source=bench/common/bench.sh disable=SC1091  # checked on its own
. "$(dirname "${BASH_SOURCE[0]}")/../common/bench.sh"  # sets root and cds there
requests="${1:-20000}"
rounds="${2:-3}"
bench_begin "[REQUESTS [ROUNDS]]" "$requests" "$rounds"
bench_build backend_bench vmm-device
# shellcheck source=bench/common/peer.sh disable=SC1091  # checked on its own
. bench/common/peer.sh
qsd=${QEMU_STORAGE_DAEMON:-qemu-storage-daemon}
declare -A cannot=()  # back-end -> "cannot serve: LINE (HOW)"
command -v "$qsd" >/dev/null ||
  cannot[qemu-storage-daemon]="cannot serve: $qsd is not installed (Debian qemu-system-common)"

dir="$root/build/bench-backends"
mkdir -p "$dir"
img="$dir/disk.img"
if [ "$(stat -c %s "$img" 2>/dev/null || echo 0)" != 268435456 ]; then
  rm -f "$img"
  head -c 256M /dev/urandom >"$img.tmp" && mv "$img.tmp" "$img"  # real data, no holes
fi
cat "$img" >/dev/null  # into the page cache, where both back-ends will find it
warmup=$(( requests / 10 > 0 ? requests / 10 : 1 ))
flush=()
[ "${BENCH_NO_FLUSH:-0}" = 1 ] && flush=(--no-flush)

# Per driver run: 60 s, plus 5 ms a request (20 to 40 µs each here, when the back-end works).
run_timeout=$(( 60 + (2 * (requests + warmup)) / 200 ))
pid=""
cleanup() { stop_pid 5 "$pid" || true; }
trap cleanup EXIT

# One back-end, one run: start it, drive it, stop it; appends the driver's line to $results.
results="$dir/results.txt"
: >"$results"
run_one() {  # NAME ROUND
  local name=$1 round=$2 sock="$dir/$1.sock" log="$dir/$1.log" dlog="$dir/$1.driver.log" st=0
  rm -f "$sock"
  case $name in
    vmm-device)
      build/bin/vmm-device blk --socket "$sock" --image "$img" 2>"$log" & pid=$! ;;
    qemu-storage-daemon)
      "$qsd" \
        --blockdev "driver=file,node-name=file0,filename=$img,cache.direct=off" \
        --blockdev driver=raw,node-name=disk0,file=file0 \
        --export "type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=$sock,node-name=disk0,writable=on,num-queues=1" \
        >"$log" 2>&1 & pid=$! ;;
  esac
  timeout "$run_timeout" build/bin/backend_bench --socket "$sock" --name "$name" --requests "$requests" \
    --warmup "$warmup" --seed "$round" "${flush[@]}" >>"$results" 2>"$dlog" || st=$?
  if [ "$st" != 0 ]; then
    local how="backend_bench exit status $st"
    [ "$st" != 124 ] || how="no result within ${run_timeout} s"
    cannot[$name]="cannot serve: $(error_line "$log" "$dlog") ($how, round $round)"
    stop_pid 5 "$pid" || true
    pid=""
    return 0
  fi
  # vmm-device ends on its own when the front-end hangs up (exit 0); qsd serves on until told.
  if [ "$name" = qemu-storage-daemon ]; then
    stop_pid 10 "$pid" TERM || true
  else
    stop_pid 10 "$pid" none || st=$?
    if [ "$st" != 0 ]; then
      cannot[$name]="cannot serve: $(error_line "$log") (vmm-device exit status $st after round $round)"
    fi
  fi
  pid=""
}

qsd_version=$({ timeout 5 "$qsd" --version 2>/dev/null || true; } | head -1 | awk '{print $3}')
echo "bench/backends: $rounds rounds, alternating; per round and back-end $warmup warm-up, then" \
  "$requests 4 KiB random READs and $requests WRITEs, queue depth 1, over a 256 MiB image" \
  "(flush feature ${flush[*]:-on})"
echo "bench/backends: vmm-device serves from a confined child (seccomp, namespaces, Landlock);" \
  "qemu-storage-daemon ${qsd_version:-(version unknown)} runs unconfined"
peer_rounds "$rounds" backend_bench vmm-device qemu-storage-daemon

# Medians over the rounds; ratio = vmm-device / qemu-storage-daemon.
bench_awk '
  { collect_run("_(iops|us)$") }
  function cell(name, k, fmt) { return served_cell(name, sprintf(fmt, run_median(name, k))) }
  END {
    split("read_iops read_p50_us read_p99_us write_iops write_p50_us write_p99_us", keys, " ")
    split("read IOPS|read p50 µs|read p99 µs|write IOPS|write p50 µs|write p99 µs", labels, "|")
    table_header("figure (median of " (runs["vmm-device"] + 0) " rounds)", "vmm-device (confined)",
      "qemu-storage-daemon", "ratio")
    for (i = 1; i <= 6; i++) {
      fmt = (keys[i] ~ /iops/) ? "%.0f" : "%.1f"
      a = cell("vmm-device", keys[i], fmt); b = cell("qemu-storage-daemon", keys[i], fmt)
      r = ratio_cell(runs["vmm-device"] && runs["qemu-storage-daemon"], a, b)
      printf "| %s | %s | %s | %s |\n", labels[i], a, b, r
    }
  }' "$results"
peer_verdict vmm-device qemu-storage-daemon
