package planner

import (
	"math"
	"testing"

	"github.com/zclconf/go-cty/cty"
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
