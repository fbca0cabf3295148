package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/dataset/prefetch"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/psstore"
)

// checkRatingsInput refuses a ratings set given to another model, and
// another set given to matrix factorization.
func checkRatingsInput(cfg Config, d *Data) error {
	mf, ratings := cfg.Model == "matrix_factorization", d.Format.Name == "ratings"
	switch {
	case mf && !ratings:
		return fmt.Errorf("model = \"matrix_factorization\" trains on ratings, and the input %s has format %q: load user,item,rating lines with format = \"ratings\"", d.TrainManifest, d.Format.Name)
	case !mf && ratings:
		return fmt.Errorf("the input %s holds ratings (format = \"ratings\"), which %s cannot train on: use model = \"matrix_factorization\"", d.TrainManifest, cfg.Model)
	}
	return nil
}

// mfConfig is the matrix factorization's reading of a Config: its defaults
// where the stage leaves an argument out.
func mfConfig(cfg Config) (Config, error) {
	if cfg.Rank == 0 {
		cfg.Rank = DefaultRank
	}
	if cfg.Rank < 1 || cfg.Rank > 1000 {
		return cfg, fmt.Errorf("rank must be a whole number from 1 to 1000; got %d", cfg.Rank)
	}
	if !cfg.L2Set {
		cfg.L2 = DefaultMFL2
	}
	if cfg.TargetLogloss > 0 {
		return cfg, fmt.Errorf("target_logloss does not apply to matrix_factorization, which has no log loss; it stops when the held-out RMSE converges (epsilon) or after epochs")
	}
	if cfg.Solver == "lbfgs" {
		return cfg, fmt.Errorf("solver = \"lbfgs\" does not apply to matrix_factorization: it trains with alternating least squares or asynchronous SGD (solver = \"auto\", \"als\" or \"sgd\")")
	}
	if !cfg.LearningRateSet {
		cfg.LearningRate = DefaultMFLearningRate
	}
	return cfg, nil
}

// mfRun is one matrix factorization run's shared state: what both solvers
// read before training and what finish needs after.
type mfRun struct {
	s      operators.Stage
	o      RunOptions
	cfg    Config
	ps     *psstore.Client
	st     blob.Store
	stats  *manifest.Stats
	sum    *manifest.RatingsSummary
	seen   []uint32 // the training set's slots
	model  string   // the psstore model (SGD) and key prefix (ALS)
	dir    string
	suffix string
	slots  int
	dim    uint64
}

