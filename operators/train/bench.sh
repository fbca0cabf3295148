#!/usr/bin/env bash
# Time to accuracy, Stratus with its defaults against liblinear and scikit-learn,
# all measured in this run, on three data sets:
#
#   a9a          testdata/a9a → testdata/a9a.t
#   heart_scale  testdata/heart_scale, every fifth line held out as the test set
#   generated    ROWS Criteo-like rows (default 200,000) from `stratus gen criteo`,
#                and ROWS/10 test rows from the same ground truth
#
# For each: liblinear-train -s 0 -c C (parse + train; C = 1, liblinear's default,
# LIBLINEAR_C to change) and liblinear-predict -b 1 give the reference test log
# loss; the target is within 1% of it. Then
#   - stratus apply of load + train with no training arguments at all (defaults),
#   - scikit-learn LogisticRegression (C, otherwise its defaults: lbfgs, at most
#     100 iterations) and SGDClassifier(loss="log_loss") with its defaults (system
#     /usr/bin/python3),
# each with wall time (Stratus and liblinear: the whole process; scikit-learn: load
# + fit inside the process, without the interpreter's start and imports, which
# favours it), peak memory (/usr/bin/time -v, whole process), final test log loss,
# and the time to the target: the wall time when the final loss is within it, "-"
# when the tool stops short of it. Stratus also prints its train stage's own time,
# its solver and stopping reason. Every set ends with the ratios of Stratus's
# time to the faster of liblinear and SGDClassifier (below 1: Stratus is faster),
# for the whole apply and for the train stage alone, and of its peak memory to
# liblinear's. The tools run one after another, each alone.
#
# Then asynchronous SGD (solver = "sgd", 2 workers, 5 epochs) on a9a over both
# psstore transports in one run — loopback gRPC (STRATUS_PSSTORE_TRANSPORT=grpc,
# the path before the in-process transport) and the in-process default — with the
# per-iteration p50/p99 and mean pull the train stage reports, and their ratio.
#
# Last, on the generated set, asynchronous SGD (solver = "sgd", 3 workers) stopped
# at the target, once undisturbed and once with churn: functions killed at random
# and workers relaunched at a 3 s lifetime.
#
# Needs liblinear-tools, python3-sklearn and GNU time. Environment: ROWS,
# BENCH_DIR (kept if set), STRATUS (default bin/stratus), LIBLINEAR_C, WORKERS,
# SETS (default "a9a heart gen": the time-to-accuracy sets to run), SGD=0 to
# skip the asynchronous SGD runs after them, ROUNDS (default 1): with more,
# each tool runs that many times, one after another per round (the tools
# liblinear and Stratus run that many times each and the table shows the run
# of median wall time (its peak memory, its train stage); scikit-learn runs once.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

rows=${ROWS:-200000}
sets=${SETS:-a9a heart gen}
rounds=${ROUNDS:-1}
workers=${WORKERS:-3}
C=${LIBLINEAR_C:-1}
py=/usr/bin/python3
stratus=$(realpath "${STRATUS:-bin/stratus}")
for tool in liblinear-train liblinear-predict /usr/bin/time $py; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install liblinear-tools python3-sklearn time)" >&2; exit 1; }
done
$py -c 'import sklearn' 2>/dev/null || { echo "bench: scikit-learn is missing (apt-get install python3-sklearn)" >&2; exit 1; }
if [ ! -x "$stratus" ]; then
  [ -z "${STRATUS:-}" ] || { echo "bench: STRATUS=$STRATUS is not an executable" >&2; exit 1; }
  go build -o "$stratus" ./cmd/stratus
fi

dir=${BENCH_DIR:-}
if [ -z "$dir" ]; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
fi
mkdir -p "$dir"
cd "$dir"

