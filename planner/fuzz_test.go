package planner

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/operators/builtin"
)

// fuzzSeeds cover every block type, meta-argument, module call, function and the
// common ways a pipeline goes wrong. testdata/fuzz/FuzzPlan holds more, including
// inputs that once crashed.
var fuzzSeeds = []string{
	basePipeline,
	smallPipeline,
	`variable "v" {
  type    = object({ a = number, b = optional(list(string), ["x"]) })
  default = { a = 1 }
  description = "d"
  validation {
    condition     = var.v.a > 0
    error_message = "a must be positive"
  }
}
locals {
  l = merge({ x = 1 }, { y = [for i in range(3) : i * 2] })
  s = format("%s-%d", "a", 2)
  j = jsondecode(jsonencode({ k = [1, null, true] }))
}
output "o" {
  value      = local.l
  depends_on = [load.d]
}
load "d" {
  source       = "d.svm"
  format       = "csv"
  label        = "y"
  split        = { test = 0.25 }
  retries      = 2
  task_timeout = "1m"
}`,
	`module "m" {
  source = "./m"
  x      = 1
}
train "t" {
  input = module.m.out
}`,
	`grid_search "g" {
  train = train.t
  random {
    samples = 3
    params  = { learning_rate = loguniform(0.001, 1), minibatch = choice([10, 20]) }
  }
  early_stop {
    rule             = "asha"
    reduction_factor = 4
  }
}
train "t" {
  input = load.d
}
load "d" {
  source = "*.svm"
}`,
	`backend "lambda" {
  function  = "f"
  bucket    = "s3://b/p"
  endpoints = ["http://127.0.0.1:1"]
  psstore   = ["h:1"]
}
backend "local" {
  max_concurrency = -1
}`,
	`locals {
  a = local.b
  b = local.a
}
load "x" {
  source = "d.svm"
  hash_bits = train.y.metrics.auc
}
train "y" {
  input = load.x
}`,
	// Malformed.
	`load "a" {`,
	`load "a" { source = }`,
	`load { source = "x" }`,
	`load "a" "b" {}`,
	`"load" = 1`,
	`load "a" { source = "d.svm" } load "a" { source = "d.svm" }`,
	`variable "x" { type = list(nope) }`,
	`variable "x" { validation {} }`,
	`train "t" { input = var }`,
	`train "t" { input = load["a"] }`,
	`output "o" { value = module.m[0].x }`,
	`output "o" { value = path.nope }`,
	`normalize "n" { input = {} method = "min_max" range = [null, 1] }`,
	`normalize "n" {
  input  = {}
  method = "min_max"
  range  = []
}`,
	`load "a" { source = file("/dev/null") }`,
	`locals { x = "${` + "\x00" + `}" }`,
	"\xff\xfe\x00",
	``,
	`module "r" {
  source = "git::https://example.com/m.git//sub?ref=v1.0.0"
}
module "s" {
  source = "s3://bucket/modules/m"
}`,
	`stratus {
  required_version = ">= 0.1"
  state            = "s3://b/p"
  cache            = "file://.stratus/blobs"
}
stratus { required_version = "x" }`,
	// Work that explodes unless evaluation is bounded (dsl/budget.go); these fail
	// fast, before the work. Nested for-expressions, which spend the whole budget
	// first, are dsl's TestCostlyExpressionsAreBounded (each would slow fuzzing).
	`locals { x = format("%999999999d", 1) }`,
	`locals { x = setproduct(range(1000), range(1000), range(1000)) }`,
	`locals { x = "${1e600000000}." }`,
	`load "a" { source = 1e600000000 }`,
	`locals {
  a = join("", [for i in range(1000) : "xxxxxxxxxxxxxxxx"])
  b = replace(local.a, "x", local.a)
}`,
}

// FuzzPlan parses and plans arbitrary pipeline text: it must report problems as
// diagnostics and never panic.
//
// The fuzzer minimizes every new interesting input for up to 60 s by default, and
// those executions are not counted, so progress reads "0/sec" for a minute at a
// time. On 2 cores, -fuzzminimizetime 2s ran about 5× as many inputs a minute:
//
//	go test -run '^$' -fuzz FuzzPlan -fuzzminimizetime 2s ./planner/
func FuzzPlan(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, p := range []string{"a9a", "a9a-tune", "criteo", "modules/criteo-prep"} {
		if b, err := os.ReadFile(filepath.Join("..", "pipelines", p, "main.hcl")); err == nil {
			f.Add(string(b))
		}
	}
	reg := builtin.Registry()
	f.Fuzz(func(t *testing.T, src string) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			"main.hcl":   src,
			"d.svm":      "1 1:1\n",
			"m/main.hcl": "variable \"x\" {\n  default = 1\n}\noutput \"out\" {\n  value = var.x\n}\n",
		})
		for _, allowMissing := range []bool{false, true} {
			cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: reg, AllowMissingVars: allowMissing})
			if cfg == nil {
				t.Fatal("Load returned a nil Config")
			}
			if diags.HasErrors() {
				diags = append(diags, Check(cfg)...)
				render(t, cfg, diags)
				continue
			}
			diags = append(diags, Check(cfg)...)
			p, ds := Build(context.Background(), cfg, Options{})
			diags = append(diags, ds...)
			render(t, cfg, diags)
			if p != nil {
				WriteDOT(io.Discard, cfg, p)
				WriteMermaid(io.Discard, cfg, p)
				if _, err := p.ToFile(SaveOptions{}); err != nil {
					t.Fatal(err)
				}
				for _, s := range p.Stages {
					if len(s.Key) != 64 {
						t.Fatalf("%s: key %q", s.Address, s.Key)
					}
				}
			}
			if !diags.HasErrors() {
				if _, ds := cfg.NewEvaluator().Outputs(); ds.HasErrors() {
					t.Fatalf("Outputs failed after a clean plan: %s", ds.Error())
				}
			}
		}
	})
}

// render writes diagnostics as the CLI does; every one must have a summary.
func render(t *testing.T, cfg *dsl.Config, diags hcl.Diagnostics) {
	t.Helper()
	if err := hcl.NewDiagnosticTextWriter(io.Discard, cfg.Files, 78, false).WriteDiagnostics(diags); err != nil {
		t.Fatal(err)
	}
	for _, d := range diags {
		if d.Summary == "" {
			t.Fatalf("diagnostic without a summary: %+v", d)
		}
	}
}
