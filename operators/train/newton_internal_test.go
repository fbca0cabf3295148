package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stratus-ml/stratus/dataset/partition"
)

// TestNewtonCentralDifferences checks what trust-region Newton's passes compute,
// for each model it trains, with values and with implicit ones, and with indices
// folded onto fewer coordinates (two entries of a row on one coordinate): the
// gradient secondOrder returns is lossGrad's, its Hessian (packed, and as the
// Hessian-vector product of hessVec with the rows' curvature secondOrder left in
// the cache) matches central differences of the gradient, and the curvature
// hessVec recomputes when the cache is empty is the same.
func TestNewtonCentralDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct {
		name      string
		binary    bool
		dataDim   uint64
		modelDim  int
		checkDiag bool
	}{
		{"values", false, 12, 12, true},
		{"binary", true, 12, 12, true},
		{"folded", false, 30, 7, false},
	} {
		p := randomPartition(t, rng, 60, 6, c.dataDim, c.binary)
		labels := p.Labels()
		for i := range labels {
			if i%3 == 0 {
				labels[i] = float32(rng.NormFloat64()) // for regression; binary losses read y > 0.5
			}
		}
		set := &evalSet{parts: []partition.Batch{p.Batch(0, 25), p.Batch(25, p.Rows())}}
		dim := c.modelDim
		w := make([]float64, dim)
		for i := range w {
			w[i] = rng.NormFloat64() * 0.5
		}
		for _, m := range []struct {
			model string
			huber float64
		}{{"logistic_regression", 0}, {"linear_svm", 0}, {"linear_regression", 0}, {"linear_regression", 0.5}} {
			name := c.name + "/" + m.model
			if m.huber > 0 {
				name += "/huber"
			}
			fn := lossOf(m.model, m.huber)
			gRef := make([]float64, dim)
			lRef, _ := lossGrad(set, w, gRef, fn)
			g := make([]float64, dim)
			key := "test/" + name
			loss, rows, diag, packed := secondOrder(set, w, g, m.model, m.huber, true, key, 1)
			if rows != 60 || math.Abs(loss-lRef) > 1e-9*math.Abs(lRef) {
				t.Fatalf("%s: loss %.12g over %d rows, lossGrad's %.12g over 60", name, loss, rows, lRef)
			}
			for j := range g {
				if math.Abs(g[j]-gRef[j]) > 1e-9*math.Max(1, math.Abs(gRef[j])) {
					t.Fatalf("%s: gradient coordinate %d %.12g, lossGrad's %.12g", name, j, g[j], gRef[j])
				}
			}
			h := make([]float64, dim*dim)
			unpackAdd(packed, h, dim)
			// Central differences of the gradient, column by column.
			const step = 1e-6
			for k := 0; k < dim; k++ {
				wp, wm := append([]float64(nil), w...), append([]float64(nil), w...)
				wp[k] += step
				wm[k] -= step
				gp, gm := make([]float64, dim), make([]float64, dim)
				lossGrad(set, wp, gp, fn)
				lossGrad(set, wm, gm, fn)
				for j := 0; j < dim; j++ {
					numeric := (gp[j] - gm[j]) / (2 * step)
					if d := math.Abs(numeric - h[j*dim+k]); d > 1e-4*math.Max(1, math.Abs(numeric)) {
						t.Errorf("%s: Hessian (%d, %d) analytic %.9f, central difference %.9f", name, j, k, h[j*dim+k], numeric)
					}
				}
			}
			if c.checkDiag {
				for j := range diag {
					if math.Abs(diag[j]-h[j*dim+j]) > 1e-9*math.Max(1, math.Abs(diag[j])) {
						t.Errorf("%s: diagonal %d is %.9f, the Hessian's %.9f", name, j, diag[j], h[j*dim+j])
					}
				}
			}
			v := make([]float64, dim)
			for j := range v {
				v[j] = rng.NormFloat64()
			}
			want := make([]float64, dim)
			for j := range want {
				want[j] = dot(h[j*dim:(j+1)*dim], v)
			}
			cached := takeCurv(key)
			if len(cached) != 60 {
				t.Fatalf("%s: %d rows' curvature cached, want 60", name, len(cached))
			}
			fresh := curvature(set, w, curvOf(m.model, m.huber))
			for i := range fresh {
				if math.Abs(fresh[i]-cached[i]) > 1e-12 {
					t.Fatalf("%s: row %d's curvature recomputed %.12g, cached %.12g", name, i, fresh[i], cached[i])
				}
			}
			got := hessVec(set, cached, v)
			for j := range got {
				if math.Abs(got[j]-want[j]) > 1e-9*math.Max(1, math.Abs(want[j])) {
					t.Errorf("%s: Hv coordinate %d is %.12g, H·v %.12g", name, j, got[j], want[j])
				}
			}
		}
	}
}

