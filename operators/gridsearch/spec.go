package gridsearch

import (
	"fmt"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/internal/canon"
	"github.com/stratus-ml/stratus/operators"
)

// defaultMaxParallel is max_parallel = "auto" in a configuration the planner did
// not size.
const defaultMaxParallel = 2

// spec is a grid_search stage's evaluated configuration.
type spec struct {
	obj          objective
	maxParallel  int
	workerBudget int // 0: max_parallel × the base stage's workers
	grid         []dim
	random       *randomSpec
	early        *earlyStop
}

type randomSpec struct {
	samples int
	seed    int64
	dists   []distribution
}

// earlyStop is the early_stop block.
type earlyStop struct {
	rule       string // threshold | median | asha
	grace      time.Duration
	maxLogloss float64
	factor     float64
	interval   time.Duration
	minTrials  int
	// policy identifies the rule and its settings (with the metric), so a trial
	// stopped by a rule is reused from the trial cache only under the same rule.
	policy string
}

// parseSpec reads the stage configuration (all values known).
func parseSpec(cfg cty.Value) (*spec, error) {
	sp := &spec{}
	if m := cfg.GetAttr("metric"); !m.IsNull() {
		sp.obj = newObjective(m.AsString()) // else the base model's, set by the coordinator
	}
	if operators.IsAuto(cfg.GetAttr("max_parallel")) {
		// The planner replaces "auto" with its choice; a configuration built
		// another way gets the former default.
		sp.maxParallel = defaultMaxParallel
	} else {
		sp.maxParallel = intAttr(cfg, "max_parallel")
	}
	sp.workerBudget = intAttr(cfg, "worker_budget")
	var err error
	if sp.grid, err = gridDims(cfg.GetAttr("grid")); err != nil {
		return nil, err
	}
	if r := cfg.GetAttr("random"); !r.IsNull() {
		rs := &randomSpec{samples: intAttr(r, "samples"), seed: int64(intAttr(r, "seed"))}
		if rs.dists, err = randomDims(r.GetAttr("params")); err != nil {
			return nil, err
		}
		for _, g := range sp.grid {
			for _, d := range rs.dists {
				if g.name == d.name {
					return nil, fmt.Errorf("%s is in the grid and in random.params; search it in one of them", g.name)
				}
			}
		}
		sp.random = rs
	}
	if len(sp.grid) == 0 && sp.random == nil {
		return nil, fmt.Errorf("nothing to search: give a grid = { argument = [values…] } and/or a random { … } block")
	}
	if e := cfg.GetAttr("early_stop"); !e.IsNull() {
		es := &earlyStop{rule: e.GetAttr("rule").AsString(), factor: floatAttr(e, "reduction_factor"),
			maxLogloss: floatAttr(e, "max_logloss"), minTrials: intAttr(e, "min_trials")}
		if es.grace, err = time.ParseDuration(e.GetAttr("grace").AsString()); err != nil {
			return nil, fmt.Errorf("early_stop.grace: %w", err)
		}
		if es.interval, err = time.ParseDuration(e.GetAttr("interval").AsString()); err != nil {
			return nil, fmt.Errorf("early_stop.interval: %w", err)
		}
		if es.grace <= 0 || es.interval <= 0 {
			return nil, fmt.Errorf("early_stop.grace and early_stop.interval must be positive durations")
		}
		if es.factor < 2 {
			es.factor = 3
		}
		es.policy = canon.Encode(cty.ObjectVal(map[string]cty.Value{"early_stop": e, "metric": cfg.GetAttr("metric")}))
		sp.early = es
	}
	return sp, nil
}

// combos returns every trial's parameters, in order: the grid's Cartesian product
// (arguments sorted by name, the last varying fastest), each combined with
// `samples` random draws when there is a random block. Duplicates (a choice that
// drew the same values twice) are dropped; dropped says how many.
func (sp *spec) combos() (out []cty.Value, dropped int) {
	grid := product(sp.grid)
	var all []map[string]cty.Value
	if sp.random == nil {
		all = grid
	} else {
		draws := sample(sp.random.dists, len(grid)*sp.random.samples, sp.random.seed)
		for i, g := range grid {
			for j := 0; j < sp.random.samples; j++ {
				p := map[string]cty.Value{}
				for k, v := range g {
					p[k] = v
				}
				for k, v := range draws[i*sp.random.samples+j] {
					p[k] = v
				}
				all = append(all, p)
			}
		}
	}
	seen := map[string]bool{}
	for _, p := range all {
		v := cty.ObjectVal(p)
		id := canon.Encode(v)
		if seen[id] {
			dropped++
			continue
		}
		seen[id] = true
		out = append(out, v)
	}
	return out, dropped
}

func intAttr(v cty.Value, name string) int {
	a := v.GetAttr(name)
	if a.IsNull() || !a.IsKnown() {
		return 0
	}
	i, _ := a.AsBigFloat().Int64() // truncates, as train's ParseConfig does
	return int(i)
}

func floatAttr(v cty.Value, name string) float64 {
	a := v.GetAttr(name)
	if a.IsNull() || !a.IsKnown() {
		return 0
	}
	f, _ := a.AsBigFloat().Float64()
	return f
}
