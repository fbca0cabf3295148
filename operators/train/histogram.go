package train

import (
	"math"
	"time"
)

// histogram counts durations in log-spaced buckets, ten per decade from 1 µs to 100 s,
// so workers can report per-iteration latency cheaply and the coordinator can merge
// them and read quantiles within about 12%.
type histogram struct {
	Counts []uint64 `json:"counts"`
}

const (
	histPerDecade = 10
	histDecades   = 8 // 1 µs … 100 s
	histBuckets   = histPerDecade*histDecades + 1
)

func newHistogram() histogram { return histogram{Counts: make([]uint64, histBuckets)} }

func histBucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	b := int(math.Log10(us)*histPerDecade) + 1
	return min(b, histBuckets-1)
}

// bucketValue is a representative duration for bucket b (its geometric middle).
func bucketValue(b int) time.Duration {
	if b == 0 {
		return time.Microsecond
	}
	us := math.Pow(10, (float64(b)-0.5)/histPerDecade)
	return time.Duration(us * float64(time.Microsecond))
}

func (h *histogram) add(d time.Duration) {
	if len(h.Counts) != histBuckets {
		*h = newHistogram()
	}
	h.Counts[histBucket(d)]++
}

func (h *histogram) merge(o histogram) {
	if len(h.Counts) != histBuckets {
		*h = newHistogram()
	}
	for i, c := range o.Counts {
		if i < len(h.Counts) {
			h.Counts[i] += c
		}
	}
}

func (h *histogram) total() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// quantile returns the duration below which a fraction q of the samples fall.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.total()
	if n == 0 {
		return 0
	}
	target := uint64(math.Ceil(q * float64(n)))
	var seen uint64
	for b, c := range h.Counts {
		seen += c
		if seen >= target {
			return bucketValue(b)
		}
	}
	return bucketValue(histBuckets - 1)
}
