package load

import (
	"math"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/manifest"
)

// SplitHash names the hash split's function in manifests.
const SplitHash = "stratus-row-v1"

// splitter assigns parsed rows to train, test or validation by a hash of
// their content and the seed: with u = RowHash(seed, row) / 2^64, test when
// u < the test fraction, validation when u < test + validation, else train.
// Adding a validation fraction leaves the test set as it was.
// Hashing the parsed row (not its line number or position) makes the split
// independent of how the input is cut into tasks, of file names and of
// formatting ("1" and "1.0" are the same value); identical rows always land
// on the same side, so duplicates never leak from train into test.
type splitter struct {
	seed      uint64
	threshold uint64 // test when hash>>11 < threshold (53-bit fraction)
	val       uint64 // validation when threshold ≤ hash>>11 < val
}

func newSplitter(s *splitSpec) *splitter {
	return &splitter{seed: uint64(s.Seed), threshold: uint64(s.Test * (1 << 53)), val: uint64((s.Test + s.Validation) * (1 << 53))}
}

// dataset returns the dataset r goes to, or "" for the default (train).
func (s *splitter) dataset(r *dataset.Row) string {
	switch u := RowHash(s.seed, r) >> 11; {
	case u < s.threshold:
		return manifest.Test
	case u < s.val:
		return manifest.Validation
	}
	return ""
}

// RowHash is the split's hash of a row: its label (−1 hashed as 0, as load
// stored a binary −1 before labels were kept as spelled, so binary data
// splits as it always has), entry count, and each slot and value's IEEE bits, as 32-bit words mixed into a 64-bit state
// seeded with seed, finished with MurmurHash3's fmix64. It is defined on
// those words with explicit constants, so it is the same on every platform;
// changing it changes every split (bump SplitHash).
func RowHash(seed uint64, r *dataset.Row) uint64 {
	h := dataset.Fmix64(seed ^ 0x5851F42D4C957F2D)
	y := r.Label
	if y == -1 {
		y = 0
	}
	h = mix(h, math.Float32bits(y))
	h = mix(h, uint32(len(r.Indices)))
	for k, i := range r.Indices {
		h = mix(h, i)
		h = mix(h, math.Float32bits(r.Values[k]))
	}
	return dataset.Fmix64(h)
}

func mix(h uint64, w uint32) uint64 {
	h ^= uint64(w)
	h *= 0x9E3779B97F4A7C15
	return h ^ h>>32
}
