package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stratus-ml/stratus/dataset/partition"
)

// randomIndex is a ratings index of n random ratings over slots slots.
func randomIndex(slots, n int, seed uint64) *ratingIndex {
	r := rand.New(rand.NewPCG(seed, 1))
	us, is, rs := make([]uint32, n), make([]uint32, n), make([]float32, n)
	for k := range rs {
		us[k] = uint32(2 * r.IntN(sideLen(slots, 0)))
		is[k] = uint32(2*r.IntN(sideLen(slots, 1)) + 1)
		rs[k] = float32(3 + r.NormFloat64())
	}
	x, err := indexRatings(func(yield func(u, i uint32, r float32)) error {
		for k := range rs {
			yield(us[k], is[k], rs[k])
		}
		return nil
	}, slots)
	if err != nil {
		panic(err)
	}
	return x
}

// TestSolveALS checks each solved block against the normal equations it
// solves, built and solved here directly (a dense Gaussian elimination): a
// block of solveRange minimises its slot's ridge objective. Rank 3 and 4:
// alsGram builds G = [1, q, y] two columns at a time, and an odd rank leaves
// a last column alone.
func TestSolveALS(t *testing.T) {
	for _, rank := range []int{3, 4, 10} {
		t.Run(fmt.Sprintf("rank=%d", rank), func(t *testing.T) { testSolveALS(t, rank) })
	}
}

func testSolveALS(t *testing.T, rank int) {
	const slots = 41
	x := randomIndex(slots, 600, 3)
	w := alsInit(slots, rank, 5)
	k := rank + 1
	for side := 0; side < 2; side++ {
		n := sideLen(slots, side)
		p := alsParams{Rank: rank, Mean: 3, L2: 0.1, Slots: slots, Side: side, Lo: 1, Hi: n}
		out := make([]float32, (p.Hi-p.Lo)*k)
		rated, _ := solveALS(x, p, w, out)
		if rated == 0 {
			t.Fatal("no slot solved")
		}
		by := &x.by[side]
		for j := p.Lo; j < p.Hi; j++ {
			a := make([][]float64, k)
			for r := range a {
				a[r] = make([]float64, k+1)
			}
			rows := int(by.off[j+1] - by.off[j])
			for e := by.off[j]; e < by.off[j+1]; e++ {
				o := int(by.other[e])
				f := []float64{1}
				for c := 1; c < k; c++ {
					f = append(f, float64(w[o*k+c]))
				}
				y := float64(by.ratings[e]) - p.Mean - float64(w[o*k])
				for r := 0; r < k; r++ {
					for c := 0; c < k; c++ {
						a[r][c] += f[r] * f[c]
					}
					a[r][k] += f[r] * y
				}
			}
			got := out[(j-p.Lo)*k : (j-p.Lo+1)*k]
			if rows == 0 {
				for _, v := range got {
					if v != 0 {
						t.Fatalf("side %d slot %d has no ratings, block %v", side, j, got)
					}
				}
				continue
			}
			for r := 0; r < k; r++ {
				a[r][r] += p.L2 * float64(rows)
			}
			want := gauss(a)
			for c := range want {
				if math.Abs(float64(got[c])-want[c]) > 1e-4*math.Max(1, math.Abs(want[c])) {
					t.Fatalf("side %d slot %d: block %v, the normal equations' solution %v", side, j, got, want)
				}
			}
		}
	}
}

// gauss solves the augmented system a (n rows of n+1) by elimination with
// partial pivoting.
func gauss(a [][]float64) []float64 {
	n := len(a)
	for i := 0; i < n; i++ {
		p := i
		for r := i + 1; r < n; r++ {
			if math.Abs(a[r][i]) > math.Abs(a[p][i]) {
				p = r
			}
		}
		a[i], a[p] = a[p], a[i]
		for r := i + 1; r < n; r++ {
			f := a[r][i] / a[i][i]
			for c := i; c <= n; c++ {
				a[r][c] -= f * a[i][c]
			}
		}
	}
	x := make([]float64, n)
	for i := n - 1; i >= 0; i-- {
		s := a[i][n]
		for c := i + 1; c < n; c++ {
			s -= a[i][c] * x[c]
		}
		x[i] = s / a[i][i]
	}
	return x
}

