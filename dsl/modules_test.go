package dsl_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/dsl"
)

// A root calling a module that calls another module: inputs flow down (with
// defaults where not given), outputs flow up, and each stage reads from the
// right scope.
var nested = map[string]string{
	"main.hcl": `
variable "bits" {
  default = 16
}

module "prep" {
  source = "./modules/prep"
  data   = "${path.module}/d.svm"
  bits   = var.bits
}

train "t" {
  input   = module.prep.dataset
  workers = module.prep.workers
}

output "rows" {
  value = module.prep.rows
}

output "workers" {
  value = module.prep.workers
}
`,
	"modules/prep/main.hcl": `
variable "data" {
  type = string
}

variable "bits" {
  type = number
}

variable "workers" {
  type    = number
  default = 3
}

module "parse" {
  source = "../parse"
  data   = var.data
  bits   = var.bits + 1
}

normalize "n" {
  input  = module.parse.loaded
  method = "standard"
}

output "dataset" {
  value = normalize.n
}

output "rows" {
  value = module.parse.loaded.rows
}

output "workers" {
  value = var.workers * 2
}
`,
	"modules/parse/main.hcl": `
variable "data" {
  type = string
}

variable "bits" {
  type    = number
  default = 20
}

load "raw" {
  source    = var.data
  format    = "criteo"
  hash_bits = var.bits
}

output "loaded" {
  value = load.raw
}
`,
	"d.svm": "1 1:1\n",
}

func TestNestedModules(t *testing.T) {
	cfg, ev := loadOK(t, nested)

	var stages []string
	for _, n := range cfg.Stages() {
		stages = append(stages, n.Addr)
	}
	want := []string{"train.t", "module.prep.normalize.n", "module.prep.module.parse.load.raw"}
	if !reflect.DeepEqual(stages, want) {
		t.Errorf("stages = %v, want %v", stages, want)
	}
	if p := cfg.Root.Calls["prep"].Child.Calls["parse"].Child.Path; p.String() != "module.prep.module.parse" {
		t.Errorf("inner module path = %s", p)
	}

	// Inputs: given, computed in the caller's scope, and defaulted.
	wantValue(t, ev, "module.prep.var.bits", cty.NumberIntVal(16))
	wantValue(t, ev, "module.prep.module.parse.var.bits", cty.NumberIntVal(17))
	wantValue(t, ev, "module.prep.var.workers", cty.NumberIntVal(3))
	abs, _ := filepath.Abs(filepath.Join(cfg.Dir, "d.svm"))
	wantValue(t, ev, "module.prep.module.parse.var.data", cty.StringVal(abs))
	raw, _ := ev.StageConfig("module.prep.module.parse.load.raw")
	if got := raw.GetAttr("hash_bits"); !got.Equals(cty.NumberIntVal(17)).True() {
		t.Errorf("inner load hash_bits = %#v", got)
	}

	// Outputs: known ones now, stage outputs after they are set.
	wantValue(t, ev, "output.workers", cty.NumberIntVal(6))
	if v := value(t, ev, "output.rows"); v.IsKnown() {
		t.Errorf("rows before the load ran = %#v, want unknown", v)
	}
	ev.SetStageOutput("module.prep.module.parse.load.raw", cty.ObjectVal(map[string]cty.Value{
		"train": cty.DynamicVal, "test": cty.DynamicVal,
		"rows": cty.NumberIntVal(1234), "features": cty.NumberIntVal(10),
	}))
	wantValue(t, ev, "output.rows", cty.NumberIntVal(1234))
	outs, diags := ev.Outputs()
	if diags.HasErrors() || len(outs) != 2 || !outs["rows"].Equals(cty.NumberIntVal(1234)).True() {
		t.Errorf("Outputs = %v, %v", outs, diags)
	}

	// The train stage depends on the module's normalize stage through its output.
	n := cfg.Nodes["train.t"]
	if got := n.DependsOn(); !reflect.DeepEqual(got, []string{"module.prep.output.dataset", "module.prep.output.workers"}) {
		t.Errorf("train.t depends on %v", got)
	}
}

