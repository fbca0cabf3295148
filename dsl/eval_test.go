package dsl_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

const evalPipeline = `
variable "lr" {
  default = 0.5
}

load "a" {
  source = "d.svm"
  split  = { test = 0.2 }
}

normalize "a" {
  input  = load.a
  method = "min_max"
}

train "t" {
  input         = normalize.a
  learning_rate = var.lr
  epochs        = load.a.rows > 1000 ? 1 : 10
  retries       = 3
  task_timeout  = "90s"
}

grid_search "g" {
  train = train.t
  random {
    samples = 4
    params  = { learning_rate = loguniform(0.001, 1) }
  }
}

output "rows" {
  value = load.a.rows
}

output "loss" {
  value = train.t.metrics.test_logloss
}
`

func TestStageConfig(t *testing.T) {
	_, ev := loadOK(t, map[string]string{"main.hcl": evalPipeline, "d.svm": "1 1:1\n"})

	cfg, diags := ev.StageConfig("load.a")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	// Every schema argument is present: given, defaulted, or null.
	checks := map[string]cty.Value{
		"source":   cty.StringVal("d.svm"),
		"format":   cty.StringVal("libsvm"),
		"on_error": cty.StringVal("fail"),
		"log1p":    cty.False,
	}
	for name, want := range checks {
		if got := cfg.GetAttr(name); !got.Equals(want).True() {
			t.Errorf("load.a %s = %#v, want %#v", name, got, want)
		}
	}
	if got := cfg.GetAttr("hash_bits"); !got.IsNull() {
		t.Errorf("hash_bits = %#v, want null", got)
	}
	// An optional object attribute absent from the value is null.
	if split := cfg.GetAttr("split"); !split.GetAttr("seed").IsNull() || !split.GetAttr("test").Equals(cty.NumberFloatVal(0.2)).True() {
		t.Errorf("split = %#v", split)
	}

	tr, _ := ev.StageConfig("train.t")
	if !tr.GetAttr("learning_rate").Equals(cty.NumberFloatVal(0.5)).True() {
		t.Errorf("learning_rate = %#v", tr.GetAttr("learning_rate"))
	}
	// Values that depend on upstream outputs are unknown at plan time.
	if tr.GetAttr("epochs").IsKnown() || tr.GetAttr("input").IsKnown() {
		t.Errorf("epochs/input known before upstream ran: %#v", tr)
	}
	meta, diags := ev.StageMeta("train.t")
	if diags.HasErrors() || meta.Retries != 3 || meta.TaskTimeout != 90*time.Second {
		t.Errorf("StageMeta = %+v, %v", meta, diags)
	}
	if meta, _ := ev.StageMeta("load.a"); meta.Retries != -1 || meta.TaskTimeout != 0 {
		t.Errorf("StageMeta without meta-arguments = %+v", meta)
	}

	g, _ := ev.StageConfig("grid_search.g")
	if g.GetAttr("early_stop").IsNull() != true || g.GetAttr("random").IsNull() {
		t.Errorf("blocks: early_stop %#v random %#v", g.GetAttr("early_stop"), g.GetAttr("random"))
	}
	if got := g.GetAttr("random").GetAttr("seed"); !got.Equals(cty.NumberIntVal(1)).True() {
		t.Errorf("random.seed default = %#v", got)
	}

	if _, diags := ev.StageConfig("train.nope"); !diags.HasErrors() {
		t.Error("StageConfig of an unknown stage succeeded")
	}
	if _, diags := ev.StageMeta("var.lr"); !diags.HasErrors() {
		t.Error("StageMeta of a variable succeeded")
	}
}

// Setting a stage's output makes every value that reads it known, and re-setting
// it (an apply rerunning the stage) replaces the memoised values.
func TestSetStageOutput(t *testing.T) {
	_, ev := loadOK(t, map[string]string{"main.hcl": evalPipeline, "d.svm": "1 1:1\n"})
	if v := value(t, ev, "output.rows"); v.IsKnown() {
		t.Fatalf("rows known before load ran: %#v", v)
	}
	loadOut := func(rows int64) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{
			"train": cty.UnknownVal(operators.DatasetType), "test": cty.UnknownVal(operators.DatasetType),
			"rows": cty.NumberIntVal(rows), "features": cty.NumberIntVal(3),
		})
	}
	ev.SetStageOutput("load.a", loadOut(500))
	wantValue(t, ev, "output.rows", cty.NumberIntVal(500))
	tr, _ := ev.StageConfig("train.t")
	if !tr.GetAttr("epochs").Equals(cty.NumberIntVal(10)).True() {
		t.Errorf("epochs = %#v, want 10", tr.GetAttr("epochs"))
	}
	ev.SetStageOutput("load.a", loadOut(5000))
	wantValue(t, ev, "output.rows", cty.NumberIntVal(5000))
	tr, _ = ev.StageConfig("train.t")
	if !tr.GetAttr("epochs").Equals(cty.NumberIntVal(1)).True() {
		t.Errorf("epochs after rerun = %#v, want 1", tr.GetAttr("epochs"))
	}
	if v := value(t, ev, "output.loss"); v.IsKnown() {
		t.Errorf("loss known before train ran: %#v", v)
	}
}

// The evaluator is safe for concurrent use (the executor evaluates stages as they
// become ready, from several goroutines).
func TestEvaluatorConcurrent(t *testing.T) {
	_, ev := loadOK(t, map[string]string{"main.hcl": evalPipeline, "d.svm": "1 1:1\n"})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				switch (i + j) % 3 {
				case 0:
					ev.StageConfig("train.t")
				case 1:
					ev.Outputs()
				case 2:
					ev.SetStageOutput("train.t", cty.ObjectVal(map[string]cty.Value{
						"model":   cty.StringVal("m"),
						"metrics": cty.UnknownVal(operators.MetricsType),
					}))
				}
			}
		}(i)
	}
	wg.Wait()
}

func TestStageReferenceErrors(t *testing.T) {
	cfg, errs := loadErrs(t, map[string]string{"main.hcl": `
load "a" {
  source = "d.svm"
}

train "t" {
  input  = load.a
  epochs = load.a.nope
  l2     = load
}

grid_search "g" {
  train = load.a
  grid  = { learning_rate = [1] }
}

output "o" {
  value = train.t.metrics.nope
}
`, "d.svm": "1 1:1\n"})
	wantDiags(t, cfg, errs,
		[2]string{"Unsupported attribute", "main.hcl"},
		[2]string{"Invalid reference", "main.hcl"},
		[2]string{"Invalid stage reference", "main.hcl"},
		[2]string{"Unsupported attribute", "main.hcl"})
	for _, d := range errs {
		if d.Summary == "Unsupported attribute" && !strings.Contains(d.Detail, `"nope"`) {
			t.Errorf("detail: %s", d.Detail)
		}
	}
}
