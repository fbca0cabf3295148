package manifest

import (
	"math"
)

// Feature is what Stats records about one feature slot, over the explicit
// entries of that slot (the rows that store a value for it, explicit zeros
// included): how many there are and the minimum, maximum, sum and sum of
// squares of their values. The other rows hold an implicit zero (LIBSVM) or
// a missing value (an empty Criteo or CSV field), which Stratus treats as
// zero too; Moments counts them.
type Feature struct {
	Count int64   `json:"count"`
	Min   float32 `json:"min"`
	Max   float32 `json:"max"`
	Sum   float64 `json:"sum"`
	SumSq float64 `json:"sumsq"`
}

// Moments returns the feature's minimum, maximum, mean and population
// variance over rows rows, of which rows − Count hold an implicit zero: the
// minimum and maximum then include 0, and the mean and variance count the
// zeros. A feature with no entries (Count 0) has all four 0. The variance is
// computed as E[x²] − E[x]² in float64 and clamped at 0; it is exactly 0
// when min == max.
func (f Feature) Moments(rows int64) (min, max, mean, variance float64) {
	if f.Count <= 0 || rows <= 0 {
		return 0, 0, 0, 0
	}
	min, max = float64(f.Min), float64(f.Max)
	if f.Count < rows {
		min, max = math.Min(min, 0), math.Max(max, 0)
	}
	n := float64(rows)
	mean = f.Sum / n
	if min == max {
		return min, max, mean, 0
	}
	variance = math.Max(f.SumSq/n-mean*mean, 0)
	return min, max, mean, variance
}

// merge folds o into f.
func (f *Feature) merge(o *Feature) {
	f.Count += o.Count
	if o.Min < f.Min {
		f.Min = o.Min
	}
	if o.Max > f.Max {
		f.Max = o.Max
	}
	f.Sum += o.Sum
	f.SumSq += o.SumSq
}

// Pages of features: 4096 slots (128 KiB) each, allocated when a slot in
// them is first seen, so a 2^30-slot hashed space costs only the pages its
// data touches plus an 8-byte pointer per 4096 slots.
const (
	pageBits = 12
	pageSize = 1 << pageBits
	pageMask = pageSize - 1
)

// Stats accumulates per-feature statistics over rows. The zero value is
// empty and ready to use. Memory is about 32 bytes per slot in each 4096-slot
// page that any row touches. Not safe for concurrent use.
type Stats struct {
	// Rows is the number of rows the statistics are over: AddRow counts
	// them, Merge adds them up.
	Rows  int64
	pages [][]Feature
}

// NewStats returns empty statistics.
func NewStats() *Stats { return &Stats{} }

func (s *Stats) page(p uint32) []Feature {
	if int(p) >= len(s.pages) {
		n := max(int(p)+1, 2*len(s.pages))
		np := make([][]Feature, n)
		copy(np, s.pages)
		s.pages = np
	}
	pg := s.pages[p]
	if pg == nil {
		pg = make([]Feature, pageSize)
		for i := range pg {
			pg[i].Min = float32(math.Inf(1))
			pg[i].Max = float32(math.Inf(-1))
		}
		s.pages[p] = pg
	}
	return pg
}

// AddRow counts one row with entries indices[k] = values[k]; values == nil
// means every value is 1 (an all-ones partition row). Cost: a few
// nanoseconds per entry, one memory access into the feature's page.
func (s *Stats) AddRow(indices []uint32, values []float32) {
	s.Rows++
	if values == nil {
		for _, ix := range indices {
			p := ix >> pageBits
			var pg []Feature
			if int(p) < len(s.pages) && s.pages[p] != nil {
				pg = s.pages[p]
			} else {
				pg = s.page(p)
			}
			f := &pg[ix&pageMask]
			f.Count++
			if 1 < f.Min {
				f.Min = 1
			}
			if 1 > f.Max {
				f.Max = 1
			}
			f.Sum++
			f.SumSq++
		}
		return
	}
	values = values[:len(indices)]
	for k, ix := range indices {
		p := ix >> pageBits
		var pg []Feature
		if int(p) < len(s.pages) && s.pages[p] != nil {
			pg = s.pages[p]
		} else {
			pg = s.page(p)
		}
		f := &pg[ix&pageMask]
		v := values[k]
		f.Count++
		if v < f.Min {
			f.Min = v
		}
		if v > f.Max {
			f.Max = v
		}
		d := float64(v)
		f.Sum += d
		f.SumSq += d * d
	}
}

// Feature returns slot i's statistics (Count 0 when no row stores it).
func (s *Stats) Feature(i uint32) Feature {
	p := i >> pageBits
	if int(p) < len(s.pages) && s.pages[p] != nil {
		if f := s.pages[p][i&pageMask]; f.Count > 0 {
			return f
		}
	}
	return Feature{}
}

// set stores f for slot i (used when decoding).
func (s *Stats) set(i uint32, f Feature) {
	s.page(i >> pageBits)[i&pageMask] = f
}

// Each calls fn for every slot with Count > 0, in increasing slot order.
func (s *Stats) Each(fn func(i uint32, f Feature)) {
	for p, pg := range s.pages {
		if pg == nil {
			continue
		}
		base := uint32(p) << pageBits
		for k := range pg {
			if pg[k].Count > 0 {
				fn(base+uint32(k), pg[k])
			}
		}
	}
}

// Len returns the number of slots with Count > 0.
func (s *Stats) Len() int {
	n := 0
	for _, pg := range s.pages {
		for k := range pg {
			if pg[k].Count > 0 {
				n++
			}
		}
	}
	return n
}

// Features returns 1 + the largest slot with Count > 0 (0 when there is
// none).
func (s *Stats) Features() int {
	for p := len(s.pages) - 1; p >= 0; p-- {
		pg := s.pages[p]
		for k := len(pg) - 1; k >= 0; k-- {
			if pg[k].Count > 0 {
				return p<<pageBits + k + 1
			}
		}
	}
	return 0
}

// Merge adds o's rows and features to s. Sums are added in float64, so the
// result can differ from a single pass over the same rows in the last bits.
func (s *Stats) Merge(o *Stats) {
	if o == nil {
		return
	}
	s.Rows += o.Rows
	for p, opg := range o.pages {
		if opg == nil {
			continue
		}
		var pg []Feature
		for k := range opg {
			if opg[k].Count == 0 {
				continue
			}
			if pg == nil {
				pg = s.page(uint32(p))
			}
			pg[k].merge(&opg[k])
		}
	}
}
