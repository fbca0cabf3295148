package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"weak"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/partition"
	"github.com/stratus-ml/stratus/dataset/prefetch"
	"github.com/stratus-ml/stratus/operators"
)

// The full-batch solver's gradient pass is a map-reduce wave: each "train.grad" task
// reads the current weights from psstore's key-value face, computes the loss and its
// gradient over its share of the training units (and the loss on its share of the
// validation units), writes the gradient under its own key and returns the scalars.
// The coordinator sums the shares. A retried attempt rewrites the same key, so a
// gradient is never counted twice.

// gradParams are a "train.grad" task's parameters.
type gradParams struct {
	Model string `json:"model"` // the loss: logistic_regression
	Dim   uint64 `json:"dim"`
	// The weights are W, or when the model is large, at the KV key WKey (Dim
	// little-endian float64s); the gradient goes to the result, or to the KV key
	// GKey (float32s) when WKey is used.
	W    []float64 `json:"wv,omitempty"`
	WKey string    `json:"w,omitempty"`
	GKey string    `json:"g,omitempty"`
	// The training (and held-out) units are Units (Val), or when the lists
	// are long, at the blob keys UnitsKey (ValKey) as JSON.
	UnitsKey string          `json:"units,omitempty"`
	Units    []prefetch.Unit `json:"uv,omitempty"`
	ValKey   string          `json:"val,omitempty"`
	Val      []prefetch.Unit `json:"vv,omitempty"`
	Share    int             `json:"share"`
	Shares   int             `json:"shares"`
	// Classes are softmax's classes (see labelFunc).
	Classes []float64 `json:"classes,omitempty"`
	// Huber is linear_regression's Huber threshold (0: the squared loss).
	Huber float64 `json:"huber,omitempty"`
	// Newton's passes (newton.go): Hess asks for the Hessian of the summed
	// loss as well (H, inline weights only); Curv for its diagonal (Diag, or at
	// GKey+"/diag" as float64s) and names where the task leaves each row's
	// curvature for the Hessian-vector tasks at the same weights. HV makes the
	// task a Hessian-vector product instead: V (or the second half of the
	// float64s at WKey) times the Hessian of the summed loss at W, into G (or at
	// GKey as float64s), reading the rows' curvature left under Curv, or
	// computing it again when this function does not hold it.
	Hess bool `json:"hess,omitempty"`
	// HessEvery > 1 sums the Hessian (and its diagonal) over every HessEvery-th
	// row of the share only, scaled to the share's rows.
	HessEvery int       `json:"hess_every,omitempty"`
	Curv      string    `json:"curv,omitempty"`
	HV        bool      `json:"hv,omitempty"`
	V         []float64 `json:"hv_v,omitempty"`
}

// gradResult is a "train.grad" task's output: sums over its share.
type gradResult struct {
	Loss       float64 `json:"loss"` // sum of the training losses
	Rows       int     `json:"rows"`
	ValLoss    float64 `json:"val_loss"`
	ValRows    int     `json:"val_rows"`
	ValCorrect int     `json:"val_correct"`
	// G is the gradient (or the Hessian-vector product) when the weights came
	// inline.
	G []float64 `json:"g,omitempty"`
	// H is the Hessian of the summed loss, its upper triangle packed by rows
	// as little-endian float64s (base64 in JSON: a tenth of the time of
	// numbers), and Diag its diagonal (gradParams.Hess and Curv).
	H    []byte    `json:"h,omitempty"`
	Diag []float64 `json:"diag,omitempty"`
}

// inlineDim is the largest model whose weights and gradients travel inline in the
// tasks' parameters and results (about 50 KB of JSON each way) rather than through
// psstore: a small model's pass then costs no round trips.
const inlineDim = 2048

// scoreParams are a "train.score" task's parameters: the metrics of the weights at
// WKey on the units at UnitsKey.
type scoreParams struct {
	Model string `json:"model"`
	// The weights are W (a model of at most inlineDim coordinates), else at
	// the KV key WKey, as for a gradient task.
	W        []float64       `json:"wv,omitempty"`
	WKey     string          `json:"w,omitempty"`
	UnitsKey string          `json:"units,omitempty"`
	Units    []prefetch.Unit `json:"uv,omitempty"` // the units, when not at UnitsKey
	Classes  []float64       `json:"classes,omitempty"`
}

