package dsl_test

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

func TestEvalExpr(t *testing.T) {
	_, ev := loadOK(t, map[string]string{"main.hcl": `
variable "n" {
  default = 2
}
locals {
  rows = load.a.train.rows
}
load "a" {
  source = "x.svm"
}
`, "x.svm": "1 1:1\n"})
	pos := hcl.Pos{Line: 4, Column: 1, Byte: 30}
	v, stages, diags := ev.EvalExpr("<stdin>", pos, []byte(`var.n * 3`))
	if diags.HasErrors() || !v.RawEquals(cty.NumberIntVal(6)) || strings.Join(stages, ",") != "var.n" {
		t.Errorf("var.n * 3 = %#v, %v, %v", v, stages, diags)
	}
	// A stage read through a local is named, and unknown until its output is set;
	// so are root variables.
	v, stages, diags = ev.EvalExpr("<stdin>", pos, []byte(`local.rows + 1`))
	if diags.HasErrors() || v.IsKnown() || strings.Join(stages, ",") != "load.a" {
		t.Errorf("local.rows + 1 = %#v, %v, %v", v, stages, diags)
	}
	_, _, diags = ev.EvalExpr("<stdin>", pos, []byte(`1 +`))
	if !diags.HasErrors() || diags[0].Subject.Start.Line != 4 {
		t.Errorf("1 +: %v", diags)
	}
	_, _, diags = ev.EvalExpr("<stdin>", pos, []byte(`load.b`))
	if !diags.HasErrors() || !strings.Contains(diags[0].Detail, `Did you mean "load.a"?`) {
		t.Errorf("load.b: %v", diags)
	}
}

// FuzzEvalExpr: whatever a console user types, EvalExpr returns a value or
// diagnostics, never panics. The seeds run as an ordinary test.
func FuzzEvalExpr(f *testing.F) {
	for _, s := range []string{`var.n * 3`, `local.rows + 1`, `1 +`, `load.b`, `stratus.workspace`, `stratus`, `"${`, `[for x in [1,2]: x if x > 1]`,
		`{a = 1}.a`, `upper(1)`, `load.a.train.rows`, `module.x.y`, `path.root`, `var`, `x[0]`, `%{ if true }a%{ endif }`, "\x00", `load.a[*].b`} {
		f.Add(s)
	}
	_, ev := loadOK(f, map[string]string{"main.hcl": `
variable "n" {
  default = 2
}
locals {
  rows = load.a.train.rows
}
load "a" {
  source = "x.svm"
}
`, "x.svm": "1 1:1\n"})
	f.Fuzz(func(t *testing.T, src string) {
		v, _, diags := ev.EvalExpr("<stdin>", hcl.InitialPos, []byte(src))
		if !diags.HasErrors() && v == cty.NilVal {
			t.Errorf("%q: no value and no error", src)
		}
	})
}
