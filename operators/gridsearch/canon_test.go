package gridsearch_test

import (
	"math"
	"math/big"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators/gridsearch"
	"github.com/stratus-ml/stratus/planner"
)

// TestCanonicalMatchesPlanner holds grid_search's copy of the canonical encoding to
// the planner's.
func TestCanonicalMatchesPlanner(t *testing.T) {
	for _, v := range []cty.Value{
		cty.StringVal("adagrad"), cty.StringVal(""), cty.StringVal("s3:x\x00y"),
		cty.NumberIntVal(20), cty.NumberIntVal(-3), cty.NumberFloatVal(0.1), cty.MustParseNumberVal("0.10"),
		cty.MustParseNumberVal("1e-4"), cty.NumberFloatVal(math.Inf(1)), cty.NumberVal(new(big.Float).SetPrec(512).SetFloat64(1.0 / 3)),
		cty.True, cty.False, cty.NullVal(cty.String), cty.UnknownVal(cty.Number), cty.DynamicVal,
		cty.ListVal([]cty.Value{cty.NumberIntVal(1), cty.NumberIntVal(2)}), cty.EmptyTupleVal,
		cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.NumberIntVal(1)}),
		cty.SetVal([]cty.Value{cty.StringVal("b"), cty.StringVal("a")}),
		cty.MapVal(map[string]cty.Value{"z": cty.NumberIntVal(1), "a": cty.NumberIntVal(2)}),
		cty.ObjectVal(map[string]cty.Value{
			"learning_rate": cty.NumberFloatVal(0.05), "minibatch": cty.NumberIntVal(20),
			"input":   cty.ObjectVal(map[string]cty.Value{"train": cty.ObjectVal(map[string]cty.Value{"manifest": cty.StringVal("file:///m")})}),
			"timeout": cty.StringVal("30m"), "l2": cty.NullVal(cty.Number),
		}),
	} {
		if got, want := gridsearch.Canonical(v), planner.Canonical(v); got != want {
			t.Errorf("%#v: grid_search %q, planner %q", v, got, want)
		}
	}
}
