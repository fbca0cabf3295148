package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/dataset/prefetch"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/psstore"
)

// Task kinds of the train operator.
const (
	// KindWorker runs asynchronous SGD over a share of the training set until its
	// lifetime, then yields its position.
	KindWorker = "train.worker"
	// KindEval evaluates the model in psstore on the held-out set, periodically.
	KindEval = "train.eval"
	// KindGrad is one full-batch gradient pass over a share (L-BFGS).
	KindGrad = "train.grad"
	// KindScore scores final weights on the test set.
	KindScore = "train.score"
)

// Operator returns the train operator: its schema, coordinator and task handlers.
func Operator() *operators.Operator {
	return &operators.Operator{
		Schema:      Schema,
		Coordinator: operators.CoordinatorFunc(coordinate),
		Handlers: map[string]operators.Handler{
			KindWorker: runWorker,
			KindEval:   runEvaluator,
			KindGrad:   runGrad,
			KindScore:  runScore,
			// Matrix factorization (mf_tasks.go).
			KindMFWorker: runMFWorker,
			KindMFEval:   runMFEval,
			KindMFScore:  runMFScore,
			KindMFALS:    runMFALS,
		},
	}
}

func coordinate(ctx context.Context, s operators.Stage) (cty.Value, error) {
	cfg, err := ParseConfig(s.Config())
	if err != nil {
		return cty.NilVal, err
	}
	st, err := s.Blob(ctx)
	if err != nil {
		return cty.NilVal, err
	}
	data, err := ReadInput(ctx, st, s.Config().GetAttr("input"))
	if err != nil {
		return cty.NilVal, err
	}
	res, err := Run(ctx, s, RunOptions{Config: cfg, Data: data, Stop: s.Stop()})
	if err != nil {
		return cty.NilVal, err
	}
	return res.Value(), nil
}

// RunOptions describe one training run inside a stage: the stage's own, or a trial
// of a grid search.
type RunOptions struct {
	// Trial names the run inside its stage ("" for the stage's own run); it keeps
	// the model, the waves and the artifact of each trial apart.
	Trial  string
	Config Config
	Data   *Data
	// OnEval, when set, sees every evaluation point as it arrives.
	OnEval func(EvalPoint)
	// Stop, when it delivers a reason, ends the run early; the model so far is kept
	// and evaluated, and Result.Stopped holds the reason.
	Stop <-chan string
	// Labels are added to the run's events.
	Labels map[string]string
}

// EvalPoint is one evaluation of a run's model on its test set.
type EvalPoint struct {
	Seconds  float64 `json:"t"`
	Logloss  float64 `json:"test_logloss"`
	Accuracy float64 `json:"accuracy"`
	AUC      float64 `json:"auc"`
	Updates  uint64  `json:"updates"`
	// Iterations is the number of gradient pushes the model has applied.
	Iterations uint64 `json:"iterations,omitempty"`
}

// Result is how a training run ended.
type Result struct {
	Metrics           Metrics
	Iterations        int64
	Examples          int64
	ExamplesPerSecond float64
	ModelURI          string
	// Stopped says why training ended: "epochs", "target_logloss", "converged",
	// "timeout", or a reason given on RunOptions.Stop.
	Stopped  string
	Series   []EvalPoint
	Duration time.Duration
	// Breakdown is the per-iteration time of the workers.
	Breakdown Breakdown
	// Solver is the solver that ran ("sgd", "lbfgs" or "newton") and SolverWhy
	// why it was chosen; Passes counts the full-batch solver's passes (gradient
	// and Hessian-vector waves).
	Solver, SolverWhy string
	Passes            int
	// Validation holds the final metrics on the validation set, when there is one.
	Validation *Metrics
	// MF is a matrix factorization's model record (its metrics are in
	// Metrics and Validation, as for the other models).
	MF *MFModel
	// Scaling lists an elastic run's changes of its worker count.
	Scaling []scaleChange
}

// Breakdown is where a worker iteration's time goes, on average, with its p50 and
// p99 from a histogram of all iterations.
type Breakdown struct {
	Get, Pull, Compute, Push time.Duration
	P50, P99                 time.Duration
	// PullP50 and PushP50 are the median psstore pull and push.
	PullP50, PushP50 time.Duration
}

