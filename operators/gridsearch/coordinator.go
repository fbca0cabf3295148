package gridsearch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/train"
)

// Operator is the grid_search operator. It has no task handlers of its own: each
// trial is a train run (train.Run) inside the grid_search stage, so its workers and
// evaluator are train's tasks.
func Operator() *operators.Operator {
	return &operators.Operator{
		Schema:      Schema,
		Coordinator: operators.CoordinatorFunc(coordinate),
	}
}

// trial is one configuration of the search and what became of it. Fields below mu
// are guarded by search.mu.
type trial struct {
	id     string
	params cty.Value // object of train arguments
	pjson  string    // params as compact JSON
	cfg    train.Config
	key    string // trial cache key: of the complete train configuration
	run    string // train.RunOptions.Trial: id, or a fresh name after a kill

	status   operators.TrialStatus
	reason   string
	detail   string
	byRule   bool   // a rule (not train itself) stopped it
	stopping string // reason sent on stop, "" if none
	stop     chan string
	cached   bool
	started  time.Time
	ended    time.Time
	points   []train.EvalPoint
	rate     float64 // coordinate updates per second between the last two evaluations, as train reports them
	hasRate  bool
	metrics  train.Metrics
	// validation is the final metrics on the validation set, when the input has
	// one: what the trial is ranked by.
	validation *train.Metrics
	iters      int64
	eps        float64 // examples per second
	model      string
	final      bool // metrics are the run's final evaluation
}

// search runs the trials of one grid_search stage.
type search struct {
	s      operators.Stage
	st     blob.Store
	sp     *spec
	base   operators.Upstream
	data   *train.Data
	trials []*trial

	budget, capacity int

	mu      sync.Mutex
	running int
	used    int // workers held by running trials
	asha    *ashaRule
	pending []operators.Event // notes to emit once mu is released
	// full is the first trial failure for want of room in psstore: no
	// further trial starts and the stage fails with it.
	full error
	// cut is the reason the executor stopped the search (its budget or
	// deadline): no further trial starts, running ones stop, and the best
	// finished trial is the result.
	cut string
}

func coordinate(ctx context.Context, s operators.Stage) (cty.Value, error) {
	sp, err := parseSpec(s.Config())
	if err != nil {
		return cty.NilVal, err
	}
	st, err := s.Blob(ctx)
	if err != nil {
		return cty.NilVal, err
	}
	base, err := findBase(ctx, s, st)
	if err != nil {
		return cty.NilVal, err
	}
	baseCfg, err := train.ParseConfig(base.Config)
	if err != nil {
		return cty.NilVal, fmt.Errorf("base stage %s: %w", base.Address, err)
	}
	if sp.obj.Metric == "" {
		name, lower := train.Metric(baseCfg.Model)
		sp.obj = objective{Metric: name, Lower: lower}
	} else if err := metricFits(sp.obj.Metric, baseCfg.Model); err != nil {
		return cty.NilVal, fmt.Errorf("metric %s: base stage %s %w", sp.obj.Metric, base.Address, err)
	}
	sp.obj.Model = baseCfg.Model
	data, err := train.ReadInput(ctx, st, base.Config.GetAttr("input"))
	if err != nil {
		return cty.NilVal, fmt.Errorf("base stage %s: %w", base.Address, err)
	}
	r := &search{s: s, st: st, sp: sp, base: base, data: data, capacity: s.Capacity()}
	if r.capacity < 2 {
		return cty.NilVal, fmt.Errorf("a trial needs at least 2 concurrent functions (workers and an evaluator); the backend allows %d", r.capacity)
	}
	r.budget = sp.workerBudget
	if r.budget <= 0 {
		r.budget = sp.maxParallel * baseCfg.Workers
	}
	if err := r.makeTrials(ctx); err != nil {
		return cty.NilVal, err
	}
	if len(data.Validation) > 0 {
		s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("ranking trials by %s; the test set is only reported", r.rankedBy())})
	} else {
		s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("ranking trials by %s on the test set: the input has no validation set (give load split = { validation = 0.1 } or validation_source)", sp.obj.Metric)})
	}
	if sp.early != nil && sp.early.rule == "asha" {
		r.asha = newASHA(sp.obj, sp.early.grace.Seconds(), sp.early.factor)
	}
	if err := r.run(ctx); err != nil {
		return cty.NilVal, err
	}
	return r.finish(ctx)
}

