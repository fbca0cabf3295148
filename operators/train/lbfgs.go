package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/dataset/prefetch"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/psstore"
)

// The full-batch solver minimises the regularised mean loss
//
//	f(w) = 1/n · Σ loss(w; x_i, y_i) + λ/2 · ‖w‖²   (the intercept is not regularised)
//
// with L-BFGS (memory lbfgsMemory) and a backtracking Armijo line search. Every
// evaluation of f and its gradient is one wave of "train.grad" tasks over shares of
// the training set (see grad.go); the coordinator holds w, the curvature pairs and
// the sums, and never the data.
//
// It stops at the first of these, and says which:
//
//	converged   the objective fell by less than lbfgsTol·|f| (epsilon, when given) over the last
//	            lbfgsWindow iterations, or ‖∇f‖ ≤ tol·‖∇f(w₀)‖, liblinear's rule
//	            with its default tolerance (gradientTol): for a binary classifier
//	            tol = 0.01·max(min(pos, neg), 1)/rows, as liblinear -s 0 and -s 2
//	            compute it; for other models gradTol;
//	target_logloss  the held-out log loss reached the target;
//	validation  the held-out log loss — on the validation set, else on a holdout of
//	(holdout)   a tenth of the training set — has not improved on its best by more
//	            than validationTol (relative) for lbfgsWindow iterations; the
//	            weights with the best held-out loss are kept;
//	epochs      as many gradient passes as epochs (1000 when epochs is not given);
//	line search no step along the search direction decreases f: f is at its
//	            minimum to within floating-point precision;
//	timeout, or a stop request.
const (
	lbfgsMemory   = 10
	lbfgsWindow   = 5
	lbfgsTol      = 1e-5
	gradTol       = 1e-3
	validationTol = 1e-4
	lbfgsMaxPass  = 1000
	armijo        = 1e-4
	metricEvery   = 250 * time.Millisecond
	shareEntries  = 200_000
)

// fbRun is one full-batch training run's shared state.
type fbRun struct {
	s      operators.Stage
	ps     *psstore.Client
	o      RunOptions
	dim    uint64
	shares int
	n      float64 // training rows
	l2     float64
	prefix string   // KV prefix of this run's weights and gradients
	wave   string   // wave name prefix
	units  unitList // the training units
	val    unitList // the held-out units
	// heldName is what val holds: "validation", or "holdout" of the training set.
	heldName string
	passes   int
	start    time.Time

	maxPasses int     // the pass budget (epochs)
	tol, gtol float64 // the objective's and the gradient's relative tolerance
	hessian   bool    // newton: the passes return the Hessian (hessianDim)
	hessEvery int     // newton: the Hessian sums every hessEvery-th row of a share
	timeout   <-chan time.Time
	res       *Result
	hist      []histPoint
	best      *fbPoint // by held-out loss
	lastEvent time.Time
	unsent    map[string]float64
}

// fbPoint is f and its gradient at w, with the held-out figures of the same pass.
type fbPoint struct {
	w, g               []float64
	f                  float64
	valLoss, valAcc    float64 // NaN without a set
	valRows            int
	heldOut            string // "validation" or "holdout": what valLoss is measured on
	trainLoss, gradNor float64
	rows               int // training rows the pass summed over
	pass               int // the pass's number
	// h is the Hessian (dim×dim, row-major) and diag its diagonal, when the
	// pass computed them (newton).
	h, diag []float64
}

