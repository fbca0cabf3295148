package train

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/prefetch"
	"github.com/stratus-ml/stratus/operators"
)

// Alternating least squares (solver = "als", which solver = "auto" picks
// for matrix factorization when the factors fit; see chooseMFSolver). The
// objective is mf.go's; with the items fixed it is, for each user u
// separately, a ridge regression of r − μ − b_i on [1, q_i] over u's
// ratings with λ·n_u on [b_u, p_u] — solved exactly by the normal equations
//
//	(Σ fᵢfᵢᵀ + λ n_u I) x_u = Σ (r − μ − b_i) fᵢ,   fᵢ = [1, q_i]
//
// and the same for each item with the users fixed. One sweep is a user
// half-step and an item half-step, each a map-reduce wave of
// "train.mf_als" tasks over ranges of the side's slots: every task holds
// the whole training set (read once per function and kept in its data
// cache, indexed by user and by item), reads the current model from
// psstore's key-value face, solves its range's blocks and writes them back
// under its own key; the coordinator patches the model with them. The item
// tasks also score the held-out ratings of their items with the model after
// the sweep, so each sweep is one evaluation and no wave more.
//
// It stops at the first of:
//
//	converged  the best held-out RMSE of the last alsWindow sweeps improves on
//	           the best before them by less than epsilon (default alsTol)
//	           relative — one slow sweep does not stop it —; the weights of
//	           the best sweep are kept;
//	epochs     epochs sweeps (alsMaxSweeps when epochs is not given);
//	timeout, or a stop request.
//
// A slot without training ratings has n = 0 and solves to all zeros, as the
// exported model's unknown slots are.
const (
	// KindMFALS solves one side's blocks over a range of slots.
	KindMFALS = "train.mf_als"
	// alsTol is the relative improvement of the held-out RMSE over
	// alsWindow sweeps that earns another. On the bench set (`make bench-mf`,
	// rank 10, epochs = 15: all the training ratings, scored on the test set)
	// the sweeps reach 0.5964, 0.5938, 0.5792, 0.5585, 0.5439, 0.5368,
	// 0.5344, 0.5339, 0.5337, 0.5337 and stay there (numpy's 10 sweeps:
	// 0.5337): the rule stops within 0.03% of the limit.
	alsTol       = 1e-3
	alsMaxSweeps = 100
	// alsMaxRank and alsMaxModelBytes bound what auto trains with ALS: every
	// slot's normal equations are (rank+1)² floats solved by Cholesky, and
	// the whole model travels as one psstore value, which a shard caps at
	// 64 MiB by default (psstore Options.MaxValueBytes; a larger model failed
	// its first half-step); larger models train with SGD.
	alsMaxRank       = 200
	alsMaxModelBytes = 64 << 20
)

// alsRatingBytes is what a function holds per training rating while ALS
// runs: its index by user and by item (8 bytes each) and the 12 bytes a
// rating of the list it is built from.
const alsRatingBytes = 28

// chooseMFSolver resolves cfg.Solver for matrix factorization and says why:
// "sgd" and "als" as given; "auto" is "sgd" when the stage gives an SGD
// argument (optimizer, learning_rate, minibatch), the rank exceeds
// alsMaxRank, the model alsMaxModelBytes or the ratings' index
// fullBatchBytes, else "als".
func chooseMFSolver(cfg Config, dim uint64, ratings int64) (solver, why string) {
	cfg.Model = "matrix_factorization"
	k := int64(max(cfg.Rank+1, 1))
	slots := (int64(dim) + k - 1) / k // dim is slots × (rank+1)
	p := solverRule(cfg, Known{Rows: Exact(ratings), Features: Exact(slots)})
	return p.Solver, p.Why
}