# Data.
mkdir -p a9a heart gen
cp "$repo/testdata/a9a" a9a/train.svm
cp "$repo/testdata/a9a.t" a9a/test.svm
awk 'NR % 5 != 0' "$repo/testdata/heart_scale" > heart/train.svm
awk 'NR % 5 == 0' "$repo/testdata/heart_scale" > heart/test.svm
if [[ " $sets " == *" gen "* ]] && { [ ! -s gen/train.svm ] || [ "$(cat gen/rows 2>/dev/null)" != "$rows" ]; }; then
  echo "generating $rows rows ..." >&2
  "$stratus" gen criteo --rows "$rows" --seed 1 --format libsvm -o gen/train.svm 2>gen/gen.log
  "$stratus" gen criteo --rows $((rows / 10)) --seed 2 --format libsvm -o gen/test.svm 2>>gen/gen.log
  echo "$rows" > gen/rows
fi

# peak FILE: peak resident memory in MB from a /usr/bin/time -v report.
peak() { awk -F: '/Maximum resident set size/ { printf "%d", $2 / 1024 }' "$1"; }
# wall FILE: elapsed seconds from a /usr/bin/time -v report.
wall() { awk '/Elapsed \(wall clock\)/ { n = split($NF, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }' "$1"; }

# logloss PREDICTIONS TEST: liblinear-predict -b 1 output against the test labels.
logloss() {
  awk 'NR == FNR { if (FNR > 1) { split($0, f, " "); p[FNR - 1] = (pos == 2 ? f[2] : f[3]) } else { pos = ($2 == "1") ? 2 : 3 }; next }
       { y = $1; q = p[FNR]; if (q < 1e-15) q = 1e-15; if (q > 1 - 1e-15) q = 1 - 1e-15
         s += (y == 1) ? -log(q) : -log(1 - q); n++ }
       END { printf "%.5f", s / n }' "$1" "$2"
}

cat > sk.py <<'PY'
import sys, time, warnings
warnings.filterwarnings("ignore")  # convergence warnings: the loss printed says how far it got
from sklearn.datasets import load_svmlight_file
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import log_loss
kind, train, test, C = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
t = time.time()
Xtr, ytr = load_svmlight_file(train)
Xte, yte = load_svmlight_file(test, n_features=Xtr.shape[1])
if kind == "lr":
    m = LogisticRegression(C=C).fit(Xtr, ytr)
else:
    m = SGDClassifier(loss="log_loss", random_state=1).fit(Xtr, ytr)
dt = time.time() - t
print("%.3f %.5f" % (dt, log_loss(yte, m.predict_proba(Xte)[:, 1], labels=[-1, 1] if min(ytr) < 0 else [0, 1])))
PY

row() { printf '%-12s %-34s %9s %10s %13s %10s  %s\n' "$@"; }
row "data" "tool" "wall (s)" "peak (MB)" "test logloss" "to target" "notes"
# to_target LOSS TARGET WALL: the wall time if the loss reached the target, else "-".
to_target() { awk -v l="$1" -v t="$2" -v w="$3" 'BEGIN { print (l <= t) ? w : "-" }'; }
# ms_to_s "214ms" | "1.2s" | "1m3s": seconds.
ms_to_s() { awk -v d="$1" 'BEGIN { s = 0; if (d ~ /m[0-9]/) { split(d, p, "m"); s = p[1] * 60; d = p[2] } if (d ~ /ms$/) { sub(/ms$/, "", d); s += d / 1000 } else if (d ~ /µs$/) { sub(/µs$/, "", d); s += d / 1e6 } else { sub(/s$/, "", d); s += d } printf "%.3f", s }'; }
# ratio A B: A/B; a reference under GNU time's 0.01 s resolution gives a lower bound.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "n/a"; else if (b == 0) printf ">%.0fx", a / 0.01; else printf "%.2fx", a / b }'; }

# measure OUT PREP CMD...: runs CMD ROUNDS times under GNU time, evaluating PREP
# before each, and leaves in OUT the report of the run of median wall time and
# in OUT.log its output.
measure() {
  local out=$1 prep=$2 i best
  shift 2
  for i in $(seq "$rounds"); do
    eval "$prep"
    /usr/bin/time -v -o "$out.$i" "$@" > "$out.log.$i" 2>&1 || { cat "$out.log.$i" >&2; exit 1; }
  done
  best=$(for i in $(seq "$rounds"); do echo "$(wall "$out.$i") $i"; done | sort -n | awk -v n="$rounds" 'NR == int((n + 1) / 2) { print $2 }')
  cp "$out.$best" "$out"
  cp "$out.log.$best" "$out.log"
}

