package planner

import (
	"math"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/state"
)

// TestBoundParallel: a model's functions are bounded by what the backend runs
// at once — five emulators run a load of 11 parts 5 at a time, a train stage's
// workers beside their evaluator, one trial of 2 workers and an evaluator of a
// grid search — and where they share fewer cores (the local backend, emulators
// on this machine) their work stretches each function's time by functions over
// cores, so the wall time is the work over the cores.
func TestBoundParallel(t *testing.T) {
	grid := cty.ObjectVal(map[string]cty.Value{"train": cty.ObjectVal(map[string]cty.Value{"workers": cty.NumberIntVal(2)})})
	none := cty.EmptyObjectVal
	for _, c := range []struct {
		op   string
		lim  Limits
		par  int
		cfg  cty.Value
		want int
		fs   float64
	}{
		{"load", Limits{}, 11, none, 11, 10},
		{"load", Limits{Backend: "lambda", Functions: 5}, 11, none, 5, 10},
		{"load", Limits{Backend: "lambda", Functions: 5, HostCores: 2}, 11, none, 5, 25},
		{"load", Limits{Backend: "local", Functions: 8, Cores: 2}, 11, none, 8, 40},
		{"load", Limits{Backend: "local", Functions: 8, Cores: 2}, 1, none, 1, 10},
		{"train", Limits{Backend: "lambda", Functions: 5}, 8, none, 4, 10},
		{"train", Limits{Backend: "lambda", Functions: 100}, 8, none, 8, 10},
		{"grid_search", Limits{Backend: "lambda", Functions: 5}, 6, grid, 2, 10},
		{"grid_search", Limits{Backend: "lambda", Functions: 9}, 6, grid, 6, 10},
		{"grid_search", Limits{Backend: "lambda", Functions: 2}, 6, grid, 2, 10}, // at least one trial
		{"grid_search", Limits{Backend: "local", Functions: 8, Cores: 2}, 6, grid, 4, 20},
	} {
		m := &costModel{limits: c.lim}
		model := m.boundParallel(c.op, func(int64, cty.Value) (float64, int, int64) { return 10, c.par, 7 })
		fs, par, out := model(1, c.cfg)
		if math.Abs(fs-c.fs) > 1e-9 || out != 7 || par != c.want {
			t.Errorf("%s on %+v, %d functions: %g s over %d functions, %d bytes; want %g s over %d, 7 bytes", c.op, c.lim, c.par, fs, par, out, c.fs, c.want)
		}
	}
}

// TestEstimateUpload: on a remote backend a load's defaults estimate adds the
// upload of its local sources, at UploadBytesPerSecond, to the wall time (and
// nothing to the function-seconds); on the local backend nothing.
func TestEstimateUpload(t *testing.T) {
	dir := estimateDir(t, 100_000, 5)
	over := TaskOverhead.Seconds()
	for _, c := range []struct {
		lim    Limits
		upload bool
	}{
		{Limits{Backend: "lambda", Functions: 5, Shards: 2}, true},
		{Limits{Backend: "local", Functions: 8, Cores: 2}, false},
	} {
		p, diags := Build(t.Context(), load(t, dir), Options{Limits: c.lim})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		e := p.Stage("load.d").Estimate
		work := e.FunctionSeconds - float64(e.Tasks)*over
		got := e.Wall.Seconds() - work/float64(e.Tasks) - over
		want := 0.0
		if c.upload {
			want = float64(e.InputBytes) / UploadBytesPerSecond
		}
		if e.InputBytes == 0 || math.Abs(got-want) > 1e-6 {
			t.Errorf("%s: load of %d bytes, %s wall beyond its functions' %g s; want %g s", c.lim.Backend, e.InputBytes, e.Wall, got, want)
		}
		if n := p.Stage("normalize.d").Estimate; n.Wall.Seconds()-(n.FunctionSeconds-float64(n.Tasks)*over)/float64(n.Tasks)-over > 1e-6 {
			t.Errorf("%s: normalize.d's wall %s holds more than its functions", c.lim.Backend, n.Wall)
		}
	}
}

// TestMinibatchFactor: over gRPC the iteration's round trip is fixed, so a
// minibatch of 20 processes examples about 4.6 times slower than 100 (the
// serverless stack measured 4.0: 105k against 418k examples/s), 1000 about
// half as long per example; the local backend's in-process shards are not
// scaled.
func TestMinibatchFactor(t *testing.T) {
	if f := minibatchFactor(100); f != 1 {
		t.Errorf("minibatch 100: %g, want 1", f)
	}
	if f := minibatchFactor(20); f < 4 || f > 5 {
		t.Errorf("minibatch 20: %g, want 4–5", f)
	}
	if f := minibatchFactor(1000); f < 0.1 || f > 0.5 {
		t.Errorf("minibatch 1000: %g, want 0.1–0.5", f)
	}
	mb20 := cty.ObjectVal(map[string]cty.Value{"minibatch": cty.NumberIntVal(20)})
	run := func(lim Limits) float64 {
		m := &costModel{limits: lim}
		fs, _, _ := m.scaleMinibatch("train", func(int64, cty.Value) (float64, int, int64) { return 10, 1, 0 })(1, mb20)
		return fs
	}
	if fs := run(Limits{Backend: "lambda", Functions: 5}); math.Abs(fs-10*minibatchFactor(20)) > 1e-9 {
		t.Errorf("lambda, minibatch 20: %g s, want %g", fs, 10*minibatchFactor(20))
	}
	if fs := run(Limits{Backend: "local", Cores: 2}); fs != 10 {
		t.Errorf("local, minibatch 20: %g s, want 10 (in-process shards)", fs)
	}
}

// TestWithParamsUnknown: a parameter unknown at plan time (train.final's
// minibatch = grid_search.tune.best.params.minibatch) is not replaced by the
// recorded value, so history is not scaled by a change the plan cannot see: it
// was, and a9a-tune's train.final, recorded at minibatch 20, was estimated
// from history at a fifth of its 6.6 s on the serverless stack.
func TestWithParamsUnknown(t *testing.T) {
	params := map[string]state.Param{"minibatch": {Display: "20"}, "epochs": {Display: "30"}}
	cfg := cty.ObjectVal(map[string]cty.Value{"minibatch": cty.UnknownVal(cty.Number), "epochs": cty.NumberIntVal(10)})
	got := withParams(cfg, params)
	if mb := got.GetAttr("minibatch"); mb.IsKnown() {
		t.Errorf("unknown minibatch became %#v", mb)
	}
	if e := intAttr(got, "epochs", 0); e != 30 {
		t.Errorf("known epochs %d, want the record's 30", e)
	}
	m := &costModel{limits: Limits{Backend: "lambda", Functions: 5}}
	model := m.scaleMinibatch("train", opModels["train"])
	now, _, _ := model(1<<20, cfg)
	then, _, _ := model(1<<20, withParams(cfg, map[string]state.Param{"minibatch": {Display: "20"}}))
	if now != then {
		t.Errorf("unknown minibatch: %g s now, %g s for the record's configuration; want the same", now, then)
	}
}
