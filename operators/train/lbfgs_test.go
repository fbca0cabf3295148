package train_test

import (
	"bufio"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

// readLIBSVM reads a small dense LIBSVM file: rows of d features (1-based indices)
// and 0/1 labels.
func readLIBSVM(t *testing.T, path string, d int) (xs [][]float64, ys []float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		y, _ := strconv.ParseFloat(fields[0], 64)
		x := make([]float64, d)
		for _, kv := range fields[1:] {
			k, v, _ := strings.Cut(kv, ":")
			i, _ := strconv.Atoi(k)
			x[i-1], _ = strconv.ParseFloat(v, 64)
		}
		xs, ys = append(xs, x), append(ys, math.Max(y, 0))
	}
	return xs, ys
}

// objective is the full-batch solver's objective: mean logistic loss plus
// λ/2·‖w‖² over the features (w's last coordinate is the unregularised intercept),
// with its gradient and Hessian.
func objective(xs [][]float64, ys []float64, w []float64, lambda float64) (f float64, g []float64, hess [][]float64) {
	d := len(w)
	g = make([]float64, d)
	hess = make([][]float64, d)
	for i := range hess {
		hess[i] = make([]float64, d)
	}
	n := float64(len(xs))
	for r, x := range xs {
		xe := append(append([]float64(nil), x...), 1)
		var z float64
		for j := range xe {
			z += w[j] * xe[j]
		}
		p := 1 / (1 + math.Exp(-z))
		f += (math.Log1p(math.Exp(-math.Abs(z))) + math.Max(z, 0) - ys[r]*z) / n
		for j := range xe {
			g[j] += (p - ys[r]) * xe[j] / n
			for k := range xe {
				hess[j][k] += p * (1 - p) * xe[j] * xe[k] / n
			}
		}
	}
	for j := 0; j < d-1; j++ {
		f += lambda / 2 * w[j] * w[j]
		g[j] += lambda * w[j]
		hess[j][j] += lambda
	}
	return f, g, hess
}

// newton minimises the objective by Newton's method to machine precision: the
// reference the solver is checked against.
func newton(xs [][]float64, ys []float64, d int, lambda float64) []float64 {
	w := make([]float64, d)
	for it := 0; it < 50; it++ {
		_, g, h := objective(xs, ys, w, lambda)
		step := solve(h, g)
		for j := range w {
			w[j] -= step[j]
		}
	}
	return w
}

// solve returns A⁻¹·b by Gaussian elimination with partial pivoting.
func solve(a [][]float64, b []float64) []float64 {
	n := len(b)
	m := make([][]float64, n)
	for i := range a {
		m[i] = append(append([]float64(nil), a[i]...), b[i])
	}
	for c := 0; c < n; c++ {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[p][c]) {
				p = r
			}
		}
		m[c], m[p] = m[p], m[c]
		for r := c + 1; r < n; r++ {
			k := m[r][c] / m[c][c]
			for j := c; j <= n; j++ {
				m[r][j] -= k * m[c][j]
			}
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		s := m[r][n]
		for j := r + 1; j < n; j++ {
			s -= m[r][j] * x[j]
		}
		x[r] = s / m[r][r]
	}
	return x
}

// TestLBFGSReachesNewtonOptimum trains heart_scale with L-BFGS — the full-batch
// solver, its gradient passes waves of tasks — and checks
// the model against the optimum Newton's method finds in the test for the same
// objective (λ = 1/rows). The validation set is the training set itself, so no
// holdout is taken from the rows the objective is over; the validation rule stops
// the run once that loss improves by less than 1e-4 over 5 iterations, so the
// objective must be within 1e-3 of Newton's, relative: a wrong gradient anywhere
// in the waves gets nowhere near.
func TestLBFGSReachesNewtonOptimum(t *testing.T) {
	h := runtimetest.New(t, `
load "heart" {
  source            = "`+testdata("heart_scale")+`"
  validation_source = "`+testdata("heart_scale")+`"
}

train "lr" {
  input  = load.heart
  solver = "lbfgs"
}

output "metrics" { value = train.lr.metrics }
output "model"   { value = train.lr.model }
`)
	sum, rec := h.MustApply()
	a, w32 := readModel(t, h, sum)
	if a.Solver != "lbfgs" || a.Dim != 14 || a.Validation == nil {
		t.Fatalf("model trained by %q with %d coordinates, validation metrics %v; want lbfgs, 14, some", a.Solver, a.Dim, a.Validation)
	}
	xs, ys := readLIBSVM(t, testdata("heart_scale"), 13)
	lambda := 1 / float64(len(xs))
	ref := newton(xs, ys, 14, lambda)
	fRef, gRef, _ := objective(xs, ys, ref, lambda)
	w := make([]float64, len(w32))
	for i, x := range w32 {
		w[i] = float64(x)
	}
	f, _, _ := objective(xs, ys, w, lambda)
	t.Logf("objective %.8f, Newton's %.8f (gradient norm there %.2g)", f, fRef, math.Sqrt(dotf(gRef, gRef)))
	if f-fRef > 1e-3*fRef || f < fRef-1e-9 {
		t.Errorf("objective %.8f, want within 1e-3 of Newton's optimum %.8f", f, fRef)
	}
	notes := strings.Join(rec.Notes("train.lr"), "\n")
	if !strings.Contains(notes, "solver lbfgs (asked for)") || !strings.Contains(notes, "stopped (") {
		t.Errorf("notes do not show the solver and why it stopped:\n%s", notes)
	}
}

