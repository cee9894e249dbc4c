#!/bin/sh
# One boot of scripts/demo.sh's attestation part, in POSIX sh so that it runs the same on this
# host and inside scripts/nested-kvm.sh's busybox guest (where the host has no /dev/kvm):
# boots the VM with an API socket, waits for the test guest's result line (the guest lingers
# after it), quotes the vTPM with `vmm attest`, verifies with `vmm-verify`, stops the VM.
#
# Usage: demo-attest.sh NAME NONCE POLICY CA_DIR -- VMM RUN ARGS...
# Files: build/demo-NAME-serial.log, build/demo-NAME-evidence.json, build/demo-NAME-verdict.txt
# Exit status: vmm-verify's (0 affirming, 1 not), or 3 if the VM did not come up or the
# attestation could not be made.
name=$1 nonce=$2 policy=$3 ca_dir=$4
shift 4
[ "$1" = "--" ] && shift
sock=build/demo-$name.sock
serial=build/demo-$name-serial.log
evidence=build/demo-$name-evidence.json
verdict=build/demo-$name-verdict.txt
rm -f "$sock" "$evidence" "$verdict"
"$@" --api-socket "$sock" >"$serial" 2>&1 &
vm=$!
stop_vm() {
  kill -TERM "$vm" 2>/dev/null
  wait "$vm" 2>/dev/null
}
tries=0
until grep -q '^testguest: result' "$serial" 2>/dev/null; do
  if ! kill -0 "$vm" 2>/dev/null || [ "$tries" -ge 1200 ]; then
    echo "demo: the VM did not reach its result line:"
    cat "$serial"
    stop_vm
    exit 3
  fi
  tries=$((tries + 1))
  sleep 0.1
done
sed 's/^/  | /' "$serial"
if ! build/bin/vmm attest --api-socket "$sock" --nonce "$nonce" --out "$evidence" \
  --ca "$ca_dir"; then
  stop_vm
  exit 3
fi
build/bin/vmm-verify --evidence "$evidence" --ca "$ca_dir/vtpm-ca.crt" --policy "$policy" \
  --nonce "$nonce" >"$verdict" 2>&1
rc=$?
echo "demo: vmm-verify --evidence $evidence --ca $ca_dir/vtpm-ca.crt --policy $policy --nonce $nonce"
sed 's/^/  | /' "$verdict"
stop_vm
exit "$rc"