// eval runs one gradient pass at w. With hess (a model of at most hessianDim
// coordinates, inline) the pass also returns the Hessian; with curv it returns
// the Hessian's diagonal and leaves each row's curvature with the tasks for the
// Hessian-vector passes at w (see hv).
func (r *fbRun) eval(ctx context.Context, w []float64, hess, curv bool) (*fbPoint, error) {
	k := r.passes
	r.passes++
	inline := r.dim <= inlineDim
	wkey := ""
	if !inline {
		wkey = r.prefix + "w/" + strconv.Itoa(k)
		if err := r.ps.Put(ctx, wkey, encodeF64(w)); err != nil {
			return nil, fmt.Errorf("write weights: %w", err)
		}
		defer r.ps.Delete(context.WithoutCancel(ctx), wkey)
	}
	held := r.val
	tasks := make([]operators.Task, r.shares)
	gkeys := make([]string, r.shares)
	for i := range tasks {
		gp := gradParams{Model: r.o.Config.Model, Dim: r.dim, UnitsKey: r.units.Key, Units: r.units.Units, ValKey: held.Key, Val: held.Units,
			Share: i, Shares: r.shares, Classes: r.o.Data.Classes, Huber: r.o.Config.huber(), Hess: hess}
		if hess {
			gp.HessEvery = r.hessEvery
		}
		if inline {
			gp.W = w
		} else {
			gkeys[i] = r.prefix + "g/" + strconv.Itoa(k) + "/" + strconv.Itoa(i)
			gp.WKey, gp.GKey = wkey, gkeys[i]
		}
		if curv {
			gp.Curv = r.curvKey(k, i)
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
	p := &fbPoint{w: w, g: make([]float64, r.dim), valLoss: math.NaN(), valAcc: math.NaN(), pass: k}
	var loss, vloss float64
	var rows, vrows, vcorrect int
	var gs, ds [][]byte
	if !inline {
		gs, err = r.ps.MultiGet(ctx, gkeys)
		if err != nil {
			return nil, fmt.Errorf("read gradients: %w", err)
		}
		var dkeys []string
		if curv {
			for _, k := range gkeys {
				dkeys = append(dkeys, k+"/diag")
			}
			if ds, err = r.ps.MultiGet(ctx, dkeys); err != nil {
				return nil, fmt.Errorf("read Hessian diagonals: %w", err)
			}
		}
		defer func() {
			for _, k := range append(gkeys, dkeys...) {
				_ = r.ps.Delete(context.WithoutCancel(ctx), k)
			}
		}()
	}
	n := int(r.dim)
	if hess {
		p.h = make([]float64, n*n)
	}
	if hess || curv {
		p.diag = make([]float64, n)
	}
	for i, out := range res {
		var gr gradResult
		if err := json.Unmarshal(out.Output, &gr); err != nil {
			return nil, fmt.Errorf("bad gradient result: %w", err)
		}
		if inline {
			if uint64(len(gr.G)) != r.dim {
				return nil, fmt.Errorf("gradient share %d has %d coordinates, not %d", i, len(gr.G), r.dim)
			}
			for j, x := range gr.G {
				p.g[j] += x
			}
		} else {
			if gs[i] == nil {
				return nil, fmt.Errorf("gradient share %d is missing from psstore", i)
			}
			g, err := decodeF32(gs[i], r.dim)
			if err != nil {
				return nil, fmt.Errorf("gradient share %d: %w", i, err)
			}
			for j, x := range g {
				p.g[j] += float64(x)
			}
		}
		if hess {
			packed, err := decodeF64(gr.H, uint64(n*(n+1)/2))
			if err != nil {
				return nil, fmt.Errorf("Hessian of gradient share %d: %w", i, err)
			}
			unpackAdd(packed, p.h, n)
		} else if curv {
			diag := gr.Diag
			if !inline {
				if ds[i] == nil {
					return nil, fmt.Errorf("Hessian diagonal of share %d is missing from psstore", i)
				}
				if diag, err = decodeF64(ds[i], r.dim); err != nil {
					return nil, fmt.Errorf("Hessian diagonal of share %d: %w", i, err)
				}
			}
			if len(diag) != n {
				return nil, fmt.Errorf("gradient share %d has a Hessian diagonal of %d coordinates, not %d", i, len(diag), n)
			}
			for j, x := range diag {
				p.diag[j] += x
			}
		}
		loss += gr.Loss
		rows += gr.Rows
		vloss += gr.ValLoss
		vrows += gr.ValRows
		vcorrect += gr.ValCorrect
	}
	if rows == 0 {
		return nil, fmt.Errorf("the gradient pass saw no training rows")
	}
	p.rows = rows
	inv := 1 / float64(rows)
	var reg float64
	nc := len(r.o.Data.Classes)
	for j := range p.g {
		p.g[j] *= inv
		if regularized(uint64(j), r.dim, nc) {
			p.g[j] += r.l2 * w[j]
			reg += w[j] * w[j]
		}
	}
	if p.h != nil {
		for j := range p.h {
			p.h[j] *= inv
		}
		for j := 0; j < n; j++ {
			if regularized(uint64(j), r.dim, nc) {
				p.h[j*n+j] += r.l2
			}
			p.diag[j] = p.h[j*n+j]
		}
	} else if p.diag != nil {
		for j := range p.diag {
			p.diag[j] *= inv
			if regularized(uint64(j), r.dim, nc) {
				p.diag[j] += r.l2
			}
		}
	}
	p.trainLoss = loss * inv
	p.f = p.trainLoss + r.l2/2*reg
	p.gradNor = norm(p.g)
	if vrows > 0 {
		p.valLoss, p.valAcc, p.valRows = vloss/float64(vrows), float64(vcorrect)/float64(vrows), vrows
		p.heldOut = r.heldName
	}
	return p, nil
}

// runFullBatch trains with a full-batch solver, "lbfgs" or "newton": the same
// passes, held-out sets, stopping rules and final scoring; only the steps differ
// (see fbRun.lbfgs and fbRun.tron).
func runFullBatch(ctx context.Context, s operators.Stage, o RunOptions, solver, why string) (*Result, error) {
	cfg := o.Config
	dim := modelDim(cfg.Model, o.Data.Features, o.Data.Classes)
	// A small model's weights and gradients travel in the tasks' parameters and
	// results: such a run never touches psstore, so the local backend need not
	// open its shards at all.
	var ps *psstore.Client
	if dim > inlineDim {
		var err error
		if ps, err = s.PSStore(ctx); err != nil {
			return nil, err
		}
	}
	st, err := s.Blob(ctx)
	if err != nil {
		return nil, err
	}
	suffix := ""
	if o.Trial != "" {
		suffix = "/" + o.Trial
	}
	key := s.Key()
	model := "train/" + key[:min(16, len(key))] + suffix
	dir := "stages/" + key + "/train" + suffix + "/"
	// A share is at least shareEntries stored entries: smaller ones cost more in
	// task overhead than they save in compute.
	shares := max(1, min(cfg.Workers, s.Capacity(), int(o.Data.TrainNNZ/shareEntries)))
	trainUnits := makeUnits(o.Data.Train, shares, 1)
	// The held-out set the run stops on: the validation set, else a holdout of
	// the training set.
	var heldUnits []prefetch.Unit
	heldName := "validation"
	if len(o.Data.Validation) > 0 {
		heldUnits = makeUnits(o.Data.Validation, shares, 1)
	} else {
		heldName = "holdout"
		trainUnits, heldUnits = holdout(o.Data.Train, trainUnits)
	}
	shares = max(1, min(shares, len(trainUnits)))
	l2 := cfg.L2
	if !cfg.L2Set {
		l2 = 1 / float64(o.Data.TrainRows)
	}
	// A fresh name per run: a resumed stage recomputes its passes (they are
	// deterministic) rather than trust gradients an interrupted run left behind.
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	r := &fbRun{s: s, ps: ps, o: o, dim: dim, shares: shares, n: float64(o.Data.TrainRows), l2: l2,
		prefix: "fb/" + model + "/" + nonce + "/", wave: solver + strings.ReplaceAll(suffix, "/", "-") + "-" + nonce + "-",
		heldName: heldName, start: time.Now()}
	if r.units, err = putUnits(ctx, st, dir+"fb-units.json", trainUnits); err != nil {
		return nil, err
	}
	if r.val, err = putUnits(ctx, st, dir+"fb-held.json", heldUnits); err != nil {
		return nil, err
	}
	testParts := o.Data.Test
	var testUnits unitList
	if len(testParts) > 0 {
		if testUnits, err = putUnits(ctx, st, dir+"fb-test.json", makeUnits(testParts, 1, 1<<30)); err != nil {
			return nil, err
		}
	}
	r.maxPasses = cfg.Epochs
	if r.maxPasses == 0 {
		r.maxPasses = lbfgsMaxPass
	}
	passes := "gradient tasks"
	if solver == "newton" {
		r.hessian = dim <= hessianDim && ps == nil
		if r.hessian {
			r.hessEvery = max(1, int(o.Data.TrainRows)/shares/max(hessSampleRows, 64*int(dim)))
		}
		passes = "gradient and Hessian-vector tasks"
		if r.hessian {
			passes = "gradient and Hessian tasks"
		}
	}
	s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: fmt.Sprintf("solver %s (%s): %d %s, l2 %.3g; stopping on the %s loss", solver, why, shares, passes, l2, heldName)})

	if cfg.Timeout > 0 {
		timer := time.NewTimer(cfg.Timeout)
		defer timer.Stop()
		r.timeout = timer.C
	}
	r.tol = lbfgsTol
	if cfg.Epsilon > 0 {
		r.tol = cfg.Epsilon
	}
	r.gtol = gradientTol(cfg.Model, o.Data.Labels, o.Data.TrainRows)

	// Without a test set there are no test figures: null, not 0.
	r.res = &Result{Solver: solver, SolverWhy: why, Metrics: nanMetrics()}
	res := r.res
	cur, err := r.eval(ctx, make([]float64, dim), r.hessian, solver == "newton" && !r.hessian)
	if err != nil {
		return nil, err
	}
	r.best = cur
	r.record(cur)
	var stopping string
	if solver == "newton" {
		cur, stopping, err = r.tron(ctx, cur)
	} else {
		cur, stopping, err = r.lbfgs(ctx, cur)
	}
	if err != nil {
		return nil, err
	}
	r.flush()
	final := cur
	if r.best.valLoss < cur.valLoss {
		final = r.best
	}
	res.Stopped = stopping
	res.Duration = time.Since(r.start)
	res.Iterations = int64(len(r.hist) - 1)
	res.Passes = r.passes
	res.Examples = int64(r.passes) * o.Data.TrainRows
	if res.Duration > 0 {
		res.ExamplesPerSecond = float64(res.Examples) / res.Duration.Seconds()
	}
	if math.IsNaN(final.f) || math.IsInf(final.f, 0) {
		return res, &DivergedError{Trial: o.Trial, Logloss: final.f, Seconds: res.Duration.Seconds(), Optimizer: solver}
	}

	// Final figures: the whole test set (and the validation set) in one task each.
	score := func(units unitList) operators.Task {
		return scoreTaskInline(cfg.Model, final.w, units, o.Data.Classes)
	}
	if ps != nil {
		wkey := r.prefix + "w/final"
		if err := ps.Put(ctx, wkey, encodeF64(final.w)); err != nil {
			return nil, fmt.Errorf("write weights: %w", err)
		}
		defer ps.Delete(context.WithoutCancel(ctx), wkey)
		score = func(units unitList) operators.Task {
			t := operators.Task{Kind: KindScore}
			_ = t.SetParams(scoreParams{Model: cfg.Model, WKey: wkey, UnitsKey: units.Key, Units: units.Units, Classes: o.Data.Classes})
			return t
		}
	}
	var scoreTasks []operators.Task
	var names []string
	if len(testParts) > 0 {
		names = append(names, "test")
		scoreTasks = append(scoreTasks, score(testUnits))
	}
	if heldName == "validation" {
		vu, err := putUnits(ctx, st, dir+"fb-validation-all.json", makeUnits(o.Data.Validation, 1, 1<<30))
		if err != nil {
			return nil, err
		}
		names = append(names, "validation")
		scoreTasks = append(scoreTasks, score(vu))
	}
	if len(scoreTasks) > 0 {
		// Ephemeral: the wave's name carries this run's nonce, so a resumed stage
		// never finds its records; recording them was a synced write for nothing.
		out, err := s.RunWave(ctx, operators.Wave{Name: strings.TrimSuffix(r.wave, "-") + "-score", Tasks: scoreTasks, Ephemeral: true})
		if err != nil {
			return nil, err
		}
		for i, o := range out {
			var m Metrics
			if err := json.Unmarshal(o.Output, &m); err != nil {
				return nil, fmt.Errorf("bad score result: %w", err)
			}
			if names[i] == "test" {
				res.Metrics = m
			} else {
				v := m
				res.Validation = &v
			}
		}
	}
	w32 := make([]float32, dim)
	for j, x := range final.w {
		w32[j] = float32(x)
	}
	return finishRun(ctx, s, o, res, dir, w32, nil)
}