for set in $sets; do
  measure "$set/ll.time" "" liblinear-train -q -s 0 -c "$C" "$set/train.svm" "$set/model.ll"
  liblinear-predict -b 1 "$set/test.svm" "$set/model.ll" "$set/pred.ll" >/dev/null
  ll=$(logloss "$set/pred.ll" "$set/test.svm")
  target=$(awk -v l="$ll" 'BEGIN { printf "%.5f", l * 1.01 }')
  ll_wall=$(wall "$set/ll.time") ll_peak=$(peak "$set/ll.time")
  row "$set" "liblinear -s 0 -c $C" "$ll_wall" "$ll_peak" "$ll" "$ll_wall" "reference; target $target"

  mkdir -p "$set/stratus"
  cat > "$set/stratus/main.hcl" <<HCL
load "data" {
  source      = "../train.svm"
  test_source = "../test.svm"
}

train "lr" {
  input = load.data
}

output "test_logloss" { value = train.lr.metrics.test_logloss }
HCL
  measure "$set/st.time" 'rm -rf "$set/stratus/.stratus"' "$stratus" apply -auto-approve -no-color "$set/stratus"
  cp "$set/st.time.log" "$set/st.log"
  st=$(printf '%.5f' "$("$stratus" output -json "$set/stratus" test_logloss)")
  how=$(grep -o 'solver [a-z]* ([^)]*)' "$set/st.log" | head -1 | sed 's/ (.*//')
  why=$(grep -o 'stopped ([a-z_ ]*) after [^:]*: [^;]*' "$set/st.log" | head -1)
  st_wall=$(wall "$set/st.time") st_peak=$(peak "$set/st.time")
  st_train=$(ms_to_s "$(grep -o 'train.lr: done in [^ ]*' "$set/st.log" | head -1 | awk '{ print $NF }')")
  row "" "stratus apply (defaults)" "$st_wall" "$st_peak" "$st" "$(to_target "$st" "$target" "$st_wall")" "whole process; train stage $st_train s; $how; $why"

  for kind in lr sgd; do
    /usr/bin/time -v -o "$set/$kind.time" $py sk.py "$kind" "$set/train.svm" "$set/test.svm" "$C" > "$set/$kind.out"
    read -r t l < "$set/$kind.out"
    name="sklearn LogisticRegression C=$C"
    [ "$kind" = sgd ] && name='sklearn SGDClassifier(log_loss)'
    row "" "$name" "$t" "$(peak "$set/$kind.time")" "$l" "$(to_target "$l" "$target" "$t")" "load+fit in process; whole process $(wall "$set/$kind.time") s"
    [ "$kind" = sgd ] && sgd_t=$(to_target "$l" "$target" "$t")
  done
  # The faster reference to the target: liblinear (which defines it) or SGDClassifier if it got there sooner.
  best=$(awk -v a="$ll_wall" -v b="$sgd_t" 'BEGIN { print (b != "-" && b < a) ? b : a }')
  st_t=$(to_target "$st" "$target" "$st_wall")
  st_tr=$(to_target "$st" "$target" "$st_train")
  printf '%-12s ratios: stratus/faster-of(liblinear, SGDClassifier) to target: whole apply %s, train stage %s; peak memory stratus/liblinear %s\n' \
    "" "$(ratio "$st_t" "$best")" "$(ratio "$st_tr" "$best")" "$(ratio "$st_peak" "$ll_peak")"
  [ "$set" = gen ] && gen_target=$target && gen_ll=$ll
done

[ "${SGD:-1}" = 0 ] && exit 0
# Asynchronous SGD on a9a over both psstore transports.
printf '\n%-12s %-34s %9s %13s %s\n' "data" "stratus sgd, 2 workers, 5 epochs" "wall (s)" "test logloss" "train stage"
for tr in grpc auto; do
  mkdir -p "a9a/sgd-$tr"
  cat > "a9a/sgd-$tr/main.hcl" <<HCL
load "data" {
  source      = "../train.svm"
  test_source = "../test.svm"
}

