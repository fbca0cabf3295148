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

// Pages of features: 4096 slots each, allocated when a slot in them is
// first seen, so a 2^30-slot hashed space costs only the pages its data
// touches plus two 8-byte pointers per 4096 slots.
const (
	pageBits = 12
	pageSize = 1 << pageBits
	pageMask = pageSize - 1
)

// Stats accumulates per-feature statistics over rows. The zero value is
// empty and ready to use. Not safe for concurrent use.
//
// Entries equal to 1 (one-hot and hashed categorical features, most of a
// sparse dataset) are only counted, in a 2-byte counter per slot that spills
// into the slot's Feature record when it fills; the 32-byte Feature records
// are allocated (by page) only when some entry has another value. Memory is
// therefore about 8 KiB per touched 4096-slot page, plus 128 KiB per page
// holding other values: a 2^20-slot hashed space counts in 2 MiB, which
// stays in a core's cache.
type Stats struct {
	// Rows is the number of rows the statistics are over: AddRow counts
	// them, Merge adds them up.
	Rows int64
	ones [][]uint16  // entries equal to 1, per slot (spilled into full when full)
	full [][]Feature // entries not equal to 1, per slot (Min +Inf, Max -Inf when none)
}

// NewStats returns empty statistics.
func NewStats() *Stats { return &Stats{} }

func grow[T any](pages [][]T, p uint32) [][]T {
	if int(p) < len(pages) {
		return pages
	}
	np := make([][]T, max(int(p)+1, 2*len(pages)))
	copy(np, pages)
	return np
}

func (s *Stats) onesPage(p uint32) []uint16 {
	s.ones = grow(s.ones, p)
	if s.ones[p] == nil {
		s.ones[p] = make([]uint16, pageSize)
	}
	return s.ones[p]
}

func (s *Stats) fullPage(p uint32) []Feature {
	s.full = grow(s.full, p)
	pg := s.full[p]
	if pg == nil {
		pg = make([]Feature, pageSize)
		for i := range pg {
			pg[i].Min = float32(math.Inf(1))
			pg[i].Max = float32(math.Inf(-1))
		}
		s.full[p] = pg
	}
	return pg
}

// countOne counts an entry equal to 1 in slot ix: the slow path of AddRow,
// which increments counters that exist and have room inline.
func (s *Stats) countOne(ix uint32) {
	p := ix >> pageBits
	var pg []uint16
	if int(p) < len(s.ones) && s.ones[p] != nil {
		pg = s.ones[p]
	} else {
		pg = s.onesPage(p)
	}
	c := &pg[ix&pageMask]
	*c++
	if *c == math.MaxUint16 {
		s.spill(ix, c)
	}
}

// spill moves a slot's count of ones into its Feature record.
func (s *Stats) spill(ix uint32, c *uint16) {
	f := &s.fullPage(ix >> pageBits)[ix&pageMask]
	f.addOnes(*c)
	*c = 0
}

func (f *Feature) addOnes(n uint16) {
	if n == 0 {
		return
	}
	f.Count += int64(n)
	if 1 < f.Min {
		f.Min = 1
	}
	if 1 > f.Max {
		f.Max = 1
	}
	f.Sum += float64(n)
	f.SumSq += float64(n)
}