func runGrad(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p gradParams
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	st, err := env.Blob(ctx)
	if err != nil {
		return nil, err
	}
	if p.HV {
		return runHV(ctx, env, st, t, &p)
	}
	w, err := taskVector(ctx, env, p.W, p.WKey, p.Dim, "weights")
	if err != nil {
		return nil, err
	}
	if uint64(len(w)) != p.Dim {
		return nil, fmt.Errorf("task %s: %d weights for a model of %d", t.Name(), len(w), p.Dim)
	}
	var out gradResult
	var diag []float64
	g := make([]float64, p.Dim)
	train, err := cachedShare(ctx, st, p.UnitsKey, p.Units, p.Share, p.Shares, p.Model, p.Classes)
	if err != nil {
		return nil, err
	}
	fn := lossOf(p.Model, p.Huber)
	switch {
	case p.Model == "softmax":
		out.Loss, out.Rows = softmaxLossGrad(train, w, g, len(p.Classes))
	case p.Hess || p.Curv != "":
		var h []float64
		out.Loss, out.Rows, diag, h = secondOrder(train, w, g, p.Model, p.Huber, p.Hess, p.Curv, p.HessEvery)
		if p.Hess {
			out.H = encodeF64(h)
		} else if p.WKey == "" {
			out.Diag = diag
		}
	default:
		out.Loss, out.Rows = lossGradChunked(train, w, g, fn)
	}
	if p.ValKey != "" || p.Val != nil {
		val, err := cachedShare(ctx, st, p.ValKey, p.Val, p.Share, p.Shares, p.Model, p.Classes)
		if err != nil {
			return nil, err
		}
		if p.Model == "softmax" {
			out.ValLoss, out.ValRows, out.ValCorrect = softmaxLossSum(val, w, len(p.Classes))
		} else {
			out.ValLoss, out.ValRows, out.ValCorrect = lossSum(val, w, fn)
		}
	}
	if p.WKey == "" {
		out.G = g
	} else {
		ps, err := env.PSStore(ctx)
		if err != nil {
			return nil, err
		}
		g32 := make([]byte, 4*len(g))
		for i, x := range g {
			binary.LittleEndian.PutUint32(g32[4*i:], math.Float32bits(float32(x)))
		}
		if err := ps.Put(ctx, p.GKey, g32); err != nil {
			return nil, fmt.Errorf("write gradient: %w", err)
		}
		if p.Curv != "" && !p.Hess {
			if err := ps.Put(ctx, p.GKey+"/diag", encodeF64(diag)); err != nil {
				return nil, fmt.Errorf("write Hessian diagonal: %w", err)
			}
		}
	}
	doc, _ := json.Marshal(out)
	return &operators.Result{Output: doc}, nil
}

func runScore(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p scoreParams
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	st, err := env.Blob(ctx)
	if err != nil {
		return nil, err
	}
	w64, err := taskVector(ctx, env, p.W, p.WKey, 0, "weights")
	if err != nil {
		return nil, err
	}
	if len(w64) == 0 {
		return nil, fmt.Errorf("task %s: no weights to score", t.Name())
	}
	set, err := cachedShare(ctx, st, p.UnitsKey, p.Units, 0, 1, p.Model, p.Classes)
	if err != nil {
		return nil, err
	}
	w := make([]float32, len(w64))
	for i, x := range w64 {
		w[i] = float32(x)
	}
	// The cached set is shared by concurrent tasks; the probabilities are this task's.
	local := &evalSet{parts: set.parts, ys: set.ys, probs: make([]float64, len(set.ys)), margins: p.Model == "linear_svm", regression: p.Model == "linear_regression"}
	if p.Model == "softmax" {
		local.classes = len(p.Classes)
	}
	m := local.evaluate(w)
	doc, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &operators.Result{Output: doc}, nil
}

// lossFunc is a model's loss of margin z for label y ∈ {0, 1}, and its derivative
// in z.
type lossFunc func(z, y float64) (loss, dz float64)

// logisticLossFunc is logistic regression's log loss.
func logisticLossFunc(z, y float64) (float64, float64) {
	l, p := logisticSigmoid(z, y)
	return l, p - y
}

