# bench/linux-boot's table, from its log: "RUN vmm" or "RUN qemu" before each run, then that
# run's milestones(1) lines. A run counts when it exited 0 without a --fail-on line; the
# table gives, per runner, the median over its runs that counted of the ms from process
# start to each milestone. A runner none of whose runs counted reads "cannot boot" in every
# row, and the line under the table gives its first error line: the --fail-on line
# (milestone error), else its last output line (milestone last-line). Exits 1 when no run of
# ours (vmm) counted.
#   awk -f bench/linux-boot/table.awk build/bench-linux-boot.log
function finish(   k, n, r) {
  if (who == "") return
  statuses[who] = statuses[who] " " (st == "" ? "none" : st)
  if (st == "0" && err == "") {
    good[who]++
    for (k in cur) { n = ++cnt[who, k]; val[who, k, n] = cur[k] }
  } else if (!(who in why)) {
    why[who] = err != "" ? err : (last != "" ? last : "(no output)")
    how[who] = err != "" ? "stopped on this line" : (ended != "" ? ended : "exit status " (st == "" ? "unknown" : st))
    r = ""
    for (k = 1; k <= 4; k++) if (order[k] in cur) r = r " " order[k] " " cur[order[k]] " ms"
    reached[who] = r == "" ? " none" : r
  }
  who = ""
}
function median(w, name,   n, i, j, t, a) {
  n = cnt[w, name]; if (n == 0) return "-"
  for (i = 1; i <= n; i++) a[i] = val[w, name, i]
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
  return a[int((n + 1) / 2)]
}
function cell(w, name) { return (w in good) ? median(w, name) : "cannot boot" }
BEGIN { split("linux-version run-init done power-down exit", order, " "); who = "" }
/^RUN / {
  finish(); who = $2; runs[who]++
  split("", cur); err = ""; last = ""; st = ""; ended = ""
  next
}
/^milestone / && who != "" {
  name = $2
  if (name == "error") { if (err == "") { err = $0; sub(/^milestone error [0-9]+ /, "", err) } }
  else if (name == "last-line") { last = $0; sub(/^milestone last-line /, "", last) }
  else if (name == "timeout") ended = "no exit within the time limit, stopped after " $3 " ms"
  else if (name == "stall") ended = "no output for too long, stopped after " $3 " ms"
  else if (name == "exit") { st = $4; sub("status=", "", st); cur["exit"] = $3 }
  else if ($3 != "missing") cur[name] = $3
}
END {
  finish()
  printf "| milestone (ms from process start, median) | vmm | QEMU microvm + KVM | ratio |\n|---|---|---|---|\n"
  for (k = 1; k <= 5; k++) {
    m = order[k]; a = cell("vmm", m); b = cell("qemu", m)
    r = (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) ? sprintf("%.2f", a / b) : "-"
    printf "| %s | %s | %s | %s |\n", m, a, b, r
  }
  printf "\n"
  split("vmm qemu", whos, " ")
  for (k = 1; k <= 2; k++) {
    w = whos[k]
    if (!(w in runs)) { printf "%s: no runs\n", w; continue }
    if (!(w in good)) {
      printf "%s: cannot boot: %s (%s; %d of %d runs failed; exit statuses:%s; the first reached:%s)\n",
        w, why[w], how[w], runs[w], runs[w], statuses[w], reached[w]
    } else if (w in why) {
      printf "%s: %d of %d runs failed, left out of the medians; the first: %s (%s); exit statuses:%s\n",
        w, runs[w] - good[w], runs[w], why[w], how[w], statuses[w]
    } else {
      printf "%s: %d runs; exit statuses:%s\n", w, runs[w], statuses[w]
    }
  }
  exit (("vmm" in good) ? 0 : 1)
}