func TestModuleErrors(t *testing.T) {
	t.Run("missing source directory", func(t *testing.T) {
		cfg, errs := loadErrs(t, map[string]string{"main.hcl": `
module "m" {
  source = "./nowhere"
}

output "o" {
  value = module.m.x
}
`})
		wantDiags(t, cfg, errs, [2]string{"Module source not found", "main.hcl"})
		if !strings.Contains(errs[0].Detail, `Module "m" has source "./nowhere"`) {
			t.Errorf("detail: %s", errs[0].Detail)
		}
	})
	t.Run("module including itself", func(t *testing.T) {
		cfg, errs := loadErrs(t, map[string]string{
			"main.hcl":   "module \"a\" {\n  source = \"./a\"\n}\n",
			"a/main.hcl": "module \"again\" {\n  source = \"../a\"\n}\n",
		})
		wantDiags(t, cfg, errs, [2]string{"Module calls itself", "a/main.hcl"})
	})
	t.Run("module including the root", func(t *testing.T) {
		cfg, errs := loadErrs(t, map[string]string{
			"main.hcl":   "module \"a\" {\n  source = \"./a\"\n}\n",
			"a/main.hcl": "module \"root\" {\n  source = \"..\"\n}\n",
		})
		wantDiags(t, cfg, errs, [2]string{"Module calls itself", "a/main.hcl"})
	})
	t.Run("two calls of one module are fine", func(t *testing.T) {
		cfg, _ := loadOK(t, map[string]string{
			"main.hcl":   "module \"a\" {\n  source = \"./m\"\n}\nmodule \"b\" {\n  source = \"./m\"\n  x = 2\n}\n",
			"m/main.hcl": "variable \"x\" {\n  default = 1\n}\noutput \"y\" {\n  value = var.x\n}\n",
		})
		if cfg.Nodes["module.a.output.y"] == nil || cfg.Nodes["module.b.output.y"] == nil {
			t.Error("both calls should have their own nodes")
		}
	})
	t.Run("inputs: missing, unknown, wrong type", func(t *testing.T) {
		cfg, errs := loadErrs(t, map[string]string{
			"main.hcl":   "module \"m\" {\n  source = \"./m\"\n  n = \"x\"\n  nope = 1\n}\n",
			"m/main.hcl": "variable \"need\" {}\nvariable \"n\" {\n  type = number\n}\n",
		})
		wantDiags(t, cfg, errs,
			[2]string{"Missing required argument", "main.hcl"},
			[2]string{"Unsupported argument", "main.hcl"},
			[2]string{"Invalid value for module input", "main.hcl"})
	})
	t.Run("remote source", func(t *testing.T) {
		cfg, errs := loadErrs(t, map[string]string{"main.hcl": "module \"m\" {\n  source = \"s3://bucket/mod\"\n}\n"})
		wantDiags(t, cfg, errs, [2]string{"Module not installed", "main.hcl"})
	})
	t.Run("undeclared output", func(t *testing.T) {
		cfg, errs := loadErrs(t, map[string]string{
			"main.hcl":   "module \"m\" {\n  source = \"./m\"\n}\noutput \"o\" {\n  value = module.m.ouput\n}\n",
			"m/main.hcl": "output \"output\" {\n  value = 1\n}\n",
		})
		wantDiags(t, cfg, errs, [2]string{"Reference to undeclared module output", "main.hcl"})
		if !strings.Contains(errs[0].Detail, `Did you mean "output"?`) {
			t.Errorf("detail: %s", errs[0].Detail)
		}
	})
	t.Run("module's own problems are reported in its files", func(t *testing.T) {
		cfg, errs := loadErrs(t, map[string]string{
			"main.hcl":   "module \"m\" {\n  source = \"./m\"\n}\n",
			"m/main.hcl": "load \"x\" {\n  source = var.nope\n}\nbackend \"local\" {}\n",
		})
		wantDiags(t, cfg, errs,
			[2]string{"Reference to undeclared input variable", "m/main.hcl"},
			[2]string{"Backend block in a module", "m/main.hcl"})
		for _, d := range errs {
			if d.Summary == "Reference to undeclared input variable" && !strings.Contains(d.Detail, "not declared in module module.m") {
				t.Errorf("detail: %s", d.Detail)
			}
		}
	})
	t.Run("nesting depth is bounded", func(t *testing.T) {
		files := map[string]string{"main.hcl": "module \"m\" {\n  source = \"./m0\"\n}\n"}
		dir := ""
		for i := 0; i < 20; i++ {
			dir = filepath.Join(dir, "m"+string(rune('0'+i%10)))
			files[filepath.Join(dir, "main.hcl")] = "module \"m\" {\n  source = \"./m" + string(rune('0'+(i+1)%10)) + "\"\n}\n"
		}
		cfg, errs := loadErrs(t, files)
		wantDiags(t, cfg, errs, [2]string{"Modules nested too deeply", "main.hcl"})
	})
}

func TestModuleOutputWholeAndDependsOn(t *testing.T) {
	cfg, ev := loadOK(t, map[string]string{
		"main.hcl": `
module "m" {
  source = "./m"
}

load "d" {
  source     = "d.svm"
  depends_on = [module.m]
}

output "all" {
  value = module.m
}
`,
		"m/main.hcl": "output \"a\" {\n  value = 1\n}\noutput \"b\" {\n  value = 2\n}\n",
		"d.svm":      "1 1:1\n",
	})
	for _, addr := range []string{"load.d", "output.all"} {
		if got, want := cfg.Nodes[addr].DependsOn(), []string{"module.m.output.a", "module.m.output.b"}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s depends on %v, want %v", addr, got, want)
		}
	}
	wantValue(t, ev, "output.all", cty.ObjectVal(map[string]cty.Value{"a": cty.NumberIntVal(1), "b": cty.NumberIntVal(2)}))
	if n := cfg.Nodes["output.all"]; n.Kind != dsl.KindOutput || n.Module != cfg.Root {
		t.Errorf("output.all: kind %s", n.Kind)
	}
}
