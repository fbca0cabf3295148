#!/usr/bin/env bash
# Two teammates on one shared stage cache (a MinIO bucket on loopback), as issue
# #14 measures it: Alice's first apply of load → normalize → train on generated
# rows runs every stage and publishes it; Bob, in his own directory with the same
# pipeline and data, applies and adopts every stage. The script checks that Bob
# ran nothing and that his outputs and predictions are Alice's, and prints both
# apply times and their ratio (the target is under 10%), at each size in SIZES.
#
#   cmd/stratus/sharedcache-bench.sh [DIR]
#
# DIR keeps the generated data between runs (default: a new temporary
# directory). Environment: STRATUS=path of a stratus binary (default: build
# one), MINIO=path of minio (default: minio on PATH, else .tools/bin/minio),
# SIZES (default "300000 1000000"), RUNS (pairs of applies per size, default 1),
# PORT (default 19556).
#
# Besides the applies it prints each teammate's first `stratus predict` of the
# test set: Bob's reads the model's weights and the normalization from the cache
# (adoption by reference), Alice's from her own store.
#
# Both applies start from a fresh pipeline directory with a cold digest cache,
# so both hash their sources; the page cache is warmed with the data first so
# that neither pays for the disk.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$(mktemp -d)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sizes=${SIZES:-300000 1000000}
runs=${RUNS:-1}
port=${PORT:-19556}
bin=${STRATUS:-}
if [ -z "$bin" ]; then
	bin=$dir/stratus
	(cd "$root" && go build -o "$bin" ./cmd/stratus)
fi
minio=${MINIO:-$(command -v minio || echo "$root/.tools/bin/minio")}
if [ ! -x "$minio" ]; then
	echo "sharedcache-bench: no minio binary (set MINIO, or run make tools)" >&2
	exit 1
fi

rm -rf "$dir/minio"
mkdir -p "$dir/minio/team"
export MINIO_ROOT_USER=team MINIO_ROOT_PASSWORD=teamsecret123 MINIO_BROWSER=off
"$minio" server --quiet --address "127.0.0.1:$port" "$dir/minio" >"$dir/minio.log" 2>&1 &
mp=$!
trap 'kill $mp 2>/dev/null; wait $mp 2>/dev/null || true' EXIT
export AWS_ACCESS_KEY_ID=team AWS_SECRET_ACCESS_KEY=teamsecret123 AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$port AWS_EC2_METADATA_DISABLED=true
for _ in $(seq 100); do
	curl -fs -o /dev/null "http://127.0.0.1:$port/minio/health/ready" && break
	sleep 0.1
done
curl -fs -o /dev/null "http://127.0.0.1:$port/minio/health/ready"

now() { date +%s.%N; }

echo "$("$bin" version 2>/dev/null | head -1 || true); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %11s %9s %7s %9s %13s %12s\n' rows "alice (s)" "bob (s)" ratio "cache MB" "predict alice" "predict bob"
for rows in $sizes; do
rm -f "$dir/ratios-$rows"
for run in $(seq "$runs"); do
	data=$dir/data-$rows
	mkdir -p "$data"
	[ -s "$data/train.svm" ] || "$bin" gen criteo --rows "$rows" --seed 1 --format libsvm -o "$data/train.svm" 2>/dev/null
	[ -s "$data/test.svm" ] || "$bin" gen criteo --rows 30000 --seed 2 --format libsvm -o "$data/test.svm" 2>/dev/null
	cat "$data/train.svm" "$data/test.svm" >/dev/null
	for who in alice bob; do
		rm -rf "$dir/$who"
		mkdir -p "$dir/$who"
		cp "$data/train.svm" "$data/test.svm" "$dir/$who/"
		cat >"$dir/$who/main.hcl" <<EOF
stratus {
  cache = "s3://team/cache-$rows-$run"
}
load "d" {
  source      = "train.svm"
  test_source = "test.svm"
  format      = "libsvm"
}
normalize "d" {
  input  = load.d
  method = "min_max"
}
train "lr" {
  input = normalize.d
}
output "metrics" { value = train.lr.metrics }
output "model" { value = train.lr.model }
output "normalized" { value = normalize.d }
EOF
	done
	(cd "$dir/alice" && s=$(now) && "$bin" apply -auto-approve -no-color >apply.log 2>&1 && e=$(now) && echo "$s $e" >time)
	(cd "$dir/bob" && s=$(now) && "$bin" apply -auto-approve -no-color >apply.log 2>&1 && e=$(now) && echo "$s $e" >time)
	grep -q '^Apply complete! 3 ran, 0 cached' "$dir/alice/apply.log" || { cat "$dir/alice/apply.log"; echo "alice did not run 3 stages" >&2; exit 1; }
	grep -q '^Apply complete! 0 ran, 3 cached (3 from the shared cache)' "$dir/bob/apply.log" || { cat "$dir/bob/apply.log"; echo "bob did not adopt all 3 stages" >&2; exit 1; }
	if grep -q 'started' "$dir/bob/apply.log"; then
		cat "$dir/bob/apply.log"
		echo "bob's apply started a stage" >&2
		exit 1
	fi
	for who in alice bob; do
		(cd "$dir/$who" && "$bin" output -json | sed "s#$dir/$who#<dir>#g" >outputs.json &&
			s=$(now) && "$bin" predict -model train.lr -input test.svm -o predictions.txt 2>/dev/null &&
			e=$(now) && echo "$s $e" >predict-time)
	done
	cmp "$dir/alice/outputs.json" "$dir/bob/outputs.json" || { echo "outputs differ" >&2; exit 1; }
	cmp "$dir/alice/predictions.txt" "$dir/bob/predictions.txt" || { echo "predictions differ" >&2; exit 1; }
	a=$(awk '{ print $2 - $1 }' "$dir/alice/time")
	b=$(awk '{ print $2 - $1 }' "$dir/bob/time")
	pa=$(awk '{ print $2 - $1 }' "$dir/alice/predict-time")
	pb=$(awk '{ print $2 - $1 }' "$dir/bob/predict-time")
	mb=$(du -sm "$dir/minio/team/cache-$rows-$run" | cut -f1)
	ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { print 100 * b / a }')
	echo "$ratio" >>"$dir/ratios-$rows"
	printf '%-9s %11.3f %9.3f %6.1f%% %9s %13.3f %12.3f\n' "$rows" "$a" "$b" "$ratio" "$mb" "$pa" "$pb"
done
if [ "$runs" -gt 1 ]; then
	printf '%-9s median ratio of %d runs: %.1f%%\n' "$rows" "$runs" "$(sort -g "$dir/ratios-$rows" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
fi
done
echo "outputs and predictions identical (alice vs bob) at every size; bob ran no stage"