func (b Breakdown) String() string {
	us := func(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }
	return fmt.Sprintf("per iteration p50 %s, p99 %s; mean get-minibatch %s, pull %s, compute %s, push %s",
		us(b.P50), us(b.P99), us(b.Get), us(b.Pull), us(b.Compute), us(b.Push))
}

// Value is the stage output: the model artifact's URI and its metrics.
func (r *Result) Value() cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"model":   cty.StringVal(r.ModelURI),
		"metrics": r.MetricsValue(),
	})
}

// MetricsValue is the metrics object of operators.MetricsType.
func (r *Result) MetricsValue() cty.Value {
	f := func(x float64) cty.Value {
		if math.IsNaN(x) {
			return cty.NullVal(cty.Number) // no such figure: no test set, or no log loss
		}
		if math.IsInf(x, 0) {
			return cty.NumberFloatVal(0)
		}
		return cty.NumberFloatVal(x)
	}
	// A loss the model has not (a linear SVM's log loss) is null, not 0.
	loss := func(x float64) cty.Value {
		if math.IsNaN(x) {
			return cty.NullVal(cty.Number)
		}
		return f(x)
	}
	null := cty.NullVal(cty.Number)
	vl, va, vauc := null, null, null
	vrmse, vmae, vr2 := null, null, null
	if v := r.Validation; v != nil {
		vl, va, vauc = loss(v.Logloss), f(v.Accuracy), f(v.AUC)
		vrmse, vmae, vr2 = f(v.RMSE), f(v.MAE), f(v.R2)
	}
	perClass := cty.NullVal(cty.List(cty.Number))
	if len(r.Metrics.PerClass) > 0 {
		var vs []cty.Value
		for _, a := range r.Metrics.PerClass {
			vs = append(vs, f(a))
		}
		perClass = cty.ListVal(vs)
	}
	m := map[string]cty.Value{
		"test_rmse":           f(r.Metrics.RMSE),
		"test_mae":            f(r.Metrics.MAE),
		"r2":                  f(r.Metrics.R2),
		"validation_rmse":     vrmse,
		"validation_mae":      vmae,
		"validation_r2":       vr2,
		"per_class_accuracy":  perClass,
		"test_logloss":        loss(r.Metrics.Logloss),
		"accuracy":            f(r.Metrics.Accuracy),
		"auc":                 f(r.Metrics.AUC),
		"validation_logloss":  vl,
		"validation_accuracy": va,
		"validation_auc":      vauc,
		"iterations":          cty.NumberIntVal(r.Iterations),
		"examples_per_second": f(math.Round(r.ExamplesPerSecond)),
	}
	return cty.ObjectVal(m)
}

// DivergedError means training stopped because the test loss became NaN or Inf or
// grew past a bound.
type DivergedError struct {
	Trial        string
	Logloss      float64
	Seconds      float64
	LearningRate float64
	Optimizer    string
}

func (e *DivergedError) Error() string {
	what := fmt.Sprintf("grew to %.4g", e.Logloss)
	if math.IsNaN(e.Logloss) || math.IsInf(e.Logloss, 0) {
		what = fmt.Sprintf("became %v", e.Logloss)
	}
	return fmt.Sprintf("training diverged: the test log loss %s after %.1fs. The learning rate (%g) is probably too high for the %s optimizer: lower it",
		what, e.Seconds, e.LearningRate, e.Optimizer)
}

// Divergence bound: a loss this many times that of the all-zero model (log 2) is
// worse than predicting a constant by far.
const divergenceFactor = 4

// SGD without epochs runs until the held-out loss converges: at most
// sgdMaxEpochs passes, stopping when the best loss of the last convergenceWindow
// evaluations improves on the best before them by less than sgdEpsilon (or
// epsilon, when given).
const (
	sgdMaxEpochs = 100
	sgdEpsilon   = 1e-3
)

// convergenceWindow is the number of evaluations epsilon compares over.
const convergenceWindow = 5

