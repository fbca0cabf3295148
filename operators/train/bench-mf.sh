#!/usr/bin/env bash
# Matrix factorization against alternating least squares, both measured in this
# run, on generated low-rank ratings: `stratus gen ratings` USERS × ITEMS (default
# 6,000 × 4,000), RATINGS training ratings (default 1,000,000) and RATINGS/10 test
# ratings of the same rank-RANK model (default 10) with noise σ = 0.5, whose RMSE
# on the test ratings is the noise floor.
#
#   - stratus apply of load (format = "ratings") + train model =
#     "matrix_factorization", rank = RANK and nothing else (defaults: solver auto,
#     which picks alternating least squares for factors this size, stopping when
#     the RMSE on a holdout of a tenth of the training set converges);
#   - the same with solver = "sgd" (asynchronous SGD, adagrad; SGD=0 skips it);
#   - ALS in numpy (system /usr/bin/python3): the same objective — squared error
#     + λ per rating on the user's and the item's bias and factor (ALS-WR), λ =
#     0.05, train's default — each user's and item's block solved exactly in
#     turn, ALS_ITERS sweeps (default 10); timed from reading the CSV to the
#     fitted model inside the process (the interpreter's start and imports are not
#     counted), on all the training ratings.
#
# Each prints wall time, peak memory (/usr/bin/time -v, whole process) and test
# RMSE; then Stratus (defaults) over ALS as ratios. Stratus trains on nine tenths of the
# training ratings (the rest is its stopping holdout); ALS on all of them.
# Environment: USERS, ITEMS, RATINGS, RANK, ALS_ITERS, SGD, BENCH_DIR (kept if set),
# STRATUS (default bin/stratus).
set -euo pipefail
cd "$(dirname "$0")/../.."
users=${USERS:-6000}
items=${ITEMS:-4000}
ratings=${RATINGS:-1000000}
rank=${RANK:-10}
iters=${ALS_ITERS:-10}
sgd=${SGD:-1}
py=/usr/bin/python3
stratus=$(realpath "${STRATUS:-bin/stratus}")
for tool in /usr/bin/time $py; do
  command -v "$tool" >/dev/null || { echo "bench-mf: $tool is missing (apt-get install time python3-numpy)" >&2; exit 1; }
done
$py -c 'import numpy' 2>/dev/null || { echo "bench-mf: numpy is missing for $py (apt-get install python3-numpy)" >&2; exit 1; }
dir=${BENCH_DIR:-$(mktemp -d)}
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/stratus" "$dir/stratus-sgd"
cd "$dir"

"$stratus" gen ratings --users "$users" --items "$items" --ratings "$ratings" --rank "$rank" --noise 0.5 --seed 1 -o train.csv 2> gen-train.log
"$stratus" gen ratings --users "$users" --items "$items" --ratings $((ratings / 10)) --rank "$rank" --noise 0.5 --seed 2 -o test.csv 2> gen-test.log
floor=$(sed -n 's/.*drawn ratings \([0-9.]*\).*/\1/p' gen-test.log)

cat > stratus/main.hcl <<HCL
load "r" {
  source      = "../train.csv"
  test_source = "../test.csv"
  format      = "ratings"
}

train "mf" {
  input = load.r
  model = "matrix_factorization"
  rank  = $rank
}

output "test_rmse" { value = train.mf.metrics.test_rmse }
HCL
sed 's/^  rank  = .*/&\n  solver = "sgd"/' stratus/main.hcl > stratus-sgd/main.hcl

cat > als.py <<'PY'
import sys, time
import numpy as np

def read(path):
    a = np.loadtxt(path, delimiter=",", usecols=(0, 1, 2))
    return a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2]

t0 = time.time()
u, i, r = read(sys.argv[1])
rank, iters, lam = int(sys.argv[3]), int(sys.argv[4]), 0.05
nu, ni = u.max() + 1, i.max() + 1
mean = r.mean()
rng = np.random.default_rng(1)
U = np.hstack([np.zeros((nu, 1)), 0.1 * rng.standard_normal((nu, rank))])  # [bias, factor]
V = np.hstack([np.zeros((ni, 1)), 0.1 * rng.standard_normal((ni, rank))])
by_u, by_i = np.argsort(u, kind="stable"), np.argsort(i, kind="stable")
cu, ci = np.bincount(u, minlength=nu), np.bincount(i, minlength=ni)
su, si = np.concatenate([[0], np.cumsum(cu)]), np.concatenate([[0], np.cumsum(ci)])

