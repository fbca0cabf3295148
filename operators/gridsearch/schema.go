// Package gridsearch is the `grid_search` operator: trials of a train stage over a
// grid or random sample of hyperparameters, with early stopping.
package gridsearch

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

// Schema is the `grid_search` block.
var Schema = &operators.Schema{
	Name:        "grid_search",
	Version:     1,
	UsesPSStore: true,
	Doc:         "Runs trials of a train stage over a grid and/or a random sample of its parameters.",
	Attrs: []operators.Attr{
		{Name: "train", Type: cty.DynamicPseudoType, Required: true, Stage: "train",
			Doc: "The train stage whose configuration each trial starts from, such as train.lr."},
		{Name: "grid", Type: cty.DynamicPseudoType,
			Doc:   "Lists of values per train argument; trials are their Cartesian product.",
			Check: checkGrid},
		{Name: "metric", Type: cty.String, Default: cty.StringVal("test_logloss"), Enum: []string{"test_logloss", "accuracy", "auc"},
			Doc: "The objective: test_logloss is minimised, accuracy and auc maximised."},
		{Name: "max_parallel", Type: cty.Number, Default: cty.NumberIntVal(2), Min: operators.Float(1), Max: operators.Float(1000),
			Doc: "Trials running at once."},
		{Name: "worker_budget", Type: cty.Number, Min: operators.Float(1),
			Doc: "Total workers shared by running trials; by default max_parallel times the base stage's workers."},
	},
	Blocks: []operators.Block{
		{Name: "random", Doc: "Random search: samples trials from distributions.", Attrs: []operators.Attr{
			{Name: "samples", Type: cty.Number, Required: true, Min: operators.Float(1), Max: operators.Float(100000)},
			{Name: "seed", Type: cty.Number, Default: cty.NumberIntVal(1)},
			{Name: "params", Type: cty.DynamicPseudoType, Required: true,
				Doc: "Distributions per train argument: loguniform(a, b), uniform(a, b), choice([...])."},
		}},
		{Name: "early_stop", Doc: "Stops poor trials early and frees their workers.", Attrs: []operators.Attr{
			{Name: "rule", Type: cty.String, Required: true, Enum: []string{"threshold", "median", "asha"}},
			{Name: "grace", Type: cty.String, Default: cty.StringVal("10s"), Duration: true,
				Doc: "No trial is stopped by the median or asha rule before it has run this long."},
			{Name: "max_logloss", Type: cty.Number, Min: operators.Float(0),
				Doc: "threshold: stop a trial whose test loss exceeds this (NaN and Inf always stop)."},
			{Name: "reduction_factor", Type: cty.Number, Default: cty.NumberIntVal(3), Min: operators.Float(2),
				Doc: "asha: keep the best 1/reduction_factor of trials at each rung."},
			{Name: "interval", Type: cty.String, Default: cty.StringVal("1s"), Duration: true,
				Doc: "How often the rule is applied."},
		}},
	},
	Outputs: map[string]cty.Type{
		"best":   cty.DynamicPseudoType,
		"trials": cty.DynamicPseudoType,
	},
	Check: func(cfg cty.Value) []operators.Problem {
		if cfg.GetAttr("grid").IsNull() && cfg.GetAttr("random").IsNull() {
			return []operators.Problem{{Attr: "grid", Summary: "Nothing to search",
				Detail: "Give a grid = { argument = [values…] } and/or a random { … } block."}}
		}
		return nil
	},
}

// checkGrid requires an object or map whose values are non-empty lists.
func checkGrid(v cty.Value) error {
	if !v.IsKnown() || v.IsNull() {
		return nil
	}
	t := v.Type()
	if !t.IsObjectType() && !t.IsMapType() {
		return fmt.Errorf("grid must be an object of lists, such as { learning_rate = [0.01, 0.1] }")
	}
	for it := v.ElementIterator(); it.Next(); {
		k, l := it.Element()
		if !l.IsKnown() {
			continue
		}
		lt := l.Type()
		if !lt.IsListType() && !lt.IsTupleType() && !lt.IsSetType() {
			return fmt.Errorf("grid.%s must be a list of values, such as [0.01, 0.1]", k.AsString())
		}
		if l.LengthInt() == 0 {
			return fmt.Errorf("grid.%s is empty: give at least one value", k.AsString())
		}
	}
	return nil
}
