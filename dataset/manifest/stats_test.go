package manifest

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// refFeature is the plain computation Stats is checked against.
type refFeature struct {
	count    int64
	min, max float64
	sum, sq  float64
}

type row struct {
	idx []uint32
	val []float32
}

// randomRows draws sparse rows over a wide slot space: many one-hot entries,
// some real values, explicit zeros, negatives and a few slots in far pages.
func randomRows(r *rand.Rand, n int) []row {
	rows := make([]row, n)
	for i := range rows {
		seen := map[uint32]bool{}
		k := r.IntN(12)
		var idx []uint32
		for j := 0; j < k; j++ {
			var ix uint32
			switch r.IntN(4) {
			case 0:
				ix = uint32(r.IntN(20))
			case 1:
				ix = uint32(r.IntN(1 << 20))
			case 2:
				ix = 1<<30 + uint32(r.IntN(3))
			default:
				ix = uint32(r.IntN(5000))
			}
			if !seen[ix] {
				seen[ix] = true
				idx = append(idx, ix)
			}
		}
		sortU32(idx)
		val := make([]float32, len(idx))
		for j := range val {
			switch r.IntN(5) {
			case 0, 1:
				val[j] = 1
			case 2:
				val[j] = 0
			default:
				val[j] = float32(r.NormFloat64() * 10)
			}
		}
		rows[i] = row{idx, val}
	}
	return rows
}

func sortU32(s []uint32) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func reference(rows []row) map[uint32]*refFeature {
	out := map[uint32]*refFeature{}
	for _, r := range rows {
		for k, i := range r.idx {
			f := out[i]
			if f == nil {
				f = &refFeature{min: math.Inf(1), max: math.Inf(-1)}
				out[i] = f
			}
			v := float64(r.val[k])
			f.count++
			f.min, f.max = math.Min(f.min, v), math.Max(f.max, v)
			f.sum += v
			f.sq += v * v
		}
	}
	return out
}

func closeTo(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func checkStats(t *testing.T, what string, s *Stats, rows []row) {
	t.Helper()
	ref := reference(rows)
	if s.Rows != int64(len(rows)) {
		t.Errorf("%s: %d rows, want %d", what, s.Rows, len(rows))
	}
	n := 0
	maxSlot := -1
	s.Each(func(i uint32, f Feature) {
		n++
		r := ref[i]
		if r == nil {
			t.Fatalf("%s: slot %d has statistics but no entries", what, i)
		}
		if f.Count != r.count || float64(f.Min) != r.min || float64(f.Max) != r.max || !closeTo(f.Sum, r.sum) || !closeTo(f.SumSq, r.sq) {
			t.Fatalf("%s: slot %d: %+v, want %+v", what, i, f, *r)
		}
		if g := s.Feature(i); g != f {
			t.Fatalf("%s: Feature(%d) = %+v, Each gave %+v", what, i, g, f)
		}
		maxSlot = int(i)
	})
	if n != len(ref) || s.Len() != n {
		t.Errorf("%s: %d slots (Len %d), want %d", what, n, s.Len(), len(ref))
	}
	if s.Features() != maxSlot+1 {
		t.Errorf("%s: Features %d, want %d", what, s.Features(), maxSlot+1)
	}
	if f := s.Feature(123456789); f.Count != 0 && ref[123456789] == nil {
		t.Errorf("%s: an absent slot has %+v", what, f)
	}
}

func TestStatsAddMergeEncode(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	rows := randomRows(r, 3000)
	whole := NewStats()
	for _, x := range rows {
		whole.AddRow(x.idx, x.val)
	}
	checkStats(t, "one pass", whole, rows)

	// Three parts merged give the same.
	merged := NewStats()
	for _, part := range [][]row{rows[:1000], rows[1000:1001], rows[1001:]} {
		s := NewStats()
		for _, x := range part {
			s.AddRow(x.idx, x.val)
		}
		merged.Merge(s)
	}
	merged.Merge(nil)
	merged.Merge(NewStats())
	checkStats(t, "merged", merged, rows)

	// Encoding round-trips exactly.
	b, err := whole.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeStats(b)
	if err != nil {
		t.Fatal(err)
	}
	checkStats(t, "decoded", dec, rows)
	b2, _ := dec.MarshalBinary()
	if string(b) != string(b2) {
		t.Error("re-encoding the decoded statistics gives other bytes")
	}
	// And decoded statistics merge like any others.
	dec.Merge(whole)
	checkStats(t, "decoded+whole", dec, append(append([]row(nil), rows...), rows...))
}

// TestStatsOnesSpill counts more ones in a slot than a 2-byte counter holds,
// through AddRow (all-ones rows and explicit values), Merge and decoding.
func TestStatsOnesSpill(t *testing.T) {
	s := NewStats()
	const n = 3*math.MaxUint16 + 17
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			s.AddRow([]uint32{7, 70000}, nil)
		} else {
			s.AddRow([]uint32{7, 70000}, []float32{1, 1})
		}
	}
	s.AddRow([]uint32{7}, []float32{2.5})
	want7 := Feature{Count: n + 1, Min: 1, Max: 2.5, Sum: n + 2.5, SumSq: n + 6.25}
	want := Feature{Count: n, Min: 1, Max: 1, Sum: n, SumSq: n}
	if f := s.Feature(7); f != want7 {
		t.Errorf("slot 7: %+v, want %+v", f, want7)
	}
	if f := s.Feature(70000); f != want {
		t.Errorf("slot 70000: %+v, want %+v", f, want)
	}
	m := NewStats()
	m.Merge(s)
	m.Merge(s)
	double := Feature{Count: 2 * n, Min: 1, Max: 1, Sum: 2 * n, SumSq: 2 * n}
	if f := m.Feature(70000); f != double {
		t.Errorf("merged slot 70000: %+v, want %+v", f, double)
	}
	b, _ := m.MarshalBinary()
	d, err := DecodeStats(b)
	if err != nil {
		t.Fatal(err)
	}
	if f := d.Feature(70000); f != double {
		t.Errorf("decoded slot 70000: %+v, want %+v", f, double)
	}
	if len(b) > codecHeader+40 {
		t.Errorf("two slots took %d bytes", len(b))
	}
}

