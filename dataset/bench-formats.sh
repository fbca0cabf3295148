#!/usr/bin/env bash
# Benchmark load's formats side by side in one run, each beside its reference:
# gzip and zstd LIBSVM against the plain file (MB/s of uncompressed content), and
# Parquet against the same rows as CSV (MB/s of the CSV's size, so rows per second
# compare), on one core and on all cores (go test -cpu 1,N). Each figure is the
# median of COUNT rounds (default 5), each round running every benchmark once
# (3 iterations), so that a machine busy with other work slows reference and
# subject alike; a ratio is the median of the rounds' ratios (each round's
# figure over its reference's in the same round). Beside MB/s, "MB/CPU-s" is
# the same work per second of the process's CPU time: on one core the figure
# MB/s would be on an idle machine, and steady when other processes take
# turns on the cores (on all cores it counts work, not parallelism: read MB/s
# there).
#
#   dataset/bench-formats.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cores=$(nproc)
count=${COUNT:-5}
out=$(mktemp)
bin=$(mktemp)
trap 'rm -f "$out" "$bin"' EXIT
(cd "$root" && go test -c -o "$bin" ./dataset/)
for round in $(seq "$count"); do
	(cd "$root/dataset" && "$bin" -test.run '^$' -test.bench 'CompressedLIBSVM|ParquetVsCSV' -test.benchtime 3x -test.cpu "1,$cores") >>"$out"
done
echo "$(grep '^cpu:' "$out" | head -1); $cores cores; median of $count rounds (ratios: of the rounds' ratios)"
awk -v cores="$cores" '
/^Benchmark/ {
	name = $1; procs = 1
	if (match(name, /-[0-9]+$/)) { procs = substr(name, RSTART + 1); name = substr(name, 1, RSTART - 1) }
	sub(/^Benchmark/, "", name)
	c = 0
	for (i = 1; i <= NF; i++) { if ($(i+1) == "MB/s") v = $i; if ($(i+1) == "cpuMB/s") c = $i }
	key = name SUBSEP procs
	n[key]++; vals[key, n[key]] = v; cvals[key, n[key]] = c
	if (!(name in seen)) { seen[name] = 1; order[++names] = name }
}
function median(key, cpu,   m, i, j, t, a) {
	m = n[key]
	for (i = 1; i <= m; i++) a[i] = cpu ? cvals[key, i] : vals[key, i]
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
# rmedian is the median over rounds of the ratio of a figure to its
# reference in the same round: a round measures both within a minute, so
# that a load that comes and goes on a shared machine moves both.
function rmedian(key, rk, cpu,   m, i, j, t, a, x, y) {
	m = 0
	for (i = 1; i <= n[key] && i <= n[rk]; i++) {
		x = cpu ? cvals[key, i] : vals[key, i]; y = cpu ? cvals[rk, i] : vals[rk, i]
		if (y > 0) a[++m] = x / y
	}
	if (m == 0) return 0
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
function ref(name) {
	if (name ~ /^CompressedLIBSVM\//) return "CompressedLIBSVM/files=" cores "/plain"
	if (name ~ /^ParquetVsCSV\//) return "ParquetVsCSV/csv"
	return ""
}
END {
	printf "%-34s %6s %10s %10s %7s %10s %10s %7s\n", "benchmark", "cores", "MB/s", "ref MB/s", "ratio", "MB/CPU-s", "ref", "ratio"
	for (k = 1; k <= names; k++) {
		name = order[k]
		for (p = 1; p <= cores; p += (cores > 1 ? cores - 1 : 1)) {
			key = name SUBSEP p
			if (!(key in n)) continue
			r = ref(name); rk = r SUBSEP p
			mv = median(key, 0); rv = (rk in n) ? median(rk, 0) : 0
			mc = median(key, 1); rc = (rk in n) ? median(rk, 1) : 0
			printf "%-34s %6d %10.1f %10.1f %6.2fx %10.1f %10.1f %6.2fx\n", name, p, mv, rv, (rk in n) ? rmedian(key, rk, 0) : 0, mc, rc, (rk in n) ? rmedian(key, rk, 1) : 0
		}
	}
}' "$out"
