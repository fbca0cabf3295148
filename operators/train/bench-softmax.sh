#!/usr/bin/env bash
# softmax against liblinear's one-vs-rest logistic regression and scikit-learn's
# multinomial LogisticRegression, all measured in this run, on a generated
# multiclass set: ROWS rows (default 200,000) of D = 20 dense features around
# K = 5 Gaussian class centres (labels 1..5, as LIBSVM numbers classes), and
# ROWS/10 test rows from the same centres; and on scikit-learn's handwritten digits
# (a real set: 1,797 rows, 64 features, 10 classes; every fourth row held out).
#
#   - liblinear-train -s 0 -c C: one binary logistic regression per class (OvR;
#     C = 1, liblinear's default, LIBLINEAR_C to change), liblinear-predict -b 1
#     for the (normalised one-vs-rest) probabilities;
#   - stratus apply of load + train with model = "softmax" and no other training
#     argument (defaults: the solver is chosen automatically);
#   - scikit-learn LogisticRegression(C) (multinomial, lbfgs, its defaults
#     otherwise), load + fit in the process (system /usr/bin/python3).
#
# Each with wall time (liblinear and Stratus: the whole process), peak memory
# (/usr/bin/time -v), test multiclass log loss and accuracy, and the ratio of
# Stratus's log loss and time to liblinear's. Needs liblinear-tools,
# python3-sklearn and GNU time. Environment: ROWS, BENCH_DIR (kept if set),
# STRATUS (default bin/stratus), LIBLINEAR_C.
set -euo pipefail
cd "$(dirname "$0")/../.."

rows=${ROWS:-200000}
C=${LIBLINEAR_C:-1}
py=/usr/bin/python3
stratus=$(realpath "${STRATUS:-bin/stratus}")
for tool in liblinear-train liblinear-predict /usr/bin/time $py; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install liblinear-tools python3-sklearn time)" >&2; exit 1; }
done
$py -c 'import sklearn' 2>/dev/null || { echo "bench: scikit-learn is missing (apt-get install python3-sklearn)" >&2; exit 1; }
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
  $py - "$rows" <<'PY'
import sys, numpy as np
rows = int(sys.argv[1]); K, D = 5, 20
rng = np.random.default_rng(1)
centres = rng.normal(0, 1.0, (K, D))
def write(path, n):
    y = rng.integers(0, K, n)
    X = centres[y] + rng.normal(0, 1.5, (n, D))
    with open(path, "w") as f:
        for yi, x in zip(y, X):
            f.write("%d %s\n" % (yi + 1, " ".join("%d:%.4g" % (j + 1, v) for j, v in enumerate(x))))