// sqHingeLossFunc is the linear SVM's L2 (squared hinge) loss max(0, 1 − s·z)² for
// s = 2y − 1 ∈ {−1, +1}: liblinear -s 2's primal, differentiable everywhere, so the
// full-batch solver's line search and curvature pairs stay sound.
func sqHingeLossFunc(z, y float64) (float64, float64) {
	s := 2*y - 1
	m := 1 - s*z
	if m <= 0 {
		return 0, 0
	}
	return m * m, -2 * s * m
}

// lossOf is the loss of a model; huber > 0 makes linear_regression's loss the
// Huber loss with that threshold.
func lossOf(model string, huber float64) lossFunc {
	switch model {
	case "linear_svm":
		return sqHingeLossFunc
	case "linear_regression":
		if huber > 0 {
			return huberLossFunc(huber)
		}
		return sqLossFunc
	}
	return logisticLossFunc
}

// lossGrad adds to g the gradient of the summed loss fn of s at w (intercept last)
// and returns that sum and the number of rows.
func lossGrad(s *evalSet, w, g []float64, fn lossFunc) (float64, int) {
	dim := uint32(len(w))
	bias := w[dim-1]
	var loss, gb float64
	rows := 0
	for _, b := range s.parts {
		base := b.Offsets[0]
		for r := 0; r < b.Len(); r++ {
			lo, hi := b.Offsets[r]-base, b.Offsets[r+1]-base
			z := bias + dotRow(&b, lo, hi, w, dim)
			l, d := fn(z, float64(b.Labels[r]))
			loss += l
			if d == 0 {
				continue
			}
			gb += d
			for e := lo; e < hi; e++ {
				f := fold(b.Indices[e], dim)
				if b.Values == nil {
					g[f] += d
				} else {
					g[f] += d * float64(b.Values[e])
				}
			}
		}
		rows += b.Len()
	}
	g[dim-1] += gb
	return loss, rows
}

// gradChunkEntries and maxGradChunks split a share's gradient pass into
// chunks of at least that many stored entries, at most maxGradChunks, that
// run on the function's cores (a local backend's task, or a Lambda function
// of more than one vCPU).
const (
	gradChunkEntries = 100_000
	maxGradChunks    = 8
)

// lossGradChunked is lossGrad over chunks of s computed concurrently, on at
// most GOMAXPROCS goroutines, and summed in chunk order. The chunks depend on
// the data alone, so the result is the same on any number of cores.
func lossGradChunked(s *evalSet, w, g []float64, fn lossFunc) (float64, int) {
	chunks := splitSet(s, gradChunkEntries, maxGradChunks)
	if len(chunks) < 2 {
		return lossGrad(s, w, g, fn)
	}
	losses := make([]float64, len(chunks))
	rows := make([]int, len(chunks))
	gs := make([][]float64, len(chunks))
	parallel(len(chunks), func(i int) {
		gs[i] = make([]float64, len(g))
		losses[i], rows[i] = lossGrad(chunks[i], w, gs[i], fn)
	})
	var loss float64
	n := 0
	for i, gi := range gs {
		for j, x := range gi {
			g[j] += x
		}
		loss += losses[i]
		n += rows[i]
	}
	return loss, n
}

// splitSet cuts s's rows, in order, into at most max sets of about the same
// number of stored entries and at least per each (one set when s is smaller);
// the sets share s's memory.
func splitSet(s *evalSet, per, max int) []*evalSet {
	var nnz int
	for _, b := range s.parts {
		nnz += len(b.Indices)
	}
	n := min(max, nnz/per)
	if n < 2 {
		return []*evalSet{s}
	}
	target := (nnz + n - 1) / n
	out := []*evalSet{{}}
	cur := 0 // entries in the last set
	for _, b := range s.parts {
		base := b.Offsets[0]
		lo := 0
		for r := 0; r < b.Len(); r++ {
			cur += int(b.Offsets[r+1] - b.Offsets[r])
			if cur >= target && len(out) < n {
				last := out[len(out)-1]
				last.parts = append(last.parts, subBatch(b, base, lo, r+1))
				out = append(out, &evalSet{})
				lo, cur = r+1, 0
			}
		}
		if lo < b.Len() {
			last := out[len(out)-1]
			last.parts = append(last.parts, subBatch(b, base, lo, b.Len()))
		}
	}
	if len(out[len(out)-1].parts) == 0 {
		out = out[:len(out)-1]
	}
	return out
}