// TestSampledHessian checks secondOrder's sampled Hessian: with every = 3 it
// is the Hessian of every third row of the share, in order across chunks and
// batches, scaled by rows/sampled; the gradient and loss stay those of every
// row.
func TestSampledHessian(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const dim = 10
	p := randomPartition(t, rng, 1000, 8, dim, false)
	set := &evalSet{parts: []partition.Batch{p.Batch(0, 400), p.Batch(400, p.Rows())}}
	var sample []partition.Batch
	for r := 0; r < p.Rows(); r += 3 {
		sample = append(sample, p.Batch(r, r+1))
	}
	w := make([]float64, dim)
	for i := range w {
		w[i] = rng.NormFloat64() * 0.3
	}
	g, gAll := make([]float64, dim), make([]float64, dim)
	loss, rows, diag, h := secondOrder(set, w, g, "logistic_regression", 0, true, "", 3)
	lossAll, _, _, _ := secondOrder(set, w, gAll, "logistic_regression", 0, true, "", 1)
	_, n, diagS, hS := secondOrder(&evalSet{parts: sample}, w, make([]float64, dim), "logistic_regression", 0, true, "", 1)
	if rows != 1000 || n != 334 || loss != lossAll {
		t.Fatalf("rows %d, sample %d, loss %g against %g", rows, n, loss, lossAll)
	}
	for j := range g {
		if g[j] != gAll[j] {
			t.Fatalf("gradient %d: %g sampled, %g not", j, g[j], gAll[j])
		}
	}
	sc := 1000.0 / 334
	for j := range h {
		if math.Abs(h[j]-sc*hS[j]) > 1e-9*math.Max(1, math.Abs(h[j])) {
			t.Fatalf("packed Hessian %d: %g, the sample's scaled %g", j, h[j], sc*hS[j])
		}
	}
	for j := range diag {
		if math.Abs(diag[j]-sc*diagS[j]) > 1e-9*math.Max(1, math.Abs(diag[j])) {
			t.Fatalf("diagonal %d: %g, the sample's scaled %g", j, diag[j], sc*diagS[j])
		}
	}
}

// TestTRPCG checks the trust-region CG step against the exact Newton step of
// a small quadratic: inside a large region CG reaches −H⁻¹g to its tolerance;
// with a small radius the step lies on the boundary in the M-norm.
func TestTRPCG(t *testing.T) {
	n := 4
	h := []float64{4, 1, 0, 0, 1, 3, 0.5, 0, 0, 0.5, 2, 0.2, 0, 0, 0.2, 1}
	p := &fbPoint{g: []float64{1, -2, 0.5, 3}, h: h, diag: []float64{4, 3, 2, 1}}
	r := &fbRun{dim: 4, l2: 0.1, maxPasses: 100}
	m := r.preconditioner(p)
	s, res, _, boundary, stop, err := r.trpcg(t.Context(), p, m, 1e6)
	if err != nil || boundary || stop != "" {
		t.Fatalf("err %v, boundary %v", err, boundary)
	}
	for j := 0; j < n; j++ { // H·s = −g − r
		hs := dot(h[j*n:(j+1)*n], s)
		if math.Abs(hs+p.g[j]+res[j]) > 1e-9 {
			t.Errorf("coordinate %d: (H·s + g + r) = %g", j, hs+p.g[j]+res[j])
		}
	}
	if norm(res) > 0.1*norm(p.g)*math.Sqrt(4/0.01) { // within CG's tolerance, up to M's scaling
		t.Errorf("residual %g for gradient %g", norm(res), norm(p.g))
	}
	s, _, _, boundary, _, _ = r.trpcg(t.Context(), p, m, 0.01)
	if !boundary || math.Abs(math.Sqrt(uTMv(s, m, s))-0.01) > 1e-9 {
		t.Errorf("radius 0.01: boundary %v, ‖s‖_M %g", boundary, math.Sqrt(uTMv(s, m, s)))
	}

	// No curvature along the gradient (l2 = 0, a coordinate no row touches):
	// the step goes to the boundary, finite, instead of dividing by dᵀHd = 0.
	h0 := []float64{4, 1, 0, 0, 1, 3, 0.5, 0, 0, 0.5, 2, 0, 0, 0, 0, 0}
	p0 := &fbPoint{g: []float64{0, 0, 0, 3}, h: h0, diag: []float64{4, 3, 2, 0}}
	r0 := &fbRun{dim: 4, l2: 0, maxPasses: 100}
	m0 := r0.preconditioner(p0)
	s, _, _, boundary, _, err = r0.trpcg(t.Context(), p0, m0, 2)
	if err != nil || !boundary || math.Abs(math.Sqrt(uTMv(s, m0, s))-2) > 1e-9 || s[3] >= 0 {
		t.Errorf("no curvature: err %v, boundary %v, s %v (‖s‖_M %g, want 2 along −g)", err, boundary, s, math.Sqrt(uTMv(s, m0, s)))
	}
}

// BenchmarkPass times one share's gradient pass as L-BFGS runs it, Newton's
// with the whole Hessian (of every row, and of every third), and a
// Hessian-vector pass, on an a9a-shaped share
// (32,561 rows, 14 binary features of 123, a model of 124).
func BenchmarkPass(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := randomPartition(b, rng, 32561, 14, 124, true)
	set := &evalSet{parts: []partition.Batch{p.Batch(0, p.Rows())}}
	w := make([]float64, 124)
	for i := range w {
		w[i] = rng.NormFloat64() * 0.1
	}
	b.Run("gradient", func(b *testing.B) {
		for b.Loop() {
			g := make([]float64, 124)
			lossGradChunked(set, w, g, logisticLossFunc)
		}
	})
	b.Run("hessian", func(b *testing.B) {
		for b.Loop() {
			g := make([]float64, 124)
			secondOrder(set, w, g, "logistic_regression", 0, true, "", 1)
		}
	})
	b.Run("hessian-sampled", func(b *testing.B) { // every 3rd row, as a9a's run samples it
		for b.Loop() {
			g := make([]float64, 124)
			secondOrder(set, w, g, "logistic_regression", 0, true, "", 3)
		}
	})
	b.Run("hv", func(b *testing.B) {
		d := curvature(set, w, curvOf("logistic_regression", 0))
		for b.Loop() {
			hessVec(set, d, w)
		}
	})
}