// alsParams are a "train.mf_als" task's parameters.
type alsParams struct {
	Rank  int     `json:"rank"`
	Mean  float64 `json:"mean"`
	L2    float64 `json:"l2"`
	Slots int     `json:"slots"`
	// Side is 0 for users (even slots), 1 for items (odd slots); the task
	// solves the side's slots 2j+Side for j in [Lo, Hi).
	Side int `json:"side"`
	Lo   int `json:"lo"`
	Hi   int `json:"hi"`
	// WKey holds the model (Slots·(Rank+1) little-endian float32s); OutKey
	// receives the range's solved blocks, (Hi−Lo)·(Rank+1) float32s.
	WKey   string   `json:"w"`
	OutKey string   `json:"out"`
	Train  unitList `json:"train"`
	// Held, when set, is scored: its ratings of the range's slots, with the
	// solved blocks and the model's other side.
	Held *unitList `json:"held,omitempty"`
}

// alsResult is a "train.mf_als" task's output.
type alsResult struct {
	Rated    int     `json:"rated"` // slots of the range with ratings
	Ratings  int     `json:"ratings"`
	HeldSq   float64 `json:"held_sq"`
	HeldAbs  float64 `json:"held_abs"`
	HeldRows int     `json:"held_rows"`
}

// ratingIndex is a ratings set indexed by user and by item: by[side] lists,
// for side index j (slot 2j+side), the other side's slots and the ratings
// at off[j] … off[j+1].
type ratingIndex struct {
	by [2]struct {
		off     []int32
		other   []uint32
		ratings []float32
	}
	n int
}

// alsData caches the rating indexes a function built, by unit list, so the
// sweeps after the first read and index no data. It is safe to lose and
// holds a few sets (a grid search's trials on one set share one).
var alsData = struct {
	sync.Mutex
	m     map[string]*alsEntry
	order []string
}{m: map[string]*alsEntry{}}

type alsEntry struct {
	once sync.Once
	idx  *ratingIndex
	err  error
	size int64 // idx.bytes(), set under alsData's lock once built
}

// bytes is what the index holds.
func (x *ratingIndex) bytes() int64 {
	var n int64
	for _, by := range x.by {
		n += int64(4*len(by.off) + 4*len(by.other) + 4*len(by.ratings))
	}
	return n
}

const alsDataEntries = 4

func cachedRatingIndex(ctx context.Context, st blob.Store, ul unitList, slots int) (*ratingIndex, error) {
	b, _ := json.Marshal(ul)
	id := st.URI("") + "\x00" + string(b) + "\x00" + strconv.Itoa(slots)
	alsData.Lock()
	e := alsData.m[id]
	if e == nil {
		e = &alsEntry{}
		alsData.m[id] = e
		alsData.order = append(alsData.order, id)
		if len(alsData.order) > alsDataEntries {
			delete(alsData.m, alsData.order[0])
			alsData.order = alsData.order[1:]
		}
	}
	alsData.Unlock()
	e.once.Do(func() { e.idx, e.err = loadRatingIndex(ctx, st, ul, slots) })
	alsData.Lock()
	defer alsData.Unlock()
	if e.err != nil {
		if alsData.m[id] == e {
			delete(alsData.m, id) // retried, not remembered
			alsData.order = slices.DeleteFunc(alsData.order, func(k string) bool { return k == id })
		}
		return nil, e.err
	}
	// Within dataCacheLimit: forget the oldest others (their functions still
	// hold what they use).
	if e.size == 0 {
		e.size = e.idx.bytes()
	}
	var total int64
	for _, k := range alsData.order {
		if x := alsData.m[k]; x != nil {
			total += x.size
		}
	}
	for len(alsData.order) > 1 && total > dataCacheLimit && alsData.order[0] != id {
		old := alsData.order[0]
		if x := alsData.m[old]; x != nil {
			total -= x.size
		}
		delete(alsData.m, old)
		alsData.order = alsData.order[1:]
	}
	return e.idx, nil
}

