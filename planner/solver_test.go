package planner

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// TestChoiceJSON: a sized number, a solver and an undecided solver keep their
// shape through a saved plan, and Resolve never puts a solver in place of
// "auto" (the operator decides it at apply).
func TestChoiceJSON(t *testing.T) {
	in := []Choice{
		{Param: "workers", Value: 2, Auto: true, Reason: "r"},
		{Param: "solver", Text: "newton", Auto: true, Reason: "auto: fits"},
		{Param: "solver", Options: []string{"newton", "lbfgs"}, Auto: true, Reason: "known after load.d"},
		{Param: "solver", Options: []string{}, Auto: true, Reason: "model is not known until apply"},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"param":"workers","value":2,"auto":true,"reason":"r"},{"param":"solver","value":"newton","auto":true,"reason":"auto: fits"},{"param":"solver","value":null,"options":["newton","lbfgs"],"auto":true,"reason":"known after load.d"},{"param":"solver","value":null,"options":[],"auto":true,"reason":"model is not known until apply"}]`
	if string(b) != want {
		t.Errorf("JSON:\n%s\nwant\n%s", b, want)
	}
	var out []Choice
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip: %+v, want %+v", out, in)
	}
	if got := in[2].String(); got != "solver newton or lbfgs: known after load.d" {
		t.Errorf("String: %q", got)
	}
	if got := in[3].String(); got != "solver not known: model is not known until apply" {
		t.Errorf("String: %q", got)
	}
	sp := &StagePlan{Sizing: in}
	if s, o := sp.PlannedSolver(); s != "newton" || o != nil {
		t.Errorf("PlannedSolver: %q %v", s, o)
	}
	cfg := sp.Resolve(cty.ObjectVal(map[string]cty.Value{"workers": cty.StringVal("auto"), "solver": cty.StringVal("auto")}))
	if cfg.GetAttr("solver").AsString() != "auto" || !cfg.GetAttr("workers").RawEquals(cty.NumberIntVal(2)) {
		t.Errorf("Resolve: %#v", cfg)
	}
}
