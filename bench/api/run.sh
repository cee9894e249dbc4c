#!/usr/bin/env bash
# bench/api: requests per second and latency of the management API (ARCHITECTURE.md §8,
# cpp-httplib over a unix socket, one confined worker thread, one request per connection).
#   A persistent vTPM is provisioned (`vmm vtpm provision`), the test guest booted with it
#   and left lingering (`vmm run --api-socket S --cmdline linger=600`), with the whole VMM
#   (manager, vCPU, device and vTPM processes) pinned to one core with taskset, and
#   bin/api_bench (raw AF_UNIX sockets, one fixed HTTP/1.1 request a connection, on another
#   core where there is one) drives it:
#   (1) GET /api/v1/vm.info, 1 client and CLIENTS concurrent clients, SECONDS each;
#   (2) PUT /api/v1/vm.attest {"nonce": 16 random bytes, the same for every request}, the same.
#   Where the time of an attest goes: info's latency is what the socket, HTTP, routing,
#   authorisation and audit cost; attest minus info is the quote path inside the manager
#   (TPM2_CreatePrimary of the AK, TPM2_PCR_Read, TPM2_Quote, the NV reads of the
#   certificates, the flush, the bundle's JSON), which the API does not time piece by piece;
#   bench/vtpm gives TPM2_Quote alone on our vTPM.
#   bench/api/run.sh [SECONDS [CLIENTS]]   (defaults 3 and 8)
#   VMM_SKIP_INSTALL=1 skips scripts/install-deps.sh; VMM_SKIP_BUILD=1 skips the build;
#   VMM_BENCH_BIN=DIR takes the binaries from DIR (default build/bin).
# Without a usable /dev/kvm, or when the VM cannot start, it says so and exits 0 with the
# peer figures only. Exit status: 0; 1 when the VM ran but no API request succeeded.
set -euo pipefail
# shellcheck source=bench/common/bench.sh disable=SC1091  # checked on its own
. "$(dirname "${BASH_SOURCE[0]}")/../common/bench.sh"  # sets root and cds there
seconds="${1:-3}"
clients="${2:-8}"
bench_begin_warn "[SECONDS [CLIENTS]]" "$seconds" "$clients"
bench_build api_bench vmm vmm-vcpu vmm-vtpm vmm-device testguest

dir="$(mktemp -d "${TMPDIR:-/tmp}/bench-api.XXXXXX")"
vm_pid=
cleanup() {
  if [ -n "$vm_pid" ]; then
    kill -TERM "$vm_pid" 2>/dev/null || true
    wait "$vm_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

peers() {  # the peer rows: what their projects publish for their API servers
  echo "| Firecracker (API over a unix socket) | no published figure found | - | - |"
  echo "| Cloud Hypervisor (API over a unix socket) | no published figure found | - | - |"
}
print_table() {  # FILE: api_bench lines tagged "LABEL|..."
  echo
  echo "| API call (VMM on one core) | requests/s | p50 latency (µs) | p99 latency (µs) |"
  echo "|---|---|---|---|"
  awk -F'|' '{
      delete f; n = split($2, w, " ")
      for (i = 2; i <= n; i++) { split(w[i], kv, "="); f[kv[1]] = kv[2] }
      if (f["requests"] + 0 > 0) printf "| %s | %.0f | %.0f | %.0f |\n", $1, f["rps"], f["p50_us"], f["p99_us"]
      else if (index($2, "first_error=")) printf "| %s | cannot: %s | - | - |\n", $1, substr($2, index($2, "first_error=") + 12)
      else printf "| %s | %s | - | - |\n", $1, $2
    }' "$1"
  peers
}

# start_vm: provisions the vTPM and boots the lingering test guest on one core; prints why
# not and returns 1 when it cannot.
core_vm=0 core_client=0
start_vm() {
  local tpm
  if ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then echo "no usable /dev/kvm"; return 1; fi
  for f in vmm vmm-vcpu vmm-vtpm vmm-device testguest.elf api_bench; do
    [ -e "$bin/$f" ] || { echo "$bin/$f is not built"; return 1; }
  done
  mkdir -m 0700 "$dir/vtpm"
  tpm="state=$dir/vtpm/state,key=$dir/vtpm/key"
  "$bin/vmm" vtpm provision --vm "$tpm" --ca "$dir/ca" --vm-id bench-api >"$dir/provision.log" 2>&1 ||
    { echo "vmm vtpm provision failed: $(tail -n1 "$dir/provision.log")"; return 1; }
  local pin=()
  if command -v taskset >/dev/null; then
    pin=(taskset -c "$core_vm")
  fi
  "${pin[@]}" "$bin/vmm" run --kernel "$bin/testguest.elf" --cpus 1 --memory 256M --tpm "$tpm" \
    --cmdline "expect_tpm=crb linger=600" --api-socket "$dir/api.sock" >"$dir/serial.log" 2>&1 &
  vm_pid=$!
  bench_wait_guest "$dir/serial.log" "$vm_pid" || return 1
}

cpus=$(nproc)
[ "$cpus" -ge 2 ] && core_client=1
pinned="VMM pinned to CPU $core_vm"
command -v taskset >/dev/null || pinned="not pinned (taskset is not installed)"
echo "bench/api: $seconds s a figure, 1 and $clients clients; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
  "$cpus CPUs, load average $(cut -d' ' -f1 /proc/loadavg); $pinned, api_bench on CPU $core_client"
results=$dir/results
: >"$results"
# Not in a subshell: start_vm sets vm_pid, which cleanup stops.
if ! start_vm >"$dir/why"; then
  why=$(cat "$dir/why")
  echo "bench/api: the VM cannot run here ($why): our figures are skipped"
  echo "vm.info, 1 client|cannot run: $why" >>"$results"
  print_table "$results"
  exit 0
fi
echo "bench/api: test guest lingering with a provisioned vTPM, API at its socket"

nonce=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
client() {  # LABEL N METHOD PATH [BODY]
  local line client_pin=()
  command -v taskset >/dev/null && client_pin=(taskset -c "$core_client")
  line=$("${client_pin[@]}" "$bin/api_bench" --socket "$dir/api.sock" --clients "$2" --seconds "$seconds" \
    --method "$3" --path "$4" ${5:+--body "$5"}) || true
  echo "$line"
  echo "$1|${line:-api_bench: printed nothing first_error=api_bench failed}" >>"$results"
}
client "GET vm.info, 1 client" 1 GET /api/v1/vm.info
client "GET vm.info, $clients clients" "$clients" GET /api/v1/vm.info
client "PUT vm.attest, 1 client" 1 PUT /api/v1/vm.attest "{\"nonce\": \"$nonce\"}"
client "PUT vm.attest, $clients clients" "$clients" PUT /api/v1/vm.attest "{\"nonce\": \"$nonce\"}"
print_table "$results"
echo
awk -F'|' '{ split($2, w, " "); for (i in w) { split(w[i], kv, "="); f[$1, kv[1]] = kv[2] } k[++n] = $1 }
  END {
    i = f[k[1], "p50_us"]; a = f[k[3], "p50_us"]
    if (i > 0 && a > 0)
      printf "attest, 1 client, p50: %.0f µs in all = %.0f µs of transport, HTTP and routing (info'"'"'s p50) + %.0f µs (%.0f%%) of the quote path in the manager (vTPM commands and the bundle)\n", a, i, a - i, 100 * (a - i) / a
  }' "$results"
ok=$(grep -c 'requests=[1-9]' "$results" || true)
[ "$ok" -gt 0 ] || { echo "bench/api: no API request succeeded" >&2; exit 1; }