func TestMoments(t *testing.T) {
	for _, c := range []struct {
		name                   string
		f                      Feature
		rows                   int64
		min, max, mean, varnce float64
	}{
		// Values 2 and 4 in 2 of 4 rows: the data is 2, 4, 0, 0.
		{"implicit zeros", Feature{Count: 2, Min: 2, Max: 4, Sum: 6, SumSq: 20}, 4, 0, 4, 1.5, 20.0/4 - 2.25},
		// Every row stores it: no zero.
		{"dense", Feature{Count: 2, Min: 2, Max: 4, Sum: 6, SumSq: 20}, 2, 2, 4, 3, 1},
		{"negative", Feature{Count: 1, Min: -3, Max: -3, Sum: -3, SumSq: 9}, 3, -3, 0, -1, 3 - 1},
		{"constant", Feature{Count: 5, Min: 7, Max: 7, Sum: 35, SumSq: 245}, 5, 7, 7, 7, 0},
		{"absent", Feature{}, 5, 0, 0, 0, 0},
	} {
		mn, mx, mean, v := c.f.Moments(c.rows)
		if mn != c.min || mx != c.max || !closeTo(mean, c.mean) || !closeTo(v, c.varnce) {
			t.Errorf("%s: moments %g %g %g %g, want %g %g %g %g", c.name, mn, mx, mean, v, c.min, c.max, c.mean, c.varnce)
		}
	}
}

func TestStatsCorrupt(t *testing.T) {
	s := NewStats()
	s.AddRow([]uint32{1, 5, 9000}, []float32{1, -2, 3.5})
	s.AddRow([]uint32{5}, []float32{1})
	b, _ := s.MarshalBinary()
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short", b[:20]},
		{"truncated", b[:len(b)-3]},
		{"flipped", flip(b, len(b)-2)},
		{"magic", append([]byte("STRA"), b[4:]...)},
		{"trailing", append(append([]byte(nil), b...), 0)},
	} {
		if _, err := DecodeStats(c.data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", c.name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x40
	return out
}

func FuzzDecodeStats(f *testing.F) {
	s := NewStats()
	s.AddRow([]uint32{1, 5, 9000}, []float32{1, -2, 3.5})
	s.AddRow([]uint32{5, 1 << 29}, nil)
	b, _ := s.MarshalBinary()
	f.Add(b)
	f.Add(b[:codecHeader])
	f.Add([]byte("STRS"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeStats(data)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes the same.
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		s2, err := DecodeStats(b)
		if err != nil || s2.Len() != s.Len() || s2.Rows != s.Rows {
			t.Fatalf("round trip: %v", err)
		}
	})
}
