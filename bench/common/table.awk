# Helpers for the awk programs that turn a bench's result lines into its table (bench_awk in
# bench/common/bench.sh puts them before the program).

# median(VALS, KEY, M): the median of the numbers VALS[KEY, 1..M] (the mean of the two middle
# ones when M is even); 0 when M is 0.
function median(vals, key, m,   i, j, a, t) {
  if (m == 0) return 0
  for (i = 1; i <= m; i++) a[i] = vals[key, i] + 0
  for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}

# For a driver's line "DRIVER: name=NAME KEY=VALUE ...": counts one more run of NAME in
# runs[NAME] and keeps each VALUE whose KEY matches the regular expression `keys` in
# run_vals[NAME, KEY, runs[NAME]].
function collect_run(keys,   i, kv, v, name, k) {
  for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  name = v["name"]; runs[name]++
  for (k in v) if (k ~ keys) run_vals[name, k, runs[name]] = v[k]
}
# run_median(NAME, KEY): the median over NAME's runs of KEY.
function run_median(name, key) { return median(run_vals, name SUBSEP key, runs[name]) }

# served_cell(NAME, TEXT): TEXT when NAME has runs, else "cannot serve" (no round answered).
function served_cell(name, text) { return runs[name] ? text : "cannot serve" }

# ratio_cell(RAN, OURS, PEER): the ratio column, OURS / PEER with two decimals; "-" unless both
# sides ran (RAN true) and PEER is positive.
function ratio_cell(ran, ours, peer) { return (ran && peer > 0) ? sprintf("%.2f", ours / peer) : "-" }

# table_header(A, B, C, D): a blank line, then the head of a four-column Markdown table.
function table_header(a, b, c, d) {
  print ""
  print "| " a " | " b " | " c " | " d " |"
  print "|---|---|---|---|"
}
