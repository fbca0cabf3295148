package planner

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/state"
)

// estimatePipeline is load → normalize → train over data.svm.
const estimatePipeline = `
load "d" {
  source = "data.svm"
}
normalize "d" {
  input  = load.d
  method = "min_max"
}
train "lr" {
  input   = normalize.d
  workers = 2
  epochs  = EPOCHS
}
`

func estimateDir(t *testing.T, rows, epochs int) string {
	t.Helper()
	return pipelineDir(t, map[string]string{
		"main.hcl": strings.ReplaceAll(estimatePipeline, "EPOCHS", itoa(epochs)),
		"data.svm": strings.Repeat("+1 1:0.5 2:0.25 3:1\n", rows),
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestEstimateScalesWithInput: ten times the data gives ten times the work of
// every stage (less the fixed per-task overhead), on the default throughputs.
func TestEstimateScalesWithInput(t *testing.T) {
	small := plan(t, load(t, estimateDir(t, 1000, 5)), nil)
	big := plan(t, load(t, estimateDir(t, 10000, 5)), nil)
	for _, s := range small.Stages {
		es, eb := s.Estimate, big.Stage(s.Address).Estimate
		if es == nil || eb == nil {
			t.Fatalf("%s: no estimate", s.Address)
		}
		if es.Basis != BasisDefaults {
			t.Errorf("%s: basis %q, want defaults", s.Address, es.Basis)
		}
		if eb.InputBytes != 10*es.InputBytes || es.InputBytes == 0 {
			t.Errorf("%s: input bytes %d and %d, want a factor of 10", s.Address, es.InputBytes, eb.InputBytes)
		}
		over := float64(es.Tasks) * TaskOverhead.Seconds()
		if eb.Tasks != es.Tasks {
			t.Fatalf("%s: tasks %d and %d", s.Address, es.Tasks, eb.Tasks)
		}
		ws, wb := es.FunctionSeconds-over, eb.FunctionSeconds-over
		if r := wb / ws; r < 9.99 || r > 10.01 {
			t.Errorf("%s: function-seconds of work %g and %g, ratio %g, want 10", s.Address, ws, wb, r)
		}
		if eb.GBSeconds <= es.GBSeconds || eb.CostUSD <= es.CostUSD || eb.Wall <= es.Wall {
			t.Errorf("%s: bigger input, estimate not bigger: %+v vs %+v", s.Address, eb, es)
		}
	}
	// Epochs multiply training's work.
	more := plan(t, load(t, estimateDir(t, 1000, 50)), nil)
	a, b := small.Stage("train.lr").Estimate, more.Stage("train.lr").Estimate
	over := float64(a.Tasks) * TaskOverhead.Seconds()
	if r := (b.FunctionSeconds - over) / (a.FunctionSeconds - over); r < 9.99 || r > 10.01 {
		t.Errorf("10× epochs: training work ratio %g, want 10", r)
	}
	tot := small.Totals()
	if !tot.HaveRun || tot.HaveSaved || tot.CostUSD <= 0 {
		t.Errorf("totals %+v", tot)
	}
}

// TestEstimatePrices: the GB-seconds follow the memory and the dollars the
// prices the options give.
func TestEstimatePrices(t *testing.T) {
	cfg := load(t, estimateDir(t, 1000, 5))
	base, _ := Build(t.Context(), cfg, Options{})
	pr, err := pricing.For("us-east-1", pricing.X8664)
	if err != nil {
		t.Fatal(err)
	}
	dbl, _ := Build(t.Context(), cfg, Options{MemoryMB: 2 * pricing.DefaultMemoryMB, Pricing: pr})
	a, b := base.Stage("load.d").Estimate, dbl.Stage("load.d").Estimate
	if r := b.GBSeconds / a.GBSeconds; r < 1.999 || r > 2.001 {
		t.Errorf("double memory: GB-s ratio %g, want 2", r)
	}
	want := pr.Duration(b.GBSeconds) + pr.Requests(b.Tasks)
	if b.CostUSD != want {
		t.Errorf("cost %g, want %g at x86 prices", b.CostUSD, want)
	}
}

// record stores a completed run of every stage of p that took wall and gbs each,
// with the plan's estimated input bytes.
func record(t *testing.T, st *state.Store, p *Plan, wall time.Duration, gbs float64) {
	t.Helper()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range p.Stages {
		err := st.PutStage(&state.StageRecord{
			Address: s.Address, Operator: s.Operator, Version: s.Version, Key: s.Key,
			Params: s.Params, Upstream: s.Upstream, Sources: s.Sources,
			Started: start, Finished: start.Add(wall), Tasks: 3, GBSeconds: gbs, CostUSD: 0.5,
			Backend: "local", InputBytes: s.Estimate.InputBytes,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestEstimateHistory: a stage that ran before is estimated from its measured
// figures, scaled by the ratio of input sizes; cached stages report what reuse
// saved, from their records.
func TestEstimateHistory(t *testing.T) {
	dir := estimateDir(t, 1000, 5)
	st := openState(t)
	first := plan(t, load(t, dir), st)
	record(t, st, first, 40*time.Second, 12)

	cached := plan(t, load(t, dir), st)
	for _, s := range cached.Stages {
		e := s.Estimate
		if s.Action != Cached || e.Basis != BasisReused || e.Wall != 40*time.Second || e.GBSeconds != 12 || e.CostUSD != 0.5 || e.Tasks != 3 {
			t.Errorf("%s: %s %+v, want cached with the record's figures as savings", s.Address, s.Action, e)
		}
	}
	if tot := cached.Totals(); tot.HaveRun || tot.SavedCostUSD != 1.5 || tot.SavedWall != 120*time.Second {
		t.Errorf("totals %+v, want $1.5 and 120s saved, nothing to run", tot)
	}

	// Double the data: every stage reruns, estimated from history at twice
	// the measured figures — not from the defaults.
	writeFiles(t, dir, map[string]string{"data.svm": strings.Repeat("+1 1:0.5 2:0.25 3:1\n", 2000)})
	again := plan(t, load(t, dir), st)
	defaults := plan(t, load(t, dir), nil)
	for _, s := range again.Stages {
		e := s.Estimate
		if s.Action != Rerun || e.Basis != BasisHistory {
			t.Fatalf("%s: %s basis %q, want a rerun from history", s.Address, s.Action, e.Basis)
		}
		if e.Wall != 80*time.Second || e.GBSeconds != 24 {
			t.Errorf("%s: wall %s, %g GB-s; want the record's 40s and 12 GB-s doubled", s.Address, e.Wall, e.GBSeconds)
		}
		if d := defaults.Stage(s.Address).Estimate; d.Basis != BasisDefaults || d.GBSeconds == e.GBSeconds {
			t.Errorf("%s: without state %+v, want the defaults", s.Address, d)
		}
	}
}

// TestEstimateReplace: -replace turns a cached stage into a rerun estimated from
// its history.
func TestEstimateReplace(t *testing.T) {
	dir := estimateDir(t, 1000, 5)
	st := openState(t)
	record(t, st, plan(t, load(t, dir), st), 10*time.Second, 2)
	p, diags := Build(t.Context(), load(t, dir), Options{State: st, Replace: []string{"train.lr"}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if e := p.Stage("train.lr").Estimate; e.Basis != BasisHistory || e.Wall != 10*time.Second {
		t.Errorf("replaced stage: %+v, want history's 10s", e)
	}
	if e := p.Stage("load.d").Estimate; e.Basis != BasisReused {
		t.Errorf("load.d: %+v, want reused", e)
	}
}

// TestEstimateHistoryParams: history is scaled by what the model says a changed
// parameter does — twice the epochs, twice the training — and a stage that never
// ran at its address borrows the history of another stage of its operator.
func TestEstimateHistoryParams(t *testing.T) {
	dir := estimateDir(t, 1000, 5)
	st := openState(t)
	record(t, st, plan(t, load(t, dir), st), 40*time.Second, 12)

	writeFiles(t, dir, map[string]string{"main.hcl": strings.ReplaceAll(estimatePipeline, "EPOCHS", "10")})
	p := plan(t, load(t, dir), st)
	e := p.Stage("train.lr").Estimate
	if p.Stage("train.lr").Action != Rerun || e.Basis != BasisHistory {
		t.Fatalf("train.lr: %s %+v, want a rerun from history", p.Stage("train.lr").Action, e)
	}
	if r := e.GBSeconds / 12; r < 1.999 || r > 2.001 {
		t.Errorf("twice the epochs: %g GB-s from history's 12, ratio %g, want 2", e.GBSeconds, r)
	}
	if p.Stage("load.d").Estimate.Basis != BasisReused {
		t.Errorf("load.d: %+v, want reused", p.Stage("load.d").Estimate)
	}

	// A second training stage over the same data: it never ran, but train.lr did.
	writeFiles(t, dir, map[string]string{"more.hcl": "train \"other\" {\n  input   = normalize.d\n  workers = 2\n  epochs  = 7\n}\n"})
	p = plan(t, load(t, dir), st)
	o := p.Stage("train.other")
	if o.Action != Run || o.Estimate.Basis != BasisHistory {
		t.Fatalf("train.other: %s %+v, want a run estimated from train.lr's history", o.Action, o.Estimate)
	}
	if w, g := o.Estimate.Wall.Seconds(), o.Estimate.GBSeconds; math.Abs(w-56) > 1e-6 || math.Abs(g-16.8) > 1e-6 {
		t.Errorf("train.other: %gs, %g GB-s; want train.lr's 40s and 12 GB-s at 7/5 the epochs (56s, 16.8)", w, g)
	}
	// Without a state, the defaults.
	if e := plan(t, load(t, dir), nil).Stage("train.other").Estimate; e.Basis != BasisDefaults {
		t.Errorf("no state: %+v, want defaults", e)
	}
}

// TestEstimateGridSearch: a grid search runs its base train stage once per
// trial, over the base stage's input: six trials, six times the work, spread
// over max_parallel trials of the base's workers.
func TestEstimateGridSearch(t *testing.T) {
	dir := estimateDir(t, 1000, 5)
	writeFiles(t, dir, map[string]string{"grid.hcl": `
grid_search "g" {
  train = train.lr
  grid = {
    learning_rate = [0.01, 0.1, 0.5]
    minibatch     = [20, 100]
  }
  max_parallel = 3
}
`})
	p := plan(t, load(t, dir), nil)
	base, g := p.Stage("train.lr").Estimate, p.Stage("grid_search.g").Estimate
	if g.InputBytes != base.InputBytes {
		t.Errorf("grid input %d bytes, want the base stage's %d", g.InputBytes, base.InputBytes)
	}
	// The base's 2 workers and its evaluator, which runs as long as they do;
	// each trial's evaluator runs as long as one of its 2 workers.
	over := TaskOverhead.Seconds()
	work := base.FunctionSeconds - base.Wall.Seconds() - 2*over
	gwork := g.FunctionSeconds/1.5 - 6*over
	// Over gRPC a minibatch of 20 costs its round trips: the trials' mean.
	mb := (minibatchFactor(20) + minibatchFactor(100)) / 2
	if r := gwork / work; math.Abs(r-6*mb) > 1e-9 || mb < 2.5 {
		t.Errorf("grid work %g, base %g: ratio %g, want 6 trials × %g for minibatches 20 and 100", gwork, work, r, mb)
	}
	if base.Tasks != 2+1 || g.Tasks != 3*2+6 {
		t.Errorf("base tasks %d, grid tasks %d; want 2 workers and an evaluator, max_parallel 3 × 2 workers and 6 evaluators", base.Tasks, g.Tasks)
	}

	// Five functions at once (five Lambda emulators) run one trial of 2
	// workers and an evaluator at a time, not max_parallel's 3: three times
	// the wall time of the same work.
	build := func(functions int) *Estimate {
		t.Helper()
		p, diags := Build(t.Context(), load(t, dir), Options{Limits: Limits{Backend: "lambda", Functions: functions, Shards: 2}})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return p.Stage("grid_search.g").Estimate
	}
	free, five := build(0), build(5)
	if r := (five.Wall.Seconds() - over) / (free.Wall.Seconds() - over); math.Abs(r-3) > 1e-6 {
		t.Errorf("5 functions: %s, unbounded %s: wall ratio %g, want 3", five.Wall, free.Wall, r)
	}
}

// TestTotalsLongestChain: stages that do not read each other run side by side,
// so the plan's wall time is its longest chain's, not the sum.
func TestTotalsLongestChain(t *testing.T) {
	est := func(d time.Duration) *Estimate { return &Estimate{Wall: d, GBSeconds: 1, CostUSD: 1} }
	got := TotalsOf([]FileStage{
		{Address: "a", Action: Run, Estimate: est(10 * time.Second)},
		{Address: "b", Action: Run, Estimate: est(3 * time.Second)},
		{Address: "c", Action: Cached, Estimate: est(100 * time.Second)},
		{Address: "d", Action: Rerun, Deps: []string{"b", "c"}, Estimate: est(5 * time.Second)},
	})
	if got.Wall != 10*time.Second || got.GBSeconds != 3 || got.CostUSD != 3 || got.SavedWall != 100*time.Second || got.SavedCostUSD != 1 {
		t.Errorf("totals %+v; want 10s (a beside b→d's 8s), 3 GB-s, $3, 100s and $1 saved", got)
	}
}