write("train.svm", rows)
write("test.svm", rows // 10)
PY
  echo "$rows" > rows
fi
# The handwritten digits scikit-learn ships (1,797 rows, 64 features, 10 classes;
# BSD-licensed), min_max scaled, every fourth row held out, labels 1..10.
if [ ! -s digits.train ]; then
  $py - <<'PY'
import numpy as np
from sklearn.datasets import load_digits, dump_svmlight_file
d = load_digits(); X = d.data / 16.0; y = d.target + 1
te = np.arange(len(y)) % 4 == 0
dump_svmlight_file(X[~te], y[~te], "digits.train", zero_based=False)
dump_svmlight_file(X[te], y[te], "digits.test", zero_based=False)
PY
fi

peak() { awk -F: '/Maximum resident set size/ { printf "%d", $2 / 1024 }' "$1"; }
wall() { awk '/Elapsed \(wall clock\)/ { n = split($NF, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }' "$1"; }

# scores PREDICTIONS TEST: multiclass log loss and accuracy of liblinear-predict -b 1
# output ("labels l1 l2 …", then "pred p1 p2 …") against the test labels.
scores() {
  awk 'NR == FNR { if (FNR == 1) { for (i = 2; i <= NF; i++) col[$i] = i } else { pred[FNR - 1] = $1; for (i = 2; i <= NF; i++) p[FNR - 1, i] = $i }; next }
       { y = $1; q = p[FNR, col[y]]; if (q < 1e-15) q = 1e-15; s -= log(q); if (pred[FNR] == y) ok++; n++ }
       END { printf "%.5f %.4f\n", s / n, ok / n }' "$1" "$2"
}

printf '%-10s %-36s %9s %10s %13s %9s  %s\n' "data" "tool" "wall (s)" "peak (MB)" "test logloss" "accuracy" "notes"

cat > sk.py <<'PY'
import sys, time
from sklearn.datasets import load_svmlight_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, accuracy_score
t = time.time()
X, y = load_svmlight_file(sys.argv[2])
Xt, yt = load_svmlight_file(sys.argv[3], n_features=X.shape[1])
m = LogisticRegression(C=float(sys.argv[1]), max_iter=1000).fit(X, y)  # 1000: digits needs more than the default 100
dt = time.time() - t
print("%.3f %.5f %.4f" % (dt, log_loss(yt, m.predict_proba(Xt), labels=m.classes_), accuracy_score(yt, m.predict(Xt))))
PY

# run_set NAME TRAIN TEST: the three tools on one set.
run_set() {
  local name=$1 train=$2 test=$3
  /usr/bin/time -v -o "$name.ll.time" liblinear-train -q -s 0 -c "$C" "$train" "$name.model.ll"
  liblinear-predict -b 1 "$test" "$name.model.ll" "$name.pred.ll" >/dev/null
  read -r ll llacc < <(scores "$name.pred.ll" "$test")
  llwall=$(wall "$name.ll.time")
  printf '%-10s %-36s %9s %10s %13s %9s  %s\n' "$name" "liblinear -s 0 -c $C (one-vs-rest)" "$llwall" "$(peak "$name.ll.time")" "$ll" "$llacc" "reference"

  mkdir -p "$name.stratus"
  cat > "$name.stratus/main.hcl" <<HCL
load "data" {
  source      = "../$train"
  test_source = "../$test"
}

train "softmax" {
  input = load.data
  model = "softmax"
}

output "metrics" { value = train.softmax.metrics }
HCL
  rm -rf "$name.stratus/.stratus"
  /usr/bin/time -v -o "$name.st.time" "$stratus" apply -auto-approve -no-color "$name.stratus" > "$name.st.log" 2>&1 || { cat "$name.st.log" >&2; exit 1; }
  read -r stl stacc < <("$stratus" output -json "$name.stratus" metrics | $py -c 'import json,sys; m=json.load(sys.stdin); print("%.5f %.4f" % (m["test_logloss"], m["accuracy"]))')
  stwall=$(wall "$name.st.time")
  how=$(grep -o 'solver [a-z]* ([^)]*)' "$name.st.log" | head -1 | sed 's/ (.*//')
  why=$(grep -o 'stopped ([a-z_ ]*) after [^:]*: [^;]*' "$name.st.log" | head -1)
  printf '%-10s %-36s %9s %10s %13s %9s  %s\n' "" "stratus apply (softmax, defaults)" "$stwall" "$(peak "$name.st.time")" "$stl" "$stacc" "$how; $why"

  /usr/bin/time -v -o "$name.sk.time" $py sk.py "$C" "$train" "$test" > "$name.sk.out"
  read -r skt skl skacc < "$name.sk.out"
  printf '%-10s %-36s %9s %10s %13s %9s  %s\n' "" "sklearn LogisticRegression C=$C" "$skt" "$(peak "$name.sk.time")" "$skl" "$skacc" "multinomial; load+fit in process"
  printf '%-10s stratus / liblinear OvR: log loss %s, time %s\n' "" \
    "$(awk -v a="$stl" -v b="$ll" 'BEGIN { printf "%.3f", a / b }')" "$(awk -v a="$stwall" -v b="$llwall" 'BEGIN { printf "%.2f", a / b }')"
}

run_set generated train.svm test.svm
run_set digits digits.train digits.test
printf '\ngenerated: %d training rows, %d test rows, 5 classes, 20 features\n' "$rows" $((rows / 10))