// AddRow counts one row with entries indices[k] = values[k]; values == nil
// means every value is 1 (an all-ones partition row). Cost: a few
// nanoseconds per entry, one memory access into the slot's page.
func (s *Stats) AddRow(indices []uint32, values []float32) {
	s.Rows++
	if values != nil {
		values = values[:len(indices)]
	}
	ones := s.ones
	for k, ix := range indices {
		v := float32(1)
		if values != nil {
			v = values[k]
		}
		if v == 1 {
			// The common case, kept small so that the CPU overlaps the
			// cache misses of consecutive entries.
			if p := ix >> pageBits; int(p) < len(ones) {
				if pg := ones[p]; pg != nil {
					if c := &pg[ix&pageMask]; *c < math.MaxUint16-1 {
						*c++
						continue
					}
				}
			}
			s.countOne(ix)
			ones = s.ones
			continue
		}
		p := ix >> pageBits
		var pg []Feature
		if int(p) < len(s.full) && s.full[p] != nil {
			pg = s.full[p]
		} else {
			pg = s.fullPage(p)
		}
		f := &pg[ix&pageMask]
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

// at returns slot i's combined statistics (Count 0 when none).
func (s *Stats) at(p, k int) Feature {
	var f Feature
	if p < len(s.full) && s.full[p] != nil {
		f = s.full[p][k]
	}
	if p < len(s.ones) && s.ones[p] != nil {
		if f.Count == 0 {
			f = Feature{Min: float32(math.Inf(1)), Max: float32(math.Inf(-1))}
		}
		f.addOnes(s.ones[p][k])
	}
	if f.Count == 0 {
		return Feature{}
	}
	return f
}

// Feature returns slot i's statistics (Count 0 when no row stores it).
func (s *Stats) Feature(i uint32) Feature {
	return s.at(int(i>>pageBits), int(i&pageMask))
}

// set stores f as slot i's statistics, replacing what was there (used when
// decoding).
func (s *Stats) set(i uint32, f Feature) {
	p, k := i>>pageBits, i&pageMask
	if f.Min == 1 && f.Max == 1 && f.Count < math.MaxUint16 && f.Sum == float64(f.Count) && f.SumSq == f.Sum {
		if int(p) < len(s.full) && s.full[p] != nil {
			s.full[p][k] = Feature{Min: float32(math.Inf(1)), Max: float32(math.Inf(-1))}
		}
		s.onesPage(p)[k] = uint16(f.Count)
		return
	}
	if int(p) < len(s.ones) && s.ones[p] != nil {
		s.ones[p][k] = 0
	}
	s.fullPage(p)[k] = f
}

// pagesLen returns the number of page slots to scan.
func (s *Stats) pagesLen() int { return max(len(s.ones), len(s.full)) }

// Each calls fn for every slot with Count > 0, in increasing slot order.
func (s *Stats) Each(fn func(i uint32, f Feature)) {
	for p := 0; p < s.pagesLen(); p++ {
		var op []uint16
		var fp []Feature
		if p < len(s.ones) {
			op = s.ones[p]
		}
		if p < len(s.full) {
			fp = s.full[p]
		}
		base := uint32(p) << pageBits
		switch {
		case op == nil && fp == nil:
		case fp == nil: // only ones
			for k, c := range op {
				if c > 0 {
					n := int64(c)
					fn(base+uint32(k), Feature{Count: n, Min: 1, Max: 1, Sum: float64(n), SumSq: float64(n)})
				}
			}
		default:
			for k := range fp {
				f := fp[k]
				if op != nil && op[k] > 0 {
					f.addOnes(op[k])
				}
				if f.Count > 0 {
					fn(base+uint32(k), f)
				}
			}
		}
	}
}

// Len returns the number of slots with Count > 0.
func (s *Stats) Len() int {
	n := 0
	s.Each(func(uint32, Feature) { n++ })
	return n
}

// Features returns 1 + the largest slot with Count > 0 (0 when there is
// none).
func (s *Stats) Features() int {
	for p := s.pagesLen() - 1; p >= 0; p-- {
		if (p >= len(s.ones) || s.ones[p] == nil) && (p >= len(s.full) || s.full[p] == nil) {
			continue
		}
		for k := pageSize - 1; k >= 0; k-- {
			if s.at(p, k).Count > 0 {
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
	for p, opg := range o.ones {
		if opg == nil {
			continue
		}
		var pg []uint16
		for k, c := range opg {
			if c == 0 {
				continue
			}
			if pg == nil {
				pg = s.onesPage(uint32(p))
			}
			if sum := uint32(pg[k]) + uint32(c); sum < math.MaxUint16 {
				pg[k] = uint16(sum)
			} else {
				f := &s.fullPage(uint32(p))[k]
				f.addOnes(pg[k])
				f.addOnes(c)
				pg[k] = 0
			}
		}
	}
	for p, opg := range o.full {
		if opg == nil {
			continue
		}
		var pg []Feature
		for k := range opg {
			if opg[k].Count == 0 {
				continue
			}
			if pg == nil {
				pg = s.fullPage(uint32(p))
			}
			pg[k].merge(&opg[k])
		}
	}
}
