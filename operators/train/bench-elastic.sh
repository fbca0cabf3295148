#!/usr/bin/env bash
# Elastic training against fixed worker counts, all measured in this run, on
# a9a (testdata/a9a, a9a.t): the same train stage (SGD, adagrad, learning rate
# 0.005, minibatch 10, 40 epochs, evaluations every 50 ms) applied with
# workers = "auto" (elastic: the coordinator scales by loss improvement per
# dollar, operators/train/scale.go) and with workers = 1, 2 and 4 fixed.
#
# For each: the train stage's wall time and GB-seconds (from its record), its
# estimated Lambda cost, the test log loss, the worker changes of the elastic
# run, and the ratios of time, GB-seconds and log loss to the fixed run with
# the most workers the elastic one reached. RUNS applies each (default 3,
# the median shown).
#
# ROWS=N trains generated Criteo-like LIBSVM instead (stratus gen criteo: N
# training rows, N/10 test rows), load → normalize → train with the defaults
# but the workers line, as make bench-estimate's generated cases.
# Environment: RUNS, ROWS, STRATUS (default bin/stratus).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
runs=${RUNS:-3}
rows=${ROWS:-}
stratus=$(realpath "${STRATUS:-bin/stratus}")
[ -x "$stratus" ] || go build -o "$stratus" ./cmd/stratus
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ -n "$rows" ]; then
  "$stratus" gen criteo --rows "$rows" --seed 1 --format libsvm -o "$dir/train.svm" > /dev/null
  "$stratus" gen criteo --rows $((rows / 10 > 1000 ? rows / 10 : 1000)) --seed 1001 --format libsvm -o "$dir/test.svm" > /dev/null
fi

pipeline() { # $1: the workers line
  if [ -n "$rows" ]; then
    cat <<HCL
load "d" {
  source      = "$dir/train.svm"
  test_source = "$dir/test.svm"
  format      = "libsvm"
}
normalize "d" {
  input  = load.d
  method = "min_max"
}
train "lr" {
  input = normalize.d
  $1
}
output "test_logloss" {
  value = train.lr.metrics.test_logloss
}
HCL
    return
  fi
  cat <<HCL
load "adult" {
  source      = "$repo/testdata/a9a"
  test_source = "$repo/testdata/a9a.t"
  format      = "libsvm"
}
train "lr" {
  input         = load.adult
  solver        = "sgd"
  $1
  minibatch     = 10
  optimizer     = "adagrad"
  learning_rate = 0.005
  l2            = 0.0001
  epochs        = 40
  eval_interval = "50ms"
}
output "test_logloss" {
  value = train.lr.metrics.test_logloss
}
HCL
}

# measure NAME WORKERS-LINE: RUNS applies; prints "name wall gbs cost logloss changes" (medians).
measure() {
  local name=$1 line=$2 d="$dir/$1"
  mkdir -p "$d"
  pipeline "$line" > "$d/main.hcl"
  for i in $(seq "$runs"); do
    (cd "$d" && "$stratus" apply -auto-approve -replace=train.lr > "apply-$i.log" 2>&1) || { cat "$d/apply-$i.log" >&2; exit 1; }
    local rec; rec=$(cd "$d" && "$stratus" state show train.lr)
    local wall gbs cost
    read -r wall gbs cost < <(echo "$rec" | sed -n 's/^finished  = .*(\([0-9.]*\)\(m\?s\) wall, [0-9]* tasks, [0-9]* retries, \([0-9.]*\) GB-s, \$\([0-9.]*\)).*/\1 \2 \3 \4/p' |
      awk '{w=$1; if ($2=="ms") w/=1000; print w, $3, $4}')
    local loss; loss=$(cd "$d" && "$stratus" output test_logloss)
    local changes; changes=$(grep -c 'train\.lr: workers [0-9]* → ' "$d/apply-$i.log" || true)
    local most; most=$(grep -o 'workers [0-9]* → [0-9]*' "$d/apply-$i.log" | awk '{print $4}' | sort -n | tail -1 || true)
    echo "$wall $gbs $cost $loss $changes ${most:-0}"
  done | sort -n | awk -v n="$name" -v r="$runs" 'NR==int((r+1)/2) {print n, $0}'
}

if [ -n "$rows" ]; then
  echo "generated Criteo-like $rows rows, train.lr with defaults, median of $runs applies each ($(nproc) cores, GOMAXPROCS ${GOMAXPROCS:-default})"
else
  echo "a9a train.lr, median of $runs applies each (SGD adagrad, minibatch 10, 40 epochs; $(nproc) cores, GOMAXPROCS ${GOMAXPROCS:-default})"
fi
{
  measure auto ""
  measure fixed-1 "workers = 1"
  measure fixed-2 "workers = 2"
  measure fixed-4 "workers = 4"
} > "$dir/results"
awk '
  { name[NR]=$1; wall[$1]=$2; gbs[$1]=$3; cost[$1]=$4; loss[$1]=$5; ch[$1]=$6; most[$1]=$7 }
  END {
    printf "%-8s %8s %8s %10s %9s %s\n", "run", "wall s", "GB-s", "cost $", "logloss", "changes"
    for (i = 1; i <= NR; i++) { n = name[i]
      printf "%-8s %8.2f %8.2f %10.6f %9.5f %s\n", n, wall[n], gbs[n], cost[n], loss[n], (n == "auto" ? ch[n] " (up to " most[n] ")" : "-") }
    ref = "fixed-" (most["auto"] > 0 ? (most["auto"] >= 4 ? 4 : most["auto"]) : 1)
    printf "auto vs %s: wall %.2fx, GB-s %.2fx, logloss %.4fx\n", ref, wall["auto"]/wall[ref], gbs["auto"]/gbs[ref], loss["auto"]/loss[ref]
    printf "auto vs fixed-1: wall %.2fx, GB-s %.2fx, logloss %.4fx\n", wall["auto"]/wall["fixed-1"], gbs["auto"]/gbs["fixed-1"], loss["auto"]/loss["fixed-1"]
  }' "$dir/results"