func loadRatingIndex(ctx context.Context, st blob.Store, ul unitList, slots int) (*ratingIndex, error) {
	units := ul.Units
	if ul.Key != "" {
		var err error
		if units, err = loadUnits(ctx, st, ul.Key); err != nil {
			return nil, err
		}
	}
	// Two reads of the partitions (count, then fill) rather than one into
	// temporary lists: a read costs less than the memory the lists and their
	// growth would add to the function's peak.
	each := func(yield func(u, i uint32, r float32)) error {
		it := prefetch.New(ctx, st, units, prefetch.Options{Minibatch: 1 << 30, Buffer: 2})
		defer it.Close()
		for {
			b, err := it.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read ratings: %w", err)
			}
			for r := 0; r < b.Len(); r++ {
				u, i, ok := mfSlots(&b, r)
				if ok && int(u) < slots && int(i) < slots {
					yield(u, i, b.Labels[r])
				}
			}
		}
	}
	return indexRatings(each, slots)
}

// indexRatings indexes the ratings (user slot, item slot, rating) that each
// yields by user and by item, by a counting sort on each side: each is
// called twice, to count and to fill, and must yield the same ratings both
// times.
func indexRatings(each func(yield func(u, i uint32, r float32)) error, slots int) (*ratingIndex, error) {
	x := &ratingIndex{}
	for side := range 2 {
		x.by[side].off = make([]int32, sideLen(slots, side)+1)
	}
	u0, i0 := x.by[0].off, x.by[1].off
	if err := each(func(u, i uint32, _ float32) {
		u0[u/2+1]++
		i0[i/2+1]++
		x.n++
	}); err != nil {
		return nil, err
	}
	var next [2][]int32
	for side := range 2 {
		by := &x.by[side]
		n := len(by.off) - 1
		for j := 0; j < n; j++ {
			by.off[j+1] += by.off[j]
		}
		next[side] = append([]int32(nil), by.off[:n]...)
		by.other, by.ratings = make([]uint32, x.n), make([]float32, x.n)
	}
	filled, bad := 0, false
	bu, bi := &x.by[0], &x.by[1]
	nu, ni := next[0], next[1]
	if err := each(func(u, i uint32, r float32) {
		filled++
		p, q := nu[u/2], ni[i/2]
		if bad || p >= bu.off[u/2+1] || q >= bi.off[i/2+1] {
			bad = true // more ratings of u or i than the count: not the same ratings
			return
		}
		nu[u/2], ni[i/2] = p+1, q+1
		bu.other[p], bu.ratings[p] = i, r
		bi.other[q], bi.ratings[q] = u, r
	}); err != nil {
		return nil, err
	}
	if bad || filled != x.n {
		return nil, fmt.Errorf("read ratings: the second read of the training set yielded other ratings than the first (%d, then %d)", x.n, filled)
	}
	return x, nil
}

// sideLen is the number of slots 2j+side below slots.
func sideLen(slots, side int) int { return (slots - side + 1) / 2 }

