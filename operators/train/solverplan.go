package train

import (
	"fmt"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// Solver choice at plan time. solverRule is the one statement of how solver
// "auto" picks (chooseSolver and chooseMFSolver document it); apply evaluates
// it on the training set's exact figures, plan (PlanSolver) on what it knows
// before the data are read — bounds — and names a solver only when every
// condition of the rule is decided by them, so the solver a plan names is the
// one apply uses. Where a condition is not decided, the plan lists the solvers
// it may lead to and the condition that decides between them.

// Bound is what is known of a count before the data are read: at least Min
// and, when Max ≥ 0, at most Max; exact when they are equal.
type Bound struct{ Min, Max int64 }

// Exact is the bound of a known count; AtLeast that of a count known only
// from below.
func Exact(n int64) Bound   { return Bound{n, n} }
func AtLeast(n int64) Bound { return Bound{n, -1} }

func (b Bound) exact() bool   { return b.Max == b.Min }
func (b Bound) bounded() bool { return b.Max >= 0 }

// mul and add combine bounds (an unbounded side stays unbounded).
func (b Bound) mul(c Bound) Bound {
	out := Bound{b.Min * c.Min, -1}
	if b.bounded() && c.bounded() {
		out.Max = b.Max * c.Max
	}
	return out
}

func (b Bound) add(c Bound) Bound {
	out := Bound{b.Min + c.Min, -1}
	if b.bounded() && c.bounded() {
		out.Max = b.Max + c.Max
	}
	return out
}

// Known is what is known of a train stage's training set: its rows, stored
// entries (after any normalize), features and classes (softmax's distinct
// labels). After names what will know the figures that are not exact (the load
// stage it reads, "load.adult"), for the plan's reason.
type Known struct {
	Rows, NNZ, Features, Classes Bound
	After                        string
}

// SolverPlan is the solver a train stage will use as far as plan can tell:
// Solver when the rule is decided (Why is then the reason apply will give, with
// bounds in place of figures plan does not know exactly); otherwise Solver is
// "" and Options lists the solvers it may use, Why the condition between them.
type SolverPlan struct {
	Solver  string
	Options []string
	Why     string
}

// Solvers is the train operator's answer to the planner's question "which
// solver will this stage use?" (PlanSolver).
type Solvers struct{}

// PlanSolver is the solver the train stage of evaluated configuration cfg
// will use on a training set of which in is known. A configuration whose model
// or solver is not known until apply names none.
func (Solvers) PlanSolver(cfg cty.Value, in Known) SolverPlan {
	if !cfg.IsKnown() || cfg.IsNull() || !cfg.Type().IsObjectType() {
		return SolverPlan{Why: "the stage's configuration is not known until apply"}
	}
	c := Config{Model: "logistic_regression", Solver: "auto", Rank: DefaultRank, SGDArgs: sgdArgs(cfg)}
	for _, a := range []struct {
		name string
		to   *string
	}{{"model", &c.Model}, {"solver", &c.Solver}} {
		if !cfg.Type().HasAttribute(a.name) {
			continue
		}
		switch v := cfg.GetAttr(a.name); {
		case !v.IsKnown():
			return SolverPlan{Why: fmt.Sprintf("%s is not known until apply", a.name)}
		case !v.IsNull() && v.Type() == cty.String:
			*a.to = v.AsString()
		}
	}
	if cfg.Type().HasAttribute("rank") {
		switch v := cfg.GetAttr("rank"); {
		case !v.IsKnown():
			if c.Model == "matrix_factorization" {
				return SolverPlan{Why: "rank is not known until apply"}
			}
		case !v.IsNull() && v.Type() == cty.Number:
			r, _ := v.AsBigFloat().Int64()
			if r > 0 {
				c.Rank = int(r)
			}
		}
	}
	return solverRule(c, in)
}

// sgdArgs reports whether configuration v gives an argument only SGD uses
// (Config.SGDArgs).
func sgdArgs(v cty.Value) bool {
	for _, name := range []string{"optimizer", "learning_rate", "minibatch"} {
		if v.Type().HasAttribute(name) && !v.GetAttr(name).IsNull() {
			return true
		}
	}
	return false
}

// tri is a condition's value on bounds: yes, no, or not decided.
type tri int

const (
	no tri = iota
	yes
	maybe
)

// over is whether b > limit; atMost whether b ≤ limit.
func over(b Bound, limit int64) tri {
	switch {
	case b.Min > limit:
		return yes
	case b.bounded() && b.Max <= limit:
		return no
	}
	return maybe
}

func atMost(b Bound, limit int64) tri { return [...]tri{yes, no, maybe}[over(b, limit)] }

// step is one case of the rule: the solver it gives when test holds, the
// reason, and the condition as plan states it when it is not decided.
type step struct {
	solver string
	test   tri
	why    func() string
	cond   string
}

// solverRule is how solver "auto" picks (see chooseSolver and chooseMFSolver)
// for cfg (Model defaulted, for matrix factorization Rank too) on in.
func solverRule(cfg Config, in Known) SolverPlan {
	model := cfg.Model
	if model == "" {
		model = "logistic_regression"
	}
	if cfg.Solver != "" && cfg.Solver != "auto" {
		return SolverPlan{Solver: cfg.Solver, Why: "asked for"}
	}
	var steps []step
	if model == "matrix_factorization" {
		ratingBytes := in.Rows.mul(Exact(alsRatingBytes))
		factors := in.Features.mul(Exact(int64(cfg.Rank + 1))).mul(Exact(4))
		steps = []step{
			{"sgd", yn(cfg.SGDArgs), func() string { return "auto: the stage sets SGD arguments" }, ""},
			{"sgd", over(ratingBytes, fullBatchBytes), func() string {
				return fmt.Sprintf("auto: the ratings need %s in memory, over the ALS limit of %s", atLeastMiB(ratingBytes), mib(fullBatchBytes))
			}, fmt.Sprintf("sgd if the ratings need more than %s in memory (%d bytes each)", mib(fullBatchBytes), alsRatingBytes)},
			{"sgd", yn(cfg.Rank > alsMaxRank), func() string { return fmt.Sprintf("auto: rank %d, over the ALS limit of %d", cfg.Rank, alsMaxRank) }, ""},
			{"sgd", over(factors, alsMaxModelBytes), func() string {
				return fmt.Sprintf("auto: the factors need %s, over the ALS limit of %s", atLeastMiB(factors), mib(alsMaxModelBytes))
			}, fmt.Sprintf("sgd if the factors need more than %s (users and items × rank+1 × 4 bytes)", mib(alsMaxModelBytes))},
			{"als", yes, func() string { return fmt.Sprintf("auto: the factors fit in memory (%s)", atMostMiB(factors)) }, "als"},
		}
		return decide(steps, in.After)
	}
	bytes := in.NNZ.add(in.Rows).mul(Exact(8))
	dim := in.Features.add(Exact(1))
	if model == "softmax" {
		dim = dim.mul(in.Classes)
	}
	newton := no
	if newtonModel(model) {
		newton = atMost(dim, hessianDim)
	}
	coords := "the model has"
	if model == "softmax" {
		coords = "the model ((features+1) × classes) has"
	}
	steps = []step{
		{"sgd", yn(cfg.SGDArgs), func() string { return "auto: the stage sets SGD arguments" }, ""},
		{"sgd", over(bytes, fullBatchBytes), func() string {
			return fmt.Sprintf("auto: the training set needs %s in memory, over the full-batch limit of %s", atLeastMiB(bytes), mib(fullBatchBytes))
		}, fmt.Sprintf("sgd if the training set needs more than %s in memory", mib(fullBatchBytes))},
		{"sgd", over(dim, fullBatchDim), func() string {
			return fmt.Sprintf("auto: %s coordinates, over the full-batch limit of %d", atLeast(dim), fullBatchDim)
		}, fmt.Sprintf("sgd if %s more than %d coordinates", coords, fullBatchDim)},
		{"newton", newton, func() string {
			return fmt.Sprintf("auto: the training set fits in memory (%s) and the Hessian of %s coordinates travels with the gradient", atMostMiB(bytes), atMostN(dim))
		}, fmt.Sprintf("newton if %s at most %d coordinates", coords, hessianDim)},
		{"lbfgs", yes, func() string { return fmt.Sprintf("auto: the training set fits in memory (%s)", atMostMiB(bytes)) }, "lbfgs"},
	}
	return decide(steps, in.After)
}

func yn(b bool) tri {
	if b {
		return yes
	}
	return no
}

// decide walks the rule's steps: the first that holds names the solver, unless
// an undecided step comes before it, in which case the plan lists the solvers
// of the undecided steps and of the first that holds, with their conditions.
func decide(steps []step, after string) SolverPlan {
	var options, conds []string
	var held step
	for _, s := range steps {
		if s.test == no {
			continue
		}
		if s.test == yes && len(options) == 0 {
			return SolverPlan{Solver: s.solver, Why: s.why()}
		}
		if !contains(options, s.solver) {
			options = append(options, s.solver)
		}
		if s.test == yes {
			held = s
			conds = append(conds, "else "+s.solver)
			break
		}
		conds = append(conds, s.cond)
	}
	if len(options) == 1 && held.solver == options[0] { // every way leads to one solver
		return SolverPlan{Solver: held.solver, Why: held.why()}
	}
	if after == "" {
		after = "the training set is read"
	}
	return SolverPlan{Options: options, Why: fmt.Sprintf("known after %s: %s", after, strings.Join(conds, "; "))}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// atLeastMiB and atMostMiB show a byte bound as a reason does: the figure when
// exact (what apply says), else "at least"/"at most" it.
func atLeastMiB(b Bound) string {
	if b.exact() {
		return mib(b.Min)
	}
	return "at least " + mib(b.Min)
}

func atMostMiB(b Bound) string {
	if b.exact() {
		return mib(b.Max)
	}
	return "at most " + mib(b.Max)
}

func atLeast(b Bound) string {
	if b.exact() {
		return fmt.Sprint(b.Min)
	}
	return fmt.Sprintf("at least %d", b.Min)
}

func atMostN(b Bound) string {
	if b.exact() {
		return fmt.Sprint(b.Max)
	}
	return fmt.Sprintf("at most %d", b.Max)
}