// findBase returns the base train stage. The `train` argument's value is the base
// stage's output; its model artifact names the stage that trained it, which is one
// of this stage's upstream stages (or, if that stage was since renamed with its
// configuration unchanged, the train stage of the same name in this module).
func findBase(ctx context.Context, s operators.Stage, st blob.Store) (operators.Upstream, error) {
	tv := s.Config().GetAttr("train")
	if !tv.Type().IsObjectType() || !tv.Type().HasAttribute("model") || tv.GetAttr("model").Type() != cty.String {
		return operators.Upstream{}, fmt.Errorf("train must name a train stage, such as train = train.base")
	}
	uri := tv.GetAttr("model").AsString()
	key, err := keyOf(st, uri)
	if err != nil {
		return operators.Upstream{}, fmt.Errorf("the base stage's model %w; run the base stage again (stratus state rm), then apply", err)
	}
	rc, err := st.Get(ctx, key)
	if err != nil {
		return operators.Upstream{}, fmt.Errorf("read the base stage's model: %w", err)
	}
	var art struct {
		Stage string `json:"stage"`
	}
	err = json.NewDecoder(rc).Decode(&art)
	rc.Close()
	if err != nil || art.Stage == "" {
		return operators.Upstream{}, fmt.Errorf("the base stage's model %s does not say which stage trained it (%v)", uri, err)
	}
	cands := []string{art.Stage}
	if i := strings.LastIndex(s.Address(), "grid_search."); i >= 0 {
		if j := strings.LastIndex(art.Stage, "train."); j >= 0 {
			cands = append(cands, s.Address()[:i]+art.Stage[j:])
		}
	}
	for _, a := range cands {
		up, ok := s.Upstream(a)
		if !ok || up.Operator != "train" || !up.Output.Type().IsObjectType() || !up.Output.Type().HasAttribute("model") {
			continue
		}
		if m := up.Output.GetAttr("model"); m.IsKnown() && !m.IsNull() && m.AsString() == uri {
			return up, nil
		}
	}
	return operators.Upstream{}, fmt.Errorf("cannot find the base train stage: its model %s was trained by %s, which is not among this stage's upstream stages; run `stratus state rm` on the base stage and apply again", uri, art.Stage)
}

// makeTrials expands the search space into trials with their complete train
// configurations, and checks each configuration as train would.
func (r *search) makeTrials(ctx context.Context) error {
	combos, dropped := r.sp.combos()
	baseAttrs := r.base.Config.AsValueMap()
	killed, err := killedBefore(ctx, r.st, r.s.Key())
	if err != nil {
		return err
	}
	for _, p := range combos {
		attrs := make(map[string]cty.Value, len(baseAttrs))
		for k, v := range baseAttrs {
			attrs[k] = v
		}
		for k, v := range p.AsValueMap() {
			attrs[k] = v
		}
		t := &trial{id: operators.TrialID(p), params: p, pjson: paramsJSON(p), status: operators.TrialQueued}
		cfg, err := train.ParseConfig(cty.ObjectVal(attrs))
		if err != nil {
			return fmt.Errorf("trial %s %s: %w", t.id, paramsText(p), err)
		}
		// A trial never holds more workers than the budget, nor than the backend
		// runs beside its evaluator.
		if w := min(cfg.Workers, r.budget, r.capacity-1); w < cfg.Workers {
			r.s.Event(operators.Event{Kind: "note", Labels: map[string]string{operators.TrialLabel: t.id},
				Note: fmt.Sprintf("trial %s runs %d workers, not %d: the worker budget is %d and the backend runs %d functions at once", t.id, w, cfg.Workers, r.budget, r.capacity)})
			cfg.Workers = w
			attrs["workers"] = cty.NumberIntVal(int64(w))
		}
		t.cfg = cfg
		t.key = trialKey(cty.ObjectVal(attrs))
		t.run = t.id
		if n := killed[t.id]; n > 0 {
			// An earlier run of this stage key killed it; its recorded waves would
			// make train resume the killed run. Train under a fresh name.
			t.run = fmt.Sprintf("%s-%d", t.id, n)
		}
		r.trials = append(r.trials, t)
	}
	if dropped > 0 {
		r.s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("%d duplicate parameter set(s) drawn; each runs once", dropped)})
	}
	return nil
}