// stopped is the reason to stop that came from outside: the timeout or a stop
// request; "" when there is none.
func (r *fbRun) stopped() string {
	select {
	case <-r.timeout:
		return "timeout"
	case reason := <-r.o.Stop:
		return reason
	default:
		return ""
	}
}

// record remembers an accepted iterate: its history point, the held-out curve,
// and a metric event (a few a second: they are durable writes).
func (r *fbRun) record(p *fbPoint) {
	cfg := r.o.Config
	r.hist = append(r.hist, histPoint{f: p.f, held: p.valLoss})
	ep := EvalPoint{Seconds: time.Since(r.start).Seconds(), Logloss: p.valLoss, Accuracy: p.valAcc, Iterations: uint64(r.passes)}
	if cfg.Model == "linear_regression" && cfg.huber() == 0 {
		ep.Logloss = 2 * p.valLoss // the mean squared error, as the SGD evaluator's points carry it
	}
	m := map[string]float64{"t": ep.Seconds, "objective": p.f, "train_" + lossName(cfg.Model): p.trainLoss, "gradient_norm": p.gradNor, "passes": float64(r.passes)}
	if p.valRows > 0 {
		m[p.heldOut+"_"+lossName(cfg.Model)] = p.valLoss
		r.res.Series = append(r.res.Series, ep)
		if r.o.OnEval != nil {
			r.o.OnEval(ep)
		}
	}
	r.unsent = m
	if now := time.Now(); now.Sub(r.lastEvent) >= metricEvery || len(r.hist) == 1 {
		r.lastEvent, r.unsent = now, nil
		r.s.Event(operators.Event{Kind: "metric", Labels: r.o.Labels, Metrics: m})
	}
	if p.valLoss < r.best.valLoss {
		r.best = p
	}
}

