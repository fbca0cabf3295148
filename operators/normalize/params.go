package normalize

import (
	"math"

	"github.com/stratus-ml/stratus/dataset/manifest"
)

// MinMax returns the parameters that map each feature's [min, max] over
// the statistics' rows onto [lo, hi]: x ↦ lo + (x − min)·(hi − lo)/(max −
// min). Min and max count the implicit zero of rows without an entry (see
// manifest.Feature.Moments), so a feature with non-negative values and
// some zeros maps 0 to lo. Features whose range is empty (a constant) and
// features the rows never store are left unchanged, as are features the
// transformation would not change.
func MinMax(s *manifest.Stats, lo, hi float64) *manifest.Affine {
	a := &manifest.Affine{}
	s.Each(func(i uint32, f manifest.Feature) {
		mn, mx, _, _ := f.Moments(s.Rows)
		if !(mx > mn) {
			return
		}
		scale := (hi - lo) / (mx - mn)
		offset := lo - mn*scale
		if scale == 1 && offset == 0 {
			return
		}
		a.Add(i, scale, offset)
	})
	return a
}

// Standard returns the parameters of z-score scaling from the statistics:
// x ↦ x/σ, or (x − μ)/σ with center, where μ and σ are the feature's mean
// and population standard deviation over every row (implicit zeros
// included). Without center a zero stays zero, so sparse rows stay sparse;
// with center an absent entry becomes −μ/σ. Features with zero variance
// (constants) and features the rows never store are left unchanged.
func Standard(s *manifest.Stats, center bool) *manifest.Affine {
	a := &manifest.Affine{}
	s.Each(func(i uint32, f manifest.Feature) {
		_, _, mean, variance := f.Moments(s.Rows)
		if !(variance > 0) {
			return
		}
		sd := math.Sqrt(variance)
		scale, offset := 1/sd, 0.0
		if center {
			offset = -mean / sd
		}
		if scale == 1 && offset == 0 {
			return
		}
		a.Add(i, scale, offset)
	})
	return a
}
