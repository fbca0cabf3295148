package train_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

// writeSVM writes rows as a LIBSVM file: label, then index:value for each
// non-zero feature (1-based).
func writeSVM(t *testing.T, path string, xs [][]float64, ys []string) {
	t.Helper()
	var b strings.Builder
	for i, x := range xs {
		b.WriteString(ys[i])
		for j, v := range x {
			if v != 0 {
				fmt.Fprintf(&b, " %d:%.6g", j+1, v)
			}
		}
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// regressionSet generates n rows of d features (a fifth of them zero) with
// y = w·x + 3 + noise, w fixed by the seed.
func regressionSet(rng *rand.Rand, w []float64, n int, noise float64) ([][]float64, []string) {
	xs := make([][]float64, n)
	ys := make([]string, n)
	for i := range xs {
		x := make([]float64, len(w))
		y := 3.0
		for j := range x {
			if rng.IntN(5) > 0 {
				x[j] = rng.NormFloat64()
			}
			y += w[j] * x[j]
		}
		xs[i] = x
		ys[i] = strconv.FormatFloat(y+noise*rng.NormFloat64(), 'g', 7, 64)
	}
	return xs, ys
}

// sklearn runs a Python program with scikit-learn (the system python3), or skips
// the test when there is none. The program prints numbers, which it returns.
func sklearn(t *testing.T, program string) []float64 {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3 for the scikit-learn reference")
	}
	if err := exec.Command(py, "-c", "import sklearn").Run(); err != nil {
		t.Skip("python3 has no scikit-learn for the reference")
	}
	out, err := exec.Command(py, "-c", program).CombinedOutput()
	if err != nil {
		t.Fatalf("scikit-learn reference: %v\n%s", err, out)
	}
	var vs []float64
	for _, f := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			t.Fatalf("scikit-learn reference printed %q", out)
		}
		vs = append(vs, v)
	}
	return vs
}

// TestLinearRegressionMatchesRidge trains linear_regression with its defaults
// (L-BFGS, l2 = 1/rows) on a generated set and compares the test RMSE with
// scikit-learn's Ridge(alpha = 1) — the same objective: Σ½(y − w·x − b)² + ½‖w‖²
// with the intercept free — fitted in the test on the same files; SGD (adagrad)
// must come within 5% of it.
func TestLinearRegressionMatchesRidge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w := make([]float64, 10)
	for j := range w {
		w[j] = rng.NormFloat64() * 2
	}
	dir := t.TempDir()
	trainPath, testPath, valPath := filepath.Join(dir, "reg.train"), filepath.Join(dir, "reg.test"), filepath.Join(dir, "reg.val")
	xs, ys := regressionSet(rng, w, 3000, 0.5)
	writeSVM(t, trainPath, xs, ys)
	xs, ys = regressionSet(rng, w, 1000, 0.5)
	writeSVM(t, testPath, xs, ys)
	xs, ys = regressionSet(rng, w, 500, 0.5)
	writeSVM(t, valPath, xs, ys)

	ref := sklearn(t, fmt.Sprintf(`
from sklearn.datasets import load_svmlight_file
from sklearn.linear_model import Ridge
import numpy as np
X, y = load_svmlight_file(%q, n_features=10)
Xt, yt = load_svmlight_file(%q, n_features=10)
m = Ridge(alpha=1.0).fit(X, y)
print(np.sqrt(np.mean((m.predict(Xt) - yt) ** 2)))
`, trainPath, testPath))[0]

	for _, c := range []struct {
		name, args string
		tol        float64
	}{
		{"newton", ``, 0.001}, // solver = "auto"
		{"lbfgs", `solver = "lbfgs"`, 0.001},
		{"sgd", `learning_rate = 0.5
  minibatch     = 20
  workers       = 1`, 0.05},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := runtimetest.New(t, `
load "reg" {
  source      = "`+trainPath+`"
  test_source = "`+testPath+`"
  # the stopping rules' held-out set, so that training uses every training row
  validation_source = "`+valPath+`"
}
train "lr" {
  input = load.reg
  model = "linear_regression"
  `+c.args+`
}
output "metrics" { value = train.lr.metrics }
output "model"   { value = train.lr.model }
`)
			sum, rec := h.MustApply()
			rmse, mae, r2 := metric(t, sum, "test_rmse"), metric(t, sum, "test_mae"), metric(t, sum, "r2")
			t.Logf("%s: test RMSE %.5f (Ridge %.5f), MAE %.5f, R² %.5f", c.name, rmse, ref, mae, r2)
			if !(rmse > 0) || math.Abs(rmse-ref) > c.tol*ref {
				t.Errorf("test RMSE %.5f, scikit-learn's Ridge %.5f: want within %.1f%%", rmse, ref, 100*c.tol)
			}
			if !(mae > 0 && mae < rmse) || !(r2 > 0.9 && r2 < 1) {
				t.Errorf("MAE %.5f (want in (0, RMSE)), R² %.5f (want in (0.9, 1))", mae, r2)
			}
			if v := sum.Outputs["metrics"].GetAttr("test_logloss"); !v.IsNull() {
				t.Errorf("test_logloss %#v, want null: a regression has no log loss", v)
			}
			_ = rec
			art, weights := readModel(t, h, sum)
			if art.Model != "linear_regression" || len(weights) != 11 || art.Solver != c.name {
				t.Errorf("artifact model %q solver %q, %d weights; want linear_regression, %s, 11", art.Model, art.Solver, len(weights), c.name)
			}
		})
	}
}

// TestBinaryModelRefusesMulticlass: a binary model on a multiclass file fails at
// train start naming the file and line of the first non-binary label and the
// model to use; on a regression file it suggests linear_regression.
func TestBinaryModelRefusesMulticlass(t *testing.T) {
	for _, c := range []struct{ model, data, want string }{
		{"logistic_regression", "1 1:1\n# a comment\n-1 2:1\n\n2 1:1\n3 2:1\n",
			`logistic_regression is a binary model, but the labels of the training set are not binary (-1, 0 or 1): 4 distinct values (-1, 1, 2, 3), first at data.svm:5 (label 2); use model = "softmax"`},
		{"linear_svm", "1 1:1\n0.25 2:1\n",
			`linear_svm is a binary model, but the labels of the training set are not binary (-1, 0 or 1): real values 0.25 to 1, mean 0.625, first at data.svm:2 (label 0.25); use model = "linear_regression"`},
	} {
		h := runtimetest.New(t, `
load "x" {
  source = "data.svm"
}
train "m" {
  input = load.x
  model = "`+c.model+`"
}
`)
		h.Write("data.svm", c.data)
		sum, _, err := h.Apply()
		if err == nil {
			t.Fatalf("%s: apply succeeded; want train.m to fail", c.model)
		}
		for _, s := range sum.Stages {
			if s.Address == "train.m" && !strings.Contains(s.Error, c.want) {
				t.Errorf("%s: train.m %s: %q\nwant it to say %q", c.model, s.Action, s.Error, c.want)
			}
		}
	}
}