// subBatch is rows [lo, hi) of b, whose first offset is base.
func subBatch(b partition.Batch, base uint32, lo, hi int) partition.Batch {
	o0, o1 := b.Offsets[lo]-base, b.Offsets[hi]-base
	sb := partition.Batch{Labels: b.Labels[lo:hi], Offsets: b.Offsets[lo : hi+1], Indices: b.Indices[o0:o1]}
	if b.Values != nil {
		sb.Values = b.Values[o0:o1]
	}
	return sb
}

// lossSum is the summed loss fn of s at w, its rows and how many of them the model
// classifies correctly (positive when the margin is at least 0).
func lossSum(s *evalSet, w []float64, fn lossFunc) (loss float64, rows, correct int) {
	dim := uint32(len(w))
	bias := w[dim-1]
	for _, b := range s.parts {
		base := b.Offsets[0]
		for r := 0; r < b.Len(); r++ {
			lo, hi := b.Offsets[r]-base, b.Offsets[r+1]-base
			z := bias + dotRow(&b, lo, hi, w, dim)
			y := float64(b.Labels[r])
			l, _ := fn(z, y)
			loss += l
			if (z >= 0) == (y > 0.5) {
				correct++
			}
		}
		rows += b.Len()
	}
	return loss, rows, correct
}

// fold maps a feature index onto the model's dim-1 feature coordinates, as the
// workers and the evaluator do.
func fold(f, dim uint32) uint32 {
	if f >= dim-1 {
		return f % (dim - 1)
	}
	return f
}

func encodeF64(w []float64) []byte {
	b := make([]byte, 8*len(w))
	for i, x := range w {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return b
}

// taskVector is a task's float64 vector: inline as its parameters carry it,
// or, when key is set, the n float64s psstore holds under key (n 0: as many
// as it holds). what names the vector in errors.
func taskVector(ctx context.Context, env operators.Env, inline []float64, key string, n uint64, what string) ([]float64, error) {
	if key == "" {
		return inline, nil
	}
	ps, err := env.PSStore(ctx)
	if err != nil {
		return nil, err
	}
	b, err := ps.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if n == 0 {
		n = uint64(len(b) / 8)
	}
	v, err := decodeF64(b, n)
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, key, err)
	}
	return v, nil
}

