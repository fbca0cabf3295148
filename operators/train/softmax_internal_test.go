package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stratus-ml/stratus/dataset/partition"
)

// TestSoftmaxGradCentralDifferences checks softmax's gradients — the full-batch
// one (feature-major K × (F+1) weights) and the SGD workers' minibatch one —
// against central differences of the cross-entropy they sum, with values and
// with implicit ones.
func TestSoftmaxGradCentralDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const features, classes = 9, 3
	dim := softmaxDim(features, classes)
	for _, binary := range []bool{false, true} {
		p := randomPartition(t, rng, 40, 5, features+1, binary)
		for i := range p.Labels() {
			p.Labels()[i] = float32(rng.IntN(classes))
		}
		set := &evalSet{parts: []partition.Batch{p.Batch(0, 20), p.Batch(20, p.Rows())}}
		w := make([]float64, dim)
		for i := range w {
			w[i] = rng.NormFloat64() * 0.5
		}
		g := make([]float64, dim)
		loss, rows := softmaxLossGrad(set, w, g, classes)
		if l, r, _ := softmaxLossSum(set, w, classes); rows != 40 || r != 40 || math.Abs(l-loss) > 1e-9*l {
			t.Fatalf("loss %g over %d rows, lossSum %g over %d", loss, rows, l, r)
		}
		const h = 1e-5
		for i := range w {
			wp, wm := append([]float64(nil), w...), append([]float64(nil), w...)
			wp[i] += h
			wm[i] -= h
			lp, _, _ := softmaxLossSum(set, wp, classes)
			lm, _, _ := softmaxLossSum(set, wm, classes)
			numeric := (lp - lm) / (2 * h)
			if d := math.Abs(numeric - g[i]); d > 1e-5*math.Max(1, math.Abs(numeric)) {
				t.Errorf("binary=%v coordinate %d (feature %d, class %d): analytic %.9f, central difference %.9f", binary, i, i/classes, i%classes, g[i], numeric)
			}
		}

		// The worker's minibatch gradient of the mean loss, at the same weights.
		b := p.Batch(0, p.Rows())
		sb := newSoftmaxBatch(dim, classes)
		sb.build(b)
		for i, k := range sb.keys {
			sb.w[i] = float32(w[k])
		}
		mean := sb.gradient(b)
		w32 := make([]float32, dim)
		for i := range w {
			w32[i] = float32(w[i])
		}
		if l, _, _ := softmaxLossSum(set, w, classes); math.Abs(mean-l/40) > 1e-5 {
			t.Errorf("worker's mean loss %g, full batch %g", mean, l/40)
		}
		for i, k := range sb.keys {
			if d := math.Abs(float64(sb.g[i]) - g[k]/40); d > 1e-5 {
				t.Errorf("worker key %d: gradient %.7f, full-batch mean %.7f", k, sb.g[i], g[k]/40)
			}
		}
		// Every coordinate with a gradient is a key of the batch.
		inBatch := map[uint64]bool{}
		for _, k := range sb.keys {
			inBatch[k] = true
		}
		for k, x := range g {
			if x != 0 && !inBatch[uint64(k)] {
				t.Errorf("coordinate %d has gradient %g but is not among the worker's keys", k, x)
			}
		}
		// Scoring agrees with the loss.
		set.ys = nil
		for _, pb := range set.parts {
			set.ys = append(set.ys, pb.Labels...)
		}
		m := set.evaluateSoftmax(w32, classes)
		if math.Abs(m.Logloss-loss/40) > 1e-4 || len(m.PerClass) != classes || !(m.Accuracy >= 0 && m.Accuracy <= 1) {
			t.Errorf("evaluate: logloss %g (loss %g), accuracy %g, per class %v", m.Logloss, loss/40, m.Accuracy, m.PerClass)
		}
	}
}