// Run trains one model: it creates the model in psstore, launches the workers as a
// long-running wave and the evaluator beside them, watches the evaluations, stops
// the run on epochs, target, convergence, timeout, divergence or request, exports the
// model to the blob store and returns its figures.
func Run(ctx context.Context, s operators.Stage, o RunOptions) (*Result, error) {
	cfg := o.Config
	if cfg.Model == "" {
		cfg.Model = "logistic_regression"
	}
	o.Config = cfg
	if err := checkRatingsInput(cfg, o.Data); err != nil {
		return nil, err
	}
	if cfg.Model == "matrix_factorization" {
		return runMF(ctx, s, o)
	}
	if err := checkData(cfg.Model, o.Data); err != nil {
		return nil, err
	}
	solver, why := chooseSolver(cfg, o.Data)
	if solver != "sgd" {
		return runFullBatch(ctx, s, o, solver, why)
	}
	ps, err := s.PSStore(ctx)
	if err != nil {
		return nil, err
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
	model, err := modelName(s, o.Trial)
	if err != nil {
		return nil, err
	}
	workersWave, evalWave := "workers"+strings.ReplaceAll(suffix, "/", "-"), "eval"+strings.ReplaceAll(suffix, "/", "-")
	dir := "stages/" + key + "/train" + suffix + "/"
	dim := modelDim(cfg.Model, o.Data.Features, o.Data.Classes)

	workers := cfg.Workers
	if capacity := s.Capacity(); workers+1 > capacity {
		if capacity < 2 {
			return nil, fmt.Errorf("training needs at least 2 concurrent functions (workers and an evaluator); the backend allows %d", capacity)
		}
		workers = capacity - 1
		s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: fmt.Sprintf("running %d workers, not %d: the backend runs %d functions at once and the evaluator needs one", workers, cfg.Workers, capacity)})
	}

	ctl := newControl(ps, model)
	spec := psstore.ModelSpec{Name: model, Dim: dim, Optimizer: cfg.Optimizer, LearningRate: float32(cfg.LearningRate), L2: float32(cfg.L2)}
	if cfg.Optimizer == "momentum" {
		spec.Momentum = float32(cfg.Momentum)
	}
	// Resume the model of an interrupted run only if it is intact, else
	// start again as a new generation of waves (modelcheck.go).
	mc, gen, err := prepareModel(ctx, s, ps, ctl, spec, workersWave, o.Labels)
	if err != nil {
		return nil, err
	}
	workersWave, evalWave = genWave(workersWave, gen), genWave(evalWave, gen)

	maxWorkers := elasticMax(s, ps)
	el := elastic(s, o.Trial) && cfg.Epochs != 1 && maxWorkers > 1
	unitWorkers := workers
	if el { // cut units for the most workers the run may scale to
		unitWorkers = max(workers, maxWorkers)
	}
	trainUnits := makeUnits(o.Data.Train, unitWorkers, cfg.Minibatch)
	// What the evaluator measures, stops on and ranks by: the validation set; else,
	// when training runs until it converges, a holdout of the training set; else
	// the test set, as before validation sets existed.
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
	case cfg.Epochs == 0:
		heldName, heldParts = "holdout", nil
		trainUnits, heldUnits = holdout(o.Data.Train, trainUnits)
	case len(heldParts) == 0:
		// No test set: evaluate on the start of the training set, and say so.
		heldName, heldParts = "training", headRows(o.Data.Train, 100_000)
		s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: "no test set: reporting the loss on up to 100,000 training rows"})
	}
	if heldUnits == nil {
		heldUnits = makeUnits(heldParts, 1, 1<<30)
	}
	elasticNote := ""
	if el {
		elasticNote = fmt.Sprintf(" (elastic: 1 to %d by loss improvement per dollar)", maxWorkers)
	}
	s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: fmt.Sprintf("solver sgd (%s): %d workers%s, %s, learning rate %g, minibatch %d; stopping on the %s loss",
		why, workers, elasticNote, cfg.Optimizer, cfg.LearningRate, cfg.Minibatch, heldName)})
	if err := saveUnits(ctx, st, dir+"units.json", trainUnits); err != nil {
		return nil, err
	}
	if err := saveUnits(ctx, st, dir+"eval-units.json", heldUnits); err != nil {
		return nil, err
	}
	start := time.Now()
	pool := &workerPool{s: s, st: st, ctl: ctl, wave: workersWave, dir: dir, units: trainUnits, lifetime: cfg.Lifetime, elastic: el,
		done: make(chan waveOut, 1),
		params: workerParams{Model: model, Dim: dim, UnitsKey: dir + "units.json",
			Minibatch: cfg.Minibatch, Epochs: epochs, Seed: cfg.Seed, Prefetch: 2, Kind: cfg.Model, Classes: o.Data.Classes, Huber: cfg.huber()}}
	trainRows := unitRows(trainUnits, o.Data.Train)
	var scaleHist []ScalePoint // the evaluations as the scaling rule sees them
	etask := operators.Task{Kind: KindEval}
	keepBest := heldName == "validation" || heldName == "holdout"
	if err := etask.SetParams(evalParams{Model: model, Dim: dim, UnitsKey: dir + "eval-units.json", Interval: cfg.EvalInterval, Start: start, KeepBest: keepBest, Kind: cfg.Model, Classes: o.Data.Classes, Huber: cfg.huber()}); err != nil {
		return nil, err
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evalDone := make(chan waveOut, 1)
	if err := pool.launch(wctx, 0, segmentPlan{Workers: workers}); err != nil {
		return nil, err
	}
	if o.Trial == "" {
		s.Event(operators.Event{Kind: KindWorkersEvent, Labels: o.Labels, Metrics: map[string]float64{"workers": float64(pool.plan.Workers)}})
	}
	go func() {
		r, err := s.RunWave(wctx, operators.Wave{Name: evalWave, Tasks: []operators.Task{etask}, LongRunning: true, Lifetime: cfg.Lifetime})
		evalDone <- waveOut{res: r, err: err}
	}()

	res := &Result{}
	var (
		stopping  string
		diverged  *DivergedError
		failure   error
		workerOut *waveOut
		evalOut   *waveOut
		lastT     = -1.0
		trainEnd  time.Time
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
	lastUpdate, lastUpdates := start, uint64(0)
	done := ctx.Done()
	for evalOut == nil || workerOut == nil {
		select {
		case <-tick.C:
		case w := <-pool.done:
			if w.err != nil {
				workerOut = &w
				trainEnd = time.Now()
				if failure == nil && ctx.Err() == nil {
					failure = w.err
					cancel()
				}
				stop("epochs")
				break
			}
			over, err := pool.ended(wctx, w, stopping != "" || failure != nil)
			if err != nil && failure == nil && ctx.Err() == nil {
				failure = err
				cancel()
			}
			if over || err != nil {
				workerOut = &waveOut{res: pool.results}
				trainEnd = time.Now()
				stop("epochs")
			}
		case e := <-evalDone:
			evalOut = &e
			if e.err != nil && failure == nil && ctx.Err() == nil {
				failure = e.err
				cancel()
			}
			if stopping == "" { // the evaluator ended on its own: only an error does that
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
			continue // the final evaluation is in; wait for the workers to see the stop
		}
		pt, err := ctl.latestEval(ctx)
		if err != nil || pt == nil || pt.Seconds <= lastT {
			continue
		}
		lastT = pt.Seconds
		ep := EvalPoint{Seconds: pt.Seconds, Logloss: pt.Logloss, Accuracy: pt.Accuracy, AUC: pt.AUC, Updates: pt.Updates, Iterations: pt.Pushes}
		res.Series = append(res.Series, ep)
		scaleHist = append(scaleHist, scalePoint(ep, pool, cfg.Minibatch))
		now := time.Now()
		rate := 0.0
		if dt := now.Sub(lastUpdate).Seconds(); dt > 0 {
			rate = float64(pt.Updates-min(pt.Updates, lastUpdates)) / dt
		}
		lastUpdate, lastUpdates = now, pt.Updates
		m := heldMetrics(heldName, lossName(cfg.Model), pt.Logloss, pt.Accuracy, pt.AUC)
		m["updates"], m["updates_per_second"], m["t"] = float64(pt.Updates), rate, pt.Seconds
		s.Event(operators.Event{Kind: "metric", Labels: o.Labels, Metrics: m})
		if o.OnEval != nil {
			o.OnEval(ep)
		}
		if stopping != "" {
			continue
		}
		switch {
		case math.IsNaN(pt.Logloss) || math.IsInf(pt.Logloss, 0) || pt.Logloss > divergenceFactor*zeroLoss(cfg.Model, o.Data.Labels) && len(res.Series) > 1:
			diverged = &DivergedError{Trial: o.Trial, Logloss: pt.Logloss, Seconds: pt.Seconds, LearningRate: cfg.LearningRate, Optimizer: cfg.Optimizer}
			stop("diverged")
		case cfg.TargetLogloss > 0 && pt.Logloss <= cfg.TargetLogloss:
			stop("target_logloss")
		case eps > 0 && converged(res.Series, eps):
			stop("converged")
		case el && pool.next == nil && workerOut == nil:
			budget, deadline := stageLeft(s)
			d := Scale(ScaleInput{History: scaleHist, Rows: trainRows, Workers: pool.plan.Workers,
				Max: maxWorkers, WorkerCost: s.FunctionCost(time.Second), BudgetLeft: budget, DeadlineLeft: deadline, Elapsed: time.Since(start).Seconds()})
			if d.Workers == pool.plan.Workers {
				break
			}
			c := scaleChange{Seconds: pt.Seconds, From: pool.plan.Workers, To: d.Workers, Reason: d.Reason}
			if err := pool.rescale(ctx, d.Workers, d.Reason); err != nil {
				if failure == nil {
					failure = fmt.Errorf("change the worker count: %w", err)
					cancel()
				}
				break
			}
			res.Scaling = append(res.Scaling, c)
			s.Event(scaleEvent(c, o.Labels))
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
	res.Stopped = stopping
	res.Duration = trainEnd.Sub(start)

	var final evalPoint
	if len(evalOut.res) == 1 {
		if err := json.Unmarshal(evalOut.res[0].Output, &final); err != nil {
			return nil, fmt.Errorf("bad evaluator result: %w", err)
		}
	}
	fp := fromJSONSafe(final)
	res.Solver, res.SolverWhy = "sgd", why
	res.Metrics = nanMetrics()
	res.Metrics.Logloss, res.Metrics.Accuracy, res.Metrics.AUC, res.Metrics.Rows = fp.Logloss, fp.Accuracy, fp.AUC, fp.Rows
	res.Series = append(res.Series, EvalPoint{Seconds: fp.Seconds, Logloss: fp.Logloss, Accuracy: fp.Accuracy, AUC: fp.AUC, Updates: fp.Updates, Iterations: fp.Pushes})
	m := heldMetrics(heldName, lossName(cfg.Model), fp.Logloss, fp.Accuracy, fp.AUC)
	m["updates"], m["t"] = float64(fp.Updates), fp.Seconds
	s.Event(operators.Event{Kind: "metric", Labels: o.Labels, Metrics: m})
	if o.OnEval != nil {
		o.OnEval(res.Series[len(res.Series)-1])
	}
	if diverged == nil && (math.IsNaN(fp.Logloss) || math.IsInf(fp.Logloss, 0)) {
		diverged = &DivergedError{Trial: o.Trial, Logloss: fp.Logloss, Seconds: fp.Seconds, LearningRate: cfg.LearningRate, Optimizer: cfg.Optimizer}
	}
	var ph phases
	hist, pullHist, pushHist := newHistogram(), newHistogram(), newHistogram()
	for _, r := range workerOut.res {
		var wr workerResult
		if err := json.Unmarshal(r.Output, &wr); err != nil {
			return nil, fmt.Errorf("bad worker result: %w", err)
		}
		res.Iterations += wr.Iterations
		res.Examples += wr.Examples
		ph.add(wr.Phases)
		hist.merge(wr.Hist)
		pullHist.merge(wr.PullHist)
		pushHist.merge(wr.PushHist)
	}
	if res.Iterations > 0 {
		n := time.Duration(res.Iterations)
		res.Breakdown = Breakdown{Get: ph.Get / n, Pull: ph.Pull / n, Compute: ph.Compute / n, Push: ph.Push / n, P50: hist.quantile(0.5), P99: hist.quantile(0.99),
			PullP50: pullHist.quantile(0.5), PushP50: pushHist.quantile(0.5)}
	}
	if res.Duration > 0 {
		res.ExamplesPerSecond = float64(res.Examples) / res.Duration.Seconds()
	}
	if diverged != nil {
		mc.cleanup(ctx, s, ctl, false, o.Labels)
		return res, diverged
	}
	if err := mc.verify(ctx); err != nil {
		return nil, err
	}
	w, err := ps.PullDense(ctx, model)
	if err != nil {
		return nil, fmt.Errorf("export model: %w", err)
	}
	if keepBest {
		// Keep the weights of the best held-out evaluation when training went past
		// it (early stopping): the evaluator stored them.
		best := res.Series[0]
		for _, p := range res.Series {
			if p.Logloss < best.Logloss {
				best = p
			}
		}
		if best.Logloss < res.Metrics.Logloss {
			bw, err := ctl.best(ctx, dim)
			if err != nil {
				return nil, fmt.Errorf("read the best weights: %w", err)
			}
			if bw != nil {
				w = bw
				res.Metrics.Logloss, res.Metrics.Accuracy, res.Metrics.AUC = best.Logloss, best.Accuracy, best.AUC
				s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: fmt.Sprintf("keeping the weights of the best %s evaluation (%s %.4f at %.1fs, not %.4f at the end)", heldName, lossName(cfg.Model), best.Logloss, best.Seconds, fp.Logloss)})
			}
		}
	}
	if heldName == "validation" || heldName == "holdout" || cfg.Model == "linear_regression" || cfg.Model == "softmax" {
		// The evaluator measured another set (or, for a regression, only its
		// loss): score the test set (if any) once.
		if heldName == "validation" {
			v := res.Metrics
			res.Validation = &v
		}
		res.Metrics = nanMetrics()
		if len(o.Data.Test) > 0 {
			if res.Metrics, err = scoreTest(ctx, s, ps, cfg.Model, o.Data.Classes, model+"/final-weights", dir, wave(suffix, "score"), o.Data.Test, w); err != nil {
				return nil, err
			}
		}
	}
	// The model leaves psstore once its artifact is written (unless keep_model).
	return finishRun(ctx, s, o, res, dir, w, func() { mc.cleanup(ctx, s, ctl, cfg.KeepModel, o.Labels) })
}

// finishRun writes the model artifact of a run that ended as res, with weights w,
// under dir, then calls cleanup (when not nil) and reports the run's note and
// summary.
func finishRun(ctx context.Context, s operators.Stage, o RunOptions, res *Result, dir string, w []float32, cleanup func()) (*Result, error) {
	st, err := s.Blob(ctx)
	if err != nil {
		return nil, err
	}
	cfg, key := o.Config, s.Key()
	if cfg.Model == "linear_svm" || cfg.Model == "linear_regression" {
		// The Logloss the solvers carried is the held-out loss (the squared hinge,
		// or a regression's loss) for the stopping rules: these models have no log
		// loss to report.
		res.Metrics.Logloss = math.NaN()
		if res.Validation != nil {
			res.Validation.Logloss = math.NaN()
		}
	}
	res.ModelURI, err = writeArtifact(ctx, st, dir+"model/", &Artifact{
		Model: cfg.Model, Features: o.Data.Features, Intercept: uint64(len(w)) - 1, Classes: o.Data.Classes, Input: o.Data.info(), Metrics: res.Metrics,
		Validation: res.Validation, Solver: res.Solver,
		Iterations: res.Iterations, ExamplesPerSecond: res.ExamplesPerSecond, Stage: s.Address(), CacheKey: key,
		Trial: o.Trial, Config: cfg, Stopped: res.Stopped, Created: time.Now().UTC(),
	}, w)
	if err != nil {
		return nil, err
	}
	if cleanup != nil {
		cleanup()
	}
	how := fmt.Sprintf("%d iterations, %.0f examples/s; %s", res.Iterations, res.ExamplesPerSecond, res.Breakdown)
	if fullBatch(res.Solver) {
		how = fmt.Sprintf("%s, %d iterations, %d passes", res.Solver, res.Iterations, res.Passes)
		if v := res.Validation; v != nil && !math.IsNaN(v.Logloss) {
			how += fmt.Sprintf("; validation logloss %.4f", v.Logloss)
		} else if v != nil {
			how += fmt.Sprintf("; validation accuracy %.4f", v.Accuracy)
		}
	}
	s.Event(operators.Event{Kind: "note", Labels: o.Labels, Note: fmt.Sprintf("stopped (%s) after %s: %s",
		res.Stopped, res.Duration.Round(10*time.Millisecond), how)})
	sum := map[string]float64{
		"test_logloss": finiteOrNaN(res.Metrics.Logloss), "accuracy": res.Metrics.Accuracy, "auc": res.Metrics.AUC,
		"iterations": float64(res.Iterations), "examples_per_second": res.ExamplesPerSecond,
	}
	if fullBatch(res.Solver) {
		sum["passes"] = float64(res.Passes)
	} else {
		for k, v := range map[string]float64{
			"iteration_p50_us": us(res.Breakdown.P50), "iteration_p99_us": us(res.Breakdown.P99),
			"get_us": us(res.Breakdown.Get), "pull_us": us(res.Breakdown.Pull), "compute_us": us(res.Breakdown.Compute), "push_us": us(res.Breakdown.Push),
		} {
			sum[k] = v
		}
		for k, v := range map[string]float64{"pull_p50_us": us(res.Breakdown.PullP50), "push_p50_us": us(res.Breakdown.PushP50)} {
			if v == 0 { // no pulls or pushes timed (MF reports its own)
				continue
			}
			sum[k] = v
		}
	}
	if v := res.Validation; v != nil {
		sum["validation_logloss"], sum["validation_accuracy"], sum["validation_auc"] = finiteOrNaN(v.Logloss), v.Accuracy, v.AUC
		sum["validation_rmse"], sum["validation_mae"], sum["validation_r2"] = v.RMSE, v.MAE, v.R2
	}
	sum["test_rmse"], sum["test_mae"], sum["r2"] = res.Metrics.RMSE, res.Metrics.MAE, res.Metrics.R2
	if n := len(res.Scaling); n > 0 { // an elastic run: its last and largest worker counts, and how often they changed
		most := res.Scaling[0].From
		for _, c := range res.Scaling {
			most = max(most, c.To)
		}
		sum["workers"], sum["workers_max"], sum["workers_changes"] = float64(res.Scaling[n-1].To), float64(most), float64(n)
	}
	for k, v := range sum {
		if math.IsNaN(v) { // a figure the run does not have (no test set)
			delete(sum, k)
		}
	}
	s.Event(operators.Event{Kind: "summary", Labels: o.Labels, Metrics: sum})
	return res, nil
}

// converged reports whether the best loss of the last window improved on the best
// before it by less than a fraction eps.
func converged(series []EvalPoint, eps float64) bool {
	if len(series) <= convergenceWindow {
		return false
	}
	best := func(ps []EvalPoint) float64 {
		b := math.Inf(1)
		for _, p := range ps {
			b = math.Min(b, p.Logloss)
		}
		return b
	}
	n := len(series)
	before, recent := best(series[:n-convergenceWindow]), best(series[n-convergenceWindow:])
	return before-recent < eps*before
}

// headRows returns partitions from the start of parts holding about n rows.
func headRows(parts []PartRef, n int) []PartRef {
	var out []PartRef
	rows := 0
	for _, p := range parts {
		if rows >= n {
			break
		}
		out = append(out, p)
		rows += p.Rows
	}
	return out
}

func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return -1
	}
	return x
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// holdout sets aside about a tenth of the training units as the held-out set a run
// without a validation set converges on: every tenth unit, or with fewer than ten
// units (small data), the middle tenth of the rows of each partition. Ordered data
// gives a biased holdout: give such data a validation set.
func holdout(parts []PartRef, units []prefetch.Unit) (train, held []prefetch.Unit) {
	if len(units) >= 10 {
		for i, u := range units {
			if i%10 == 9 {
				held = append(held, u)
			} else {
				train = append(train, u)
			}
		}
		return train, held
	}
	for _, p := range parts {
		lo, hi := p.Rows*45/100, p.Rows*55/100
		if p.Rows < 10 || lo == hi {
			train = append(train, prefetch.Unit{Key: p.Key, Hi: -1})
			continue
		}
		train = append(train, prefetch.Unit{Key: p.Key, Lo: 0, Hi: lo}, prefetch.Unit{Key: p.Key, Lo: hi, Hi: -1})
		held = append(held, prefetch.Unit{Key: p.Key, Lo: lo, Hi: hi})
	}
	if len(held) == 0 { // nothing to hold out: converge on the training rows
		held = train
	}
	return train, held
}

// scoreTest puts weights w under key and scores them on parts in one task.
func scoreTest(ctx context.Context, s operators.Stage, ps *psstore.Client, modelKind string, classes []float64, key, dir, wave string, parts []PartRef, w []float32) (Metrics, error) {
	st, err := s.Blob(ctx)
	if err != nil {
		return Metrics{}, err
	}
	w64 := make([]float64, len(w))
	for i, x := range w {
		w64[i] = float64(x)
	}
	if err := ps.Put(ctx, key, encodeF64(w64)); err != nil {
		return Metrics{}, fmt.Errorf("write weights: %w", err)
	}
	defer ps.Delete(context.WithoutCancel(ctx), key)
	if err := saveUnits(ctx, st, dir+"test-units.json", makeUnits(parts, 1, 1<<30)); err != nil {
		return Metrics{}, err
	}
	out, err := s.RunWave(ctx, operators.Wave{Name: wave, Tasks: []operators.Task{scoreTask(modelKind, key, dir+"test-units.json", classes)}})
	if err != nil {
		return Metrics{}, err
	}
	var m Metrics
	if err := json.Unmarshal(out[0].Output, &m); err != nil {
		return Metrics{}, fmt.Errorf("bad score result: %w", err)
	}
	return m, nil
}

// wave names a wave of a run: name, then the trial's suffix.
func wave(suffix, name string) string { return name + strings.ReplaceAll(suffix, "/", "-") }

// heldMetrics names a held-out set's figures: test_logloss, accuracy and auc for
// the test set (and the training rows that stand in for a missing one), else
// <set>_logloss, <set>_accuracy and <set>_auc.
func heldMetrics(set, lossName string, loss, acc, auc float64) map[string]float64 {
	m := map[string]float64{set + "_" + lossName: finite(loss), set + "_accuracy": acc, set + "_auc": auc}
	if set == "test" || set == "training" {
		m = map[string]float64{"test_" + lossName: finite(loss), "accuracy": acc, "auc": auc}
	}
	for k, v := range m {
		if math.IsNaN(v) { // a figure the model has not (a regression's accuracy)
			delete(m, k)
		}
	}
	return m
}

// zeroLoss is a model's loss at w = 0: log 2 for logistic regression, 1 for the
// squared hinge, ½·mean(y²) for linear regression (its labels' statistics; at
// least ½), log K for softmax. The divergence bound is a multiple of it.
func zeroLoss(model string, labels *manifest.Labels) float64 {
	switch model {
	case "linear_svm":
		return 1
	case "linear_regression":
		if labels == nil {
			return 0.5
		}
		return max(0.5, 0.5*(labels.Var+labels.Mean*labels.Mean))
	case "softmax":
		if labels != nil && len(labels.Distinct) > 1 {
			return math.Log(float64(len(labels.Distinct)))
		}
	}
	return math.Ln2
}

// finiteOrNaN is finite(x), keeping NaN (a figure the run does not have).
func finiteOrNaN(x float64) float64 {
	if math.IsNaN(x) {
		return x
	}
	return finite(x)
}