// flush sends the last point, which the curve must end on.
func (r *fbRun) flush() {
	if r.unsent != nil {
		r.s.Event(operators.Event{Kind: "metric", Labels: r.o.Labels, Metrics: r.unsent})
		r.unsent = nil
	}
}

// converged reports whether p meets liblinear's gradient rule.
func (r *fbRun) converged(p *fbPoint, g0 float64) bool {
	return g0 == 0 || p.gradNor <= r.gtol*g0
}

// after applies the stopping rules that follow an accepted iterate cur: the
// target, the objective's window, the held-out loss's stall and the pass
// budget; "" to go on.
func (r *fbRun) after(cur *fbPoint) string {
	cfg, hist := r.o.Config, r.hist
	switch {
	case cfg.TargetLogloss > 0 && cur.valRows > 0 && cur.valLoss <= cfg.TargetLogloss:
		return "target_logloss"
	case len(hist) > lbfgsWindow && hist[len(hist)-1-lbfgsWindow].f-cur.f <= r.tol*math.Abs(cur.f):
		return "converged"
	case len(hist) > lbfgsWindow && validationStalled(hist):
		return r.heldName
	case r.passes >= r.maxPasses:
		return "epochs"
	}
	return ""
}

// lbfgs runs L-BFGS from cur and returns its last iterate and why it stopped.
func (r *fbRun) lbfgs(ctx context.Context, cur *fbPoint) (*fbPoint, string, error) {
	dim := r.dim
	g0 := cur.gradNor
	var ss, ys [][]float64
	for {
		if why := r.stopped(); why != "" {
			return cur, why, nil
		}
		if r.converged(cur, g0) {
			return cur, "converged", nil
		}
		d := direction(cur.g, ss, ys)
		gd := dot(cur.g, d)
		if gd >= 0 { // not a descent direction: restart from steepest descent
			ss, ys = nil, nil
			d = scale(cur.g, -1)
			gd = dot(cur.g, d)
		}
		step := 1.0
		if len(ss) == 0 {
			step = 1 / math.Max(norm(d), 1)
		}
		var next *fbPoint
		for tries := 0; tries < 30; tries++ {
			if r.passes >= r.maxPasses {
				break
			}
			w := make([]float64, dim)
			for j := range w {
				w[j] = cur.w[j] + step*d[j]
			}
			p, err := r.eval(ctx, w, false, false)
			if err != nil {
				return nil, "", err
			}
			if p.f <= cur.f+armijo*step*gd {
				next = p
				break
			}
			step /= 2
		}
		if next == nil {
			if r.passes >= r.maxPasses {
				return cur, "epochs", nil
			}
			return cur, "line search", nil
		}
		sv, yv := make([]float64, dim), make([]float64, dim)
		for j := range sv {
			sv[j], yv[j] = next.w[j]-cur.w[j], next.g[j]-cur.g[j]
		}
		if dot(sv, yv) > 1e-12*dot(yv, yv) {
			ss, ys = append(ss, sv), append(ys, yv)
			if len(ss) > lbfgsMemory {
				ss, ys = ss[1:], ys[1:]
			}
		}
		cur = next
		r.record(cur)
		if why := r.after(cur); why != "" {
			return cur, why, nil
		}
	}
}

