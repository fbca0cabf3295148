package train

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// TestPlanSolverBounds: on bounds, the rule names a solver only when each of
// its conditions is decided, and then the one it names on any exact figures
// within the bounds; otherwise the solvers it may be, with the condition.
func TestPlanSolverBounds(t *testing.T) {
	cfg := func(attrs map[string]cty.Value) cty.Value {
		base := map[string]cty.Value{"model": cty.NullVal(cty.String), "solver": cty.StringVal("auto"),
			"learning_rate": cty.NullVal(cty.Number), "optimizer": cty.NullVal(cty.String), "minibatch": cty.NullVal(cty.Number), "rank": cty.NullVal(cty.Number)}
		for k, v := range attrs {
			base[k] = v
		}
		return cty.ObjectVal(base)
	}
	heart := Known{Rows: Exact(216), NNZ: Bound{0, 216 * 13}, Features: Exact(13), Classes: Bound{2, 216}}
	for _, c := range []struct {
		name    string
		cfg     cty.Value
		in      Known
		solver  string
		options string
		why     string
	}{
		{"cached heart_scale", cfg(nil), heart, "newton", "", "at most 24 KiB"},
		{"softmax on it", cfg(map[string]cty.Value{"model": cty.StringVal("softmax")}), heart, "lbfgs", "", "fits in memory"},
		{"asked for", cfg(map[string]cty.Value{"solver": cty.StringVal("lbfgs")}), Known{}, "lbfgs", "", "asked for"},
		{"sgd argument", cfg(map[string]cty.Value{"minibatch": cty.NumberIntVal(10)}), Known{}, "sgd", "", "SGD arguments"},
		{"hashed 2^20", cfg(nil), Known{Rows: AtLeast(1), NNZ: AtLeast(0), Features: Exact(1<<20 + 13)}, "sgd", "", "1048590 coordinates"},
		{"features unknown", cfg(nil), Known{Rows: Bound{1, 100}, NNZ: Bound{0, 100}, Features: AtLeast(1), After: "load.d"}, "", "sgd newton lbfgs", "known after load.d"},
		{"between newton and lbfgs", cfg(nil), Known{Rows: Exact(100), NNZ: Bound{0, 1000}, Features: Bound{100, 1000}, After: "load.d"}, "", "newton lbfgs", "newton if the model has at most 256 coordinates; else lbfgs"},
		{"memory undecided, sgd anyway", cfg(nil), Known{Rows: AtLeast(1), NNZ: AtLeast(0), Features: Exact(1 << 20)}, "sgd", "", "over the full-batch limit of 65536"},
		{"too large for memory", cfg(nil), Known{Rows: AtLeast(300 << 20), NNZ: AtLeast(0), Features: Exact(10)}, "sgd", "", "at least 2400 MiB"},
		{"unknown model", cfg(map[string]cty.Value{"model": cty.UnknownVal(cty.String)}), heart, "", "", "model is not known until apply"},
		{"matrix factorization", cfg(map[string]cty.Value{"model": cty.StringVal("matrix_factorization"), "rank": cty.NumberIntVal(3)}), Known{Rows: Exact(4200), Features: Exact(300)}, "als", "", "fit in memory"},
		{"matrix factorization, slots unknown", cfg(map[string]cty.Value{"model": cty.StringVal("matrix_factorization")}), Known{Rows: Bound{1, 5000}, Features: AtLeast(1), After: "load.r"}, "", "sgd als", "sgd if the factors need more than 64 MiB"},
	} {
		got := Solvers{}.PlanSolver(c.cfg, c.in)
		if got.Solver != c.solver || strings.Join(got.Options, " ") != c.options || !strings.Contains(got.Why, c.why) {
			t.Errorf("%s: %+v; want solver %q, options %q, why …%s…", c.name, got, c.solver, c.options, c.why)
		}
	}
}

// TestSolverRuleExactMatchesBounds: a solver plan names on bounds is the one
// the rule names on exact figures at the bounds' ends (what apply sees).
func TestSolverRuleExactMatchesBounds(t *testing.T) {
	for _, model := range []string{"logistic_regression", "softmax", "linear_svm"} {
		for _, f := range []int64{3, 255, 256, 300, 65535, 65536, 1 << 20} {
			for _, rows := range []int64{10, 1 << 20, 300 << 20} {
				b := Known{Rows: Bound{rows / 2, rows}, NNZ: Bound{0, rows * 4}, Features: Bound{f / 2, f}, Classes: Bound{2, 3}}
				p := solverRule(Config{Model: model, Solver: "auto"}, b)
				if p.Solver == "" {
					continue
				}
				for _, k := range []Known{
					{Rows: Exact(b.Rows.Min), NNZ: Exact(b.NNZ.Min), Features: Exact(b.Features.Min), Classes: Exact(b.Classes.Min)},
					{Rows: Exact(b.Rows.Max), NNZ: Exact(b.NNZ.Max), Features: Exact(b.Features.Max), Classes: Exact(b.Classes.Max)},
				} {
					if e := solverRule(Config{Model: model, Solver: "auto"}, k); e.Solver != p.Solver {
						t.Errorf("%s, %d features, %d rows: plan says %s (%s), exact %+v gives %s (%s)", model, f, rows, p.Solver, p.Why, k, e.Solver, e.Why)
					}
				}
			}
		}
	}
}