// finished is a trial's train.Run returning.
type finished struct {
	t   *trial
	res *train.Result
	err error
}

// run drives the search: it reuses cached trials, starts queued trials as workers
// allow, applies the early-stopping rules, answers commands, and returns when
// every trial has ended (or ctx is cancelled, after the running trials stopped).
func (r *search) run(ctx context.Context) error {
	sp := r.sp
	cached := 0
	for _, t := range r.trials {
		rec, err := lookup(ctx, r.st, t.key, r.policy())
		if err != nil {
			return err
		}
		if rec != nil {
			r.adopt(t, rec)
			cached++
		}
		r.emit(t)
	}
	if r.asha != nil {
		// Reused trials fill the rungs first, as if they had run earlier in this
		// search; the median rule sees their curves as it sees finished trials'.
		for _, t := range r.trials {
			if t.cached && r.reference(t) {
				r.asha.check(r.curve(t))
			}
		}
	}
	what := fmt.Sprintf("%d trial(s) of %s", len(r.trials), r.base.Address)
	if cached > 0 {
		what += fmt.Sprintf(", %d reused from earlier runs", cached)
	}
	rule := "no early stopping"
	if sp.early != nil {
		rule = "early stop: " + sp.early.rule
	}
	r.s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("%s; up to %d at once, %d workers shared (the backend runs %d functions); %s by %s",
		what, sp.maxParallel, r.budget, r.capacity, rule, sp.obj.Metric)})

	done := make(chan finished, len(r.trials))
	var wg sync.WaitGroup
	defer wg.Wait()
	var tick <-chan time.Time
	if sp.early != nil && sp.early.rule != "threshold" {
		tk := time.NewTicker(sp.early.interval)
		defer tk.Stop()
		tick = tk.C
	}
	ctxDone := ctx.Done()
	stop := r.s.Stop()
	for {
		r.mu.Lock()
		full := r.full
		r.mu.Unlock()
		if ctx.Err() == nil && full == nil && r.cut == "" {
			r.schedule(ctx, &wg, done)
		}
		r.mu.Lock()
		running, queued := r.running, r.count(operators.TrialQueued)
		r.mu.Unlock()
		if running == 0 && (queued == 0 || ctx.Err() != nil || full != nil || r.cut != "") {
			break
		}
		select {
		case reason := <-stop:
			stop = nil
			r.mu.Lock()
			r.cut = reason
			n := 0
			for _, t := range r.trials {
				if t.status == operators.TrialRunning {
					r.requestStop(t, reason, "the stage's "+reason+" is reached", false)
				}
				if t.status == operators.TrialQueued {
					n++
				}
			}
			r.mu.Unlock()
			r.flush()
			r.s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("stopped by %s: running trials stop, %d queued trial(s) not started; the best finished trial is the result", reason, n)})
		case f := <-done:
			r.ended(ctx, f)
		case cmd := <-r.s.Commands():
			r.command(ctx, cmd)
		case <-tick:
			r.applyRules()
		case <-ctxDone:
			ctxDone = nil // train.Run sees ctx too; wait for the trials to return
		}
	}
	if r.full != nil {
		return fmt.Errorf("grid search stopped: a trial found no room in psstore, so the rest cannot run either: %w. Free room with `stratus psstore gc` (or `rm`), raise the shards' limits, or add shards, then apply again: finished trials are reused", r.full)
	}
	return ctx.Err()
}

// policy is the early_stop policy of this run, for the trial cache.
func (r *search) policy() string {
	if r.sp.early == nil {
		return ""
	}
	return r.sp.early.policy
}

