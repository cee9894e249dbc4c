# shellcheck shell=bash
# Shell helpers for the benches whose peer is a server started by the run script
# (bench/backends, bench/vtpm). Sourced, not run. A peer that cannot serve, or stops
# answering, must give a "cannot serve" column with its first error line, never a failed or
# endless bench; the drivers stop a silent peer themselves (bench/common/watchdog.h).

# error_line FILE...: the first line of the files, in order, that names an error (the words
# bench/common/outcome.cc looks for, any case), else the last non-empty line of the last
# file, else "(no output)".
error_line() {
  local f line=""
  for f in "$@"; do
    [ -r "$f" ] || continue
    line=$(grep -m1 -iE 'error|fatal|panic|failed|cannot|could not|unable|abort|killed|bad system call|segmentation fault' "$f" || true)
    [ -z "$line" ] || { printf '%s\n' "$line"; return 0; }
  done
  for f in "$@"; do
    [ -r "$f" ] && line=$(grep -v '^[[:space:]]*$' "$f" | tail -n1 || true)
  done
  printf '%s\n' "${line:-(no output)}"
}

# stop_pid SECONDS PID [SIGNAL]: sends SIGNAL (default TERM) to PID, waits up to SECONDS for
# it to end, then SIGKILLs it; reaps it. Never waits for ever on a peer that ignores TERM.
stop_pid() {
  local secs=$1 pid=$2 sig=${3:-TERM} i
  [ -n "$pid" ] || return 0
  [ "$sig" = none ] || kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null
}

# peer_rounds ROUNDS DRIVER OURS THEIRS: ROUNDS rounds of `run_one NAME ROUND` (the script's),
# OURS first in odd rounds, THEIRS first in even ones, skipping a peer once cannot[NAME] (the
# script's "cannot serve" map) is set; after each run prints that reason, or the last line of
# $results (the script's) without its "DRIVER: " prefix.
peer_rounds() {
  local rounds=$1 driver=$2 round name order
  for round in $(seq 1 "$rounds"); do
    if (( round % 2 )); then order=("$3" "$4"); else order=("$4" "$3"); fi
    for name in "${order[@]}"; do
      [ -z "${cannot[$name]:-}" ] || continue
      run_one "$name" "$round"
      if [ -n "${cannot[$name]:-}" ]; then
        echo "  round $round: $name: ${cannot[$name]}"
      else
        # shellcheck disable=SC2154  # results: the sourcing script's
        echo "  round $round: $(tail -1 "$results" | sed "s/^$driver: //")"
      fi
    done
  done
}

# peer_verdict OURS THEIRS: prints each peer's "cannot serve" line under the table; fails when
# OURS could not serve.
peer_verdict() {
  local name
  for name in "$@"; do
    [ -z "${cannot[$name]:-}" ] || echo "$name: ${cannot[$name]}"
  done
  [ -z "${cannot[$1]:-}" ]
}
