package planner

import (
	"math"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// TestBoundParallel: a model's functions are bounded by what the backend runs
// at once — five emulators run a load of 11 parts 5 at a time, a train stage's
// workers beside their evaluator, one trial of 2 workers and an evaluator of a
// grid search — and on the local backend by the cores.
func TestBoundParallel(t *testing.T) {
	grid := cty.ObjectVal(map[string]cty.Value{"train": cty.ObjectVal(map[string]cty.Value{"workers": cty.NumberIntVal(2)})})
	for _, c := range []struct {
		op   string
		lim  Limits
		par  int
		cfg  cty.Value
		want int
	}{
		{"load", Limits{}, 11, cty.EmptyObjectVal, 11},
		{"load", Limits{Backend: "lambda", Functions: 5}, 11, cty.EmptyObjectVal, 5},
		{"load", Limits{Backend: "local", Functions: 8, Cores: 2}, 11, cty.EmptyObjectVal, 2},
		{"train", Limits{Backend: "lambda", Functions: 5}, 8, cty.EmptyObjectVal, 4},
		{"train", Limits{Backend: "lambda", Functions: 100}, 8, cty.EmptyObjectVal, 8},
		{"grid_search", Limits{Backend: "lambda", Functions: 5}, 6, grid, 2},
		{"grid_search", Limits{Backend: "lambda", Functions: 9}, 6, grid, 6},
		{"grid_search", Limits{Backend: "lambda", Functions: 2}, 6, grid, 2}, // at least one trial
	} {
		m := &costModel{limits: c.lim}
		model := m.boundParallel(c.op, func(int64, cty.Value) (float64, int, int64) { return 10, c.par, 7 })
		fs, par, out := model(1, c.cfg)
		if fs != 10 || out != 7 || par != c.want {
			t.Errorf("%s on %+v, %d functions: %g s, %d functions, %d bytes; want 10 s over %d, 7 bytes", c.op, c.lim, c.par, fs, par, out, c.want)
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
