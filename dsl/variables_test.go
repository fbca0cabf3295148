package dsl_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/dsl"
)

const typedVars = `
variable "opt" {
  type = object({
    name    = string
    lr      = optional(number, 0.1)
    sizes   = optional(list(number), [20, 100])
    comment = optional(string)
  })
  default = { name = "base" }
}

variable "count" {
  type    = number
  default = "3"
}

variable "flags" {
  type    = map(bool)
  default = {}
}

variable "any" {
  default = [1, "a"]
}

variable "req" {
  type = string
}

output "opt" {
  value = var.opt
}
`

func TestVariableTypes(t *testing.T) {
	cfg, ev := loadOK(t, map[string]string{"main.hcl": typedVars}, withVars(`opt={ name = "x", comment = "c" }`, "req=r"))
	wantValue(t, ev, "var.opt", cty.ObjectVal(map[string]cty.Value{
		"name":    cty.StringVal("x"),
		"lr":      cty.NumberFloatVal(0.1),
		"sizes":   cty.ListVal([]cty.Value{cty.NumberIntVal(20), cty.NumberIntVal(100)}),
		"comment": cty.StringVal("c"),
	}))
	// A default is converted to the type; "3" becomes 3.
	wantValue(t, ev, "var.count", cty.NumberIntVal(3))
	wantValue(t, ev, "var.flags", cty.MapValEmpty(cty.Bool))
	wantValue(t, ev, "var.req", cty.StringVal("r"))
	if got := value(t, ev, "var.any"); !got.Type().IsTupleType() {
		t.Errorf("untyped default = %#v, want the tuple as written", got)
	}
	if src := cfg.VarSource("opt"); src != "-var opt" {
		t.Errorf("VarSource(opt) = %q", src)
	}
	if src := cfg.VarSource("count"); src != "its default" {
		t.Errorf("VarSource(count) = %q", src)
	}

	// The default object gets its optional attributes' defaults too.
	_, ev = loadOK(t, map[string]string{"main.hcl": typedVars}, withVars("req=r"))
	wantValue(t, ev, "output.opt", cty.ObjectVal(map[string]cty.Value{
		"name":    cty.StringVal("base"),
		"lr":      cty.NumberFloatVal(0.1),
		"sizes":   cty.ListVal([]cty.Value{cty.NumberIntVal(20), cty.NumberIntVal(100)}),
		"comment": cty.NullVal(cty.String),
	}))
}

func TestVariableTypeErrors(t *testing.T) {
	cfg, errs := loadErrs(t, map[string]string{"main.hcl": typedVars + `
variable "bad_type" {
  type    = strin
  default = "x"
}

variable "bad_default" {
  type    = list(number)
  default = ["a"]
}
`}, withVars("req=r", "count=many", `opt={ lr = 1 }`, "flags=[true]"))
	wantDiags(t, cfg, errs,
		[2]string{"Invalid type specification", "main.hcl"},
		[2]string{"Invalid default value for variable", "main.hcl"},
		[2]string{"Invalid value for variable", ""}, // count
		[2]string{"Invalid value for variable", ""}, // opt lacks name
		[2]string{"Invalid value for variable", ""}, // flags
	)
}

// Unset required variables are an error for plan and unknown for validate.
func TestMissingVariable(t *testing.T) {
	files := map[string]string{"main.hcl": "variable \"req\" {\n  type = number\n}\nlocals {\n  twice = var.req * 2\n}\n"}
	cfg, errs := loadErrs(t, files)
	wantDiags(t, cfg, errs, [2]string{"No value for required variable", "main.hcl"})

	_, ev := loadOK(t, files, func(o *dsl.LoadOptions) { o.AllowMissingVars = true })
	if v := value(t, ev, "local.twice"); v.IsKnown() || !v.Type().Equals(cty.Number) {
		t.Errorf("local from a missing variable = %#v, want an unknown number", v)
	}
}

func TestVariablePrecedence(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"main.hcl": "variable \"a\" {\n  default = \"default\"\n}\nvariable \"b\" {\n  default = \"default\"\n}\n" +
			"variable \"c\" {\n  default = \"default\"\n}\nvariable \"d\" {\n  default = \"default\"\n}\nvariable \"list\" {\n  type = list(number)\n  default = []\n}\n",
		"one.vars":  "b = \"file one\"\nc = \"file one\"\nd = \"file one\"\n",
		"two.json":  `{"c": "file two", "d": "file two"}`,
		"three.txt": "",
	})
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{
		Registry: registry,
		Environ:  []string{"STRATUS_VAR_a=env", "STRATUS_VAR_b=env", "STRATUS_VAR_list=[1, 2]", "STRATUS_VAR_other=x", "PATH=/bin"},
		VarFiles: []string{filepath.Join(dir, "one.vars"), filepath.Join(dir, "two.json")},
		Vars:     []string{"d=flag one", "d=flag two"},
	})
	if diags.HasErrors() {
		t.Fatal(diagString(cfg, diags))
	}
	want := map[string][2]string{
		"a": {"env", "environment variable STRATUS_VAR_a"},
		"b": {"file one", filepath.Join(dir, "one.vars")},
		"c": {"file two", filepath.Join(dir, "two.json")},
		"d": {"flag two", "-var d"},
	}
	for name, w := range want {
		if got := cfg.RootVars()[name]; !got.Equals(cty.StringVal(w[0])).True() {
			t.Errorf("var.%s = %#v, want %q", name, got, w[0])
		}
		if got := cfg.VarSource(name); got != w[1] {
			t.Errorf("VarSource(%s) = %q, want %q", name, got, w[1])
		}
	}
	if got := cfg.RootVars()["list"]; got.LengthInt() != 2 {
		t.Errorf("var.list from the environment = %#v", got)
	}
}

