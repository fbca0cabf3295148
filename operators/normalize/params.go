package normalize

import (
	"math"

	"github.com/stratus-ml/stratus/dataset/manifest"
)

// NumericSlots is the number of leading slots of a dataset that hold numeric
// features: all of them for LIBSVM; for Criteo and CSV, the slots before the hashed
// space. Hashed slots are indicators of categorical values, which normalize leaves
// alone: z-scoring an indicator divides it by its rarity (a value seen once in
// 20,000 rows would become 141), which wrecks gradient descent, and min-max scaling
// one changes nothing.
func NumericSlots(f manifest.Format) uint32 {
	if f.HashBits > 0 {
		return uint32(f.HashOffset)
	}
	return math.MaxUint32
}

// MinMax returns the parameters that map each feature's [min, max] over
// the statistics' rows onto [lo, hi]: x ↦ lo + (x − min)·(hi − lo)/(max −
// min). Min and max count the implicit zero of rows without an entry (see
// manifest.Feature.Moments), so a feature with non-negative values and
// some zeros maps 0 to lo. Features whose range is empty (a constant) and
// features the rows never store are left unchanged, as are features the
// transformation would not change. Only slots below numeric are scaled.
func MinMax(s *manifest.Stats, lo, hi float64, numeric uint32) *manifest.Affine {
	a := &manifest.Affine{}
	s.Each(func(i uint32, f manifest.Feature) {
		if i >= numeric {
			return
		}
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
// (constants) and features the rows never store are left unchanged. Only slots
// below numeric are scaled.
func Standard(s *manifest.Stats, center bool, numeric uint32) *manifest.Affine {
	a := &manifest.Affine{}
	s.Each(func(i uint32, f manifest.Feature) {
		if i >= numeric {
			return
		}
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
