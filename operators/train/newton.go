package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/operators"
)

// solver = "newton" is liblinear's trust-region Newton method (TRON: Lin, Weng
// and Keerthi 2008, "Trust region Newton method for large-scale logistic
// regression"; liblinear 2.3's tron.cpp, with its diagonal preconditioner) on the
// full-batch objective of lbfgs.go, for the models with a second derivative in
// the margin: logistic_regression, linear_svm (the squared hinge's generalised
// Hessian, as liblinear -s 2) and linear_regression (squared or Huber loss).
//
// Each outer iteration solves the trust-region subproblem min ½sᵀHs + gᵀs,
// ‖s‖_M ≤ Δ, by preconditioned conjugate gradients (CG stops at
// ‖r‖_{M⁻¹} ≤ 0.1·‖g‖_{M⁻¹} or on the region's boundary), evaluates f at w + s,
// takes the step when the actual reduction is above 1e-4 of the predicted one,
// and resizes Δ by liblinear's rule. It stops on the same rules as L-BFGS (see
// lbfgs.go): liblinear's gradient-norm rule first, then the target, the
// objective's window, the held-out loss's stall, the pass budget; "trust
// region" when the predicted reduction vanishes (f is at its minimum to within
// floating-point precision).
//
// Every Hessian-vector product Hv = 1/n·Σ D_i x_i x_iᵀv + λv is one wave of
// "train.grad" tasks (HV) over the same shares as the gradient passes: each task
// reads the rows' curvature D_i that the gradient pass at w left in its
// function (or computes it again from w) and returns its share of the sum. A
// model of at most hessianDim coordinates does better: its gradient passes
// return the whole Hessian (dim² numbers, an extra ½·nnz(row)² per row), and the
// CG loop multiplies by it on the coordinator, so an outer iteration is one
// wave whatever CG needs. That Hessian is summed over a sample of each share's
// rows — every k-th, at least hessSampleRows (or 64·dim) of them, scaled to the
// share — when the share has more (a subsampled Hessian: Byrd, Chin, Neveitt
// and Nocedal 2011): f and the gradient stay exact, so the steps accepted and
// the stopping rule are TRON's; only CG's model of the curvature is sampled.
// a9a (29k rows, every 3rd summed): 5 iterations in 6 passes, as with every
// row; at 2,000 rows a share it took 8 iterations.
const (
	tronEta0, tronEta1, tronEta2       = 1e-4, 0.25, 0.75
	tronSigma1, tronSigma2, tronSigma3 = 0.25, 0.5, 4
	tronCGTol                          = 0.1  // liblinear's eps_cg
	tronPCG                            = 0.01 // liblinear's alpha_pcg: M = (1−α)·λI + α·diag(H)
	// hessianDim is the largest model whose gradient passes return the whole
	// Hessian: 256·257/2 float64s, 263 KB (350 KB of base64 in a task's
	// result, far under Lambda's 6 MB). Above it solver = "auto" takes L-BFGS:
	// a9a hashed into 1,024 features took Newton 39 passes (6 gradient, 33
	// Hessian-vector; liblinear's CG count) and 80 ms, L-BFGS 17 and 50 ms.
	hessianDim = 256
	// hessSampleRows is the fewest rows of a share the sampled Hessian sums.
	hessSampleRows = 8192
)

// newtonModel reports whether model has the second derivative Newton needs.
func newtonModel(model string) bool {
	switch model {
	case "", "logistic_regression", "linear_svm", "linear_regression": // "": the default
		return true
	}
	return false
}

// secondFunc is a model's loss of margin z for label y with its first and
// second derivatives in z.
type secondFunc func(z, y float64) (loss, dz, d2z float64)