func TestValidation(t *testing.T) {
	files := map[string]string{"main.hcl": `
variable "lr" {
  type    = number
  default = 0.1

  validation {
    condition     = var.lr > 0
    error_message = "lr must be positive, not ${var.lr}."
  }

  validation {
    condition     = var.lr < 10
    error_message = "lr must be below 10."
  }
}
`}
	loadOK(t, files)
	loadOK(t, files, withVars("lr=5"))

	cfg, errs := loadErrs(t, files, withVars("lr=-1"))
	wantDiags(t, cfg, errs, [2]string{"Invalid value for variable", "main.hcl"})
	if d := errs[0].Detail; !strings.HasPrefix(d, "lr must be positive, not -1.") || !strings.Contains(d, "(from -var lr)") {
		t.Errorf("detail: %s", d)
	}
	cfg, errs = loadErrs(t, files, withVars("lr=20"))
	wantDiags(t, cfg, errs, [2]string{"Invalid value for variable", "main.hcl"})

	// Unknown values (validate without a value) are not checked.
	loadOK(t, map[string]string{"main.hcl": "variable \"x\" {\n  type = number\n  validation {\n    condition = var.x > 0\n    error_message = \"no\"\n  }\n}\n"},
		func(o *dsl.LoadOptions) { o.AllowMissingVars = true })
}

func TestValidationErrors(t *testing.T) {
	cfg, errs := loadErrs(t, map[string]string{"main.hcl": `
variable "other" {
  default = 1
}

variable "x" {
  default = 1

  validation {
    condition     = var.other > 0
    error_message = "refers to another variable"
  }

  validation {
    condition     = "maybe"
    error_message = "not a bool"
  }

  validation {
    condition = true
  }
}
`})
	wantDiags(t, cfg, errs,
		[2]string{"Invalid reference in variable validation", "main.hcl"},
		[2]string{"Invalid validation condition", "main.hcl"},
		[2]string{"Missing required argument", "main.hcl"})
}

func TestVarOptionErrors(t *testing.T) {
	cfg, errs := loadErrs(t, map[string]string{"main.hcl": "variable \"learning_rate\" {\n  default = 1\n}\n"},
		withVars("learning_rat=2", "novalue", "=3"),
		func(o *dsl.LoadOptions) { o.VarFiles = []string{filepath.Join(os.TempDir(), "no-such-stratus.vars")} })
	wantDiags(t, cfg, errs,
		[2]string{"Value for undeclared variable", ""},
		[2]string{"Invalid -var option", ""},
		[2]string{"Invalid -var option", ""},
		[2]string{"Cannot read variables file", ""})
	for _, d := range errs {
		if d.Summary == "Value for undeclared variable" && !strings.Contains(d.Detail, `Did you mean "learning_rate"?`) {
			t.Errorf("detail: %s", d.Detail)
		}
	}
}

func TestDependsOn(t *testing.T) {
	cfg, _ := loadOK(t, map[string]string{
		"main.hcl": `
load "a" {
  source = "d.svm"
}

load "b" {
  source     = "d.svm"
  depends_on = [load.a]
}

module "m" {
  source = "./m"
}

train "t" {
  input      = load.b
  depends_on = [load.a, module.m]
}

output "o" {
  value      = 1
  depends_on = [train.t]
}
`,
		"m/main.hcl": "output \"x\" {\n  value = 1\n}\n",
		"d.svm":      "1 1:1\n",
	})
	tests := map[string][]string{
		"load.b":   {"load.a"},
		"train.t":  {"load.a", "load.b", "module.m.output.x"},
		"output.o": {"train.t"},
	}
	for addr, want := range tests {
		got := cfg.Nodes[addr].DependsOn()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s depends on %v, want %v", addr, got, want)
		}
	}

	cfg, errs := loadErrs(t, map[string]string{"main.hcl": `
load "a" {
  source     = "d.svm"
  depends_on = [load.b, var.x, load.a.train, "x", load]
}

module "m" {
  source     = "./m"
  depends_on = [load.a]
}
`, "m/main.hcl": "locals {}\n"})
	wantDiags(t, cfg, errs,
		[2]string{"Reference to undeclared load stage", "main.hcl"},
		[2]string{"Invalid depends_on entry", "main.hcl"},
		[2]string{"Invalid depends_on entry", "main.hcl"},
		[2]string{"Invalid depends_on entry", "main.hcl"},
		[2]string{"Invalid reference", "main.hcl"},
		[2]string{"depends_on is not supported on modules", "main.hcl"})
}
