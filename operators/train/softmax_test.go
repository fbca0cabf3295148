package train_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

// classBlobs generates n rows of d features around one of k class centres (labels
// 1..k, as LIBSVM multiclass files number them).
func classBlobs(rng *rand.Rand, centres [][]float64, n int, spread float64) ([][]float64, []string) {
	xs := make([][]float64, n)
	ys := make([]string, n)
	for i := range xs {
		c := rng.IntN(len(centres))
		x := make([]float64, len(centres[c]))
		for j := range x {
			x[j] = centres[c][j] + spread*rng.NormFloat64()
		}
		xs[i], ys[i] = x, strconv.Itoa(c+1)
	}
	return xs, ys
}

// TestSoftmaxMatchesScikitLearn trains softmax with its defaults (L-BFGS, l2 =
// 1/rows) on generated four-class data labelled 1..4 and compares the test log
// loss and accuracy with scikit-learn's multinomial LogisticRegression(C = 1) —
// the same objective, Σ −log p_y + ½‖W‖² with free intercepts — fitted in the test
// on the same files; SGD (adagrad) must come within 5% of its log loss.
func TestSoftmaxMatchesScikitLearn(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	const d = 6
	centres := make([][]float64, 4)
	for c := range centres {
		centres[c] = make([]float64, d)
		for j := range centres[c] {
			centres[c][j] = rng.NormFloat64() * 1.5
		}
	}
	dir := t.TempDir()
	trainPath, testPath, valPath := filepath.Join(dir, "multi.train"), filepath.Join(dir, "multi.test"), filepath.Join(dir, "multi.val")
	xs, ys := classBlobs(rng, centres, 3000, 1.2)
	writeSVM(t, trainPath, xs, ys)
	xs, ys = classBlobs(rng, centres, 1000, 1.2)
	writeSVM(t, testPath, xs, ys)
	xs, ys = classBlobs(rng, centres, 500, 1.2)
	writeSVM(t, valPath, xs, ys)

	prog := func(what string) string {
		return fmt.Sprintf(`
from sklearn.datasets import load_svmlight_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, accuracy_score
X, y = load_svmlight_file(%q, n_features=%d)
Xt, yt = load_svmlight_file(%q, n_features=%d)
m = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(X, y)
print(%s)
`, trainPath, d, testPath, d, what)
	}
	ref := sklearn(t, prog("log_loss(yt, m.predict_proba(Xt), labels=m.classes_), accuracy_score(yt, m.predict(Xt))"))
	refLoss, refAcc := ref[0], ref[1]

	for _, c := range []struct {
		name, args string
		tol        float64
	}{
		{"lbfgs", ``, 0.002},
		{"sgd", `learning_rate = 0.5
  minibatch     = 20
  workers       = 1`, 0.05},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := runtimetest.New(t, `
load "multi" {
  source            = "`+trainPath+`"
  test_source       = "`+testPath+`"
  validation_source = "`+valPath+`"
}
train "lr" {
  input = load.multi
  model = "softmax"
  `+c.args+`
}
output "metrics" { value = train.lr.metrics }
output "model"   { value = train.lr.model }
`)
			sum, _ := h.MustApply()
			loss, acc := metric(t, sum, "test_logloss"), metric(t, sum, "accuracy")
			t.Logf("%s: test logloss %.5f (scikit-learn %.5f), accuracy %.4f (%.4f)", c.name, loss, refLoss, acc, refAcc)
			if !(loss > 0) || math.Abs(loss-refLoss) > c.tol*refLoss {
				t.Errorf("test logloss %.5f, scikit-learn's %.5f: want within %.1f%%", loss, refLoss, 100*c.tol)
			}
			if math.Abs(acc-refAcc) > 0.01 {
				t.Errorf("accuracy %.4f, scikit-learn's %.4f: want within 0.01", acc, refAcc)
			}
			pc := sum.Outputs["metrics"].GetAttr("per_class_accuracy")
			if pc.IsNull() || pc.LengthInt() != 4 {
				t.Fatalf("per_class_accuracy %#v, want 4 figures", pc)
			}
			var mean float64
			for _, v := range pc.AsValueSlice() {
				f, _ := v.AsBigFloat().Float64()
				mean += f / 4
			}
			if math.Abs(mean-acc) > 0.05 {
				t.Errorf("per-class accuracies average %.4f, accuracy %.4f: classes are balanced, want them close", mean, acc)
			}
			art, w := readModel(t, h, sum)
			if art.Model != "softmax" || fmt.Sprint(art.Classes) != "[1 2 3 4]" || len(w) != 4*(d+1) {
				t.Errorf("artifact model %q, classes %v, %d weights; want softmax, [1 2 3 4], %d", art.Model, art.Classes, len(w), 4*(d+1))
			}
		})
	}
}