// secondOf is model's secondFunc (huber > 0: linear_regression's Huber loss);
// where the second derivative does not exist (the squared hinge at its kink,
// Huber at ±δ) it is the generalised one liblinear uses. The log loss takes
// one exponential for all three.
func secondOf(model string, huber float64) secondFunc {
	switch model {
	case "linear_svm":
		return func(z, y float64) (float64, float64, float64) {
			l, dz := sqHingeLossFunc(z, y)
			if s := 2*y - 1; s*z < 1 {
				return l, dz, 2 * s * s // 2 for the labels ±1 that sqHingeLossFunc is given
			}
			return l, dz, 0
		}
	case "linear_regression":
		fn := lossOf(model, huber)
		return func(z, y float64) (float64, float64, float64) {
			l, dz := fn(z, y)
			if huber > 0 && math.Abs(z-y) > huber {
				return l, dz, 0
			}
			return l, dz, 1
		}
	}
	return func(z, y float64) (float64, float64, float64) {
		l, p := logisticSigmoid(z, y)
		return l, p - y, p * (1 - p)
	}
}

// curvOf is the second derivative in the margin of model's loss (see secondOf).
func curvOf(model string, huber float64) func(z, y float64) float64 {
	fn := secondOf(model, huber)
	return func(z, y float64) float64 {
		_, _, d := fn(z, y)
		return d
	}
}

// packedStarts returns, for a dim×dim upper triangle packed by rows, the
// offsets o[a] such that entry (a, b), a ≤ b, is at o[a] + b.
func packedStarts(dim int) []int {
	o := make([]int, dim)
	for a := range o {
		o[a] = a*dim - a*(a-1)/2 - a
	}
	return o
}

// unpackAdd adds the packed upper triangle p to the full n×n row-major matrix h.
func unpackAdd(p, h []float64, n int) {
	k := 0
	for a := 0; a < n; a++ {
		for b := a; b < n; b++ {
			h[a*n+b] += p[k]
			if a != b {
				h[b*n+a] += p[k]
			}
			k++
		}
	}
}

// secondOrder is lossGrad (it adds the gradient of the summed loss to g) that
// also returns the diagonal of the summed loss's Hessian Σ D_i x_i x_iᵀ and,
// with hess, the whole of it packed by rows. With curvKey it leaves each row's
// curvature D_i in this function's curvature cache under that key. Chunks of the
// share run on the function's cores and are summed in order, as in
// lossGradChunked. The diagonal of a row whose indices fold onto one coordinate
// twice counts each entry's square alone: it only preconditions. every > 1
// sums the curvature (the diagonal and the Hessian) over the share's rows
// 0, every, 2·every, … only, scaled by rows/sampled; loss and gradient are
// over every row.
func secondOrder(s *evalSet, w, g []float64, model string, huber float64, hess bool, curvKey string, every int) (loss float64, rows int, diag, h []float64) {
	every = max(every, 1)
	dim := len(w)
	fn := secondOf(model, huber)
	size := 2 * dim
	if hess {
		size += dim * (dim + 1) / 2
	}
	var starts []int
	if hess {
		starts = packedStarts(dim)
	}
	chunks := splitSet(s, gradChunkEntries, maxGradChunks)
	row0 := make([]int, len(chunks)+1)
	for i, c := range chunks {
		row0[i+1] = row0[i] + c.rows()
	}
	var ds []float64
	if curvKey != "" {
		ds = make([]float64, row0[len(chunks)])
	}
	accs := make([][]float64, len(chunks))
	losses := make([]float64, len(chunks))
	sampled := make([]int, len(chunks))
	run := func(i int) {
		acc := make([]float64, size)
		var d []float64
		if ds != nil {
			d = ds[row0[i]:row0[i+1]]
		}
		losses[i], sampled[i] = secondOrderChunk(chunks[i], w, acc, fn, starts, d, row0[i], every)
		accs[i] = acc
	}
	parallel(len(chunks), run)
	acc := make([]float64, size)
	n := 0
	for i := range chunks {
		for j, x := range accs[i] {
			acc[j] += x
		}
		loss += losses[i]
		n += sampled[i]
	}
	if every > 1 && n > 0 { // the sample's curvature, scaled to the share's rows
		sc := float64(row0[len(chunks)]) / float64(n)
		for j := dim; j < size; j++ {
			acc[j] *= sc
		}
	}
	for j := range g {
		g[j] += acc[j]
	}
	if ds != nil {
		keepCurv(curvKey, ds)
	}
	diag = acc[dim : 2*dim]
	if hess {
		h = acc[2*dim:]
	}
	return loss, row0[len(chunks)], diag, h
}

