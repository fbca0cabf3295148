package dsl_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/dsl"
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
// become ready, from several goroutines): goroutines that keep re-setting the
// same stage outputs (which drops the memoised values that read them) and
// reading configs and outputs all get what a sequential evaluation gives.
func TestEvaluatorConcurrent(t *testing.T) {
	files := map[string]string{"main.hcl": evalPipeline, "d.svm": "1 1:1\n"}
	loadOut := cty.ObjectVal(map[string]cty.Value{
		"train": cty.UnknownVal(operators.DatasetType), "test": cty.UnknownVal(operators.DatasetType),
		"rows": cty.NumberIntVal(500), "features": cty.NumberIntVal(3),
	})
	metrics := map[string]cty.Value{}
	for name := range operators.MetricsType.AttributeTypes() {
		metrics[name] = cty.NullVal(cty.Number)
	}
	metrics["test_logloss"] = cty.NumberFloatVal(0.25)
	trainOut := cty.ObjectVal(map[string]cty.Value{
		"model":   cty.StringVal("m"),
		"metrics": cty.ObjectVal(metrics),
	})
	setAll := func(ev *dsl.Evaluator) {
		ev.SetStageOutput("load.a", loadOut)
		ev.SetStageOutput("train.t", trainOut)
	}
	stages := []string{"load.a", "normalize.a", "train.t", "grid_search.g"}

	// The sequential answer.
	_, seq := loadOK(t, files)
	setAll(seq)
	wantConfig := map[string]cty.Value{}
	for _, addr := range stages {
		v, diags := seq.StageConfig(addr)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", addr, diags.Error())
		}
		wantConfig[addr] = v
	}
	wantOutputs, diags := seq.Outputs()
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	// The answer must depend on the outputs set, or the check below is empty.
	if got := wantOutputs["loss"]; !got.RawEquals(cty.NumberFloatVal(0.25)) {
		t.Fatalf("sequential output.loss = %#v, want 0.25", got)
	}
	if got := wantConfig["train.t"].GetAttr("epochs"); !got.RawEquals(cty.NumberIntVal(10)) {
		t.Fatalf("sequential train.t epochs = %#v, want 10", got)
	}

	_, ev := loadOK(t, files)
	setAll(ev)
	const goroutines, rounds = 8, 50
	var (
		mu   sync.Mutex
		errs []string
	)
	report := func(e string) { mu.Lock(); errs = append(errs, e); mu.Unlock() }
	var wg sync.WaitGroup
	for i := 0; i < goroutines; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < rounds; j++ {
				switch (i + j) % 3 {
				case 0:
					addr := stages[(i+j)%len(stages)]
					got, diags := ev.StageConfig(addr)
					if diags.HasErrors() {
						report(fmt.Sprintf("%s: %s", addr, diags.Error()))
					} else if !got.RawEquals(wantConfig[addr]) {
						report(fmt.Sprintf("%s config = %#v, want %#v", addr, got, wantConfig[addr]))
					}
				case 1:
					got, diags := ev.Outputs()
					if diags.HasErrors() {
						report(diags.Error())
						continue
					}
					if len(got) != len(wantOutputs) {
						report(fmt.Sprintf("%d outputs, want %d", len(got), len(wantOutputs)))
					}
					for name, want := range wantOutputs {
						if !got[name].RawEquals(want) {
							report(fmt.Sprintf("output.%s = %#v, want %#v", name, got[name], want))
						}
					}
				case 2:
					setAll(ev)
				}
			}
		}(i)
	}
	wg.Wait()
	for n, e := range errs {
		if n == 5 {
			t.Errorf("... and %d more wrong answers", len(errs)-5)
			break
		}
		t.Error(e)
	}
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
