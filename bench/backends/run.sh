#!/usr/bin/env bash
# bench/backends: our confined vhost-user-blk back-end (`vmm-device blk`) vs QEMU's
# qemu-storage-daemon vhost-user-blk export, on the same 256 MiB raw image, driven by the
# same front-end and guest driver (bin/backend_bench: our vhost-user front-end library, a
# sealed-memfd "guest RAM", one split ring, queue depth 1). No VM and no /dev/kvm: it all
# runs natively. Both serve from the page cache (ours pread/pwrite, qsd cache.direct=off),
# and the driver negotiates VIRTIO_BLK_F_FLUSH so both keep a write-back cache.
#   bench/backends/run.sh [REQUESTS [ROUNDS]]   (defaults 20000 and 3; the back-ends alternate)
#   BENCH_NO_FLUSH=1 negotiates VERSION_1 only: ours then makes each write stable (fdatasync).
#   VMM_SKIP_INSTALL=1 skips scripts/install-deps.sh; VMM_SKIP_BUILD=1 skips the build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
requests="${1:-20000}"
rounds="${2:-3}"
[[ $requests =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [REQUESTS [ROUNDS]]" >&2; exit 2; }
[ "${VMM_SKIP_INSTALL:-0}" = 1 ] || scripts/install-deps.sh
if [ "${VMM_SKIP_BUILD:-0}" != 1 ]; then
  cmake -S . -B build >/dev/null
  cmake --build build -j2 --target backend_bench vmm-device >/dev/null
fi
command -v qemu-storage-daemon >/dev/null || { echo "bench/backends: qemu-storage-daemon missing (Debian qemu-system-common)" >&2; exit 1; }

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

pid=""
cleanup() { [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; }
trap cleanup EXIT

# One back-end, one run: start it, drive it, stop it; appends the driver's line to $results.
results="$dir/results.txt"
: >"$results"
run_one() {  # NAME ROUND
  local name=$1 round=$2 sock="$dir/$1.sock" log="$dir/$1.log"
  rm -f "$sock"
  case $name in
    vmm-device)
      build/bin/vmm-device blk --socket "$sock" --image "$img" 2>"$log" & pid=$! ;;
    qemu-storage-daemon)
      qemu-storage-daemon \
        --blockdev "driver=file,node-name=file0,filename=$img,cache.direct=off" \
        --blockdev driver=raw,node-name=disk0,file=file0 \
        --export "type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=$sock,node-name=disk0,writable=on,num-queues=1" \
        2>"$log" & pid=$! ;;
  esac
  if ! timeout 600 build/bin/backend_bench --socket "$sock" --name "$name" --requests "$requests" \
      --warmup "$warmup" --seed "$round" "${flush[@]}" >>"$results"; then
    echo "bench/backends: $name failed; its log ($log):" >&2
    cat "$log" >&2
    exit 1
  fi
  # vmm-device ends on its own when the front-end hangs up (exit 0); qsd serves on until told.
  if [ "$name" = qemu-storage-daemon ]; then kill -TERM "$pid"; fi
  local status=0
  wait "$pid" || status=$?
  pid=""
  if [ "$name" = vmm-device ] && [ "$status" != 0 ]; then
    echo "bench/backends: vmm-device exited with $status; its log:" >&2
    cat "$log" >&2
    exit 1
  fi
}

echo "bench/backends: $rounds rounds, alternating; per round and back-end $warmup warm-up, then" \
  "$requests 4 KiB random READs and $requests WRITEs, queue depth 1, over a 256 MiB image" \
  "(flush feature ${flush[*]:-on})"
echo "bench/backends: vmm-device serves from a confined child (seccomp, namespaces, Landlock);" \
  "qemu-storage-daemon $(qemu-storage-daemon --version | head -1 | awk '{print $3}') runs unconfined"
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then order=(vmm-device qemu-storage-daemon); else order=(qemu-storage-daemon vmm-device); fi
  for name in "${order[@]}"; do
    run_one "$name" "$round"
    echo "  round $round: $(tail -1 "$results" | sed 's/^backend_bench: //')"
  done
done

# Medians over the rounds; ratio = vmm-device / qemu-storage-daemon.
awk '
  { name = ""; for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    name = v["name"]; n[name]++
    for (k in v) if (k ~ /_(iops|us)$/) vals[name, k, n[name]] = v[k] }
  function median(name, k,   m, i, j, a, t) {
    m = n[name]; for (i = 1; i <= m; i++) a[i] = vals[name, k, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
  END {
    split("read_iops read_p50_us read_p99_us write_iops write_p50_us write_p99_us", keys, " ")
    split("read IOPS|read p50 µs|read p99 µs|write IOPS|write p50 µs|write p99 µs", labels, "|")
    print ""
    print "| figure (median of " n["vmm-device"] " rounds) | vmm-device (confined) | qemu-storage-daemon | ratio |"
    print "|---|---|---|---|"
    for (i = 1; i <= 6; i++) {
      a = median("vmm-device", keys[i]); b = median("qemu-storage-daemon", keys[i])
      fmt = (keys[i] ~ /iops/) ? "%.0f" : "%.1f"
      printf "| %s | " fmt " | " fmt " | %.2f |\n", labels[i], a, b, (b > 0 ? a / b : 0)
    }
  }' "$results"