// secondOrderChunk adds to acc = [gradient | Hessian diagonal | packed Hessian
// (when starts is not nil)] the sums over c at w, sets d (when not nil) to the
// rows' curvature, and returns the summed loss and the rows in the curvature
// sums: those whose index in the share (from row0) is a multiple of every.
func secondOrderChunk(c *evalSet, w, acc []float64, fn secondFunc, starts []int, d []float64, row0, every int) (float64, int) {
	dim := len(w)
	udim := uint32(dim)
	bias := dim - 1
	g, diag := acc[:dim], acc[dim:2*dim]
	var h []float64
	if starts != nil {
		h = acc[2*dim:]
	}
	var loss float64
	i, sampled := 0, 0
	idx := make([]int, 0, 64)
	vals := make([]float64, 0, 64)
	for _, b := range c.parts {
		base := b.Offsets[0]
		for r := 0; r < b.Len(); r++ {
			lo, hi := b.Offsets[r]-base, b.Offsets[r+1]-base
			idx, vals = idx[:0], vals[:0]
			z := w[bias]
			for e := lo; e < hi; e++ {
				f := int(fold(b.Indices[e], udim))
				v := 1.0
				if b.Values != nil {
					v = float64(b.Values[e])
				}
				idx, vals = append(idx, f), append(vals, v)
				z += w[f] * v
			}
			y := float64(b.Labels[r])
			l, dz, dd := fn(z, y)
			loss += l
			if d != nil {
				d[i] = dd
			}
			i++
			if dz != 0 {
				g[bias] += dz
				for k, f := range idx {
					g[f] += dz * vals[k]
				}
			}
			if (row0+i-1)%every != 0 {
				continue
			}
			sampled++
			if dd == 0 {
				continue
			}
			diag[bias] += dd
			if h != nil && increasing(idx) {
				// The common case, a row's coordinates sorted and distinct:
				// each pair adds to the upper triangle's row of the first.
				for k, fa := range idx {
					dv := dd * vals[k]
					diag[fa] += dv * vals[k]
					row := h[starts[fa] : starts[fa]+dim]
					row[bias] += dv
					row[fa] += dv * vals[k]
					rest, rv := idx[k+1:], vals[k+1:]
					if b.Values == nil {
						for _, fb := range rest {
							row[fb] += dv
						}
					} else {
						for k2, fb := range rest {
							row[fb] += dv * rv[k2]
						}
					}
				}
				h[starts[bias]+bias] += dd
				continue
			}
			for k, fa := range idx {
				dv := dd * vals[k]
				diag[fa] += dv * vals[k]
				if h == nil {
					continue
				}
				row := h[starts[fa] : starts[fa]+dim] // row[b] is entry (fa, b), b ≥ fa
				row[bias] += dv
				row[fa] += dv * vals[k]
				for k2 := k + 1; k2 < len(idx); k2++ {
					fb := idx[k2]
					m := dv * vals[k2]
					switch {
					case fa < fb:
						row[fb] += m
					case fb < fa:
						h[starts[fb]+fa] += m
					default: // two entries folded onto one coordinate
						row[fa] += 2 * m
					}
				}
			}
			if h != nil {
				h[starts[bias]+bias] += dd
			}
		}
	}
	return loss, sampled
}

// increasing reports whether idx is strictly increasing.
func increasing(idx []int) bool {
	for k := 1; k < len(idx); k++ {
		if idx[k] <= idx[k-1] {
			return false
		}
	}
	return true
}

// rows is the number of rows in s.
func (s *evalSet) rows() int {
	n := 0
	for _, b := range s.parts {
		n += b.Len()
	}
	return n
}

