package manifest

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// randomStats makes statistics over rows rows with entries of 1 and of
// other values, over a space of 3 reduction blocks.
func randomStats(r *rand.Rand, rows int) *Stats {
	s := NewStats()
	for i := 0; i < rows; i++ {
		var idx []uint32
		var val []float32
		for ix := uint32(r.IntN(50)); ix < 3*ReductionBlock; ix += 1 + uint32(r.IntN(20000)) {
			idx = append(idx, ix)
			if r.IntN(2) == 0 {
				val = append(val, 1)
			} else {
				val = append(val, float32(r.NormFloat64()*1e3))
			}
		}
		s.AddRow(idx, val)
	}
	return s
}

func encoded(t *testing.T, s *Stats) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Contributions merged in any order, some of them twice, reduce to the
// same statistics as ReduceStats; one or two contributions reduce to what
// Stats.Merge gives.
func TestReductionOrderAndRetries(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 7
	list := make([]*Stats, n)
	for i := range list {
		list[i] = randomStats(r, 40)
	}
	want, err := ReduceStats(list)
	if err != nil {
		t.Fatal(err)
	}
	wantB := encoded(t, want)
	contrib := make([]map[int][]byte, n)
	for i, s := range list {
		if contrib[i], err = ContributeStats(s, i, n, ReductionBlock); err != nil {
			t.Fatal(err)
		}
	}
	var rows int64
	for _, s := range list {
		rows += s.Rows
	}
	for round := 0; round < 20; round++ {
		order := r.Perm(n)
		order = append(order, order[:r.IntN(n)]...) // retried tasks merge again
		r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		merged := map[int][]byte{}
		for _, t0 := range order {
			for b, v := range contrib[t0] {
				if merged[b], err = MergeReductions(merged[b], v); err != nil {
					t.Fatal(err)
				}
			}
		}
		got, err := DecodeReductions(merged, rows, ReductionBlock, func(int) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(encoded(t, got), wantB) {
			t.Fatalf("round %d (order %v): the reduction differs", round, order)
		}
	}
	for _, k := range []int{1, 2} {
		seq := NewStats()
		for _, s := range list[:k] {
			seq.Merge(s)
		}
		got, err := ReduceStats(list[:k])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(encoded(t, got), encoded(t, seq)) {
			t.Errorf("%d contribution(s): the reduction differs from Stats.Merge", k)
		}
	}
}

// A reduction that holds a contribution the caller did not expect, values
// of different totals and malformed bytes are errors.
func TestReductionErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	s := randomStats(r, 5)
	a, err := ContributeStats(s, 0, 2, ReductionBlock)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ContributeStats(s, 0, 3, ReductionBlock)
	if _, err := MergeReductions(a[0], b[0]); err == nil {
		t.Error("values of 2 and 3 contributions merged")
	}
	if _, err := DecodeReductions(a, s.Rows, ReductionBlock, func(t int) bool { return t != 0 }); err == nil {
		t.Error("an unexpected contribution was accepted")
	}
	for _, bad := range [][]byte{nil, []byte("STRD1"), append(append([]byte{}, a[0]...), 0), a[0][:len(a[0])-1]} {
		if _, err := MergeReductions(nil, bad); err == nil {
			t.Errorf("malformed operand %q merged", bad)
		}
	}
}
