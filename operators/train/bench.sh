#!/usr/bin/env bash
# Time to accuracy on a Criteo-like file, Stratus against liblinear, in one run.
#
# Generates ROWS training rows (default 2,000,000: about 670 MB of LIBSVM) and a
# held-out file of ROWS/10 rows from the same ground truth, runs
#   liblinear-train -s 0 -c 0.1 (parse + train) and liblinear-predict -b 1,
# takes liblinear's test log loss, and runs `stratus apply` (load + train on the
# embedded default) until its test log loss is within 1% of liblinear's — once
# undisturbed and once with churn: functions killed at random and workers relaunched
# at a 3 s lifetime. Prints wall time, peak memory and test log loss of each, and the
# ratios to liblinear.
#
# Needs liblinear-tools (apt-get install liblinear-tools) and GNU time (/usr/bin/time).
# Environment: ROWS, BENCH_DIR (kept if set), STRATUS (default bin/stratus),
# WORKERS (default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."

rows=${ROWS:-2000000}
workers=${WORKERS:-3}
stratus=$(realpath "${STRATUS:-bin/stratus}")
for tool in liblinear-train liblinear-predict /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install liblinear-tools time)" >&2; exit 1; }
done
[ -x "$stratus" ] || go build -o "$stratus" ./cmd/stratus

dir=${BENCH_DIR:-}
if [ -z "$dir" ]; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
fi
mkdir -p "$dir"
cd "$dir"

if [ ! -s train.svm ] || [ "$(cat rows 2>/dev/null)" != "$rows" ]; then
  echo "generating $rows rows ..." >&2
  "$stratus" gen criteo --rows "$rows" --seed 1 --format libsvm -o train.svm 2>gen.log
  "$stratus" gen criteo --rows $((rows / 10)) --seed 2 --format libsvm -o test.svm 2>>gen.log
  echo "$rows" > rows
fi
bayes=$(grep -m1 'Bayes logloss' gen.log | awk '{print $3}')

# logloss PREDICTIONS TEST: liblinear-predict -b 1 output against the test labels.
logloss() {
  awk 'NR == FNR { if (FNR > 1) { split($0, f, " "); p[FNR - 1] = (pos == 2 ? f[2] : f[3]) } else { pos = ($2 == "1") ? 2 : 3 }; next }
       { y = $1; q = p[FNR]; if (q < 1e-15) q = 1e-15; if (q > 1 - 1e-15) q = 1 - 1e-15
         s += (y == 1) ? -log(q) : -log(1 - q); n++ }
       END { printf "%.5f", s / n }' "$1" "$2"
}

echo "liblinear-train -s 0 -c 0.1 ..." >&2
/usr/bin/time -f "%e %M" -o ll.time liblinear-train -q -s 0 -c 0.1 train.svm model.ll
liblinear-predict -b 1 test.svm model.ll pred.ll >/dev/null
ll_loss=$(logloss pred.ll test.svm)
read -r ll_wall ll_kb < ll.time
target=$(awk -v l="$ll_loss" 'BEGIN { printf "%.5f", l * 1.01 }')

# run_stratus NAME BACKEND TRAIN_EXTRA: apply load + train in DIR/NAME; sets
# st_wall, st_kb, st_loss, st_log.
run_stratus() {
  local name=$1 backend=$2 extra=$3
  mkdir -p "$name"
  cat > "$name/main.hcl" <<HCL
$backend

load "clicks" {
  source      = "../train.svm"
  test_source = "../test.svm"
  format      = "libsvm"
}

train "ctr" {
  input          = load.clicks
  workers        = $workers
  minibatch      = 100
  optimizer      = "adagrad"
  learning_rate  = 0.05
  epochs         = 5
  target_logloss = $target
  eval_interval  = "1s"
$extra
}

output "test_logloss" { value = train.ctr.metrics.test_logloss }
HCL
  rm -rf "$name/.stratus"
  echo "stratus apply $name (load + train to test logloss $target) ..." >&2
  /usr/bin/time -f "%e %M" -o "$name.time" "$stratus" apply -auto-approve -no-color "$name" > "$name.log" 2>&1 || { cat "$name.log" >&2; exit 1; }
  st_loss=$("$stratus" output -json "$name" test_logloss)
  read -r st_wall st_kb < "$name.time"
  st_log="$name.log"
}

run_stratus plain "" ""
p_wall=$st_wall p_kb=$st_kb p_loss=$st_loss
breakdown=$(grep -o 'per iteration p50 .*' "$st_log" | head -1)

# The same with churn: every function killed at random (on average after 10 s) and
# workers handing over to a new generation every 3 s.
run_stratus churn 'backend "local" {
  kill_every = "10s"
}' '  lifetime       = "3s"
  retries        = 20'
c_wall=$st_wall c_kb=$st_kb c_loss=$st_loss
killed=$(grep -c 'function killed' churn.log || true)
relaunched=$(grep -c 'reached its lifetime' churn.log || true)

printf '\n%d training rows (%s MB), %d test rows; Bayes logloss %s\n\n' "$rows" "$(du -m train.svm | cut -f1)" $((rows / 10)) "$bayes"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '%-40s %10s %12s %14s %18s\n' "" "wall (s)" "peak (MB)" "test logloss" "vs liblinear"
printf '%-40s %10.2f %12d %14.5f\n' "liblinear -s 0 -c 0.1 (parse+train)" "$ll_wall" $((ll_kb / 1024)) "$ll_loss"
printf '%-40s %10.2f %12d %14.5f %8s× %5s× mem\n' "stratus apply (load+train)" "$p_wall" $((p_kb / 1024)) "$p_loss" "$(ratio "$p_wall" "$ll_wall")" "$(ratio "$p_kb" "$ll_kb")"
printf '%-40s %10.2f %12d %14.5f %8s× %5s× mem\n' "stratus apply with churn" "$c_wall" $((c_kb / 1024)) "$c_loss" "$(ratio "$c_wall" "$ll_wall")" "$(ratio "$c_kb" "$ll_kb")"
printf '\ntarget: test logloss within 1%% of liblinear (%s)\n' "$target"
printf 'churn: %s functions killed and retried, %s workers relaunched at their 3 s lifetime\n' "$killed" "$relaunched"
printf 'stratus workers: %s\n' "$breakdown"