// gradientTol is the relative gradient norm the full-batch solver stops at.
// For a binary classifier it is liblinear's default for its primal solvers
// (-s 0 and -s 2: eps = 0.01, scaled by the smaller class's share of the rows,
// "primal_solver_tol" in liblinear's train_one), so that a balanced set stops
// at 1/200 of the initial gradient and a skewed one proportionally later; for
// the other models, and without label statistics, gradTol.
func gradientTol(model string, labels *manifest.Labels, rows int64) float64 {
	if !binaryModel(model) || labels == nil || labels.Many || rows <= 0 {
		return gradTol
	}
	var pos int64
	for _, d := range labels.Distinct {
		if d.Value > 0 {
			pos += d.Count
		}
	}
	return 0.01 * float64(max(min(pos, rows-pos), 1)) / float64(rows)
}

// histPoint is what the stopping rules remember of an iteration.
type histPoint struct{ f, held float64 }

// validationStalled reports whether the best validation loss of the last
// lbfgsWindow points improved on the best before them by at most validationTol.
func validationStalled(hist []histPoint) bool {
	n := len(hist)
	before, recent := math.Inf(1), math.Inf(1)
	for i, p := range hist {
		if i < n-lbfgsWindow {
			before = math.Min(before, p.held)
		} else {
			recent = math.Min(recent, p.held)
		}
	}
	return before-recent <= validationTol*before
}