func decodeF64(b []byte, dim uint64) ([]float64, error) {
	if uint64(len(b)) != 8*dim {
		return nil, fmt.Errorf("%d bytes, want %d float64s", len(b), dim)
	}
	w := make([]float64, dim)
	for i := range w {
		w[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return w, nil
}

func decodeF32(b []byte, dim uint64) ([]float32, error) {
	if uint64(len(b)) != 4*dim {
		return nil, fmt.Errorf("%d bytes, want %d float32s", len(b), dim)
	}
	w := make([]float32, dim)
	for i := range w {
		w[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return w, nil
}

// The data cache keeps the shares a function has read, so the passes after the
// first read no data: a full-batch solver runs tens of passes over the same shares.
// It is a cache that is safe to lose (a cold function reads the share again) and is
// bounded by dataCacheLimit, evicting the least recently used share.
const dataCacheBytes = 2 << 30

// dataCacheLimit is dataCacheBytes, or inside a Lambda function half its memory
// (AWS_LAMBDA_FUNCTION_MEMORY_SIZE, in MB), so the cache never runs it out.
var dataCacheLimit = func() int64 {
	if mb, err := strconv.ParseInt(os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), 10, 64); err == nil && mb > 0 {
		return min(dataCacheBytes, mb<<20/2)
	}
	return dataCacheBytes
}()

var dataCache = struct {
	sync.Mutex
	sets  map[string]*cachedSet
	bytes int64
	clock int64
}{sets: map[string]*cachedSet{}}

type cachedSet struct {
	once  sync.Once
	set   *evalSet
	err   error
	bytes int64
	used  int64
}

// cachedShare returns share i of n of the units listed at key in st — or of
// inline, when key is empty —: units i, i+n, … with the labels as model reads
// them (labelFunc).
func cachedShare(ctx context.Context, st blob.Store, key string, inline []prefetch.Unit, i, n int, model string, classes []float64) (*evalSet, error) {
	src := st.URI(key)
	if key == "" {
		b, _ := json.Marshal(inline)
		h := sha256.Sum256(b)
		src = st.URI("") + "\x00inline:" + hex.EncodeToString(h[:])
	}
	id := fmt.Sprintf("%s\x00%d/%d\x00%s%v", src, i, n, model, classes)
	dataCache.Lock()
	c := dataCache.sets[id]
	if c == nil {
		c = &cachedSet{}
		dataCache.sets[id] = c
	}
	dataCache.clock++
	c.used = dataCache.clock
	dataCache.Unlock()
	c.once.Do(func() {
		units := inline
		if key != "" {
			var err error
			if units, err = loadUnits(ctx, st, key); err != nil {
				c.err = err
				return
			}
		}
		var mine []prefetch.Unit
		for k := i; k < len(units); k += n {
			mine = append(mine, units[k])
		}
		c.set, c.err = loadEvalSetWith(ctx, st, mine, prefetch.Options{Minibatch: 1 << 30, Buffer: 2, Read: sharedRead(model, classes)})
		if c.err == nil {
			for _, b := range c.set.parts {
				c.bytes += int64(4*len(b.Indices) + 4*len(b.Values) + 8*len(b.Labels))
			}
		}
	})
	dataCache.Lock()
	defer dataCache.Unlock()
	if c.err != nil {
		delete(dataCache.sets, id) // a failed read is retried, not remembered
		return nil, c.err
	}
	if c.bytes > 0 {
		dataCache.bytes += c.bytes
		c.bytes = -c.bytes // counted
	}
	for dataCache.bytes > dataCacheLimit && len(dataCache.sets) > 1 {
		var oldest string
		for k, s := range dataCache.sets {
			if k != id && s.bytes < 0 && (oldest == "" || s.used < dataCache.sets[oldest].used) {
				oldest = k
			}
		}
		if oldest == "" {
			break
		}
		dataCache.bytes += dataCache.sets[oldest].bytes
		delete(dataCache.sets, oldest)
	}
	return c.set, nil
}

// partMemo holds the partitions the cached shares were read from, by store
// URI, key and how their labels were read, as weak pointers: a share that
// needs a partition another cached share holds (the full-batch solver's
// holdout is rows of the training partitions) reuses it rather than read and
// decode it again, and a partition no share holds any more is collected.
var partMemo = struct {
	sync.Mutex
	m map[string]weak.Pointer[partition.Partition]
}{m: map[string]weak.Pointer[partition.Partition]{}}

// sharedRead reads partitions through partMemo, labelled for model.
func sharedRead(model string, classes []float64) func(context.Context, blob.Store, string) (*partition.Partition, error) {
	labels := labelFunc(model, classes)
	return func(ctx context.Context, st blob.Store, key string) (*partition.Partition, error) {
		id := fmt.Sprintf("%s\x00%s%v", st.URI(key), model, classes)
		partMemo.Lock()
		if p := partMemo.m[id].Value(); p != nil {
			partMemo.Unlock()
			return p, nil
		}
		for k, w := range partMemo.m { // forget collected ones
			if w.Value() == nil {
				delete(partMemo.m, k)
			}
		}
		partMemo.Unlock()
		p, err := partition.Read(ctx, st, key)
		if err != nil {
			return nil, err
		}
		if labels != nil {
			labels(p.Labels())
		}
		partMemo.Lock()
		defer partMemo.Unlock()
		if q := partMemo.m[id].Value(); q != nil {
			return q, nil // read meanwhile by another share: one copy
		}
		partMemo.m[id] = weak.Make(p)
		return p, nil
	}
}

// lossName names a model's loss in metrics: logloss, sq_hinge for a linear SVM, or
// loss for linear regression (the mean of ½(z−y)², or of the Huber loss).
func lossName(model string) string {
	switch model {
	case "linear_svm":
		return "sq_hinge"
	case "linear_regression":
		return "loss"
	}
	return "logloss"
}

// dotRow is w·x for the row of b stored at entries [lo, hi), indices folded into dim.
func dotRow(b *partition.Batch, lo, hi uint32, w []float64, dim uint32) float64 {
	var z float64
	for e := lo; e < hi; e++ {
		f := fold(b.Indices[e], dim)
		if b.Values == nil {
			z += w[f]
		} else {
			z += w[f] * float64(b.Values[e])
		}
	}
	return z
}
