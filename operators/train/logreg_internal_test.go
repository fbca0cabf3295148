package train

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/fileblob"
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/dataset/partition"
	"github.com/stratus-ml/stratus/dataset/prefetch"
)

// TestLogisticSigmoidMatches holds the fused loss-and-probability to the two
// functions it replaces in the gradient loops, bit for bit, including the
// extremes where one exponential under- or overflows.
func TestLogisticSigmoidMatches(t *testing.T) {
	zs := []float64{0, math.Copysign(0, -1), 1e-300, -1e-300, 0.5, -0.5, 1, -1, 3.7, -3.7, 20, -20, 36.5, -36.5, 709, -709, 745, -745, 1e6, -1e6}
	for i := 0; i < 2000; i++ {
		zs = append(zs, float64(i-1000)/37)
	}
	for _, z := range zs {
		for _, y := range []float64{0, 1} {
			l, p := logisticSigmoid(z, y)
			if wl, wp := logistic(z, y), sigmoid(z); math.Float64bits(l) != math.Float64bits(wl) || math.Float64bits(p) != math.Float64bits(wp) {
				t.Fatalf("z %g y %g: logisticSigmoid = (%v, %v), logistic, sigmoid = (%v, %v)", z, y, l, p, wl, wp)
			}
		}
	}
}

// TestGradientTolIsLiblinears holds the full-batch solver's gradient rule to
// liblinear's default for its primal solvers: 0.01·max(min(pos, neg), 1)/rows
// for a binary classifier, gradTol for the rest.
func TestGradientTolIsLiblinears(t *testing.T) {
	binary := &manifest.Labels{Distinct: []manifest.LabelCount{{Value: -1, Count: 24720}, {Value: 1, Count: 7841}}, Integer: true}
	for _, c := range []struct {
		model  string
		labels *manifest.Labels
		rows   int64
		want   float64
	}{
		{"logistic_regression", binary, 32561, 0.01 * 7841 / 32561},
		{"linear_svm", binary, 32561, 0.01 * 7841 / 32561},
		{"logistic_regression", &manifest.Labels{Distinct: []manifest.LabelCount{{Value: 0, Count: 10}}, Integer: true}, 10, 0.01 * 1 / 10},
		{"softmax", binary, 32561, gradTol},
		{"linear_regression", &manifest.Labels{Many: true}, 1000, gradTol},
		{"logistic_regression", nil, 100, gradTol},
	} {
		if got := gradientTol(c.model, c.labels, c.rows); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("gradientTol(%s, %d rows) = %g, want %g", c.model, c.rows, got, c.want)
		}
	}
}

