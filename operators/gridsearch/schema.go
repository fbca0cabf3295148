package gridsearch

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

// Schema is the `grid_search` block.
var Schema = &operators.Schema{
	Name:        "grid_search",
	Version:     2,
	UsesPSStore: true,
	Doc:         "Runs trials of a train stage over a grid and/or a random sample of its parameters.",
	Attrs: []operators.Attr{
		{Name: "train", Type: cty.DynamicPseudoType, Required: true, Stage: "train",
			Doc: "The train stage whose configuration each trial starts from, such as train.lr."},
		{Name: "grid", Type: cty.DynamicPseudoType,
			Doc:   "Lists of values per train argument; trials are their Cartesian product.",
			Check: checkGrid},
		{Name: "metric", Type: cty.String, Enum: []string{"test_logloss", "accuracy", "auc", "test_rmse", "test_mae", "r2"},
			Doc: "The objective: test_logloss, test_rmse and test_mae are minimised, accuracy, auc and r2 maximised (on the validation set when there is one). Default: the model's own, test_logloss for logistic_regression and softmax, accuracy for linear_svm, test_rmse for linear_regression and matrix_factorization."},
		{Name: "max_parallel", Type: cty.Number, Integer: true, Auto: true, Default: operators.AutoValue, Min: operators.Float(1), Max: operators.Float(1000),
			Doc: "Trials running at once, or \"auto\" (the default): the planner chooses from the number of trials, the base stage's workers and the backend's concurrency."},
		{Name: "worker_budget", Type: cty.Number, Integer: true, Min: operators.Float(1),
			Doc: "Total workers shared by running trials; by default max_parallel times the base stage's workers."},
	},
	Blocks: []operators.Block{
		{Name: "random", Doc: "Random search: samples trials from distributions.", Attrs: []operators.Attr{
			{Name: "samples", Type: cty.Number, Integer: true, Required: true, Min: operators.Float(1), Max: operators.Float(100000)},
			{Name: "seed", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(1),
				Doc: "The same seed draws the same trials."},
			{Name: "params", Type: cty.DynamicPseudoType, Required: true,
				Doc:   "Distributions per train argument: loguniform(a, b), uniform(a, b), choice([...]).",
				Check: checkRandomParams},
		}},
		{Name: "early_stop", Doc: "Stops poor trials early and frees their workers.", Attrs: []operators.Attr{
			{Name: "rule", Type: cty.String, Required: true, Enum: []string{"threshold", "median", "asha"}},
			{Name: "grace", Type: cty.String, Default: cty.StringVal("10s"), Duration: true,
				Doc: "No trial is stopped by the median or asha rule before it has run this long."},
			{Name: "max_logloss", Type: cty.Number, Min: operators.Float(0),
				Doc: "threshold: stop a trial whose test loss exceeds this (NaN and Inf always stop)."},
			{Name: "reduction_factor", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(3), Min: operators.Float(2),
				Doc: "asha: keep the best 1/reduction_factor of trials at each rung."},
			{Name: "interval", Type: cty.String, Default: cty.StringVal("1s"), Duration: true,
				Doc: "How often the median and asha rules are applied (threshold acts on every evaluation)."},
			{Name: "min_trials", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(2), Min: operators.Float(1), Max: operators.Float(1000),
				Doc: "median: how many other trials must have reached the same time before the rule acts."},
		}},
	},
	// best is { id, params, metrics, model }; trials is a list of { id, params,
	// status, reason, metrics, model }; results holds the URIs of the results table.
	// Their shapes depend on the searched arguments, hence dynamic types.
	Outputs: map[string]cty.Type{
		"best":    cty.DynamicPseudoType,
		"trials":  cty.DynamicPseudoType,
		"results": cty.Object(map[string]cty.Type{"csv": cty.String, "json": cty.String}),
	},
	Check: checkConfig,
}

// checkConfig is the cross-argument validation: something to search, and no
// argument both in the grid and in the random block.
func checkConfig(cfg cty.Value) []operators.Problem {
	grid, random := cfg.GetAttr("grid"), cfg.GetAttr("random")
	if grid.IsKnown() && grid.IsNull() && random.IsKnown() && random.IsNull() {
		return []operators.Problem{{Attr: "grid", Summary: "Nothing to search",
			Detail: "Give a grid = { argument = [values…] } and/or a random { … } block."}}
	}
	if !grid.IsWhollyKnown() || grid.IsNull() || !random.IsWhollyKnown() || random.IsNull() {
		return nil
	}
	gd, err := gridDims(grid)
	if err != nil {
		return nil // reported on the argument
	}
	rd, err := randomDims(random.GetAttr("params"))
	if err != nil {
		return nil
	}
	for _, g := range gd {
		for _, r := range rd {
			if g.name == r.name {
				return []operators.Problem{{Attr: "grid", Summary: "Argument searched twice",
					Detail: fmt.Sprintf("%s is in the grid and in random.params; search it in one of them.", g.name)}}
			}
		}
	}
	return nil
}

// checkRandomParams checks random.params at plan time.
func checkRandomParams(v cty.Value) error {
	if !v.IsKnown() || v.IsNull() {
		return nil
	}
	_, err := randomDims(v)
	return err
}

// checkGrid requires an object or map of non-empty lists, keyed by train
// arguments, whose values fit the arguments' types and bounds.
func checkGrid(v cty.Value) error {
	if !v.IsKnown() || v.IsNull() {
		return nil
	}
	_, err := gridDims(v)
	return err
}
