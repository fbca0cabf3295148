package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/partition"
)

// randomPartition builds a partition of n rows with up to k features each out of
// dim-1, real values when binary is false.
func randomPartition(t testing.TB, rng *rand.Rand, n, k int, dim uint64, binary bool) *partition.Partition {
	t.Helper()
	var rows []dataset.Row
	for i := 0; i < n; i++ {
		r := &dataset.Row{Label: float32(rng.IntN(2))}
		seen := map[uint32]bool{}
		for j := 0; j < k; j++ {
			f := uint32(rng.Uint64N(dim - 1))
			if seen[f] {
				continue
			}
			seen[f] = true
			r.Indices = append(r.Indices, f)
			v := float32(1)
			if !binary {
				v = float32(rng.NormFloat64())
			}
			r.Values = append(r.Values, v)
		}
		sortRow(r)
		rows = append(rows, *r)
	}
	data, err := partition.Encode(rows)
	if err != nil {
		t.Fatal(err)
	}
	p, err := partition.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sortRow(r *dataset.Row) {
	for i := 1; i < len(r.Indices); i++ {
		for j := i; j > 0 && r.Indices[j] < r.Indices[j-1]; j-- {
			r.Indices[j], r.Indices[j-1] = r.Indices[j-1], r.Indices[j]
			r.Values[j], r.Values[j-1] = r.Values[j-1], r.Values[j]
		}
	}
}

// TestGradientFiniteDifferences checks the analytic gradient of the mean logistic
// loss against central differences, for real-valued and binary data.
func TestGradientFiniteDifferences(t *testing.T) {
	for _, binary := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(1, 2))
		const dim = 50
		p := randomPartition(t, rng, 20, 6, dim, binary)
		b := p.Batch(0, p.Rows())
		m := newMinibatch(dim)
		m.build(b)
		for i := range m.w {
			m.w[i] = float32(rng.NormFloat64() * 0.5)
		}
		m.gradient(b)
		analytic := append([]float32(nil), m.g...)
		w0 := append([]float32(nil), m.w...)
		lossAt := func(w []float32) float64 {
			// Evaluate in float64 from the batch directly, independent of gradient().
			var loss float64
			for r := 0; r < b.Len(); r++ {
				idx, vals := b.Row(r)
				z := float64(w[0])
				for e, f := range idx {
					v := 1.0
					if vals != nil {
						v = float64(vals[e])
					}
					z += float64(w[slotOf(m, uint64(f))]) * v
				}
				loss += logistic(z, float64(b.Labels[r]))
			}
			return loss / float64(b.Len())
		}
		const h = 1e-3
		for i := range w0 {
			plus := append([]float32(nil), w0...)
			minus := append([]float32(nil), w0...)
			plus[i] += h
			minus[i] -= h
			numeric := (lossAt(plus) - lossAt(minus)) / (2 * h)
			if d := math.Abs(numeric - float64(analytic[i])); d > 1e-3 {
				t.Errorf("binary=%v key %d: analytic %.6f, numeric %.6f", binary, m.keys[i], analytic[i], numeric)
			}
		}
	}
}

func slotOf(m *minibatch, k uint64) int {
	for i, x := range m.keys {
		if x == k {
			return i
		}
	}
	panic("key not in batch")
}

func TestMinibatchKeysDistinct(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dim := range []uint64{64, denseLimit + 10} {
		p := randomPartition(t, rng, 30, 10, 64, false)
		m := newMinibatch(dim)
		for round := 0; round < 2; round++ { // the second build must see a clean lookup
			b := p.Batch(0, p.Rows())
			m.build(b)
			seen := map[uint64]bool{}
			for _, k := range m.keys {
				if seen[k] {
					t.Fatalf("dim %d: key %d twice", dim, k)
				}
				seen[k] = true
			}
			if m.keys[0] != dim-1 {
				t.Fatalf("intercept key %d, want %d", m.keys[0], dim-1)
			}
			for e, f := range b.Indices {
				if m.keys[m.slot[e]] != uint64(f) {
					t.Fatalf("entry %d: slot key %d, feature %d", e, m.keys[m.slot[e]], f)
				}
			}
		}
	}
}

func TestEvaluate(t *testing.T) {
	p := []float64{0.9, 0.8, 0.3, 0.2, 0.6}
	y := []float32{1, 1, 0, 0, 0}
	m := evaluate(p, y)
	want := -(math.Log(0.9) + math.Log(0.8) + math.Log(0.7) + math.Log(0.8) + math.Log(0.4)) / 5
	if math.Abs(m.Logloss-want) > 1e-12 {
		t.Errorf("logloss %v, want %v", m.Logloss, want)
	}
	if m.Accuracy != 0.8 {
		t.Errorf("accuracy %v, want 0.8", m.Accuracy)
	}
	// Positives 0.9, 0.8 outrank all three negatives: AUC 1.
	if m.AUC != 1 {
		t.Errorf("auc %v, want 1", m.AUC)
	}
	// Ties count half.
	if a := auc([]float64{0.5, 0.5}, []float32{1, 0}); a != 0.5 {
		t.Errorf("tied auc %v", a)
	}
	if a := auc([]float64{0.1, 0.9, 0.4, 0.6}, []float32{1, 0, 1, 0}); a != 0 {
		t.Errorf("inverted auc %v", a)
	}
}