// adopt takes a cached record as trial t's outcome.
func (r *search) adopt(t *trial, rec *record) {
	t.cached = true
	t.status, t.reason, t.detail = rec.Status, rec.Reason, rec.Detail
	t.byRule = rec.Policy != ""
	t.metrics = rec.Metrics.metrics()
	if v := rec.Validation; v != nil {
		vm := v.metrics()
		t.validation = &vm
	}
	t.iters, t.eps, t.model, t.final = rec.Iterations, float64(rec.Examples), rec.Model, true
	t.points = fromPoints(rec.Series)
	t.started = rec.Finished.Add(-time.Duration(rec.Seconds * float64(time.Second)))
	t.ended = rec.Finished
	// Replay the trial's curve, so plots and dashboards show it beside the new ones.
	for _, p := range t.points {
		m := map[string]float64{"accuracy": p.Accuracy, "auc": p.AUC, "updates": float64(p.Updates), "t": p.Seconds}
		if finiteValue(p.Logloss) {
			m["test_logloss"] = p.Logloss
		}
		r.s.Event(operators.Event{Kind: "metric", Labels: map[string]string{operators.TrialLabel: t.id, "cached": "true"}, Metrics: m})
	}
}

// count returns how many trials have status; mu held.
func (r *search) count(status operators.TrialStatus) int {
	n := 0
	for _, t := range r.trials {
		if t.status == status {
			n++
		}
	}
	return n
}

// schedule starts queued trials, in order, while they fit: at most max_parallel
// running, their workers within the budget, and workers plus one evaluator per
// running trial within the backend's capacity.
func (r *search) schedule(ctx context.Context, wg *sync.WaitGroup, done chan<- finished) {
	r.mu.Lock()
	var start []*trial
	for _, t := range r.trials {
		if t.status != operators.TrialQueued {
			continue
		}
		if r.running >= r.sp.maxParallel {
			break
		}
		if r.used+t.cfg.Workers > r.budget || r.used+t.cfg.Workers+r.running+1 > r.capacity {
			continue
		}
		r.running++
		r.used += t.cfg.Workers
		t.status, t.started = operators.TrialRunning, time.Now()
		t.stop = make(chan string, 1)
		start = append(start, t)
	}
	r.mu.Unlock()
	for _, t := range start {
		r.emit(t)
		wg.Add(1)
		go func(t *trial) {
			defer wg.Done()
			res, err := train.Run(ctx, r.s, train.RunOptions{
				Trial: t.run, Config: t.cfg, Data: r.data, Stop: t.stop,
				OnEval: func(p train.EvalPoint) { r.onEval(t, p) },
				Labels: map[string]string{operators.TrialLabel: t.id},
			})
			done <- finished{t, res, err}
		}(t)
	}
}

// onEval records an evaluation of a running trial, applies the threshold rule to
// it, and reports the trial.
func (r *search) onEval(t *trial, p train.EvalPoint) {
	r.mu.Lock()
	if n := len(t.points); n > 0 {
		last := t.points[n-1]
		if dt := p.Seconds - last.Seconds; dt > 0 && p.Updates >= last.Updates {
			t.rate = float64(p.Updates-last.Updates) / dt
		}
	} else if p.Seconds > 0 {
		t.rate = float64(p.Updates) / p.Seconds
	}
	t.hasRate = true
	t.points = append(t.points, p)
	t.metrics = r.sp.obj.pointMetrics(p)
	t.iters = int64(p.Iterations)
	if e := r.sp.early; e != nil && e.rule == "threshold" && t.stopping == "" {
		if loss := r.sp.obj.loss(t.metrics); (thresholdRule{MaxLogloss: e.maxLogloss}).check(loss) != "" {
			reason := operators.ReasonDiverged
			detail := fmt.Sprintf("test logloss %.4g after %.1fs", loss, p.Seconds)
			if finiteValue(loss) {
				detail += fmt.Sprintf(" exceeds max_logloss %g", e.maxLogloss)
			}
			r.requestStop(t, reason, detail, true)
		}
	}
	r.mu.Unlock()
	r.flush()
	r.emit(t)
}

