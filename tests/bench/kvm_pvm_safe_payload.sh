#!/bin/sh
# Checks, by disassembly, that a payload meant to run on kvm_pvm hosts contains none of the
# instructions ARCHITECTURE.md §5 lists as beyond kvm_pvm's instruction emulator (QEMU with
# KVM stops at the first with "KVM internal error. Suberror: 1"): int3, cmpxchg16b, clac,
# stac, popcnt, fwait, the xsave/xrstor and fxsave/fxrstor family, ldmxcsr/stmxcsr and any
# SSE/AVX register use.
#   kvm_pvm_safe_payload.sh OBJDUMP ELF [SYMBOL...]
# int3 is allowed in runs of two or more (alignment fill between code, never executed).
# Inside each SYMBOL anything is allowed: code the payload runs only on request (the test
# guest's probe_int3, which exceptions=no-int3 skips; check_compat, which does nothing
# without compat=exercise). Memory fences are not on that list; they are counted on a NOTE
# line, for the reader.
set -eu
objdump=$1 elf=$2
shift 2
exempt=" $* "
"$objdump" -d --no-show-raw-insn "$elf" | awk -F'\t' -v exempt="$exempt" -v elf="$elf" '
  function exempted(s,   name) {
    name = s; sub(/^[0-9a-f]+ </, "", name); sub(/>:.*/, "", name)
    return index(exempt, " " name " ") > 0
  }
  function flush() {
    if (run == 1 && !exempted(run_sym)) {
      printf "%s: int3 at %s in %s\n", elf, run_at, run_sym; bad++
    }
    run = 0
  }
  /^[0-9a-f]+ </ { flush(); sym = $0; next }
  NF >= 2 {
    m = $2; sub(/ .*/, "", m)
    if (m == "int3") { if (run++ == 0) { run_at = $1; run_sym = sym }; next }
    flush()
    if (exempted(sym)) next
    if (m ~ /^(cmpxchg16b|clac|stac|popcnt|fwait|wait|xsave|xsaveopt|xsavec|xsaves|xrstor|xrstors|fxsave|fxrstor|fxsave64|fxrstor64|xsave64|xrstor64|ldmxcsr|stmxcsr|vldmxcsr|vstmxcsr)$/ || $2 ~ /%[xyz]mm[0-9]/) {
      printf "%s: %s at %s in %s\n", elf, $2, $1, sym; bad++
    }
    if (m ~ /^[lms]fence$/) fences[m]++
  }
  END {
    flush()
    note = ""
    for (f in fences) note = note " " f " x" fences[f]
    if (note != "") printf "NOTE: %s has%s (not on the ARCHITECTURE.md §5 list; not verified on kvm_pvm)\n", elf, note
    if (bad) { printf "FAIL: %d instruction(s) that kvm_pvm cannot emulate in %s\n", bad, elf; exit 1 }
    printf "PASS: %s: none of the ARCHITECTURE.md §5 instructions%s\n", elf, exempt != "  " ? " (outside" exempt ")" : ""
  }'
