package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/internal/pricing"
)

// TestPlanPricing: the plan prices its estimates as the run would — a lambda
// backend at its region's and architecture's prices and its memory, the local
// backend (or -backend local) at pricing.Default().
func TestPlanPricing(t *testing.T) {
	dir := t.TempDir()
	hcl := `
backend "lambda" {
  region       = "eu-west-1"
  function     = "stratus"
  bucket       = "s3://b/p"
  memory_mb    = 3008
  architecture = "x86_64"
}
load "d" {
  source = "d.svm"
}
`
	for name, content := range map[string]string{"main.hcl": hcl, "d.svm": "1 1:1\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: registry, Backends: runtime.Decoder{}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want, err := pricing.For("eu-west-1", pricing.X8664)
	if err != nil {
		t.Fatal(err)
	}
	backend, _ := runtime.Location(cfg, "", dir)
	pr, mem := planPricing(cfg, backend)
	if backend != "lambda" || pr != want || mem != 3008 {
		t.Errorf("lambda backend: %q, %+v at %d MB; want lambda, %+v at 3008 MB", backend, pr, mem, want)
	}
	backend, _ = runtime.Location(cfg, "local", dir)
	if pr, _ := planPricing(cfg, backend); backend != "local" || pr != pricing.Default() {
		t.Errorf("-backend local: %q, %+v; want local at %+v", backend, pr, pricing.Default())
	}
}