// requestStop asks a running trial to stop; mu held. The first request wins.
func (r *search) requestStop(t *trial, reason, detail string, byRule bool) {
	if t.stopping != "" || t.status != operators.TrialRunning {
		return
	}
	t.stopping, t.detail, t.byRule = reason, detail, byRule
	select {
	case t.stop <- reason:
	default:
	}
	what := "stopping"
	if reason == operators.ReasonKilled {
		what = "killing"
	}
	r.pending = append(r.pending, operators.Event{Kind: "note", Labels: map[string]string{operators.TrialLabel: t.id},
		Note: fmt.Sprintf("%s trial %s (%s): %s", what, t.id, paramsText(t.params), strings.TrimSuffix(reason+": "+detail, ": "))})
}

// flush emits the notes queued while mu was held; mu not held.
func (r *search) flush() {
	r.mu.Lock()
	p := r.pending
	r.pending = nil
	r.mu.Unlock()
	for _, e := range p {
		r.s.Event(e)
	}
}

// applyRules runs the median or asha rule over the running trials.
func (r *search) applyRules() {
	defer r.flush()
	e := r.sp.early
	r.mu.Lock()
	defer r.mu.Unlock()
	curves := make([]curve, len(r.trials))
	for i, t := range r.trials {
		curves[i] = r.curve(t)
	}
	for i, t := range r.trials {
		if t.status != operators.TrialRunning || t.stopping != "" {
			continue
		}
		var reason, detail string
		switch e.rule {
		case "median":
			others := make([]curve, 0, len(curves)-1)
			for j, c := range curves {
				if j != i && r.reference(r.trials[j]) {
					others = append(others, c)
				}
			}
			reason, detail = medianRule{Obj: r.sp.obj, Grace: e.grace.Seconds(), MinTrials: e.minTrials}.check(curves[i], others)
		case "asha":
			reason, detail = r.asha.check(curves[i])
		}
		if reason != "" {
			r.requestStop(t, reason, detail, true)
		}
	}
}

// reference reports whether t's curve may serve as a reference for the median
// rule: running or ended with results, and neither diverged, killed nor failed.
func (r *search) reference(t *trial) bool {
	switch t.status {
	case operators.TrialRunning, operators.TrialDone:
		return true
	case operators.TrialStopped:
		return t.reason != operators.ReasonDiverged
	}
	return false
}

// curve is t's objective over time; mu held.
func (r *search) curve(t *trial) curve {
	c := curve{ID: t.id, Done: t.status != operators.TrialRunning && t.status != operators.TrialQueued}
	for _, p := range t.points {
		c.Points = append(c.Points, point{T: p.Seconds, V: r.sp.obj.value(p)})
	}
	return c
}

// metricFits says why a model cannot be ranked by metric, or nil.
func metricFits(metric, model string) error {
	switch model {
	case "matrix_factorization":
		if metric != "test_rmse" && metric != "test_mae" {
			return fmt.Errorf("trains matrix_factorization, whose figures are test_rmse and test_mae; rank by one of them (the default is test_rmse)")
		}
	case "linear_regression":
		if metric != "test_rmse" && metric != "test_mae" && metric != "r2" {
			return fmt.Errorf("trains linear_regression, whose figures are test_rmse, test_mae and r2; rank by one of them (the default is test_rmse)")
		}
	case "linear_svm":
		if metric != "accuracy" && metric != "auc" {
			return fmt.Errorf("trains linear_svm, which has no log loss; rank by accuracy or auc (the default is accuracy)")
		}
	default:
		if metric != "test_logloss" && metric != "accuracy" && metric != "auc" {
			return fmt.Errorf("trains %s, a classifier; rank by test_logloss (the default), accuracy or auc", orLogReg(model))
		}
	}
	return nil
}

func orLogReg(model string) string {
	if model == "" {
		return "logistic_regression"
	}
	return model
}

