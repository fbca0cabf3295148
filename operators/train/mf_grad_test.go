package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMFGradient checks mfGrad against central differences of the objective
// term it returns, for every parameter of the user's and the item's block
// (always distinct: user slots are even, item slots odd).
func TestMFGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, rank := range []int{1, 4, 10} {
		pu, qi := make([]float32, rank+1), make([]float32, rank+1)
		for k := range pu {
			pu[k], qi[k] = float32(r.NormFloat64()), float32(r.NormFloat64())
		}
		const mean, l2, rating = 3.5, 0.3, 4.0
		gu, gq := make([]float32, rank+1), make([]float32, rank+1)
		mfGrad(mean, l2, rating, pu, qi, gu, gq)
		f := func() float64 {
			return mfGrad(mean, l2, rating, pu, qi, make([]float32, rank+1), make([]float32, rank+1))
		}
		const h = 1e-2 // float32 parameters: a wide step, and the objective is quadratic in each
		for _, side := range []struct {
			name string
			w, g []float32
		}{{"user", pu, gu}, {"item", qi, gq}} {
			for k := range side.w {
				x := side.w[k]
				side.w[k] = x + h
				up := f()
				side.w[k] = x - h
				down := f()
				side.w[k] = x
				num := (up - down) / (2 * h)
				if d := math.Abs(num - float64(side.g[k])); d > 1e-3*math.Max(1, math.Abs(num)) {
					t.Errorf("rank %d, %s parameter %d: gradient %g, central difference %g", rank, side.name, k, side.g[k], num)
				}
			}
		}
	}
}