// runMFALS is the "train.mf_als" task.
func runMFALS(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p alsParams
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	st, err := env.Blob(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := env.PSStore(ctx)
	if err != nil {
		return nil, err
	}
	k := p.Rank + 1
	raw, err := ps.Get(ctx, p.WKey)
	if err != nil {
		return nil, fmt.Errorf("read the model: %w", err)
	}
	w, err := decodeF32(raw, uint64(p.Slots*k))
	if err != nil {
		return nil, fmt.Errorf("read the model %s: %w", p.WKey, err)
	}
	train, err := cachedRatingIndex(ctx, st, p.Train, p.Slots)
	if err != nil {
		return nil, err
	}
	out := make([]float32, (p.Hi-p.Lo)*k)
	res := alsResult{}
	res.Rated, res.Ratings = solveALS(train, p, w, out)
	if p.Held != nil {
		held, err := cachedRatingIndex(ctx, st, *p.Held, p.Slots)
		if err != nil {
			return nil, err
		}
		by := &held.by[p.Side]
		var e ratingErrors
		for j := p.Lo; j < p.Hi; j++ {
			x := out[(j-p.Lo)*k : (j-p.Lo+1)*k]
			for n := by.off[j]; n < by.off[j+1]; n++ {
				o := int(by.other[n])
				e.add(mfPredict(p.Mean, x, w[o*k:(o+1)*k]), by.ratings[n])
			}
		}
		res.HeldSq, res.HeldAbs, res.HeldRows = e.sq, e.abs, e.n
	}
	b := make([]byte, 4*len(out))
	for n, x := range out {
		binary.LittleEndian.PutUint32(b[4*n:], math.Float32bits(x))
	}
	if err := ps.Put(ctx, p.OutKey, b); err != nil {
		return nil, fmt.Errorf("write the solved blocks: %w", err)
	}
	doc, _ := json.Marshal(res)
	return &operators.Result{Output: doc}, nil
}

// solveALS solves the blocks of p's range into out, on the function's cores
// (chunks of the range; each block's solution does not depend on the
// others), and returns how many slots had ratings and how many ratings.
func solveALS(x *ratingIndex, p alsParams, w, out []float32) (rated, ratings int) {
	n := p.Hi - p.Lo
	chunks := min(runtime.GOMAXPROCS(0), max(1, n/256))
	counts := make([][2]int, chunks)
	parallel(chunks, func(c int) {
		counts[c] = solveRange(x, p, w, out, p.Lo+n*c/chunks, p.Lo+n*(c+1)/chunks)
	})
	for _, c := range counts {
		rated, ratings = rated+c[0], ratings+c[1]
	}
	return rated, ratings
}

// solveRange solves the blocks of side indices [lo, hi). For each slot it
// gathers the columns G = [1, q₁ … q_k, y] of its ratings (q the other
// side's factor, y = r − μ − the other side's bias), so that the normal
// equations are the lower triangle of GᵀG, computed two rows by two columns
// at a time (alsGram): contiguous loads, no stores in the inner loop.
func solveRange(x *ratingIndex, p alsParams, w, out []float32, lo, hi int) [2]int {
	k := p.Rank + 1
	m := k + 1 // the columns of G
	by := &x.by[p.Side]
	g := make([]float64, m*m)
	a := make([]float64, k*k)
	rhs := make([]float64, k)
	var cols []float64
	var cnt [2]int
	for j := lo; j < hi; j++ {
		dst := out[(j-p.Lo)*k : (j-p.Lo+1)*k]
		first, last := int(by.off[j]), int(by.off[j+1])
		rows := last - first
		if rows == 0 {
			clear(dst)
			continue
		}
		if cap(cols) < m*rows {
			cols = make([]float64, m*rows)
		}
		cols = cols[:m*rows]
		for t := range rows {
			cols[t] = 1
		}
		y := cols[k*rows : m*rows]
		for t, e := 0, first; e < last; t, e = t+1, e+1 {
			o := int(by.other[e])
			q := w[o*k : (o+1)*k]
			for c := 1; c < k; c++ {
				cols[c*rows+t] = float64(q[c])
			}
			y[t] = float64(by.ratings[e]) - p.Mean - float64(q[0])
		}
		alsGram(cols, rows, m, g)
		reg := p.L2 * float64(rows)
		for r := 0; r < k; r++ {
			copy(a[r*k:r*k+r+1], g[r*m:r*m+r+1])
			a[r*k+r] += reg
			rhs[r] = g[k*m+r]
		}
		if !cholSolveLower(a, rhs, k) {
			clear(dst) // not positive definite (λ = 0 and too few ratings): leave it unknown
			continue
		}
		for c := range dst {
			dst[c] = float32(rhs[c])
		}
		cnt[0]++
		cnt[1] += rows
	}
	return cnt
}

// alsGram sets the lower triangle of out (m×m, row-major) to GᵀG for the m
// columns of n values in cols.
func alsGram(cols []float64, n, m int, out []float64) {
	col := func(c int) []float64 { return cols[c*n : (c+1)*n] }
	for r := 0; r+1 < m; r += 2 {
		x0, x1 := col(r), col(r+1)
		for c := 0; c <= r; c += 2 {
			s00, s01, s10, s11 := alsDot2(x0, x1, col(c), col(c+1))
			out[r*m+c], out[(r+1)*m+c], out[(r+1)*m+c+1] = s00, s10, s11
			if c+1 <= r {
				out[r*m+c+1] = s01
			}
		}
	}
	if m%2 == 1 { // the last row alone
		r := m - 1
		for c := 0; c <= r; c++ {
			out[r*m+c] = alsDot(col(r), col(c))
		}
	}
}

// alsDot2 is the four dot products of x0 and x1 with y0 and y1.
func alsDot2(x0, x1, y0, y1 []float64) (s00, s01, s10, s11 float64) {
	x1, y0, y1 = x1[:len(x0)], y0[:len(x0)], y1[:len(x0)]
	for i, a0 := range x0 {
		a1, b0, b1 := x1[i], y0[i], y1[i]
		s00 += a0 * b0
		s01 += a0 * b1
		s10 += a1 * b0
		s11 += a1 * b1
	}
	return
}

func alsDot(x, y []float64) float64 {
	y = y[:len(x)]
	var s0, s1 float64
	i := 0
	for ; i+2 <= len(x); i += 2 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
	}
	if i < len(x) {
		s0 += x[i] * y[i]
	}
	return s0 + s1
}

