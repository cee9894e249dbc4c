#!/bin/sh
# Boots the test guest under QEMU TCG (q35) with a CRB TPM backed by swtpm, the reference
# implementation for our vTPM + CRB front end, and passes iff the guest reports PASS, its
# tpm check passed, and PCR 16 holds the value this script computes on its own.
#   run_qemu_tpm.sh QEMU KERNEL [SWTPM]    (SWTPM: swtpm, or our build/bin/vmm-vtpm)
# Exits 77 (ctest SKIP_RETURN_CODE) when swtpm is not installed.
#
# swtpm needs no --flags: QEMU sends CMD_INIT on the control channel at machine reset, which
# re-initialises the TPM (a startup-clear flag would be undone), and SeaBIOS, which QEMU
# runs before the PVH entry, sends TPM2_Startup(SU_CLEAR) and measures into PCRs 0-7.
# tpm_startup=guest only matters with a firmware built without TPM support: the guest then
# gets TPM_RC_INITIALIZE and sends TPM2_Startup itself ("startup by guest" in its line).
set -u
qemu=$1
kernel=$2
swtpm=${3:-swtpm}

if ! command -v "$swtpm" >/dev/null 2>&1; then
	echo "SKIP: swtpm not installed ('$swtpm' not found); install swtpm to run this test"
	exit 77
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/testguest-tpm.XXXXXX") || exit 1
swtpm_pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$swtpm_pid" ] && kill -0 "$swtpm_pid" 2>/dev/null; then
		kill "$swtpm_pid" 2>/dev/null
		wait "$swtpm_pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

case "$swtpm" in
*vmm-vtpm)
	# Our vTPM process, standalone, as QEMU's -tpmdev emulator back-end: it confines itself
	# before it reads a byte and ends on QEMU's CMD_SHUTDOWN.
	"$swtpm" --ctrl "unix:$dir/ctrl" >"$dir/swtpm.log" 2>&1 &
	;;
*)
	# --terminate: swtpm exits when QEMU closes the control channel (also if QEMU dies).
	"$swtpm" socket --tpm2 --tpmstate "dir=$dir" --ctrl "type=unixio,path=$dir/ctrl" --terminate \
		--log "file=$dir/swtpm.log" &
	;;
esac
swtpm_pid=$!
i=0
while [ ! -S "$dir/ctrl" ]; do
	if ! kill -0 "$swtpm_pid" 2>/dev/null || [ $i -ge 100 ]; then
		echo "FAIL: swtpm did not create its control socket"
		cat "$dir/swtpm.log" 2>/dev/null
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done

to=
if command -v timeout >/dev/null 2>&1; then
	to="timeout 240"
fi
$to "$qemu" -accel tcg -cpu max -m 256 -display none -monitor none -serial stdio -no-reboot \
	-M q35 -smp 2 \
	-chardev "socket,id=chrtpm,path=$dir/ctrl" -tpmdev emulator,id=tpm0,chardev=chrtpm \
	-device tpm-crb,tpmdev=tpm0 \
	-kernel "$kernel" -append "expect_cpus=2 expect_tpm=crb tpm_startup=guest" \
	</dev/null >"$dir/out" 2>&1
rc=$?
cat "$dir/out"

fail() {
	echo "FAIL: $*"
	echo "--- swtpm log (tail) ---"
	tail -n 20 "$dir/swtpm.log" 2>/dev/null
	exit 1
}
[ $rc -eq 0 ] || fail "qemu exited with $rc (timeout or crash: the guest did not power off)"
grep -q '^testguest: result PASS ([0-9]* checks)$' "$dir/out" || fail "guest did not report PASS"
grep -q '^check tpm: ok crb buf ' "$dir/out" || fail "no 'check tpm: ok crb buf' line"

# PCR 16 starts at zero after TPM2_Startup(SU_CLEAR) (SeaBIOS does not touch it); the guest
# extends it once with SHA-256 of this string (checks/tpm.c), so it must now hold
# SHA-256(0^32 || SHA-256(string)). Computed here, independently of the guest's SHA-256.
if command -v sha256sum >/dev/null 2>&1; then
	ext=$(printf '%s' 'testguest tpm check: PCR 16 extend' | sha256sum | cut -c1-64)
	want=$({
		head -c 32 /dev/zero
		h=$ext
		while [ -n "$h" ]; do
			rest=${h#??}
			# shellcheck disable=SC2059 # the octal escape is the point
			printf "\\$(printf '%03o' "0x${h%"$rest"}")"
			h=$rest
		done
	} | sha256sum | cut -c1-64)
	grep -q "^tpm: pcr16 sha256 $want\$" "$dir/out" || fail "PCR 16 is not $want (SHA-256(0^32 || SHA-256(string)))"
	echo "host: PCR 16 matches the expected $want"
else
	echo "host: sha256sum not installed, PCR 16 value not compared"
fi
exit 0
