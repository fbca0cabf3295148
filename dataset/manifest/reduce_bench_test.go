package manifest

import (
	"math/rand/v2"
	"testing"
)

// hashedStats makes one load task's statistics of Criteo-like rows: 13
// numeric features with real values in slots 0..12 and 26 hashed
// categorical entries of 1 in a 2^20-slot space.
func hashedStats(r *rand.Rand, rows int) *Stats {
	s := NewStats()
	idx := make([]uint32, 0, 39)
	val := make([]float32, 0, 39)
	for i := 0; i < rows; i++ {
		idx, val = idx[:0], val[:0]
		for k := uint32(0); k < 13; k++ {
			idx = append(idx, k)
			val = append(val, float32(r.ExpFloat64()*10))
		}
		seen := map[uint32]bool{}
		var cat []uint32
		for len(cat) < 26 {
			ix := 13 + uint32(r.IntN(1<<20))
			if !seen[ix] {
				seen[ix] = true
				cat = append(cat, ix)
			}
		}
		sortU32(cat)
		for _, ix := range cat {
			idx = append(idx, ix)
			val = append(val, 1)
		}
		s.AddRow(idx, val)
	}
	return s
}

// BenchmarkReduce200 reduces 200 tasks' statistics (2,000 rows each) the
// coordinator's way: sequential Stats.Merge (before) and the exact
// ReduceStats that Assemble now uses (the same reduction psstore merges
// compute).
func BenchmarkReduce200(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	list := make([]*Stats, 200)
	for i := range list {
		list[i] = hashedStats(r, 2000)
	}
	b.Run("merge", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			s := NewStats()
			for _, p := range list {
				s.Merge(p)
			}
		}
	})
	b.Run("reduce", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := ReduceStats(list); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStoreMerges200 is what the shards compute for 200 tasks'
// contributions: every block's merges, one after another (the shards run
// different blocks at once).
func BenchmarkStoreMerges200(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	contrib := make([]map[int][]byte, 200)
	var bytesIn, files int
	for i := range contrib {
		st := hashedStats(r, 2000)
		enc, err := st.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		files += len(enc)
		if contrib[i], err = ContributeStats(st, i, len(contrib), ReductionBlock); err != nil {
			b.Fatal(err)
		}
		for _, v := range contrib[i] {
			bytesIn += len(v)
		}
	}
	b.ResetTimer()
	var reduced int
	for i := 0; i < b.N; i++ {
		merged := map[int][]byte{}
		for _, c := range contrib {
			for blk, v := range c {
				var err error
				if merged[blk], err = MergeReductions(merged[blk], v); err != nil {
					b.Fatal(err)
				}
			}
		}
		reduced = 0
		for _, v := range merged {
			reduced += len(v)
		}
	}
	// What the coordinator reads: every task's statistics file (the blob
	// path), or the merged blocks (the psstore path).
	b.ReportMetric(float64(files), "coordinator-bytes-blob")
	b.ReportMetric(float64(reduced), "coordinator-bytes-store")
	b.ReportMetric(float64(bytesIn)/float64(len(contrib)), "operand-bytes/task")
}