// TestLossGradChunked: the chunked gradient pass covers every row once and
// agrees with the sequential one to rounding, on batches with and without
// values, and its chunks depend on the data alone.
func TestLossGradChunked(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const dim = 301
	mk := func(rows int, ones bool) partition.Batch {
		b := partition.Batch{Offsets: []uint32{7}} // offsets need not start at 0
		for r := 0; r < rows; r++ {
			n := 1 + rng.IntN(40)
			for e := 0; e < n; e++ {
				b.Indices = append(b.Indices, uint32(rng.IntN(dim+50))) // some fold
				if !ones {
					b.Values = append(b.Values, float32(rng.NormFloat64()))
				}
			}
			b.Offsets = append(b.Offsets, b.Offsets[len(b.Offsets)-1]+uint32(n))
			b.Labels = append(b.Labels, float32(rng.IntN(2)))
		}
		return b
	}
	w := make([]float64, dim)
	for i := range w {
		w[i] = rng.NormFloat64() / 10
	}
	for _, ones := range []bool{true, false} {
		s := &evalSet{parts: []partition.Batch{mk(3000, ones), mk(17, ones), mk(9000, ones), mk(1, ones)}}
		chunks := splitSet(s, 20_000, maxGradChunks)
		rows := 0
		for _, c := range chunks {
			for _, b := range c.parts {
				rows += b.Len()
			}
		}
		if len(chunks) < 2 || rows != 12018 {
			t.Fatalf("ones %v: %d chunks of %d rows in all; want several, 12018 rows", ones, len(chunks), rows)
		}
		g1, g2 := make([]float64, dim), make([]float64, dim)
		l1, n1 := lossGrad(s, w, g1, logisticLossFunc)
		var l2 float64
		var n2 int
		for _, c := range chunks {
			gc := make([]float64, dim)
			l, n := lossGrad(c, w, gc, logisticLossFunc)
			l2, n2 = l2+l, n2+n
			for j := range gc {
				g2[j] += gc[j]
			}
		}
		g3 := make([]float64, dim)
		l3, n3 := lossGradChunked(&evalSet{parts: s.parts}, w, g3, logisticLossFunc)
		if n1 != 12018 || n2 != n1 || n3 != n1 || math.Abs(l1-l2) > 1e-9*math.Abs(l1) || math.Abs(l3-l1) > 1e-9*math.Abs(l1) {
			t.Fatalf("ones %v: rows %d %d %d, losses %v %v %v", ones, n1, n2, n3, l1, l2, l3)
		}
		for j := range g1 {
			if math.Abs(g1[j]-g2[j]) > 1e-9*(1+math.Abs(g1[j])) {
				t.Fatalf("ones %v: gradient %d: sequential %v, over the chunks %v", ones, j, g1[j], g2[j])
			}
		}
	}
}

// countingStore counts Gets.
type countingStore struct {
	blob.Store
	gets atomic.Int32
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, key)
}

// TestSharesSharePartitions: the full-batch solver's training and held-out
// shares of one partition read it once, each sees its own rows with labels
// read once (−1/+1 as 0/1), and another model's share reads it afresh.
func TestSharesSharePartitions(t *testing.T) {
	ctx := context.Background()
	fs, err := fileblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStore{Store: fs}
	w := partition.NewStoreWriter(ctx, fs, "p/", 0)
	for i := range 100 {
		label := float32(-1)
		if i%3 == 0 {
			label = 1
		}
		if err := w.Add(&dataset.Row{Label: label, Indices: []uint32{uint32(i % 7)}, Values: []float32{1}}); err != nil {
			t.Fatal(err)
		}
	}
	parts, err := w.Close()
	if err != nil || len(parts) != 1 {
		t.Fatalf("%d partitions, %v", len(parts), err)
	}
	key := parts[0].Key
	train := []prefetch.Unit{{Key: key, Lo: 0, Hi: 45}, {Key: key, Lo: 55, Hi: -1}}
	held := []prefetch.Unit{{Key: key, Lo: 45, Hi: 55}}
	a, err := cachedShare(ctx, st, "", train, 0, 1, "logistic_regression", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cachedShare(ctx, st, "", held, 0, 1, "logistic_regression", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.gets.Load(); n != 1 {
		t.Errorf("%d reads of the partition for two shares of it; want 1", n)
	}
	if len(a.ys) != 90 || len(b.ys) != 10 {
		t.Fatalf("shares of %d and %d rows; want 90 and 10", len(a.ys), len(b.ys))
	}
	for i, y := range append(append([]float32(nil), a.ys...), b.ys...) {
		if y != 0 && y != 1 {
			t.Fatalf("label %d is %v: labels read twice, or not at all", i, y)
		}
	}
	for k, y := range b.ys { // rows 45 to 54: +1 on every third row, else −1
		want := float32(0)
		if (45+k)%3 == 0 {
			want = 1
		}
		if y != want {
			t.Fatalf("held-out row %d has label %v, want %v", 45+k, y, want)
		}
	}
	if _, err := cachedShare(ctx, st, "", held, 0, 1, "linear_regression", nil); err != nil {
		t.Fatal(err)
	}
	if n := st.gets.Load(); n != 2 {
		t.Errorf("%d reads after a linear_regression share; want 2 (its labels are read as they are)", n)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
}