// pointMetrics are the figures of an evaluation as a trial's metrics: an
// evaluator's point carries the held-out loss, accuracy and AUC of a
// classifier; linear_regression's loss is its mean squared error (no MAE or
// R² on the curve); matrix factorization's point carries its RMSE and MAE.
func (o objective) pointMetrics(p train.EvalPoint) train.Metrics {
	n := math.NaN()
	switch o.Model {
	case "matrix_factorization":
		return train.Metrics{Logloss: n, Accuracy: n, AUC: n, RMSE: p.Logloss, MAE: p.Accuracy, R2: n}
	case "linear_regression":
		rmse := n
		if p.Logloss >= 0 {
			rmse = math.Sqrt(p.Logloss)
		}
		return train.Metrics{Logloss: p.Logloss, Accuracy: n, AUC: n, RMSE: rmse, MAE: n, R2: n}
	}
	return train.Metrics{Logloss: p.Logloss, Accuracy: p.Accuracy, AUC: p.AUC, RMSE: n, MAE: n, R2: n}
}

// value is the objective of an evaluation.
func (o objective) value(p train.EvalPoint) float64 { return o.of(o.pointMetrics(p)) }

// of picks the objective out of a trial's metrics.
func (o objective) of(m train.Metrics) float64 {
	switch o.Metric {
	case "accuracy":
		return m.Accuracy
	case "auc":
		return m.AUC
	case "test_rmse":
		return m.RMSE
	case "test_mae":
		return m.MAE
	case "r2":
		return m.R2
	}
	return m.Logloss
}

// loss is the figure the threshold rule watches in a trial's metrics: the
// log loss (a regression's mean squared error), or a factorization's RMSE.
func (o objective) loss(m train.Metrics) float64 {
	if o.Model == "matrix_factorization" {
		return m.RMSE
	}
	return m.Logloss
}

// resultMetrics are a finished run's metrics, and its validation metrics (nil
// without a validation set); train.Run sets them for every model.
func resultMetrics(res *train.Result) (train.Metrics, *train.Metrics) {
	return res.Metrics, res.Validation
}

// ended records a trial's train.Run returning: its status, its workers freed, its
// record in the trial cache.
func (r *search) ended(ctx context.Context, f finished) {
	t := f.t
	var div *train.DivergedError
	r.mu.Lock()
	r.running--
	r.used -= t.cfg.Workers
	t.ended = time.Now()
	res := f.res
	switch {
	case f.err != nil && errors.As(f.err, &div):
		t.status, t.reason = operators.TrialStopped, operators.ReasonDiverged
		if !t.byRule || t.stopping != operators.ReasonDiverged {
			t.detail, t.byRule = div.Error(), false
		}
	case f.err != nil && ctx.Err() != nil:
		t.status, t.reason = operators.TrialQueued, "" // interrupted: the next run resumes it
		r.mu.Unlock()
		return
	case f.err != nil:
		t.status, t.reason, t.detail = operators.TrialFailed, firstLine(f.err.Error()), f.err.Error()
		res = nil
		if errors.Is(f.err, train.ErrClusterFull) && r.full == nil {
			r.full = f.err
		}
	case res.Stopped == operators.ReasonKilled:
		t.status, t.reason = operators.TrialKilled, operators.ReasonKilled
	case t.stopping != "" && res.Stopped == t.stopping:
		t.status, t.reason = operators.TrialStopped, t.stopping
	default:
		t.status, t.reason, t.detail, t.byRule = operators.TrialDone, res.Stopped, "", false
	}
	if res != nil {
		t.iters, t.eps, t.model, t.final = res.Iterations, res.ExamplesPerSecond, res.ModelURI, true
		t.metrics, t.validation = resultMetrics(res)
		if len(res.Series) > 0 {
			t.points = res.Series
		}
	}
	// A trial that ended on its own between two evaluations, past the threshold,
	// diverged all the same.
	if e := r.sp.early; t.status == operators.TrialDone && e != nil && e.rule == "threshold" {
		if loss := r.sp.obj.loss(t.metrics); (thresholdRule{MaxLogloss: e.maxLogloss}).check(loss) != "" {
			t.status, t.reason, t.byRule = operators.TrialStopped, operators.ReasonDiverged, true
			t.detail = fmt.Sprintf("final test logloss %.4g exceeds max_logloss %g", loss, e.maxLogloss)
		}
	}
	var rec *record
	if t.status == operators.TrialDone || t.status == operators.TrialStopped {
		rec = r.record(t)
	}
	r.mu.Unlock()
	switch t.status {
	case operators.TrialFailed:
		r.s.Event(operators.Event{Kind: "note", Labels: map[string]string{operators.TrialLabel: t.id}, Note: fmt.Sprintf("trial %s (%s) failed: %s", t.id, paramsText(t.params), f.err)})
	case operators.TrialKilled:
		r.markKilled(ctx, t)
	}
	if rec != nil {
		if err := save(ctx, r.st, t.key, rec); err != nil {
			r.s.Event(operators.Event{Kind: "note", Labels: map[string]string{operators.TrialLabel: t.id}, Note: fmt.Sprintf("trial %s is not cached for later runs: %v", t.id, err)})
		}
	}
	r.emit(t)
}