func scoreTask(model, wkey, units string, classes []float64) operators.Task {
	t := operators.Task{Kind: KindScore}
	_ = t.SetParams(scoreParams{Model: model, WKey: wkey, UnitsKey: units, Classes: classes})
	return t
}

// scoreTaskInline is scoreTask with a small model's weights in its parameters.
func scoreTaskInline(model string, w []float64, units unitList, classes []float64) operators.Task {
	t := operators.Task{Kind: KindScore}
	_ = t.SetParams(scoreParams{Model: model, W: w, UnitsKey: units.Key, Units: units.Units, Classes: classes})
	return t
}

// inlineUnits is the longest unit list the full-batch solver's tasks carry in
// their parameters (about 100 bytes a unit) rather than read from the blob
// store: a small data set's run then writes no unit lists at all.
const inlineUnits = 256

// unitList is a list of units as a task finds it: in its parameters, or at a
// blob key.
type unitList struct {
	Key   string
	Units []prefetch.Unit
}

// putUnits makes units a unitList: inline when short, else saved at key.
func putUnits(ctx context.Context, st blob.Store, key string, units []prefetch.Unit) (unitList, error) {
	if len(units) <= inlineUnits {
		if units == nil {
			units = []prefetch.Unit{}
		}
		return unitList{Units: units}, nil
	}
	return unitList{Key: key}, saveUnits(ctx, st, key, units)
}

// direction is L-BFGS's two-loop recursion: −H·g for the inverse Hessian H the
// curvature pairs (s, y) describe, scaled by s·y/y·y of the newest pair.
func direction(g []float64, ss, ys [][]float64) []float64 {
	q := scale(g, 1)
	k := len(ss)
	alpha := make([]float64, k)
	rho := make([]float64, k)
	for i := k - 1; i >= 0; i-- {
		rho[i] = 1 / dot(ys[i], ss[i])
		alpha[i] = rho[i] * dot(ss[i], q)
		axpy(-alpha[i], ys[i], q)
	}
	if k > 0 {
		gamma := dot(ss[k-1], ys[k-1]) / dot(ys[k-1], ys[k-1])
		for j := range q {
			q[j] *= gamma
		}
	}
	for i := 0; i < k; i++ {
		beta := rho[i] * dot(ys[i], q)
		axpy(alpha[i]-beta, ss[i], q)
	}
	for j := range q {
		q[j] = -q[j]
	}
	return q
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func norm(a []float64) float64 { return math.Sqrt(dot(a, a)) }

func scale(a []float64, c float64) []float64 {
	out := make([]float64, len(a))
	for i, x := range a {
		out[i] = c * x
	}
	return out
}

// axpy sets y += a·x.
func axpy(a float64, x, y []float64) {
	for i := range x {
		y[i] += a * x[i]
	}
}
