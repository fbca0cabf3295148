package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stratus-ml/stratus/dataset/partition"
)

// TestLossGradCentralDifferences checks the full-batch gradient of each model's loss
// against central differences of the loss it sums, with values and with implicit
// ones.
func TestLossGradCentralDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const dim = 12
	for _, binary := range []bool{false, true} {
		p := randomPartition(t, rng, 40, 5, dim, binary)
		set := &evalSet{parts: []partition.Batch{p.Batch(0, 20), p.Batch(20, p.Rows())}}
		w := make([]float64, dim)
		for i := range w {
			w[i] = rng.NormFloat64() * 0.5
		}
		for _, model := range []string{"logistic_regression", "linear_svm", "linear_regression", "huber"} {
			fn := lossOf(model, 0)
			if model == "huber" {
				fn = lossOf("linear_regression", 0.5)
			}
			g := make([]float64, dim)
			loss, rows := lossGrad(set, w, g, fn)
			if rows != 40 {
				t.Fatalf("rows %d, want 40", rows)
			}
			if l, _, _ := lossSum(set, w, fn); math.Abs(l-loss) > 1e-9*math.Abs(l) {
				t.Fatalf("%s: lossGrad's loss %.12g, lossSum %.12g", model, loss, l)
			}
			const h = 1e-5
			for i := range w {
				wp, wm := append([]float64(nil), w...), append([]float64(nil), w...)
				wp[i] += h
				wm[i] -= h
				lp, _, _ := lossSum(set, wp, fn)
				lm, _, _ := lossSum(set, wm, fn)
				numeric := (lp - lm) / (2 * h)
				if d := math.Abs(numeric - g[i]); d > 1e-5*math.Max(1, math.Abs(numeric)) {
					t.Errorf("%s binary=%v coordinate %d: analytic %.9f, central difference %.9f", model, binary, i, g[i], numeric)
				}
			}
		}
	}
}

// TestRegressionGradCentralDifferences checks linear_regression's gradients — the
// full-batch one and the SGD workers' minibatch one — for the squared and the
// Huber loss against central differences, on real-valued labels.
func TestRegressionGradCentralDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const dim = 12
	p := randomPartition(t, rng, 40, 5, dim, false)
	for i := range p.Labels() {
		p.Labels()[i] = float32(rng.NormFloat64() * 2)
	}
	set := &evalSet{parts: []partition.Batch{p.Batch(0, 20), p.Batch(20, p.Rows())}}
	w := make([]float64, dim)
	for i := range w {
		w[i] = rng.NormFloat64() * 0.5
	}
	for _, huber := range []float64{0, 0.5} {
		fn := lossOf("linear_regression", huber)
		g := make([]float64, dim)
		lossGrad(set, w, g, fn)
		const h = 1e-5
		for i := range w {
			wp, wm := append([]float64(nil), w...), append([]float64(nil), w...)
			wp[i] += h
			wm[i] -= h
			lp, _, _ := lossSum(set, wp, fn)
			lm, _, _ := lossSum(set, wm, fn)
			numeric := (lp - lm) / (2 * h)
			if d := math.Abs(numeric - g[i]); d > 1e-5*math.Max(1, math.Abs(numeric)) {
				t.Errorf("huber %g coordinate %d: analytic %.9f, central difference %.9f", huber, i, g[i], numeric)
			}
		}
		// The workers' minibatch gradient of the mean loss.
		b := p.Batch(0, p.Rows())
		m := newMinibatch(dim)
		m.build(b)
		for i := range m.w {
			m.w[i] = float32(rng.NormFloat64() * 0.5)
		}
		m.gradientOf(b, fn)
		analytic := append([]float32(nil), m.g...)
		w0 := append([]float32(nil), m.w...)
		lossAt := func(w []float32) float64 {
			var loss float64
			for r := 0; r < b.Len(); r++ {
				idx, vals := b.Row(r)
				z := float64(w[0])
				for e, f := range idx {
					z += float64(w[slotOf(m, uint64(f))]) * float64(vals[e])
				}
				l, _ := fn(z, float64(b.Labels[r]))
				loss += l
			}
			return loss / float64(b.Len())
		}
		const hw = 1e-3
		for i := range w0 {
			plus, minus := append([]float32(nil), w0...), append([]float32(nil), w0...)
			plus[i] += hw
			minus[i] -= hw
			numeric := (lossAt(plus) - lossAt(minus)) / (2 * hw)
			if d := math.Abs(numeric - float64(analytic[i])); d > 2e-3*math.Max(1, math.Abs(numeric)) {
				t.Errorf("worker, huber %g, key %d: analytic %.6f, central difference %.6f", huber, m.keys[i], analytic[i], numeric)
			}
		}
	}
}

// TestDirectionIsNewtonOnQuadratic checks the two-loop recursion: on a quadratic
// with Hessian A, curvature pairs (s, A·s) cycling through the axes make H converge
// to A⁻¹, so the direction for g = A·x is the Newton step −x.
func TestDirectionIsNewtonOnQuadratic(t *testing.T) {
	a := [][]float64{{4, 1, 0}, {1, 3, 0.5}, {0, 0.5, 2}}
	mul := func(x []float64) []float64 {
		out := make([]float64, 3)
		for i := range a {
			for j := range a[i] {
				out[i] += a[i][j] * x[j]
			}
		}
		return out
	}
	var ss, ys [][]float64
	for round := 0; round < 6; round++ {
		for _, s := range [][]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}} {
			ss, ys = append(ss, s), append(ys, mul(s))
		}
	}
	ss, ys = ss[len(ss)-lbfgsMemory:], ys[len(ys)-lbfgsMemory:]
	x := []float64{0.3, -1, 2}
	d := direction(mul(x), ss, ys)
	for i := range x {
		if math.Abs(d[i]+x[i]) > 1e-5 {
			t.Fatalf("direction %v, want %v", d, scale(x, -1))
		}
	}
}

// TestWorkerSVMGradientCentralDifferences checks the SGD workers' minibatch
// gradient of the mean squared hinge loss against central differences.
func TestWorkerSVMGradientCentralDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const dim = 40
	p := randomPartition(t, rng, 25, 6, dim, false)
	b := p.Batch(0, p.Rows())
	m := newMinibatch(dim)
	m.build(b)
	for i := range m.w {
		m.w[i] = float32(rng.NormFloat64() * 0.5)
	}
	m.gradientOf(b, sqHingeLossFunc)
	analytic := append([]float32(nil), m.g...)
	w0 := append([]float32(nil), m.w...)
	lossAt := func(w []float32) float64 {
		var loss float64
		for r := 0; r < b.Len(); r++ {
			idx, vals := b.Row(r)
			z := float64(w[0])
			for e, f := range idx {
				z += float64(w[slotOf(m, uint64(f))]) * float64(vals[e])
			}
			l, _ := sqHingeLossFunc(z, float64(b.Labels[r]))
			loss += l
		}
		return loss / float64(b.Len())
	}
	const h = 1e-3
	for i := range w0 {
		plus, minus := append([]float32(nil), w0...), append([]float32(nil), w0...)
		plus[i] += h
		minus[i] -= h
		numeric := (lossAt(plus) - lossAt(minus)) / (2 * h)
		if d := math.Abs(numeric - float64(analytic[i])); d > 2e-3 {
			t.Errorf("key %d: analytic %.6f, central difference %.6f", m.keys[i], analytic[i], numeric)
		}
	}
}