// record is t's trial-cache record; mu held.
func (r *search) record(t *trial) *record {
	rec := &record{Trial: t.id, Params: json.RawMessage(t.pjson), Status: t.status, Reason: t.reason, Detail: t.detail,
		Metrics:    toMetricsJSON(t.metrics),
		Iterations: t.iters, Examples: jnum(t.eps), Model: t.model, Seconds: t.ended.Sub(t.started).Seconds(), Workers: t.cfg.Workers,
		Series: toPoints(t.points), Stage: r.s.Address(), StageKey: r.s.Key(), Finished: t.ended.UTC()}
	if t.byRule {
		rec.Policy = r.policy()
	}
	if v := t.validation; v != nil {
		vj := toMetricsJSON(*v)
		rec.Validation = &vj
	}
	return rec
}

// command handles a request from outside the apply.
func (r *search) command(ctx context.Context, cmd operators.Command) {
	reply := func(err error) {
		if cmd.Reply != nil {
			cmd.Reply <- err
		}
	}
	if ctx.Err() != nil {
		reply(fmt.Errorf("the search is being interrupted"))
		return
	}
	switch cmd.Op {
	case "kill":
		r.mu.Lock()
		var t *trial
		for _, x := range r.trials {
			if x.id == cmd.Target {
				t = x
			}
		}
		var err error
		queued := false
		switch {
		case t == nil:
			err = fmt.Errorf("no trial %q in %s; its trials are %s", cmd.Target, r.s.Address(), r.ids())
		case t.status == operators.TrialQueued:
			r.killQueued(t)
			queued = true
		case t.status == operators.TrialRunning && t.stopping == "":
			r.requestStop(t, operators.ReasonKilled, "", false)
		case t.status == operators.TrialRunning:
			err = fmt.Errorf("trial %s is already stopping (%s)", t.id, t.stopping)
		default:
			err = fmt.Errorf("trial %s is not running: it is %s", t.id, t.status)
		}
		r.mu.Unlock()
		r.flush()
		if queued {
			r.emit(t)
		}
		reply(err)
	case "kill-all":
		r.mu.Lock()
		var killed []*trial
		for _, t := range r.trials {
			switch {
			case t.status == operators.TrialQueued:
				r.killQueued(t)
				killed = append(killed, t)
			case t.status == operators.TrialRunning && t.stopping == "":
				r.requestStop(t, operators.ReasonKilled, "", false)
			}
		}
		r.mu.Unlock()
		r.flush()
		for _, t := range killed {
			r.emit(t)
		}
		reply(nil)
	default:
		reply(fmt.Errorf("grid_search does not understand %q: it accepts kill TRIAL and kill-all", cmd.Op))
	}
}

// killQueued ends a queued trial as killed; mu held.
func (r *search) killQueued(t *trial) {
	t.status, t.reason = operators.TrialKilled, operators.ReasonKilled
	t.started, t.ended = time.Now(), time.Now()
}

// ids lists the trial IDs; mu held.
func (r *search) ids() string {
	ids := make([]string, len(r.trials))
	for i, t := range r.trials {
		ids[i] = t.id
	}
	return strings.Join(ids, ", ")
}