func dotf(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// TestValidationSplit splits a9a's training file three ways: training stops on the
// validation loss and says so, and the metrics carry validation_* and test_*.
func TestValidationSplit(t *testing.T) {
	h := runtimetest.New(t, `
load "adult" {
  source = "`+testdata("a9a")+`"
  split  = { test = 0.2, validation = 0.1, seed = 3 }
}

train "lr" {
  input = load.adult
}

output "metrics" { value = train.lr.metrics }
output "model"   { value = train.lr.model }
`)
	sum, rec := h.MustApply()
	ll, vl := metric(t, sum, "test_logloss"), metric(t, sum, "validation_logloss")
	t.Logf("test logloss %.4f, validation logloss %.4f", ll, vl)
	if ll <= 0 || ll > 0.335 || vl <= 0 || vl > 0.335 {
		t.Errorf("test logloss %.4f, validation logloss %.4f; want both in (0, 0.335]", ll, vl)
	}
	notes := strings.Join(rec.Notes("load.adult"), "\n") + "\n" + strings.Join(rec.Notes("train.lr"), "\n")
	for _, want := range []string{"rows (24.4% positive), validation ", "stopping on the validation loss", "validation logloss"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	// It stops on the validation loss or, first, on liblinear's gradient rule;
	// never on a holdout of the training rows.
	if !strings.Contains(notes, "stopped (validation)") && !strings.Contains(notes, "stopped (converged)") {
		t.Errorf("notes do not say it stopped on the validation loss or converged:\n%s", notes)
	}
	a, _ := readModel(t, h, sum)
	if a.Validation == nil || a.Metrics.Rows == 0 || a.Validation.Rows == 0 {
		t.Errorf("artifact metrics %+v, validation %+v", a.Metrics, a.Validation)
	}
}

// sqHingeObjective is linear_svm's objective: mean max(0, 1 − s·z)² plus λ/2·‖w‖²

// heartSVMObjective returns the L2-loss SVM objective on heart_scale (λ = 1/n)
// of the trained weights w32 (as float64s, w) and of its optimum, computed
// here by damped generalised Newton steps, and heart_scale's rows (xs).
func heartSVMObjective(t *testing.T, w32 []float32) (xs [][]float64, w []float64, f, fRef float64) {
	t.Helper()
	xs, ys := readLIBSVM(t, testdata("heart_scale"), 13)
	lambda := 1 / float64(len(xs))
	ref := make([]float64, 14)
	for it := 0; it < 100; it++ {
		f0, g, hs := sqHingeObjective(xs, ys, ref, lambda)
		step := solve(hs, g)
		for a := 1.0; a > 1e-10; a /= 2 {
			cand := make([]float64, len(ref))
			for j := range ref {
				cand[j] = ref[j] - a*step[j]
			}
			if f1, _, _ := sqHingeObjective(xs, ys, cand, lambda); f1 <= f0 {
				ref = cand
				break
			}
		}
	}
	fRef, _, _ = sqHingeObjective(xs, ys, ref, lambda)
	w = make([]float64, len(w32))
	for i, x := range w32 {
		w[i] = float64(x)
	}
	f, _, _ = sqHingeObjective(xs, ys, w, lambda)
	return xs, w, f, fRef
}

// over the features, with its gradient and generalised Hessian.
func sqHingeObjective(xs [][]float64, ys []float64, w []float64, lambda float64) (f float64, g []float64, hess [][]float64) {
	d := len(w)
	g = make([]float64, d)
	hess = make([][]float64, d)
	for i := range hess {
		hess[i] = make([]float64, d)
	}
	n := float64(len(xs))
	for r, x := range xs {
		xe := append(append([]float64(nil), x...), 1)
		var z float64
		for j := range xe {
			z += w[j] * xe[j]
		}
		s := 2*ys[r] - 1
		m := 1 - s*z
		if m <= 0 {
			continue
		}
		f += m * m / n
		for j := range xe {
			g[j] += -2 * s * m * xe[j] / n
			for k := range xe {
				hess[j][k] += 2 * xe[j] * xe[k] / n
			}
		}
	}
	for j := 0; j < d-1; j++ {
		f += lambda / 2 * w[j] * w[j]
		g[j] += lambda * w[j]
		hess[j][j] += lambda
	}
	return f, g, hess
}

// TestLinearSVMReachesNewtonOptimum trains linear_svm on heart_scale and checks its
// objective against generalised Newton with backtracking, computed in the test,
// and that predict writes the model's margins.
func TestLinearSVMReachesNewtonOptimum(t *testing.T) {
	h := runtimetest.New(t, `
load "heart" {
  source            = "`+testdata("heart_scale")+`"
  validation_source = "`+testdata("heart_scale")+`"
}

train "svm" {
  input  = load.heart
  model  = "linear_svm"
  solver = "lbfgs"
}

output "metrics" { value = train.svm.metrics }
output "model"   { value = train.svm.model }
`)
	sum, _ := h.MustApply()
	a, w32 := readModel(t, h, sum)
	if a.Model != "linear_svm" || a.Solver != "lbfgs" {
		t.Fatalf("artifact model %q solver %q", a.Model, a.Solver)
	}
	if !sum.Outputs["metrics"].GetAttr("test_logloss").IsNull() {
		t.Errorf("a linear SVM reports a log loss: %v", sum.Outputs["metrics"].GoString())
	}
	xs, w, f, fRef := heartSVMObjective(t, w32)
	t.Logf("objective %.8f, generalised Newton's %.8f; validation accuracy %.4f", f, fRef, metric(t, sum, "validation_accuracy"))
	if f-fRef > 1e-3*fRef || f < fRef-1e-9 {
		t.Errorf("objective %.8f, want within 1e-3 of the reference optimum %.8f", f, fRef)
	}
	if acc := metric(t, sum, "validation_accuracy"); acc < 0.8 {
		t.Errorf("validation accuracy %.4f on its own training rows, want ≥ 0.8", acc)
	}
	// stratus predict writes each row's margin w·x + b.
	margins := strings.Fields(string(predict(t, h, sum.Outputs["model"].AsString(), testdata("heart_scale"))))
	if len(margins) != len(xs) {
		t.Fatalf("%d margins for %d rows", len(margins), len(xs))
	}
	for r, x := range xs {
		want := w[13]
		for j := range x {
			want += w[j] * x[j]
		}
		got, err := strconv.ParseFloat(margins[r], 64)
		if err != nil || math.Abs(got-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Fatalf("row %d: predict wrote %q, want the margin %.6f", r+1, margins[r], want)
		}
	}
}

// TestSGDConvergesWithoutEpochs runs SGD with no epochs: it stops on the holdout
// loss by the convergence rule, not a number of passes, and reaches a9a's target.
// Evaluations come every 10ms, so the rule's window of them passes before the
// epoch cap at the in-process transport's speed (see TestLinearSVMWithSGD).
func TestSGDConvergesWithoutEpochs(t *testing.T) {
	h := runtimetest.New(t, a9aPipeline(`
  solver        = "sgd"
  workers       = 2
  eval_interval = "10ms"
`))
	sum, rec := h.MustApply()
	ll, acc := metric(t, sum, "test_logloss"), metric(t, sum, "accuracy")
	notes := strings.Join(rec.Notes("train.lr"), "\n")
	t.Logf("test logloss %.4f, accuracy %.4f\n%s", ll, acc, notes)
	if !strings.Contains(notes, "stopping on the holdout loss") || !strings.Contains(notes, "stopped (converged)") {
		t.Errorf("notes do not show the holdout rule:\n%s", notes)
	}
	if ll > 0.330 || acc < 0.845 {
		t.Errorf("test logloss %.4f (want ≤ 0.330), accuracy %.4f (want ≥ 0.845)", ll, acc)
	}
}

// TestLinearSVMWithSGD trains linear_svm with asynchronous SGD until its holdout
// squared hinge loss converges: a9a's accuracy, and no log loss reported. The
// rule waits a window of evaluations, so they come every 10ms: with in-process
// psstore shards the workers run about 3 M examples/s, and at 100ms the epoch
// cap came before the window did.
func TestLinearSVMWithSGD(t *testing.T) {
	h := runtimetest.New(t, a9aPipeline(`
  model         = "linear_svm"
  solver        = "sgd"
  workers       = 2
  learning_rate = 0.05
  eval_interval = "10ms"
`))
	sum, rec := h.MustApply()
	acc := metric(t, sum, "accuracy")
	notes := strings.Join(rec.Notes("train.lr"), "\n")
	t.Logf("accuracy %.4f, auc %.4f\n%s", acc, metric(t, sum, "auc"), notes)
	if acc < 0.84 || metric(t, sum, "auc") < 0.89 {
		t.Errorf("accuracy %.4f (want ≥ 0.84), auc %.4f (want ≥ 0.89)", acc, metric(t, sum, "auc"))
	}
	if !sum.Outputs["metrics"].GetAttr("test_logloss").IsNull() {
		t.Errorf("a linear SVM reports a log loss: %s", sum.Outputs["metrics"].GoString())
	}
	if !strings.Contains(notes, "stopped (converged)") {
		t.Errorf("notes do not show the convergence rule:\n%s", notes)
	}
}