// cholSolveLower solves a·x = b in place (x in b) for the symmetric matrix
// whose lower triangle a holds (row-major n×n), by Cholesky factorisation
// overwriting that triangle; false when a is not positive definite.
func cholSolveLower(a, b []float64, n int) bool {
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			s := a[i*n+j]
			for m := 0; m < j; m++ {
				s -= a[i*n+m] * a[j*n+m]
			}
			if i == j {
				if !(s > 0) {
					return false
				}
				a[i*n+i] = math.Sqrt(s)
			} else {
				a[i*n+j] = s / a[j*n+j]
			}
		}
	}
	for i := 0; i < n; i++ {
		s := b[i]
		for m := 0; m < i; m++ {
			s -= a[i*n+m] * b[m]
		}
		b[i] = s / a[i*n+i]
	}
	for i := n - 1; i >= 0; i-- {
		s := b[i]
		for m := i + 1; m < n; m++ {
			s -= a[m*n+i] * b[m]
		}
		b[i] = s / a[i*n+i]
	}
	return true
}

// alsInit is the starting model: zero biases and N(0, mfInitStddev²)
// factors from the seed (only the items' matter: the users are solved
// first).
func alsInit(slots, rank int, seed int64) []float32 {
	k := rank + 1
	w := make([]float32, slots*k)
	r := rand.New(rand.NewPCG(uint64(seed), 0x6d66616c73))
	for s := 0; s < slots; s++ {
		for c := 1; c < k; c++ {
			w[s*k+c] = float32(mfInitStddev * r.NormFloat64())
		}
	}
	return w
}

func alsTasks(n int) string {
	if n == 1 {
		return "1 task"
	}
	return strconv.Itoa(n) + " tasks"
}

// alsWindow is the number of sweeps the convergence rule looks back over.
const alsWindow = 2

// alsStalled reports whether the best of the last alsWindow held-out RMSEs
// improves on the best before them by at most eps (relative).
func alsStalled(hist []float64, eps float64) bool {
	n := len(hist)
	if n <= alsWindow {
		return false
	}
	before, recent := slices.Min(hist[:n-alsWindow]), slices.Min(hist[n-alsWindow:])
	return before-recent <= eps*before
}

func encodeF32(w []float32) []byte {
	b := make([]byte, 4*len(w))
	for n, x := range w {
		binary.LittleEndian.PutUint32(b[4*n:], math.Float32bits(x))
	}
	return b
}

