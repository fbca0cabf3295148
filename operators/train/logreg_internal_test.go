package train

import (
	"math"
	"testing"

	"github.com/stratus-ml/stratus/dataset/manifest"
)

// TestLogisticSigmoidMatches holds the fused loss-and-probability to the two
// functions it replaces in the gradient loops, bit for bit, including the
// extremes where one exponential under- or overflows.
func TestLogisticSigmoidMatches(t *testing.T) {
	zs := []float64{0, math.Copysign(0, -1), 1e-300, -1e-300, 0.5, -0.5, 1, -1, 3.7, -3.7, 20, -20, 36.5, -36.5, 709, -709, 745, -745, 1e6, -1e6}
	for i := 0; i < 2000; i++ {
		zs = append(zs, float64(i-1000)/37)
	}
	for _, z := range zs {
		for _, y := range []float64{0, 1} {
			l, p := logisticSigmoid(z, y)
			if wl, wp := logistic(z, y), sigmoid(z); math.Float64bits(l) != math.Float64bits(wl) || math.Float64bits(p) != math.Float64bits(wp) {
				t.Fatalf("z %g y %g: logisticSigmoid = (%v, %v), logistic, sigmoid = (%v, %v)", z, y, l, p, wl, wp)
			}
		}
	}
}

// TestGradientTolIsLiblinears holds the full-batch solver's gradient rule to
// liblinear's default for its primal solvers: 0.01·max(min(pos, neg), 1)/rows
// for a binary classifier, gradTol for the rest.
func TestGradientTolIsLiblinears(t *testing.T) {
	binary := &manifest.Labels{Distinct: []manifest.LabelCount{{Value: -1, Count: 24720}, {Value: 1, Count: 7841}}, Integer: true}
	for _, c := range []struct {
		model  string
		labels *manifest.Labels
		rows   int64
		want   float64
	}{
		{"logistic_regression", binary, 32561, 0.01 * 7841 / 32561},
		{"linear_svm", binary, 32561, 0.01 * 7841 / 32561},
		{"logistic_regression", &manifest.Labels{Distinct: []manifest.LabelCount{{Value: 0, Count: 10}}, Integer: true}, 10, 0.01 * 1 / 10},
		{"softmax", binary, 32561, gradTol},
		{"linear_regression", &manifest.Labels{Many: true}, 1000, gradTol},
		{"logistic_regression", nil, 100, gradTol},
	} {
		if got := gradientTol(c.model, c.labels, c.rows); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("gradientTol(%s, %d rows) = %g, want %g", c.model, c.rows, got, c.want)
		}
	}
}