def sweep(X, Y, rows_of, starts, counts, mine, other):
    # Solve each block x of X: min sum (r - mean - y0 - [1, y1..] . x)^2 + lam n |x|^2.
    for a in range(X.shape[0]):
        n = counts[a]
        if n == 0:
            continue
        idx = rows_of[starts[a]:starts[a] + n]
        Yo = Y[other[idx]]
        F = np.hstack([np.ones((n, 1)), Yo[:, 1:]])
        t = r[idx] - mean - Yo[:, 0]
        A = F.T @ F + lam * n * np.eye(rank + 1)
        X[a] = np.linalg.solve(A, F.T @ t)

for _ in range(iters):
    sweep(U, V, by_u, su, cu, u, i)
    sweep(V, U, by_i, si, ci, i, u)
U[cu == 0], V[ci == 0] = 0, 0  # never rated: unknown, as in stratus
fit = time.time() - t0

tu, ti, tr = read(sys.argv[2])
known_u, known_i = (tu < nu), (ti < ni)
tu2, ti2 = np.where(known_u, tu, 0), np.where(known_i, ti, 0)
pu, qi = U[tu2] * known_u[:, None], V[ti2] * known_i[:, None]
pred = mean + pu[:, 0] + qi[:, 0] + (pu[:, 1:] * qi[:, 1:]).sum(axis=1)
print("%.3f %.5f" % (fit, np.sqrt(np.mean((pred - tr) ** 2))))
PY

peak() { awk -F: '/Maximum resident set size/ { printf "%d", $2 / 1024 }' "$1"; }
wall() { awk '/Elapsed \(wall clock\)/ { n = split($NF, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }' "$1"; }

/usr/bin/time -v -o st.time "$stratus" apply -auto-approve -no-color stratus > st.log 2>&1 || { cat st.log >&2; exit 1; }
st_rmse=$(printf '%.5f' "$("$stratus" output -json stratus test_rmse)")
st_wall=$(wall st.time)
how=$(grep -o 'train.mf: stopped ([a-z_ ]*) after [^:]*: [^;]*' st.log | sed 's/^train.mf: //')
if [ "$sgd" != 0 ]; then
  /usr/bin/time -v -o sgd.time "$stratus" apply -auto-approve -no-color stratus-sgd > sgd.log 2>&1 || { cat sgd.log >&2; exit 1; }
  sgd_rmse=$(printf '%.5f' "$("$stratus" output -json stratus-sgd test_rmse)")
  sgd_how=$(grep -o 'train.mf: stopped ([a-z_ ]*) after [^:]*: [^;]*' sgd.log | sed 's/^train.mf: //')
fi

/usr/bin/time -v -o als.time $py als.py train.csv test.csv "$rank" "$iters" > als.out
read -r als_fit als_rmse < als.out

printf 'generated: %d users × %d items, %d training and %d test ratings, rank %d, noise σ 0.5; noise floor (true model on the test ratings) RMSE %s\n\n' \
  "$users" "$items" "$ratings" $((ratings / 10)) "$rank" "$floor"
printf '%-40s %9s %10s %10s  %s\n' "tool" "wall (s)" "peak (MB)" "test RMSE" "notes"
printf '%-40s %9s %10s %10s  %s\n' "ALS, numpy ($iters sweeps, λ 0.05)" "$als_fit" "$(peak als.time)" "$als_rmse" "read + fit in process; whole process $(wall als.time) s"
printf '%-40s %9s %10s %10s  %s\n' "stratus apply (matrix_factorization)" "$st_wall" "$(peak st.time)" "$st_rmse" "load + train, whole process; $how"
if [ "$sgd" != 0 ]; then
  printf '%-40s %9s %10s %10s  %s\n' "stratus apply (solver = \"sgd\")" "$(wall sgd.time)" "$(peak sgd.time)" "$sgd_rmse" "load + train, whole process; $sgd_how"
fi
awk -v sw="$st_wall" -v aw="$als_fit" -v sr="$st_rmse" -v ar="$als_rmse" -v f="$floor" 'BEGIN {
  printf "\nstratus / ALS: time %.2f×, test RMSE %.4f× (ALS %.4f× and stratus %.4f× the noise floor)\n", sw / aw, sr / ar, ar / f, sr / f }'