// BenchmarkSolveALS is one half-step's solve of rank-10 blocks on the bench
// set's shape (6,000 users × 4,000 items, 900k ratings), per rating.
func BenchmarkSolveALS(b *testing.B) {
	const slots, rank, n = 12001, 10, 900_000
	x := randomIndex(slots, n, 1)
	w := alsInit(slots, rank, 1)
	p := alsParams{Rank: rank, Mean: 3, L2: 0.05, Slots: slots, Side: 0, Lo: 0, Hi: sideLen(slots, 0)}
	out := make([]float32, p.Hi*(rank+1))
	b.ResetTimer()
	for range b.N {
		solveALS(x, p, w, out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/rating")
}

// TestMFBatchBuild checks a worker's minibatch index over several builds of
// one scratch (the stamps of one build must not leak into the next): the
// keys are each distinct slot's, in increasing order, and every rating row
// points at its user's and item's blocks.
func TestMFBatchBuild(t *testing.T) {
	const rank = 2
	r := rand.New(rand.NewPCG(4, 5))
	m := newMFBatch(rank)
	for _, c := range []struct{ rows, users, items int }{{50, 400, 300}, {3000, 40, 30}, {7, 5000, 5000}, {1, 1, 1}} {
		var b partition.Batch
		b.Offsets = []uint32{0}
		for range c.rows {
			u, i := uint32(2*r.IntN(c.users)), uint32(2*r.IntN(c.items)+1)
			if r.IntN(2) == 0 {
				u, i = i, u // either order in the row
			}
			b.Indices = append(b.Indices, u, i)
			b.Offsets = append(b.Offsets, uint32(len(b.Indices)))
			b.Labels = append(b.Labels, 1)
		}
		// A row that is not a rating pair.
		b.Indices = append(b.Indices, 4)
		b.Offsets = append(b.Offsets, uint32(len(b.Indices)))
		b.Labels = append(b.Labels, 1)
		m.build(&b)
		want := map[uint32]bool{}
		for row := 0; row < b.Len(); row++ {
			u, i, ok := mfSlots(&b, row)
			if !ok {
				if m.users[row] != -1 || m.items[row] != -1 {
					t.Fatalf("row %d is not a pair, blocks %d, %d", row, m.users[row], m.items[row])
				}
				continue
			}
			want[u], want[i] = true, true
			if m.slots[m.users[row]] != u || m.slots[m.items[row]] != i {
				t.Fatalf("row %d (%d, %d): blocks of slots %d and %d", row, u, i, m.slots[m.users[row]], m.slots[m.items[row]])
			}
		}
		if len(m.slots) != len(want) || len(m.keys) != len(want)*(rank+1) || len(m.w) != len(m.keys) {
			t.Fatalf("%d slots, %d keys for %d distinct slots", len(m.slots), len(m.keys), len(want))
		}
		for n := 1; n < len(m.keys); n++ {
			if m.keys[n] <= m.keys[n-1] {
				t.Fatalf("keys not increasing at %d: %d, %d", n, m.keys[n-1], m.keys[n])
			}
		}
		for n, s := range m.slots {
			if !want[s] || m.keys[n*(rank+1)] != mfKey(s, 0, rank) {
				t.Fatalf("slot %d at %d: not in the batch, or key %d", s, n, m.keys[n*(rank+1)])
			}
		}
	}
}

// TestChooseMFSolver: auto trains with ALS unless the stage asks for SGD or
// its arguments, or the factors or the ratings are too large to hold.
func TestChooseMFSolver(t *testing.T) {
	base := Config{Solver: "auto", Rank: 10}
	for _, c := range []struct {
		name    string
		cfg     func(Config) Config
		dim     uint64
		ratings int64
		want    string
	}{
		{"fits", func(c Config) Config { return c }, 12001 * 11, 1e6, "als"},
		{"asked sgd", func(c Config) Config { c.Solver = "sgd"; return c }, 12001 * 11, 1e6, "sgd"},
		{"asked als", func(c Config) Config { c.Solver, c.Rank = "als", 500; return c }, 1 << 40, 1e12, "als"},
		{"sgd args", func(c Config) Config { c.SGDArgs = true; return c }, 12001 * 11, 1e6, "sgd"},
		{"rank", func(c Config) Config { c.Rank = alsMaxRank + 1; return c }, 12001 * 202, 1e6, "sgd"},
		{"model", func(c Config) Config { return c }, alsMaxModelBytes/4 + 1, 1e6, "sgd"},
		{"ratings", func(c Config) Config { return c }, 12001 * 11, fullBatchBytes/alsRatingBytes + 1, "sgd"},
	} {
		got, why := chooseMFSolver(c.cfg(base), c.dim, c.ratings)
		if got != c.want || why == "" {
			t.Errorf("%s: %s (%s), want %s", c.name, got, why, c.want)
		}
	}
}

// TestALSStalled: one slow sweep (the second, from the small initial
// factors) does not stop ALS; two without a real improvement do, and so do
// two that got worse.
func TestALSStalled(t *testing.T) {
	for _, c := range []struct {
		hist []float64
		want bool
	}{
		{[]float64{0.5964, 0.5938}, false},
		{[]float64{0.5964, 0.5962, 0.5960}, true},
		{[]float64{0.5964, 0.5962, 0.5792}, false},
		{[]float64{0.5344, 0.5339, 0.5337, 0.5337}, true},
		{[]float64{0.5344, 0.5339, 0.5337, 0.5331}, false},
		{[]float64{0.60, 0.55, 0.56, 0.57}, true},
	} {
		if got := alsStalled(c.hist, 1e-3); got != c.want {
			t.Errorf("alsStalled(%v) = %v, want %v", c.hist, got, c.want)
		}
	}
}