train "lr" {
  input   = load.data
  solver  = "sgd"
  workers = 2
  epochs  = 5
}

output "test_logloss" { value = train.lr.metrics.test_logloss }
HCL
  rm -rf "a9a/sgd-$tr/.stratus"
  STRATUS_PSSTORE_TRANSPORT=$tr /usr/bin/time -v -o "a9a/sgd-$tr.time" "$stratus" apply -auto-approve -no-color "a9a/sgd-$tr" > "a9a/sgd-$tr.log" 2>&1 || { cat "a9a/sgd-$tr.log" >&2; exit 1; }
  l=$(printf '%.5f' "$("$stratus" output -json "a9a/sgd-$tr" test_logloss)")
  name="transport grpc (loopback)"
  [ "$tr" = auto ] && name="transport in-process (default)"
  printf '%-12s %-34s %9s %13s %s\n' "a9a" "$name" "$(wall "a9a/sgd-$tr.time")" "$l" "$(grep -o 'stopped ([a-z]*) after [^:]*: .*' "a9a/sgd-$tr.log" | head -1)"
done
p50() { grep -o 'iteration_p50_us [0-9.e+]*' "$1" | tail -1 | awk '{ print $2 }'; }
p99() { grep -o 'iteration_p99_us [0-9.e+]*' "$1" | tail -1 | awk '{ print $2 }'; }
pull() { grep -o 'pull_us [0-9.e+]*' "$1" | tail -1 | awk '{ print $2 }'; }
printf '%-12s iteration p50 grpc/in-process %s, p99 %s, mean pull %s\n' "" \
  "$(ratio "$(p50 a9a/sgd-grpc.log)" "$(p50 a9a/sgd-auto.log)")" "$(ratio "$(p99 a9a/sgd-grpc.log)" "$(p99 a9a/sgd-auto.log)")" "$(ratio "$(pull a9a/sgd-grpc.log)" "$(pull a9a/sgd-auto.log)")"

[ -n "${gen_target:-}" ] || exit 0 # the generated set did not run (SETS)
# Asynchronous SGD on the generated set, stopped at the target, with and without churn.
run_sgd() {
  local name=$1 backend=$2 extra=$3
  mkdir -p "gen/$name"
  cat > "gen/$name/main.hcl" <<HCL
$backend

load "clicks" {
  source      = "../train.svm"
  test_source = "../test.svm"
}

train "ctr" {
  input          = load.clicks
  solver         = "sgd"
  workers        = $workers
  minibatch      = 100
  optimizer      = "adagrad"
  learning_rate  = 0.05
  epochs         = 5
  target_logloss = $gen_target
  eval_interval  = "1s"
$extra
}

output "test_logloss" { value = train.ctr.metrics.test_logloss }
HCL
  rm -rf "gen/$name/.stratus"
  /usr/bin/time -v -o "gen/$name.time" "$stratus" apply -auto-approve -no-color "gen/$name" > "gen/$name.log" 2>&1 || { cat "gen/$name.log" >&2; exit 1; }
  l=$(printf '%.5f' "$("$stratus" output -json "gen/$name" test_logloss)")
  row "gen" "stratus sgd, $workers workers${4:+, $4}" "$(wall "gen/$name.time")" "$(peak "gen/$name.time")" "$l" "$(to_target "$l" "$gen_target" "$(wall "gen/$name.time")")" "$(grep -o 'per iteration p50 [^;]*' "gen/$name.log" | head -1)"
}
echo
row "data" "tool" "wall (s)" "peak (MB)" "test logloss" "to target" "notes"
run_sgd sgd "" ""
run_sgd churn 'backend "local" {
  kill_every = "10s"
}' '  lifetime       = "3s"
  retries        = 20' "churn"
printf '\nchurn: %s functions killed and retried, %s workers relaunched at their 3 s lifetime\n' \
  "$(grep -c 'function killed' gen/churn.log || true)" "$(grep -c 'reached its lifetime' gen/churn.log || true)"
printf 'generated set: %d training rows, %d test rows; %s\n' "$rows" $((rows / 10)) "$(grep -m1 'Bayes logloss' gen/gen.log || true)"