// emit reports t as a trial event (see Events in doc.go).
func (r *search) emit(t *trial) {
	r.mu.Lock()
	e := r.trialEvent(t)
	r.mu.Unlock()
	r.s.Event(e)
}

// trialEvent builds t's event; mu held. Figures it leaves unreported, and
// non-finite ones, are left out of the event.
func (r *search) trialEvent(t *trial) operators.Event {
	e := operators.NewTrialEvent(t.id, t.status)
	e.Params, e.Reason, e.Cached = t.pjson, t.reason, t.cached
	if t.status == operators.TrialDone || t.status == operators.TrialStopped || t.status == operators.TrialKilled {
		e.Model = t.model
	}
	m := &e.Metrics
	m.Workers = float64(t.cfg.Workers)
	if t.hasMetrics() {
		m.TestLogloss, m.Accuracy, m.AUC = t.metrics.Logloss, t.metrics.Accuracy, t.metrics.AUC
		m.Iterations = float64(t.iters)
		if b, ok := bestLogloss(t.points); ok {
			m.BestLogloss = b
		}
	}
	if t.status == operators.TrialRunning && t.hasRate {
		m.UpdatesPerSecond = t.rate
	}
	var secs float64
	switch {
	case t.started.IsZero():
	case t.ended.IsZero():
		secs = time.Since(t.started).Seconds()
	default:
		secs = t.ended.Sub(t.started).Seconds()
	}
	m.Seconds = secs
	if secs > 0 && !t.cached {
		m.CostUSD = r.s.FunctionCost(time.Duration(secs*float64(time.Second))) * float64(t.cfg.Workers+1)
	}
	return e.Event()
}

// bestLogloss is the lowest finite test loss of a series.
func bestLogloss(ps []train.EvalPoint) (float64, bool) {
	best, ok := math.Inf(1), false
	for _, p := range ps {
		if finiteValue(p.Logloss) && p.Logloss < best {
			best, ok = p.Logloss, true
		}
	}
	return best, ok
}

// killedBefore returns, per trial ID, how many times earlier runs of this stage key
// killed it (see markKilled): one List of the stage's markers.
func killedBefore(ctx context.Context, st blob.Store, stageKey string) (map[string]int, error) {
	prefix := killedPrefix(stageKey)
	infos, err := st.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list killed trials: %w", err)
	}
	out := map[string]int{}
	for _, in := range infos {
		id, _, _ := strings.Cut(strings.TrimPrefix(in.Key, prefix), "/")
		out[id]++
	}
	return out, nil
}

func killedPrefix(stageKey string) string {
	return "stages/" + stageKey + "/grid_search/killed/"
}

// markKilled notes that this run killed t, so a rerun of the same stage key (after
// the stage failed) trains it afresh instead of resuming its recorded waves.
func (r *search) markKilled(ctx context.Context, t *trial) {
	k := killedPrefix(r.s.Key()) + t.id + "/" + t.run
	_ = r.st.Put(context.WithoutCancel(ctx), k, strings.NewReader(time.Now().UTC().Format(time.RFC3339)))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// sorted orders trials by the objective, best first; trials without a finite
// value come last, in their original order.
func (r *search) sorted() []*trial {
	out := append([]*trial(nil), r.trials...)
	sort.SliceStable(out, func(i, j int) bool {
		a, aok := r.objectiveOf(out[i])
		b, bok := r.objectiveOf(out[j])
		if aok != bok {
			return aok
		}
		return aok && r.sp.obj.better(a, b)
	})
	return out
}

// objectiveOf is t's final (or latest) objective, if finite.
func (r *search) objectiveOf(t *trial) (float64, bool) {
	if !t.hasMetrics() {
		return 0, false
	}
	m := t.metrics
	if t.validation != nil {
		m = *t.validation
	}
	v := r.sp.obj.of(m)
	return v, finiteValue(v)
}

// hasMetrics reports whether t has been evaluated at least once.
func (t *trial) hasMetrics() bool { return len(t.points) > 0 || t.final }