// als trains with alternating least squares (see the notes above): the
// coordinator holds the model and runs two waves a sweep.
func (m *mfRun) als(ctx context.Context, why string) (*Result, error) {
	s, o, cfg, ps, st := m.s, m.o, m.cfg, m.ps, m.st
	k := cfg.Rank + 1
	// The held-out set the run stops on, as SGD chooses it.
	trainUnits := makeUnits(o.Data.Train, 1, 1<<30)
	heldName, heldUnits := "test", []prefetch.Unit(nil)
	switch {
	case len(o.Data.Validation) > 0:
		heldName, heldUnits = "validation", makeUnits(o.Data.Validation, 1, 1<<30)
	case cfg.Epochs == 0 || len(o.Data.Test) == 0:
		heldName = "holdout"
		trainUnits, heldUnits = holdout(o.Data.Train, trainUnits)
	default:
		heldUnits = makeUnits(o.Data.Test, 1, 1<<30)
	}
	tu, err := putUnits(ctx, st, m.dir+"als-units.json", trainUnits)
	if err != nil {
		return nil, err
	}
	hu, err := putUnits(ctx, st, m.dir+"als-held.json", heldUnits)
	if err != nil {
		return nil, err
	}
	shares := max(1, min(cfg.Workers, s.Capacity()))
	maxSweeps, eps := cfg.Epochs, cfg.Epsilon
	if maxSweeps == 0 {
		maxSweeps = alsMaxSweeps
		if eps == 0 {
			eps = alsTol
		}
	}
	keepBest := heldName != "test" // never choose weights by the test set
	stopRule := fmt.Sprintf("stopping on the %s RMSE", heldName)
	if eps == 0 {
		stopRule = fmt.Sprintf("%d sweeps (epochs), evaluating on the %s RMSE", maxSweeps, heldName)
	}
	s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: fmt.Sprintf("matrix factorization: rank %d, l2 %g, %d slots (%d users, %d items, %d ratings, mean %.4f); solver als (%s): %s a half-step; %s",
		cfg.Rank, cfg.L2, m.slots, m.sum.Users, m.sum.Items, m.sum.Ratings, m.sum.Mean, why, alsTasks(shares), stopRule)})

	var timeout <-chan time.Time
	if cfg.Timeout > 0 {
		timer := time.NewTimer(cfg.Timeout)
		defer timer.Stop()
		timeout = timer.C
	}
	stopReq := o.Stop
	stopped := func() string {
		select {
		case <-timeout:
			return "timeout"
		case reason := <-stopReq:
			return reason
		default:
			return ""
		}
	}
	// A fresh prefix per run: a resumed stage recomputes its sweeps (they are
	// deterministic) rather than trust blocks an interrupted run left behind.
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	prefix := "als/" + m.model + "/" + nonce + "/"
	waveName := "mf-als" + strings.ReplaceAll(m.suffix, "/", "-") + "-" + nonce + "-"
	w := alsInit(m.slots, cfg.Rank, cfg.Seed)
	step := 0
	// half solves one side's blocks into w; with score, it returns the
	// held-out figures of the model after it.
	half := func(side int, score bool) (alsResult, error) {
		var sum alsResult
		step++
		wkey := prefix + "w/" + strconv.Itoa(step)
		if err := ps.Put(ctx, wkey, encodeF32(w)); err != nil {
			return sum, fmt.Errorf("write the model: %w", err)
		}
		defer ps.Delete(context.WithoutCancel(ctx), wkey)
		n := sideLen(m.slots, side)
		var tasks []operators.Task
		var outs []string
		var ranges [][2]int
		for c := 0; c < shares; c++ {
			lo, hi := n*c/shares, n*(c+1)/shares
			if lo == hi {
				continue
			}
			p := alsParams{Rank: cfg.Rank, Mean: m.sum.Mean, L2: cfg.L2, Slots: m.slots, Side: side, Lo: lo, Hi: hi,
				WKey: wkey, OutKey: prefix + "b/" + strconv.Itoa(step) + "/" + strconv.Itoa(c), Train: tu}
			if score {
				p.Held = &hu
			}
			t := operators.Task{Kind: KindMFALS}
			if err := t.SetParams(p); err != nil {
				return sum, err
			}
			tasks, outs, ranges = append(tasks, t), append(outs, p.OutKey), append(ranges, [2]int{lo, hi})
		}
		res, err := s.RunWave(ctx, operators.Wave{Name: waveName + strconv.Itoa(step), Tasks: tasks, Quiet: true, Ephemeral: true})
		if err != nil {
			return sum, err
		}
		defer func() {
			for _, key := range outs {
				_ = ps.Delete(context.WithoutCancel(ctx), key)
			}
		}()
		blocks, err := ps.MultiGet(ctx, outs)
		if err != nil {
			return sum, fmt.Errorf("read the solved blocks: %w", err)
		}
		for c, r := range res {
			var ar alsResult
			if err := json.Unmarshal(r.Output, &ar); err != nil {
				return sum, fmt.Errorf("bad ALS result: %w", err)
			}
			lo, hi := ranges[c][0], ranges[c][1]
			if blocks[c] == nil {
				return sum, fmt.Errorf("the solved blocks of task %d are missing from psstore", c)
			}
			b, err := decodeF32(blocks[c], uint64((hi-lo)*k))
			if err != nil {
				return sum, fmt.Errorf("the solved blocks of task %d: %w", c, err)
			}
			for j := lo; j < hi; j++ {
				slot := 2*j + side
				copy(w[slot*k:(slot+1)*k], b[(j-lo)*k:(j-lo+1)*k])
			}
			sum.Rated += ar.Rated
			sum.Ratings += ar.Ratings
			sum.HeldSq += ar.HeldSq
			sum.HeldAbs += ar.HeldAbs
			sum.HeldRows += ar.HeldRows
		}
		return sum, nil
	}

	start := time.Now()
	res := &Result{Solver: "als", SolverWhy: why}
	var best *RatingMetrics
	var last RatingMetrics // the last sweep's held-out figures
	var bestW []float32
	var hist []float64 // the held-out RMSE of each sweep
	stopping := ""
	for stopping == "" {
		if why := stopped(); why != "" {
			stopping = why
			break
		}
		u, err := half(0, false)
		if err != nil {
			return nil, err
		}
		it, err := half(1, true)
		if err != nil {
			return nil, err
		}
		res.Iterations++
		res.Passes += 2
		res.Examples += int64(u.Ratings + it.Ratings)
		e := ratingErrors{sq: it.HeldSq, abs: it.HeldAbs, n: it.HeldRows}
		hm := e.metrics()
		last = hm
		pt := EvalPoint{Seconds: time.Since(start).Seconds(), Logloss: hm.RMSE, Accuracy: hm.MAE, Updates: uint64(res.Examples), Iterations: uint64(res.Iterations)}
		if hm.Rows == 0 {
			pt.Logloss, pt.Accuracy = math.NaN(), math.NaN()
		}
		res.Series = append(res.Series, pt)
		s.Event(operators.Event{Kind: "metric", Labels: o.Labels, Metrics: map[string]float64{heldName + "_rmse": finite(pt.Logloss), heldName + "_mae": finite(pt.Accuracy),
			"sweeps": float64(res.Iterations), "updates": float64(res.Examples), "t": pt.Seconds}})
		if o.OnEval != nil {
			o.OnEval(pt)
		}
		if math.IsNaN(hm.RMSE) || math.IsInf(hm.RMSE, 0) {
			return res, fmt.Errorf("alternating least squares produced a non-finite %s RMSE (%v) after %d sweeps", heldName, hm.RMSE, res.Iterations)
		}
		if hm.Rows > 0 {
			hist = append(hist, hm.RMSE)
		}
		if hm.Rows > 0 && (best == nil || hm.RMSE < best.RMSE) {
			h := hm
			best = &h
			if keepBest {
				bestW = append(bestW[:0], w...)
			}
		}
		switch {
		case res.Iterations >= int64(maxSweeps):
			stopping = "epochs"
		case eps > 0 && alsStalled(hist, eps):
			stopping = "converged"
		}
	}
	res.Stopped, res.Duration = stopping, time.Since(start)
	if res.Duration > 0 {
		res.ExamplesPerSecond = float64(res.Examples) / res.Duration.Seconds()
	}
	held := &last
	if bestW != nil && best.RMSE < last.RMSE {
		s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: fmt.Sprintf("keeping the weights of the best %s evaluation (RMSE %.4f, not %.4f at the end)", heldName, best.RMSE, last.RMSE)})
		w, held = bestW, best
	}
	how := fmt.Sprintf("als, %d sweeps of %s a half-step, %.0f ratings/s", res.Iterations, alsTasks(shares), res.ExamplesPerSecond)
	return m.finish(ctx, res, w, held, heldName, how, nil)
}
