#!/bin/sh
# bench/api in its shortest form (1 s a figure, 2 clients): it must finish, print its table
# with the peer rows, and either our four figures (with the attest breakdown) or why the VM
# could not run. The figures depend on the host and its load, so they are not judged.
#   api_quick_test.sh BIN_DIR SOURCE_DIR
set -u
# shellcheck source=quick_lib.sh
. "$(dirname "$0")/quick_lib.sh"
run_quick "$1" "$2" api 1 2
want '^bench/api: 1 s a figure, 1 and 2 clients; '
want '^\| API call \(VMM on one core\) \| requests/s \| p50 latency \(µs\) \| p99 latency \(µs\) \|$'
want '^\| Firecracker \(API over a unix socket\) \| no published figure found \| - \| - \|$'
want '^\| Cloud Hypervisor \(API over a unix socket\) \| no published figure found \| - \| - \|$'
if grep -q '^bench/api: the VM cannot run here' "$out"; then
  want '^\| vm.info, 1 client \| cannot run: '
else
  num='[0-9]+ \| [0-9]+ \| [0-9]+'
  want "^\| GET vm.info, 1 client \| $num \|$"
  want "^\| GET vm.info, 2 clients \| $num \|$"
  want "^\| PUT vm.attest, 1 client \| $num \|$"
  want "^\| PUT vm.attest, 2 clients \| $num \|$"
  want '^attest, 1 client, p50: [0-9]+ µs in all = [0-9]+ µs of transport, HTTP and routing .* \+ -?[0-9]+ µs \(-?[0-9]+%\) of the quote path'
fi
exit "$fail"
