#!/usr/bin/env bash
# Benchmark `stratus apply` of one load stage over generated hashed LIBSVM
# (`stratus gen criteo --rows 2000000 --format libsvm`, about 670 MB) on the
# embedded default backend, side by side with `wc -l` on the same file (the
# read floor), and print both times, their ratio, and MB/s per core.
#
#   operators/load/bench.sh [DIR]
#
# DIR keeps the binary, the data and the pipeline between runs (default: a
# new temporary directory). Environment: STRATUS=path of a stratus binary
# (default: build one), ROWS (default 2000000), RUNS (default 3),
# MAX_CONCURRENCY (the local backend's slots; default: its own, 4 per core).
#
# Each timed apply starts from a stage that is not cached and an empty blob
# store; a warm-up apply first fills the page cache with the input and the
# planner's digest cache, so that both tools read the input from memory and
# the apply time is the load stage's (plan + parse wave + merge), not the
# source's SHA-256. "per core" divides by the machine's cores (nproc); "per
# CPU-second" divides by the user+system CPU time the apply used, which is
# what a core does when it is busy, whatever else shares the machine.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$(mktemp -d)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rows=${ROWS:-2000000}
runs=${RUNS:-3}
bin=${STRATUS:-}
if [ -z "$bin" ]; then
	bin=$dir/stratus
	(cd "$root" && go build -o "$bin" ./cmd/stratus)
fi

data=$dir/criteo-$rows.svm
if [ ! -s "$data" ]; then
	"$bin" gen criteo --rows "$rows" --seed 1 --format libsvm -o "$data"
fi
pipe=$dir/pipeline
mkdir -p "$pipe"
backend=""
if [ -n "${MAX_CONCURRENCY:-}" ]; then
	backend=$(printf 'backend "local" {\n  max_concurrency = %d\n}\n' "$MAX_CONCURRENCY")
fi
cat >"$pipe/main.hcl" <<EOF
$backend
load "bench" {
  source = "$data"
}
EOF

bytes=$(stat -c %s "$data")
cores=$(nproc)
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
echo "input: $data, $mb MB, $rows rows; $cores cores; max_concurrency ${MAX_CONCURRENCY:-default}; $("$bin" version 2>/dev/null || echo stratus)"

cat "$data" >/dev/null
rm -rf "$pipe/.stratus"
"$bin" apply -auto-approve "$pipe" >/dev/null

TIMEFORMAT='%R %U %S'
printf '%-4s %9s %9s %8s %9s %14s %12s %9s\n' run "wc -l s" "apply s" ratio "MB/s" "MB/s per core" "MB/cpu-s" "stage s"
for i in $(seq "$runs"); do
	{ time wc -l <"$data" >/dev/null; } 2>"$dir/wc.time"
	read -r wc_wall _ _ <"$dir/wc.time"

	rm -rf "$pipe/.stratus/blobs"
	(cd "$pipe" && "$bin" state rm load.bench >/dev/null)
	{ time "$bin" apply -auto-approve "$pipe" >"$dir/apply.log" 2>&1; } 2>"$dir/apply.time"
	read -r wall user sys <"$dir/apply.time"
	stage=$(sed -n 's/.*load\.bench: done in \([0-9.]*\)\(m\?s\).*/\1 \2/p' "$dir/apply.log" | awk '{ print ($2 == "ms") ? $1 / 1000 : $1 }')

	awk -v i="$i" -v b="$bytes" -v c="$cores" -v wc="$wc_wall" -v w="$wall" -v u="$user" -v s="$sys" -v st="$stage" 'BEGIN {
		mbs = b / 1e6 / w
		printf "%-4d %9.3f %9.3f %7.1fx %9.1f %14.1f %12.1f %9s\n", i, wc, w, w / wc, mbs, mbs / c, b / 1e6 / (u + s), st
	}'
done
tail -n 8 "$dir/apply.log" | sed -n '/STAGE/,/total/p'