// runMF trains a matrix factorization (see mf.go) with the solver
// chooseMFSolver picks: alternating least squares (mf_als.go) or
// asynchronous SGD (sgd); then the model is exported with unknown slots
// zeroed and scored on the test set (finish).
func runMF(ctx context.Context, s operators.Stage, o RunOptions) (*Result, error) {
	cfg, err := mfConfig(o.Config)
	if err != nil {
		return nil, err
	}
	ps, err := s.PSStore(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.Blob(ctx)
	if err != nil {
		return nil, err
	}
	tm, err := manifest.Open(ctx, st, o.Data.TrainManifest)
	if err != nil {
		return nil, fmt.Errorf("read training set: %w", err)
	}
	stats, err := tm.ReadStats(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("read training set statistics: %w", err)
	}
	sum := manifest.SummarizeRatings(stats)
	var seen []uint32
	stats.Each(func(i uint32, f manifest.Feature) { seen = append(seen, i) })
	if sum.Ratings == 0 {
		return nil, fmt.Errorf("the training set %s holds no ratings", o.Data.TrainManifest)
	}
	suffix := ""
	if o.Trial != "" {
		suffix = "/" + o.Trial
	}
	model, err := modelName(s, o.Trial)
	if err != nil {
		return nil, err
	}
	slots := o.Data.Features
	dim := uint64(slots) * uint64(cfg.Rank+1)
	solver, why := chooseMFSolver(cfg, dim, sum.Ratings)
	if solver == "sgd" && !cfg.MinibatchSet {
		cfg.Minibatch = mfMinibatch(sum.Users, sum.Items)
	}
	o.Config = cfg
	m := &mfRun{s: s, o: o, cfg: cfg, ps: ps, st: st, stats: stats, sum: sum, seen: seen, model: model,
		dir: "stages/" + s.Key() + "/train" + suffix + "/", suffix: suffix, slots: slots, dim: dim}
	if solver == "als" {
		return m.als(ctx, why)
	}
	return m.sgd(ctx, why)
}

// sgd trains with asynchronous SGD: the model in psstore, workers and an
// evaluator as two long-running waves, stopping on epochs, convergence of the
// held-out RMSE, timeout, divergence or request.
func (m *mfRun) sgd(ctx context.Context, why string) (*Result, error) {
	s, o, cfg, ps, st := m.s, m.o, m.cfg, m.ps, m.st
	stats, sum, model, dir, suffix, slots, dim := m.stats, m.sum, m.model, m.dir, m.suffix, m.slots, m.dim
	workers := cfg.Workers
	if capacity := s.Capacity(); workers+1 > capacity {
		if capacity < 2 {
			return nil, fmt.Errorf("training needs at least 2 concurrent functions (workers and an evaluator); the backend allows %d", capacity)
		}
		workers = capacity - 1
		s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: fmt.Sprintf("running %d workers, not %d: the backend runs %d functions at once and the evaluator needs one", workers, cfg.Workers, capacity)})
	}
	ctl := newControl(ps, model)
	spec := psstore.ModelSpec{Name: model, Dim: dim, Optimizer: cfg.Optimizer, LearningRate: float32(cfg.LearningRate),
		Init: psstore.InitNormal, Seed: uint64(cfg.Seed), Stddev: mfInitStddev}
	if cfg.Optimizer == "momentum" {
		spec.Momentum = float32(cfg.Momentum)
	}
	workersWave, evalWave := wave(suffix, "mf-workers"), wave(suffix, "mf-eval")
	mc, gen, err := prepareModel(ctx, s, ps, ctl, spec, workersWave, o.Labels)
	if err != nil {
		return nil, err
	}
	workersWave, evalWave = genWave(workersWave, gen), genWave(evalWave, gen)

	trainUnits := makeUnits(o.Data.Train, workers, cfg.Minibatch)
	heldName, heldParts, heldUnits := "test", o.Data.Test, []prefetch.Unit(nil)
	epochs, eps := cfg.Epochs, cfg.Epsilon
	if epochs == 0 {
		epochs = sgdMaxEpochs
		if eps == 0 {
			eps = sgdEpsilon
		}
	}
	switch {
	case len(o.Data.Validation) > 0:
		heldName, heldParts = "validation", o.Data.Validation
	case cfg.Epochs == 0 || len(heldParts) == 0:
		heldName, heldParts = "holdout", nil
		trainUnits, heldUnits = holdout(o.Data.Train, trainUnits)
	}
	if heldUnits == nil {
		heldUnits = makeUnits(heldParts, 1, 1<<30)
	}
	s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: fmt.Sprintf("matrix factorization: rank %d, l2 %g, %d slots (%d users, %d items, %d ratings, mean %.4f); solver sgd (%s): %d workers, %s, learning rate %g, minibatch %d; stopping on the %s RMSE",
		cfg.Rank, cfg.L2, slots, sum.Users, sum.Items, sum.Ratings, sum.Mean, why, workers, cfg.Optimizer, cfg.LearningRate, cfg.Minibatch, heldName)})
	for key, units := range map[string][]prefetch.Unit{"units.json": trainUnits, "eval-units.json": heldUnits} {
		if err := saveUnits(ctx, st, dir+key, units); err != nil {
			return nil, err
		}
	}
	if err := writeSeen(ctx, st, dir+"seen.u32", m.seen); err != nil {
		return nil, err
	}

	start := time.Now()
	wtasks := make([]operators.Task, workers)
	for i := range wtasks {
		wtasks[i] = operators.Task{Kind: KindMFWorker}
		if err := wtasks[i].SetParams(mfWorkerParams{Model: model, Rank: cfg.Rank, Mean: sum.Mean, L2: cfg.L2, UnitsKey: dir + "units.json",
			Worker: i, Workers: workers, Minibatch: cfg.Minibatch, Epochs: epochs, Seed: cfg.Seed, Prefetch: 2}); err != nil {
			return nil, err
		}
	}
	etask := operators.Task{Kind: KindMFEval}
	keepBest := (heldName == "validation" || heldName == "holdout") && 4*dim <= mfKeepBestBytes
	if !keepBest && heldName != "test" {
		s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: fmt.Sprintf("the model's %d coordinates are too many to keep the weights of its best %s evaluation: the final weights are exported", dim, heldName)})
	}
	if err := etask.SetParams(mfEvalParams{Model: model, Rank: cfg.Rank, Mean: sum.Mean, UnitsKey: dir + "eval-units.json", SeenKey: dir + "seen.u32",
		Interval: cfg.EvalInterval, Start: start, KeepBest: keepBest}); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type waveOut struct {
		res []*operators.Result
		err error
	}
	workersDone, evalDone := make(chan waveOut, 1), make(chan waveOut, 1)
	go func() {
		r, err := s.RunWave(wctx, operators.Wave{Name: workersWave, Tasks: wtasks, LongRunning: true, Lifetime: cfg.Lifetime})
		workersDone <- waveOut{r, err}
	}()
	go func() {
		r, err := s.RunWave(wctx, operators.Wave{Name: evalWave, Tasks: []operators.Task{etask}, LongRunning: true, Lifetime: cfg.Lifetime})
		evalDone <- waveOut{r, err}
	}()

	res := &Result{Solver: "sgd", SolverWhy: why}
	var (
		stopping            string
		diverged            bool
		failure             error
		workerOut, evalOut  *waveOut
		lastT               = -1.0
		trainEnd            time.Time
		lastUpdate, lastUps = start, uint64(0)
	)
	stop := func(reason string) {
		if stopping != "" {
			return
		}
		stopping = reason
		if err := ctl.stop(context.WithoutCancel(ctx), reason); err != nil && failure == nil {
			failure = fmt.Errorf("signal stop: %w", err)
			cancel()
		}
	}
	var timeout <-chan time.Time
	if cfg.Timeout > 0 {
		timer := time.NewTimer(cfg.Timeout)
		defer timer.Stop()
		timeout = timer.C
	}
	tick := time.NewTicker(min(max(cfg.EvalInterval/2, 20*time.Millisecond), 250*time.Millisecond))
	defer tick.Stop()
	// The divergence bound: four times the RMSE of predicting the mean.
	bound := divergenceFactor * math.Max(ratingStddev(stats, sum), 1e-6)
	rmseName := heldName + "_rmse"
	done := ctx.Done()
	for evalOut == nil || workerOut == nil {
		select {
		case <-tick.C:
		case w := <-workersDone:
			workerOut, trainEnd = &w, time.Now()
			if w.err != nil && failure == nil && ctx.Err() == nil {
				failure = w.err
				cancel()
			}
			stop("epochs")
		case e := <-evalDone:
			evalOut = &e
			if e.err != nil && failure == nil && ctx.Err() == nil {
				failure = e.err
				cancel()
			}
			if stopping == "" {
				stop("evaluator ended")
			}
		case r := <-o.Stop:
			stop(r)
			o.Stop = nil
		case <-timeout:
			stop("timeout")
		case <-done:
			cancel()
			done = nil
		}
		if err := mc.watch(ctx); err != nil && failure == nil && ctx.Err() == nil {
			failure = err
			cancel()
		}
		if evalOut != nil && evalOut.err == nil {
			continue
		}
		pt, err := ctl.latestEval(ctx)
		if err != nil || pt == nil || pt.Seconds <= lastT {
			continue
		}
		lastT = pt.Seconds
		res.Series = append(res.Series, EvalPoint{Seconds: pt.Seconds, Logloss: pt.Logloss, Accuracy: pt.Accuracy, Updates: pt.Updates, Iterations: pt.Pushes})
		now := time.Now()
		rate := 0.0
		if dt := now.Sub(lastUpdate).Seconds(); dt > 0 {
			rate = float64(pt.Updates-min(pt.Updates, lastUps)) / dt
		}
		lastUpdate, lastUps = now, pt.Updates
		s.Event(operators.Event{Kind: "metric", Labels: o.Labels, Metrics: map[string]float64{rmseName: finite(pt.Logloss), heldName + "_mae": pt.Accuracy,
			"updates": float64(pt.Updates), "updates_per_second": rate, "t": pt.Seconds}})
		if o.OnEval != nil {
			o.OnEval(res.Series[len(res.Series)-1])
		}
		if stopping != "" {
			continue
		}
		switch {
		case math.IsNaN(pt.Logloss) || math.IsInf(pt.Logloss, 0) || pt.Logloss > bound && len(res.Series) > 1:
			diverged = true
			stop("diverged")
		case eps > 0 && converged(res.Series, eps):
			stop("converged")
		}
	}
	if failure != nil {
		return nil, mc.explain(ctx, failure)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if trainEnd.IsZero() {
		trainEnd = time.Now()
	}
	res.Stopped, res.Duration = stopping, trainEnd.Sub(start)
	var final evalPoint
	if len(evalOut.res) == 1 {
		if err := json.Unmarshal(evalOut.res[0].Output, &final); err != nil {
			return nil, fmt.Errorf("bad evaluator result: %w", err)
		}
	}
	fp := fromJSONSafe(final)
	res.Series = append(res.Series, EvalPoint{Seconds: fp.Seconds, Logloss: fp.Logloss, Accuracy: fp.Accuracy, Updates: fp.Updates, Iterations: fp.Pushes})
	held := &RatingMetrics{RMSE: fp.Logloss, MAE: fp.Accuracy, Rows: fp.Rows}
	var ph phases
	hist := newHistogram()
	for _, r := range workerOut.res {
		var wr workerResult
		if err := json.Unmarshal(r.Output, &wr); err != nil {
			return nil, fmt.Errorf("bad worker result: %w", err)
		}
		res.Iterations += wr.Iterations
		res.Examples += wr.Examples
		ph.add(wr.Phases)
		hist.merge(wr.Hist)
	}
	if res.Iterations > 0 {
		n := time.Duration(res.Iterations)
		res.Breakdown = Breakdown{Get: ph.Get / n, Pull: ph.Pull / n, Compute: ph.Compute / n, Push: ph.Push / n, P50: hist.quantile(0.5), P99: hist.quantile(0.99)}
	}
	if res.Duration > 0 {
		res.ExamplesPerSecond = float64(res.Examples) / res.Duration.Seconds()
	}
	if diverged || math.IsNaN(fp.Logloss) || math.IsInf(fp.Logloss, 0) {
		mc.cleanup(ctx, s, ctl, false, o.Labels)
		return res, fmt.Errorf("training diverged: the %s became %.4g after %.1fs (predicting the mean scores %.4g). The learning rate (%g) is probably too high for the %s optimizer: lower it",
			rmseName, fp.Logloss, fp.Seconds, bound/divergenceFactor, cfg.LearningRate, cfg.Optimizer)
	}
	if err := mc.verify(ctx); err != nil {
		return nil, err
	}
	w, err := ps.PullDense(ctx, model)
	if err != nil {
		return nil, fmt.Errorf("export model: %w", err)
	}
	if keepBest {
		// Early stopping: export the weights of the best held-out evaluation
		// when training went past it (the evaluator stored them).
		best := res.Series[0]
		for _, p := range res.Series {
			if p.Logloss < best.Logloss {
				best = p
			}
		}
		if best.Logloss < held.RMSE {
			bw, err := ctl.best(ctx, dim)
			if err != nil {
				return nil, fmt.Errorf("read the best weights: %w", err)
			}
			if bw != nil {
				s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: fmt.Sprintf("keeping the weights of the best %s evaluation (RMSE %.4f at %.1fs, not %.4f at the end)", heldName, best.Logloss, best.Seconds, held.RMSE)})
				w, held.RMSE, held.MAE = bw, best.Logloss, best.Accuracy
			}
		}
	}
	how := fmt.Sprintf("%d iterations, %.0f ratings/s; %s", res.Iterations, res.ExamplesPerSecond, res.Breakdown)
	return m.finish(ctx, res, w, held, heldName, how, func() { mc.cleanup(ctx, s, ctl, cfg.KeepModel, o.Labels) })
}