// parallel runs fn(0..n-1) on at most GOMAXPROCS goroutines and waits for them.
func parallel(n int, fn func(i int)) {
	if n < 2 {
		for i := range n {
			fn(i)
		}
		return
	}
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() { // owned by this call: it waits for them below
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// The curvature cache holds the rows' curvature a gradient pass computed, by
// the key its task was given, for the Hessian-vector tasks at the same weights.
// Safe to lose (the task computes it again), bounded by curvCacheBytes and
// curvCacheKeys, oldest out first.
const curvCacheKeys = 64

// curvCacheBytes bounds the curvature cache (a variable for tests: 0 keeps
// nothing, as in a function that ran no gradient task of the run): 256 MiB, or
// a quarter of the data cache's limit when that is smaller (inside a Lambda
// function, an eighth of its memory), so that the two caches together keep
// within the function's memory.
var curvCacheBytes = min(256<<20, dataCacheLimit/4)

var curvCache = struct {
	sync.Mutex
	m     map[string][]float64
	keys  []string
	bytes int64
}{m: map[string][]float64{}}

func keepCurv(key string, d []float64) {
	if int64(8*len(d)) > curvCacheBytes {
		return
	}
	curvCache.Lock()
	defer curvCache.Unlock()
	if old, ok := curvCache.m[key]; ok {
		curvCache.bytes -= int64(8 * len(old))
	} else {
		curvCache.keys = append(curvCache.keys, key)
	}
	curvCache.m[key] = d
	curvCache.bytes += int64(8 * len(d))
	for len(curvCache.keys) > 1 && (curvCache.bytes > curvCacheBytes || len(curvCache.keys) > curvCacheKeys) {
		k := curvCache.keys[0]
		curvCache.keys = curvCache.keys[1:]
		curvCache.bytes -= int64(8 * len(curvCache.m[k]))
		delete(curvCache.m, k)
	}
}

func takeCurv(key string) []float64 {
	curvCache.Lock()
	defer curvCache.Unlock()
	return curvCache.m[key]
}

// runHV is a Hessian-vector task (gradParams.HV).
func runHV(ctx context.Context, env operators.Env, st blob.Store, t *operators.Task, p *gradParams) (*operators.Result, error) {
	w, v := p.W, p.V
	if p.WKey != "" {
		wv, err := taskVector(ctx, env, nil, p.WKey, 2*p.Dim, "weights and vector")
		if err != nil {
			return nil, err
		}
		w, v = wv[:p.Dim], wv[p.Dim:]
	}
	if uint64(len(w)) != p.Dim || uint64(len(v)) != p.Dim {
		return nil, fmt.Errorf("task %s: %d weights and %d vector coordinates for a model of %d", t.Name(), len(w), len(v), p.Dim)
	}
	train, err := cachedShare(ctx, st, p.UnitsKey, p.Units, p.Share, p.Shares, p.Model, p.Classes)
	if err != nil {
		return nil, err
	}
	d := takeCurv(p.Curv)
	if len(d) != train.rows() {
		d = curvature(train, w, curvOf(p.Model, p.Huber))
		keepCurv(p.Curv, d)
	}
	hv := hessVec(train, d, v)
	out := gradResult{Rows: train.rows()}
	if p.WKey == "" {
		out.G = hv
	} else {
		ps, err := env.PSStore(ctx)
		if err != nil {
			return nil, err
		}
		if err := ps.Put(ctx, p.GKey, encodeF64(hv)); err != nil {
			return nil, fmt.Errorf("write Hessian-vector product: %w", err)
		}
	}
	doc, _ := json.Marshal(out)
	return &operators.Result{Output: doc}, nil
}

// curvature is each row's curvature D_i = curv(w·x_i + b, y_i).
func curvature(s *evalSet, w []float64, curv func(z, y float64) float64) []float64 {
	dim := uint32(len(w))
	d := make([]float64, 0, s.rows())
	for _, b := range s.parts {
		base := b.Offsets[0]
		for r := 0; r < b.Len(); r++ {
			lo, hi := b.Offsets[r]-base, b.Offsets[r+1]-base
			d = append(d, curv(w[dim-1]+dotRow(&b, lo, hi, w, dim), float64(b.Labels[r])))
		}
	}
	return d
}

// hessVec is Σ D_i x_i (x_iᵀ v) over s's rows (the intercept last), in chunks
// on the function's cores, summed in order.
func hessVec(s *evalSet, d, v []float64) []float64 {
	dim := uint32(len(v))
	chunks := splitSet(s, gradChunkEntries, maxGradChunks)
	row0 := make([]int, len(chunks)+1)
	for i, c := range chunks {
		row0[i+1] = row0[i] + c.rows()
	}
	outs := make([][]float64, len(chunks))
	parallel(len(chunks), func(i int) {
		out := make([]float64, dim)
		k := row0[i]
		for _, b := range chunks[i].parts {
			base := b.Offsets[0]
			for r := 0; r < b.Len(); r++ {
				dd := d[k]
				k++
				if dd == 0 {
					continue
				}
				lo, hi := b.Offsets[r]-base, b.Offsets[r+1]-base
				t := dd * (v[dim-1] + dotRow(&b, lo, hi, v, dim))
				out[dim-1] += t
				for e := lo; e < hi; e++ {
					f := fold(b.Indices[e], dim)
					if b.Values == nil {
						out[f] += t
					} else {
						out[f] += t * float64(b.Values[e])
					}
				}
			}
		}
		outs[i] = out
	})
	hv := make([]float64, dim)
	for _, o := range outs {
		for j, x := range o {
			hv[j] += x
		}
	}
	return hv
}

// curvKey names where share i of pass k leaves its rows' curvature.
func (r *fbRun) curvKey(k, i int) string {
	return r.prefix + "d/" + strconv.Itoa(k) + "/" + strconv.Itoa(i)
}

// hv is H·v at p: on the coordinator from p's Hessian when the pass returned
// it, else one wave of Hessian-vector tasks.
func (r *fbRun) hv(ctx context.Context, p *fbPoint, v []float64) ([]float64, error) {
	n := int(r.dim)
	out := make([]float64, n)
	if p.h != nil {
		for a := 0; a < n; a++ {
			out[a] = dot(p.h[a*n:(a+1)*n], v)
		}
		return out, nil
	}
	k := r.passes
	r.passes++
	inline := r.dim <= inlineDim
	key := ""
	if !inline {
		key = r.prefix + "hv/" + strconv.Itoa(k)
		if err := r.ps.Put(ctx, key, encodeF64(append(append([]float64(nil), p.w...), v...))); err != nil {
			return nil, fmt.Errorf("write weights and vector: %w", err)
		}
		defer r.ps.Delete(context.WithoutCancel(ctx), key)
	}
	tasks := make([]operators.Task, r.shares)
	gkeys := make([]string, r.shares)
	for i := range tasks {
		gp := gradParams{Model: r.o.Config.Model, Dim: r.dim, UnitsKey: r.units.Key, Units: r.units.Units,
			Share: i, Shares: r.shares, Classes: r.o.Data.Classes, Huber: r.o.Config.huber(), HV: true, Curv: r.curvKey(p.pass, i)}
		if inline {
			gp.W, gp.V = p.w, v
		} else {
			gkeys[i] = key + "/" + strconv.Itoa(i)
			gp.WKey, gp.GKey = key, gkeys[i]
		}
		tasks[i] = operators.Task{Kind: KindGrad}
		if err := tasks[i].SetParams(gp); err != nil {
			return nil, err
		}
	}
	res, err := r.s.RunWave(ctx, operators.Wave{Name: r.wave + strconv.Itoa(k), Tasks: tasks, Quiet: true, Ephemeral: true})
	if err != nil {
		return nil, err
	}
	var gs [][]byte
	if !inline {
		if gs, err = r.ps.MultiGet(ctx, gkeys); err != nil {
			return nil, fmt.Errorf("read Hessian-vector products: %w", err)
		}
		defer func() {
			for _, k := range gkeys {
				_ = r.ps.Delete(context.WithoutCancel(ctx), k)
			}
		}()
	}
	rows := 0
	for i, o := range res {
		var gr gradResult
		if err := json.Unmarshal(o.Output, &gr); err != nil {
			return nil, fmt.Errorf("bad Hessian-vector result: %w", err)
		}
		part := gr.G
		if !inline {
			if gs[i] == nil {
				return nil, fmt.Errorf("Hessian-vector product of share %d is missing from psstore", i)
			}
			if part, err = decodeF64(gs[i], r.dim); err != nil {
				return nil, fmt.Errorf("Hessian-vector product of share %d: %w", i, err)
			}
		}
		if len(part) != n {
			return nil, fmt.Errorf("Hessian-vector share %d has %d coordinates, not %d", i, len(part), n)
		}
		for j, x := range part {
			out[j] += x
		}
		rows += gr.Rows
	}
	if rows != p.rows {
		return nil, fmt.Errorf("the Hessian-vector pass saw %d training rows, the gradient pass %d", rows, p.rows)
	}
	inv := 1 / float64(rows)
	for j := range out {
		out[j] *= inv
		if regularized(uint64(j), r.dim, len(r.o.Data.Classes)) {
			out[j] += r.l2 * v[j]
		}
	}
	return out, nil
}

// preconditioner is liblinear's diagonal M = (1−α)·λ + α·diag(H) at p (1 where
// that is 0: a coordinate no row touches, without regularisation).
func (r *fbRun) preconditioner(p *fbPoint) []float64 {
	m := make([]float64, len(p.diag))
	for j, x := range p.diag {
		m[j] = (1-tronPCG)*r.l2 + tronPCG*x
		if m[j] <= 0 {
			m[j] = 1
		}
	}
	return m
}

// uTMv is Σ u_j·M_j·v_j.
func uTMv(u, m, v []float64) float64 {
	var s float64
	for j := range u {
		s += u[j] * m[j] * v[j]
	}
	return s
}

// trpcg is liblinear's preconditioned CG on the trust-region subproblem at p
// with radius delta: the step s, the residual r = −g − H·s, the CG iterations
// and whether s reached the boundary. When its products are waves, a stop
// (the pass budget, the timeout or a stop request) ends it between them, and
// stop says why.
func (r *fbRun) trpcg(ctx context.Context, p *fbPoint, m []float64, delta float64) (s, res []float64, iters int, boundary bool, stop string, err error) {
	n := len(p.g)
	s, res = make([]float64, n), make([]float64, n)
	z, d := make([]float64, n), make([]float64, n)
	for j := range res {
		res[j] = -p.g[j]
		z[j] = res[j] / m[j]
		d[j] = z[j]
	}
	zTr := dot(z, res)
	cgtol := tronCGTol * math.Sqrt(zTr)
	for iters < max(n, 5) {
		if math.Sqrt(zTr) <= cgtol {
			break
		}
		if p.h == nil {
			if r.passes >= r.maxPasses {
				return s, res, iters, boundary, "epochs", nil
			}
			if why := r.stopped(); why != "" {
				return s, res, iters, boundary, why, nil
			}
		}
		iters++
		hd, err := r.hv(ctx, p, d)
		if err != nil {
			return nil, nil, 0, false, "", err
		}
		// toBoundary ends the loop with the step along d to the region's edge.
		toBoundary := func() {
			boundary = true
			sTMd, sTMs, dTMd := uTMv(s, m, d), uTMv(s, m, s), uTMv(d, m, d)
			dsq := delta * delta
			rad := math.Sqrt(sTMd*sTMd + dTMd*(dsq-sTMs))
			var alpha float64
			if sTMd >= 0 {
				alpha = (dsq - sTMs) / (sTMd + rad)
			} else {
				alpha = (rad - sTMd) / dTMd
			}
			axpy(alpha, d, s)
			axpy(-alpha, hd, res)
		}
		dHd := dot(d, hd)
		if !(dHd > 0) {
			// No positive curvature along d (l2 = 0, or coordinates only the
			// sampled Hessian's unsampled rows touch): the quadratic model
			// falls without bound along it, so go to the edge (Steihaug),
			// where liblinear, whose λ is 1, never comes.
			toBoundary()
			break
		}
		alpha := zTr / dHd
		axpy(alpha, d, s)
		if math.Sqrt(uTMv(s, m, s)) > delta {
			axpy(-alpha, d, s)
			toBoundary()
			break
		}
		axpy(-alpha, hd, res)
		for j := range z {
			z[j] = res[j] / m[j]
		}
		znew := dot(z, res)
		beta := znew / zTr
		for j := range d {
			d[j] = beta*d[j] + z[j]
		}
		zTr = znew
	}
	return s, res, iters, boundary, "", nil
}

// tron runs the trust-region Newton method from cur and returns its last
// iterate and why it stopped.
func (r *fbRun) tron(ctx context.Context, cur *fbPoint) (*fbPoint, string, error) {
	g0 := cur.gradNor
	m := r.preconditioner(cur)
	delta := math.Sqrt(uTMv(cur.g, m, cur.g))
	adjusted := false
	for {
		if why := r.stopped(); why != "" {
			return cur, why, nil
		}
		if r.converged(cur, g0) {
			return cur, "converged", nil
		}
		if r.passes >= r.maxPasses {
			return cur, "epochs", nil
		}
		s, res, _, boundary, stop, err := r.trpcg(ctx, cur, m, delta)
		if err != nil {
			return nil, "", err
		}
		if stop != "" {
			return cur, stop, nil
		}
		if r.passes >= r.maxPasses {
			return cur, "epochs", nil
		}
		w := make([]float64, len(cur.w))
		for j := range w {
			w[j] = cur.w[j] + s[j]
		}
		gs := dot(cur.g, s)
		prered := -0.5 * (gs - dot(s, res))
		next, err := r.eval(ctx, w, r.hessian, !r.hessian)
		if err != nil {
			return nil, "", err
		}
		fnew := next.f
		if math.IsNaN(fnew) || math.IsInf(fnew, 0) {
			fnew = math.Inf(1) // a step that overflows is rejected and the region shrinks
		}
		actred := cur.f - fnew
		sMnorm := math.Sqrt(uTMv(s, m, s))
		if !adjusted {
			delta = math.Min(delta, sMnorm)
			adjusted = true
		}
		alpha := float64(tronSigma3)
		if fnew-cur.f-gs > 0 {
			alpha = math.Max(tronSigma1, -0.5*(gs/(fnew-cur.f-gs)))
		}
		switch {
		case actred < tronEta0*prered:
			delta = math.Min(alpha*sMnorm, tronSigma2*delta)
		case actred < tronEta1*prered:
			delta = math.Max(tronSigma1*delta, math.Min(alpha*sMnorm, tronSigma2*delta))
		case actred < tronEta2*prered:
			delta = math.Max(tronSigma1*delta, math.Min(alpha*sMnorm, tronSigma3*delta))
		case boundary:
			delta *= tronSigma3
		default:
			delta = math.Max(delta, math.Min(alpha*sMnorm, tronSigma3*delta))
		}
		if actred > tronEta0*prered {
			cur = next
			m = r.preconditioner(cur)
			r.record(cur)
			if r.converged(cur, g0) {
				return cur, "converged", nil
			}
			if why := r.after(cur); why != "" {
				return cur, why, nil
			}
		}
		if prered <= 0 || !(delta > 0) || (math.Abs(actred) <= 1e-12*math.Abs(cur.f) && math.Abs(prered) <= 1e-12*math.Abs(cur.f)) {
			return cur, "trust region", nil
		}
	}
}
