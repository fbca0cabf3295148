package planner

import (
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