// finish exports a trained factorization: it zeroes the unknown slots of w
// (never rated in training: they predict with nothing of theirs), writes the
// artifact, scores it on the test set and sets the run's metrics — once,
// here: res.Metrics carries the test RMSE and MAE (NaN, so null, without a
// test set) and res.Validation the validation set's, which the stage's
// metrics, grid search and the artifact all read. held is the final
// figures on the held-out set heldName; how says how training went; cleanup,
// when set, runs after scoring.
func (m *mfRun) finish(ctx context.Context, res *Result, w []float32, held *RatingMetrics, heldName, how string, cleanup func()) (*Result, error) {
	s, o, cfg, st, sum, dir, slots := m.s, m.o, m.cfg, m.st, m.sum, m.dir, m.slots
	k := cfg.Rank + 1
	known := make([]bool, slots)
	for _, x := range m.seen {
		if int(x) < slots {
			known[x] = true
		}
	}
	for x := 0; x < slots; x++ {
		if !known[x] {
			clear(w[x*k : (x+1)*k])
		}
	}
	mf := &MFModel{Rank: cfg.Rank, Mean: sum.Mean, Slots: slots, Users: sum.Users, Items: sum.Items}
	res.Metrics, res.Validation = nanMetrics(), nil
	if heldName == "validation" && held != nil && held.Rows > 0 {
		mf.Validation = held
		v := nanMetrics()
		v.RMSE, v.MAE, v.Rows = held.RMSE, held.MAE, held.Rows
		res.Validation = &v
	}
	res.MF = mf
	art := &Artifact{Model: cfg.Model, Features: o.Data.Features, Input: o.Data.info(), Solver: res.Solver, MF: mf,
		Metrics: res.Metrics, Validation: res.Validation,
		Iterations: res.Iterations, ExamplesPerSecond: res.ExamplesPerSecond, Stage: s.Address(), CacheKey: s.Key(),
		Trial: o.Trial, Config: cfg, Stopped: res.Stopped, Created: time.Now().UTC()}
	var err error
	if res.ModelURI, err = writeArtifact(ctx, st, dir+"model/", art, w); err != nil {
		return nil, err
	}
	if len(o.Data.Test) > 0 {
		if err := saveUnits(ctx, st, dir+"test-units.json", makeUnits(o.Data.Test, 1, 1<<30)); err != nil {
			return nil, err
		}
		t := operators.Task{Kind: KindMFScore}
		if err := t.SetParams(mfScoreParams{ModelKey: dir + "model/model.json", UnitsKey: dir + "test-units.json"}); err != nil {
			return nil, err
		}
		out, err := s.RunWave(ctx, operators.Wave{Name: wave(m.suffix, "mf-score"), Tasks: []operators.Task{t}})
		if err != nil {
			return nil, err
		}
		var tm RatingMetrics
		if err := json.Unmarshal(out[0].Output, &tm); err != nil {
			return nil, fmt.Errorf("bad score result: %w", err)
		}
		if tm.Rows > 0 {
			mf.Test = &tm
			res.Metrics.RMSE, res.Metrics.MAE, res.Metrics.Rows = tm.RMSE, tm.MAE, tm.Rows
			art.Metrics = res.Metrics
			// Rewrite the artifact with its test metrics.
			if res.ModelURI, err = writeArtifact(ctx, st, dir+"model/", art, w); err != nil {
				return nil, err
			}
		}
	}
	if cleanup != nil {
		cleanup()
	}
	summary := map[string]float64{"iterations": float64(res.Iterations), "examples_per_second": res.ExamplesPerSecond}
	for _, set := range []struct {
		name string
		m    *RatingMetrics
	}{{"test", mf.Test}, {"validation", mf.Validation}} { // in this order: the summary reads the same every run
		name, m := set.name, set.m
		if m != nil {
			how += fmt.Sprintf("; %s RMSE %.4f, MAE %.4f", name, m.RMSE, m.MAE)
			summary[name+"_rmse"], summary[name+"_mae"] = m.RMSE, m.MAE
		}
	}
	s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: fmt.Sprintf("stopped (%s) after %s: %s", res.Stopped, res.Duration.Round(10*time.Millisecond), how)})
	s.Event(operators.Event{Kind: "summary", Labels: o.Labels, Metrics: summary})
	return res, nil
}

// ratingStddev is the training ratings' standard deviation: the RMSE of
// predicting their mean.
func ratingStddev(stats *manifest.Stats, sum *manifest.RatingsSummary) float64 {
	var sq float64
	stats.Each(func(i uint32, f manifest.Feature) {
		if i%2 == 0 {
			sq += f.SumSq
		}
	})
	n := float64(sum.Ratings)
	return math.Sqrt(math.Max(sq/n-sum.Mean*sum.Mean, 0))
}
